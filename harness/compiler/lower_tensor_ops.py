"""Lowerings of ADD, MUL, PAD, CONCATENATION, MEAN and LOGISTIC.

None of them has weights to encode, so they run the same kernels whatever
the weight format. Shapes of up to four dimensions are padded in front with
1s, as in TFLM's reference kernels.
"""

from __future__ import annotations

import numpy as np

from harness.compiler.calls import KernelCall, TensorList, activation_input, fail
from harness.compiler.encode import CArray, CStruct, encode_dense
from harness.compiler.ir import Op, Tensor
from harness.compiler.overlap import ELEMENTWISE
from harness.compiler.quant import activation_range, add_params, logistic_params, mean_multiplier, mul_multiplier

MAX_RANK = 4


def _as_4d(op: Op, shape: tuple[int, ...]) -> list[int]:
    if len(shape) > MAX_RANK:
        raise fail(op, f"tensors of more than {MAX_RANK} dimensions are not supported, got {list(shape)}")
    return [1] * (MAX_RANK - len(shape)) + list(shape)


def _constant_ints(op: Op, position: int, what: str) -> np.ndarray:
    tensor = op.inputs[position] if position < len(op.inputs) else None
    if tensor is None or not tensor.is_constant:
        raise fail(op, f"{what} must be a constant tensor")
    return tensor.data.astype(np.int64)


def _quantized(op: Op, tensor: Tensor) -> Tensor:
    if tensor.dtype != "int8" or tensor.quant is None or tensor.quant.per_channel:
        raise fail(op, f"input '{tensor.name}' must be int8 with one scale, got {tensor.dtype}")
    return tensor


# ---- ADD, MUL ------------------------------------------------------------------------------------


def _broadcast_strides(op: Op, shape: tuple[int, ...], out_shape: tuple[int, ...]) -> list[int]:
    """Elements to step per output index along each dimension: 0 where the input repeats."""
    dims, out_dims = _as_4d(op, shape), _as_4d(op, out_shape)
    if any(d not in (1, o) for d, o in zip(dims, out_dims)):
        raise fail(op, f"cannot broadcast {list(shape)} to {list(out_shape)}")
    contiguous = [int(np.prod(dims[d + 1 :], dtype=np.int64)) for d in range(MAX_RANK)]
    return [stride if d == o else 0 for d, o, stride in zip(dims, out_dims, contiguous)]


def _lower_binary(op: Op, kernel_name: str, params_type: str, rescaling: dict) -> KernelCall:
    (a, b), out = op.inputs[:2], op.outputs[0]
    if a.is_constant and b.is_constant:
        raise fail(op, "both inputs are constants")
    args, constants, weights = [], [], None
    for position, tensor in enumerate((a, b), start=1):
        if tensor.is_constant:  # e.g. a learned per-channel scale
            weights = encode_dense(tensor.data, f"op{op.index}_input{position}")
            args.append(weights.values.ref)
            constants += weights.arrays
        else:
            args.append(tensor)
    act_min, act_max = activation_range(op.options["activation"], out.scale, out.zero_point)
    shape = {
        "dims": _as_4d(op, out.shape),
        "input1_stride": _broadcast_strides(op, a.shape, out.shape),
        "input2_stride": _broadcast_strides(op, b.shape, out.shape),
    }
    params = CStruct(
        f"op{op.index}_params",
        params_type,
        {
            "shape": shape,
            "input1_offset": -a.zero_point,
            "input2_offset": -b.zero_point,
            "output_offset": out.zero_point,
            **rescaling,
            "act_min": act_min,
            "act_max": act_max,
        },
    )
    # A broadcast input is read again and again; one of the output's shape is read once, in step.
    overlaps = {t: ELEMENTWISE for t in (a, b) if not t.is_constant and _as_4d(op, t.shape) == shape["dims"]}
    return KernelCall(
        op=op,
        kernel=kernel_name,
        params=params,
        args=[*args, out],
        constants=[*constants, params],
        weights=weights,
        overlaps=overlaps,
    )


def lower_add(op: Op, fmt: str) -> KernelCall:
    a, b = (_quantized(op, t) for t in op.inputs[:2])
    return _lower_binary(op, "add_s8", "nn_add_params", add_params(a.scale, b.scale, op.outputs[0].scale))


def lower_mul(op: Op, fmt: str) -> KernelCall:
    a, b = (_quantized(op, t) for t in op.inputs[:2])
    multiplier, shift = mul_multiplier(a.scale, b.scale, op.outputs[0].scale)
    return _lower_binary(op, "mul_s8", "nn_mul_params", {"output_multiplier": multiplier, "output_shift": shift})


