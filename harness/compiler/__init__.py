"""Compile an int8 .tflite model into plain C99 for the benchmark firmware.

    compiled = compile_tflite(tflite_bytes, "build/model", kernel="csr")
    compiled = compile_tflite(tflite_bytes, "build/model", layer_kernels={0: "csr", 3: "dense"})

Stages: read the flatbuffer into a small IR (tflite_reader, ir); lower
every op to a kernel call (calls) with TFLM-exact requantization
parameters and encoded weights (lower, lower_tensor_ops, quant, encode);
place activations and scratch buffers in one arena (memory_plan); write
model.c and model.h (emit_c). The generated code calls the kernels in
firmware/kernels/, and the tests check it byte for byte against TFLite Micro.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.compiler.calls import KernelCall
from harness.compiler.emit_c import write_model
from harness.compiler.encode import WeightBytes
from harness.compiler.ir import CompileError, Tensor
from harness.compiler.lower import KERNEL_FORMATS, lower
from harness.compiler.memory_plan import plan_memory
from harness.compiler.tflite_reader import SUPPORTED_OPS, read_tflite

__all__ = [
    "compile_tflite",
    "read_tflite",
    "CompiledModel",
    "CompileError",
    "LayerInfo",
    "TensorInfo",
    "WeightBytes",
    "KERNEL_FORMATS",
    "SUPPORTED_OPS",
    "content_id",
]

_MODEL_ID = re.compile(r"[A-Za-z0-9._-]{1,40}")  # it goes into a C string and the protocol's hello line


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[int, ...]
    scale: float
    zero_point: int


@dataclass(frozen=True)
class LayerInfo:
    index: int
    op: str  # e.g. "CONV_2D"
    kernel: str  # e.g. "conv2d_csr_s8"; "alias" for a RESHAPE that copies nothing
    format: str  # weight format, e.g. "csr"; "" for an op without weights
    macs: int  # multiply-accumulates of the dense computation
    nonzero_macs: int  # those with a nonzero weight
    weight_bytes: WeightBytes
    input_shapes: tuple[tuple[int, ...], ...]  # the computed inputs' (constants are weights, biases, shapes)
    output_shape: tuple[int, ...]
    weight_shape: tuple[int, ...]  # () for an op without weights


@dataclass(frozen=True)
class CompiledModel:
    out_dir: Path  # holds model.c and model.h
    model_id: str
    kernel: str  # the default weight format (KERNEL_FORMATS); layers may differ, see layers
    arena_bytes: int  # MODEL_ARENA_BYTES: activations and scratch buffers
    input_preserved: bool  # MODEL_INPUT_PRESERVED: model_invoke() leaves the input intact
    layers: tuple[LayerInfo, ...]
    input: TensorInfo
    output: TensorInfo
    flash: dict[str, int]  # bytes of constant tables: dense_weights, sparse_values, sparse_indices,
    # sparse_pointers, biases_and_quant (biases, per-channel multipliers, shifts)
    weight_sparsity: float  # fraction of zero weights (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED)

    def runs_format(self, fmt: str) -> bool:
        """Whether some layer runs in weight format fmt (a format refuses layers it cannot take: they run dense)."""
        return any(layer.format == fmt for layer in self.layers)

    @property
    def table_bytes(self) -> int:
        """Flash in constant tables; the rest of the firmware's flash is code and parameter structs."""
        return sum(self.flash.values())

    @property
    def layer_names(self) -> tuple[str, ...]:
        """As model_layer_names[] in model.c: "0:CONV_2D", ..."""
        return tuple(f"{layer.index}:{layer.op}" for layer in self.layers)


def content_id(tflite: bytes, kernel: str, layer_kernels: Mapping[int, str] | None = None) -> str:
    """The default model_id: a hash of the model and the kernel choice."""
    choice = kernel + "".join(f";{index}={fmt}" for index, fmt in sorted((layer_kernels or {}).items()))
    return hashlib.sha256(tflite + b"\0" + choice.encode()).hexdigest()[:16]


def compile_tflite(
    tflite_bytes: bytes,
    out_dir: str | Path,
    kernel: str = "dense",
    model_id: str | None = None,
    layer_kernels: Mapping[int, str] | None = None,
) -> CompiledModel:
    """Write model.c and model.h for an int8 .tflite into out_dir.

    kernel is the weight format (KERNEL_FORMATS) of every op with weights
    that has a kernel in it; e.g. "csr" stores FULLY_CONNECTED and CONV_2D
    weights as compressed sparse rows and runs them with the sparse kernels,
    while the other ops use their dense kernels. layer_kernels sets the
    format of given ops by op index. Raises CompileError when the model
    cannot run.
    """
    if kernel not in KERNEL_FORMATS:
        raise ValueError(f"kernel must be one of {KERNEL_FORMATS}, got {kernel!r}")
    model_id = model_id or content_id(tflite_bytes, kernel, layer_kernels)
    if not _MODEL_ID.fullmatch(model_id):
        raise ValueError(f"model_id must be 1-40 characters from [A-Za-z0-9._-], got {model_id!r}")
    graph = read_tflite(tflite_bytes)
    if not graph.ops:
        raise CompileError("the model has no ops")
    calls = lower(graph, kernel, layer_kernels)
    plan = plan_memory(graph, calls)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_model(out_dir, graph, calls, plan, model_id, kernel)
    return CompiledModel(
        out_dir=out_dir,
        model_id=model_id,
        kernel=kernel,
        arena_bytes=plan.arena_bytes,
        input_preserved=plan.input_preserved,
        layers=tuple(_layer_info(call) for call in calls),
        input=_tensor_info(graph.input),
        output=_tensor_info(graph.output),
        flash=_flash_account(calls),
        weight_sparsity=graph.weight_sparsity(),
    )


def _tensor_info(tensor: Tensor) -> TensorInfo:
    return TensorInfo(shape=tensor.shape, scale=tensor.scale, zero_point=tensor.zero_point)


def _layer_info(call: KernelCall) -> LayerInfo:
    return LayerInfo(
        index=call.op.index,
        op=call.op.kind,
        kernel=call.kernel,
        format=call.weights.format if call.weights is not None else "",
        macs=call.macs,
        nonzero_macs=call.nonzero_macs,
        weight_bytes=call.weights.bytes if call.weights is not None else WeightBytes(),
        input_shapes=tuple(t.shape for t in call.op.inputs if t is not None and not t.is_constant),
        output_shape=call.op.outputs[0].shape,
        weight_shape=call.op.inputs[1].shape if call.weights is not None else (),
    )


def _flash_account(calls: list[KernelCall]) -> dict[str, int]:
    dense = [c.weights.bytes for c in calls if c.weights is not None and c.weights.format == "dense"]
    sparse = [c.weights.bytes for c in calls if c.weights is not None and c.weights.format != "dense"]
    return {
        "dense_weights": sum(b.values for b in dense),
        "sparse_values": sum(b.values for b in sparse),
        "sparse_indices": sum(b.indices for b in sparse),
        "sparse_pointers": sum(b.pointers for b in sparse),
        "biases_and_quant": sum(c.bias_and_quant_bytes for c in calls),
    }
