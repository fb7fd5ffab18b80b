"""What lowering produces: one KernelCall per op, and the checks every lowering shares.

A KernelCall says which kernel runs the op, the constants it reads
(C arrays and parameter structs) and its arguments; emit_c turns it into C,
memory_plan places its tensors and scratch buffer in the arena.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.compiler.encode import CStruct, Encoded
from harness.compiler.ir import CompileError, Op, Tensor


class _Scratch:
    def __repr__(self) -> str:
        return "SCRATCH"


SCRATCH = _Scratch()  # stands for the call's scratch buffer in KernelCall.args


@dataclass(frozen=True, eq=False)
class TensorList:
    """An argument that is an array of tensors, e.g. CONCATENATION's inputs."""

    tensors: tuple[Tensor, ...]


@dataclass(eq=False)
class KernelCall:
    """One op as C: `nn_<kernel>(&params, *args)` and the constants it reads."""

    op: Op
    kernel: str  # kernel name without "nn_", or "alias" for a RESHAPE
    params: CStruct | None = None  # None: no call (an alias)
    args: list = field(default_factory=list)  # Tensor, TensorList, SCRATCH or a C expression
    constants: list = field(default_factory=list)  # CArray and CStruct, in definition order
    weights: Encoded | None = None
    bias_and_quant_bytes: int = 0
    macs: int = 0  # multiply-accumulates of the dense computation
    nonzero_macs: int = 0  # those with a nonzero weight
    scratch_bytes: int = 0
    alias_of: Tensor | None = None  # RESHAPE: the output shares this tensor's bytes
    # Inputs the output may overlap if they die at this op: input -> least distance from the
    # output's start up to the input's start, in bytes (see overlap.py).
    overlaps: dict = field(default_factory=dict)


def fail(op: Op, message: str) -> CompileError:
    return CompileError(f"op {op.index} ({op.kind}): {message}")


def activation_input(op: Op, position: int = 0) -> Tensor:
    tensor = op.inputs[position] if position < len(op.inputs) else None
    if tensor is None or tensor.is_constant:
        raise fail(op, f"input {position} must be a computed tensor")
    return tensor