# ---- PAD, PADV2, CONCATENATION -------------------------------------------------------------------


def lower_pad(op: Op, fmt: str) -> KernelCall:
    inp, out = activation_input(op), op.outputs[0]
    paddings = _constant_ints(op, 1, "paddings")
    if paddings.shape != (len(inp.shape), 2) or np.any(paddings < 0):
        raise fail(
            op, f"paddings must be non-negative (before, after) pairs, one per dimension, got {paddings.tolist()}"
        )
    # PAD pads with zero, which is the output zero point; PADV2 names its value.
    pad_value = int(_constant_ints(op, 2, "the pad value").reshape(-1)[0]) if op.kind == "PADV2" else out.zero_point
    params = CStruct(
        f"op{op.index}_params",
        "nn_pad_params",
        {
            "input_dims": _as_4d(op, inp.shape),
            "output_dims": _as_4d(op, out.shape),
            "before": [0] * (MAX_RANK - len(inp.shape)) + [int(p) for p in paddings[:, 0]],
            "pad_value": pad_value,
        },
    )
    return KernelCall(op=op, kernel="pad_s8", params=params, args=[inp, out], constants=[params])


def lower_concatenation(op: Op, fmt: str) -> KernelCall:
    out = op.outputs[0]
    inputs = [activation_input(op, i) for i in range(len(op.inputs))]
    if op.options["activation"] != "NONE":
        raise fail(op, "a fused activation is not supported (TFLM refuses it too)")
    axis = op.options["axis"] % len(out.shape)
    chunks = CArray(
        f"op{op.index}_chunk", np.array([int(np.prod(t.shape[axis:], dtype=np.int64)) for t in inputs], dtype=np.int32)
    )
    params = CStruct(
        f"op{op.index}_params",
        "nn_concatenation_params",
        {"outer": int(np.prod(out.shape[:axis], dtype=np.int64)), "count": len(inputs), "chunk": chunks.ref},
    )
    return KernelCall(
        op=op,
        kernel="concatenation_s8",
        params=params,
        args=[TensorList(tuple(inputs)), out],
        constants=[chunks, params],
    )


# ---- MEAN, LOGISTIC ------------------------------------------------------------------------------


def lower_mean(op: Op, fmt: str) -> KernelCall:
    inp, out = activation_input(op), op.outputs[0]
    axes = sorted({int(a) % len(inp.shape) for a in _constant_ints(op, 1, "axes").reshape(-1)})
    if axes != list(range(axes[0], axes[-1] + 1)):
        raise fail(op, f"only adjacent axes can be reduced, got {axes}")
    shape = inp.shape
    outer, reduced, inner = (
        int(np.prod(part, dtype=np.int64))
        for part in (shape[: axes[0]], shape[axes[0] : axes[-1] + 1], shape[axes[-1] + 1 :])
    )
    multiplier, shift = mean_multiplier(inp.scale, out.scale, reduced)
    params = CStruct(
        f"op{op.index}_params",
        "nn_mean_params",
        {
            "outer": outer,
            "reduced": reduced,
            "inner": inner,
            "input_zero_point": inp.zero_point,
            "output_zero_point": out.zero_point,
            "multiplier": multiplier,
            "shift": shift,
        },
    )
    return KernelCall(op=op, kernel="mean_s8", params=params, args=[inp, out], constants=[params])


def lower_logistic(op: Op, fmt: str) -> KernelCall:
    inp, out = activation_input(op), op.outputs[0]
    if out.zero_point != -128:
        raise fail(op, f"int8 output must have zero point -128 (TFLM requires it), got {out.zero_point}")
    multiplier, left_shift, radius = logistic_params(inp.scale)
    params = CStruct(
        f"op{op.index}_params",
        "nn_logistic_params",
        {
            "size": inp.size,
            "input_zero_point": inp.zero_point,
            "input_range_radius": radius,
            "input_multiplier": multiplier,
            "input_left_shift": left_shift,
        },
    )
    return KernelCall(
        op=op, kernel="logistic_s8", params=params, args=[inp, out], constants=[params], overlaps={inp: ELEMENTWISE}
    )


LOWERINGS = {
    "ADD": lower_add,
    "MUL": lower_mul,
    "PAD": lower_pad,
    "PADV2": lower_pad,
    "CONCATENATION": lower_concatenation,
    "MEAN": lower_mean,
    "LOGISTIC": lower_logistic,
}
