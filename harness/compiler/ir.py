"""The compiler's model of a network: tensors, the ops between them, the graph.

The .tflite reader fills these in; every later stage reads them and none
touches the flatbuffer schema.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class CompileError(Exception):
    """The model cannot be compiled; the message says why and what to change."""


@dataclass(frozen=True, eq=False)
class Quantization:
    scale: np.ndarray  # float32: one value, or one per channel along `axis`
    zero_point: np.ndarray  # int64, same length as scale
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return self.scale.size > 1


@dataclass(eq=False)
class Tensor:
    """A tensor; compared by identity, so it can key dicts."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: "int8", "int32", "float32", ...
    quant: Quantization | None = None
    data: np.ndarray | None = None  # set for constants (weights, biases, shapes)

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    @property
    def scale(self) -> float:
        """The per-tensor scale (activations are always per-tensor)."""
        return float(self.quant.scale[0])

    @property
    def zero_point(self) -> int:
        return int(self.quant.zero_point[0])


@dataclass(eq=False)
class Op:
    index: int  # position in the .tflite operator list
    kind: str  # builtin operator name, e.g. "CONV_2D"
    inputs: list[Tensor | None]  # None where an optional input is omitted
    outputs: list[Tensor]
    options: dict = field(default_factory=dict)  # see tflite_reader for the keys per kind

    @property
    def label(self) -> str:
        return f"{self.index}:{self.kind}"


WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")  # weights are input 1


@dataclass(eq=False)
class Graph:
    tensors: list[Tensor]
    ops: list[Op]  # in execution order
    input: Tensor
    output: Tensor

    def weight_sparsity(self) -> float:
        """Fraction of zeros among all the weights of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED."""
        weights = [
            op.inputs[1].data
            for op in self.ops
            if op.kind in WEIGHTED_OPS and len(op.inputs) > 1 and op.inputs[1] is not None and op.inputs[1].is_constant
        ]
        total = sum(w.size for w in weights)
        return sum(w.size - int(np.count_nonzero(w)) for w in weights) / total if total else 0.0
