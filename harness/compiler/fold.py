"""Shape arithmetic that a dynamic batch leaves in a .tflite, computed once at compile time.

A Keras model whose input has batch None converts with -1 as the batch in
every `shape_signature` and 1 in every `shape`. TFLite Micro runs such a
file as it is, with batch 1. A Keras 3 Flatten then becomes SHAPE ->
STRIDED_SLICE -> PACK -> RESHAPE: the new shape is computed from the
input's at run time. With the batch fixed at 1 all of that is known before
the model runs, so each op whose inputs are known (constants, or the shape
of a tensor) is evaluated here and its output kept as a constant; the
network ops are what remains.
"""

from __future__ import annotations

import numpy as np

from harness.compiler.ir import Op


def _shape(op: Op) -> np.ndarray:
    return np.asarray(op.inputs[0].shape, dtype=op.outputs[0].dtype)


def _strided_slice(op: Op) -> np.ndarray | None:
    data, begin, end, strides = (t.data for t in op.inputs[:4])
    o = op.options
    if o["ellipsis_mask"] or o["new_axis_mask"] or o["offset"]:
        return None  # never seen in shape arithmetic; left to be refused as an unsupported op
    index = []
    for axis in range(len(begin)):
        if o["shrink_axis_mask"] >> axis & 1:
            index.append(int(begin[axis]))
            continue
        start = None if o["begin_mask"] >> axis & 1 else int(begin[axis])
        stop = None if o["end_mask"] >> axis & 1 else int(end[axis])
        index.append(slice(start, stop, int(strides[axis])))
    return np.asarray(data[tuple(index)])


def _pack(op: Op) -> np.ndarray:
    return np.stack([t.data for t in op.inputs], axis=op.options["axis"])


def _concatenation(op: Op) -> np.ndarray | None:
    if op.options["activation"] != "NONE" or op.outputs[0].dtype not in ("int32", "int64"):
        return None  # an int8 concatenation of constants is arithmetic on quantized values: not folded
    return np.concatenate([t.data for t in op.inputs], axis=op.options["axis"])


_EVALUATORS = {"SHAPE": _shape, "STRIDED_SLICE": _strided_slice, "PACK": _pack, "CONCATENATION": _concatenation}
# Ops that only shape arithmetic uses: one left after folding computes on run-time values. (CONCATENATION is
# folded when it joins shape pieces, and is a network op otherwise.)
SHAPE_ONLY_OPS = ("SHAPE", "STRIDED_SLICE", "PACK")


def fold_shape_arithmetic(ops: list[Op]) -> list[Op]:
    """The ops left once every op computable before the model runs has been computed into a constant."""
    remaining = []
    for op in ops:  # in execution order, so an op's inputs were folded before it is looked at
        evaluate = _EVALUATORS.get(op.kind)
        known = op.kind == "SHAPE" or all(t is not None and t.is_constant for t in op.inputs)
        value = evaluate(op) if evaluate is not None and known and len(op.outputs) == 1 else None
        if value is None:
            remaining.append(op)
            continue
        out = op.outputs[0]
        out.data = value.astype(out.dtype).reshape(out.shape)
    return remaining
