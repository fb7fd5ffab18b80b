"""Lower each op to one kernel call: which kernel, its parameters and constants.

This module lowers the ops with weights (FULLY_CONNECTED, CONV_2D,
DEPTHWISE_CONV_2D), pooling, SOFTMAX and RESHAPE, and holds the table of all
lowerings; lower_tensor_ops.py has the rest. A lowering checks what the
kernel needs (constant int8 weights, int32 biases, supported geometry),
computes TFLM's requantization parameters and encodes the weights in the
layer's format (encode.FORMATS). Field and kernel names match
firmware/kernels/kernels.h.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from harness.compiler import encode_depthwise, lower_tensor_ops
from harness.compiler.calls import SCRATCH, KernelCall, activation_input, fail
from harness.compiler.encode import FORMATS, CArray, CStruct, Encoded, FormatRefused
from harness.compiler.ir import CompileError, Graph, Op, Tensor
from harness.compiler.overlap import window_distance
from harness.compiler.quant import activation_range, channel_multipliers, fold_requantization, softmax_params

KERNEL_FORMATS = tuple(FORMATS)
SPARSE_CONV_TILE = 4  # NN_CONV_TILE in kernel_util.h: output pixels a sparse CONV_2D kernel computes together
SOFTMAX_MAX_DEPTH = 511  # beyond this TFLM's fixed-point reciprocal can overflow


def lower(graph: Graph, kernel: str = "dense", layer_kernels: Mapping[int, str] | None = None) -> list[KernelCall]:
    """One call per op, in order.

    kernel is the weight format of every op with weights that has a kernel
    in it (the others run dense); layer_kernels names the format of given
    ops (by op index), and there a format the op has no kernel in is an error.
    """
    layer_kernels = dict(layer_kernels or {})
    for index, fmt in layer_kernels.items():
        if fmt not in KERNEL_FORMATS:
            raise ValueError(f"op {index}: kernel must be one of {KERNEL_FORMATS}, got {fmt!r}")
    unknown = sorted(set(layer_kernels) - {op.index for op in graph.ops})
    if unknown:
        raise CompileError(f"layer kernels name ops {unknown}, but the model has ops 0..{len(graph.ops) - 1}")
    return [_lower_op(op, _layer_format(op, kernel, layer_kernels), op.index in layer_kernels) for op in graph.ops]


def _lower_op(op: Op, fmt: str, named: bool) -> KernelCall:
    """The op in its format; a format that refuses the layer's weights (FormatRefused) leaves it dense,
    unless the format was named for this layer."""
    try:
        return LOWERINGS[op.kind](op, fmt)
    except FormatRefused as refused:
        if named:
            raise fail(op, str(refused)) from refused
        return LOWERINGS[op.kind](op, "dense")


def _layer_format(op: Op, kernel: str, layer_kernels: dict[int, str]) -> str:
    formats = OP_FORMATS.get(op.kind, ("dense",))
    if op.index not in layer_kernels:
        return kernel if kernel in formats else "dense"
    if layer_kernels[op.index] not in formats:
        raise fail(op, f"has no {layer_kernels[op.index]} kernel; its formats are {', '.join(formats)}")
    return layer_kernels[op.index]


def kernel_name(family: str, fmt: str) -> str:
    """nn_<family>_s8 runs dense weights, nn_<family>_<format>_s8 the others."""
    return f"{family}_s8" if fmt == "dense" else f"{family}_{fmt}_s8"


# ---- checks and pieces shared by the lowerings -------------------------------------------------


def _image(op: Op, tensor: Tensor, what: str) -> tuple[int, int, int]:
    if len(tensor.shape) != 4 or tensor.shape[0] != 1:
        raise fail(op, f"{what} must have shape [1, H, W, C], got {list(tensor.shape)}")
    return tensor.shape[1], tensor.shape[2], tensor.shape[3]


def _weights(op: Op, ndim: int, channel_axis: int) -> Tensor:
    tensor = op.inputs[1] if len(op.inputs) > 1 else None
    if tensor is None or not tensor.is_constant:
        raise fail(op, "weights must be a constant tensor")
    if tensor.dtype != "int8" or tensor.quant is None or len(tensor.shape) != ndim:
        raise fail(op, f"weights must be {ndim}-D quantized int8, got {tensor.dtype} {list(tensor.shape)}")
    if np.any(tensor.quant.zero_point != 0):
        raise fail(op, "weights must be symmetrically quantized (zero point 0)")
    if tensor.quant.per_channel and tensor.quant.axis != channel_axis:
        raise fail(op, f"per-channel weights must be quantized along axis {channel_axis}")
    return tensor


def _output_stage(
    op: Op, inp: Tensor, out: Tensor, weights: Tensor, channels: int, channel_axis: int
) -> tuple[dict, str, list[CArray]]:
    """What follows the accumulation: the nn_requant fields, the folded bias, and their arrays."""
    prefix = f"op{op.index}"
    multipliers, shifts = channel_multipliers(inp.scale, weights.quant.scale, out.scale, channels)
    multiplier, shift = CArray(f"{prefix}_multiplier", multipliers), CArray(f"{prefix}_shift", shifts)
    act_min, act_max = activation_range(op.options["activation"], out.scale, out.zero_point)
    requant = {
        "input_offset": -inp.zero_point,
        "output_offset": out.zero_point,
        "act_min": act_min,
        "act_max": act_max,
        "multiplier": multiplier.ref,
        "shift": shift.ref,
    }
    bias = op.inputs[2] if len(op.inputs) > 2 else None
    if bias is not None and (not bias.is_constant or bias.dtype != "int32" or bias.size != channels):
        raise fail(
            op, f"bias must be a constant int32 tensor of {channels} values, got {bias.dtype} {list(bias.shape)}"
        )
    raw_bias = np.zeros(channels, np.int64) if bias is None else bias.data.reshape(-1).astype(np.int64)
    bias_array = CArray(f"{prefix}_bias", _folded_bias(raw_bias, -inp.zero_point, weights.data, channel_axis))
    return requant, bias_array.ref, [bias_array, multiplier, shift]


def _folded_bias(bias: np.ndarray, input_offset: int, weights: np.ndarray, channel_axis: int) -> np.ndarray:
    """bias + input_offset * (sum of the channel's weights), wrapped to int32 as int32 sums wrap.

    Kernels then accumulate weight * input, not weight * (input +
    input_offset): one add fewer per multiply, and sparse kernels gather raw
    inputs. Padding must then read as the input zero point, whose product
    with the offset cancels.
    """
    other_axes = tuple(a for a in range(weights.ndim) if a != channel_axis)
    sums = weights.astype(np.int64).sum(axis=other_axes)
    return (bias + input_offset * sums).astype(np.uint32).view(np.int32)


def _nbytes(arrays: list[CArray]) -> int:
    return sum(a.nbytes for a in arrays)


def _encode(
    matrix: np.ndarray, prefix: str, fmt: str, column_index: np.ndarray | None = None, row_step: int | None = None
) -> tuple[Encoded, str, list]:
    """Weights in the layer's format, the C expression the call passes, and the constants to emit."""
    weights = FORMATS[fmt](matrix, f"{prefix}_weights", column_index, row_step)
    struct = weights.struct(f"{prefix}_{fmt}")
    if struct is None:
        return weights, weights.arrays[0].ref, list(weights.arrays)
    return weights, f"&{struct.name}", [*weights.arrays, struct]


# ---- windows (convolutions and pooling) --------------------------------------------------------


def _out_size(padding: str, in_size: int, kernel: int, stride: int, dilation: int) -> int:
    """ComputeOutSize."""
    if padding == "SAME":
        return (in_size + stride - 1) // stride
    return (in_size + stride - ((kernel - 1) * dilation + 1)) // stride


def _pad_before(in_size: int, kernel: int, stride: int, dilation: int, out_size: int) -> int:
    """ComputePaddingWithOffset: any odd padding pixel goes after, not before."""
    total = (out_size - 1) * stride + (kernel - 1) * dilation + 1 - in_size
    return max(total, 0) // 2


def _window(op: Op, inp: Tensor, out: Tensor, kernel_hw: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> dict:
    (h, w, c), (oh, ow, oc) = _image(op, inp, "input"), _image(op, out, "output")
    stride, padding = op.options["stride"], op.options["padding"]
    expected = tuple(_out_size(padding, size, k, s, d) for size, k, s, d in zip((h, w), kernel_hw, stride, dilation))
    if expected != (oh, ow):
        raise fail(op, f"output is {oh}x{ow} but {padding} padding gives {expected[0]}x{expected[1]}")
    return {
        "input": {"h": h, "w": w, "c": c},
        "output": {"h": oh, "w": ow, "c": oc},
        "kernel_h": kernel_hw[0],
        "kernel_w": kernel_hw[1],
        "stride_h": stride[0],
        "stride_w": stride[1],
        "dilation_h": dilation[0],
        "dilation_w": dilation[1],
        "pad_top": _pad_before(h, kernel_hw[0], stride[0], dilation[0], oh),
        "pad_left": _pad_before(w, kernel_hw[1], stride[1], dilation[1], ow),
    }


def sparse_padded_size(window: dict) -> tuple[int, int]:
    """nn_conv2d_csr_s8_padded_size: the padded image covers every window and the whole input."""

    def extent(axis: str, pad: int) -> int:
        reach = (
            (window["output"][axis] - 1) * window[f"stride_{axis}"]
            + (window[f"kernel_{axis}"] - 1) * window[f"dilation_{axis}"]
            + 1
        )
        return max(reach, pad + window["input"][axis])

    return extent("h", window["pad_top"]), extent("w", window["pad_left"])


def _sparse_conv_layout(window: dict) -> tuple[bool, int, int]:
    """How sparse CONV_2D kernels read windows: (pads, bytes from one kernel row to the next, scratch bytes).

    Without padding it reads the input in place, kernel rows dilation_h image
    rows apart. With padding it copies the kernel_h rows an output row reads
    into a band nn_conv2d_csr_s8_padded_size() wide, one after the other.
    """
    in_h, in_w, in_c = window["input"]["h"], window["input"]["w"], window["input"]["c"]
    padded_h, padded_w = sparse_padded_size(window)
    if (padded_h, padded_w) == (in_h, in_w):
        return False, window["dilation_h"] * in_w * in_c, 0
    return True, padded_w * in_c, window["kernel_h"] * padded_w * in_c


def sparse_conv_scratch_bytes(window: dict, encoded: Encoded) -> int:
    """Scratch of a sparse CONV_2D kernel: the band (nn_conv2d_csr_s8_get_buffer_size), then, word-aligned,
    what the format's kernel keeps for a tile (nn_conv2d_nm_s8_get_buffer_size: nm's slot table)."""
    band = _sparse_conv_layout(window)[2]
    table = encoded.table_bytes(SPARSE_CONV_TILE)
    return -(-band // 4) * 4 + table if table else band


DENSE_CONV_STACK_WINDOW_MAX = 256  # STACK_WINDOW_MAX in conv2d_s8.c


def dense_conv_scratch_bytes(window: dict) -> int:
    """Scratch bytes of the dense CONV_2D kernel: nn_conv2d_s8_get_buffer_size() in conv2d_s8.c.

    Its DSP path widens the windows of 2 output pixels into int16 columns:
    per group of 4 window values (KH * KW * C_IN, the last group possibly
    partial) 2 words per pixel, 16 bytes. When C_IN is not a multiple of 4 it
    first gathers a window bytewise, rounded up to whole groups: 4 more bytes
    per group. Windows of up to DENSE_CONV_STACK_WINDOW_MAX values keep these
    on the stack (0 bytes here), so small models' arenas stay within TFLite
    Micro's. The size does not depend on the core (the portable path ignores
    the buffer), so the compiler plans it for every target.
    """
    size = window["kernel_h"] * window["kernel_w"] * window["input"]["c"]
    if size <= DENSE_CONV_STACK_WINDOW_MAX:
        return 0
    groups = -(-size // 4)
    return 16 * groups + (4 * groups if window["input"]["c"] % 4 else 0)


def _conv_offsets(window: dict, row_step: int) -> np.ndarray:
    """Offset of each (ky, kx, c_in) weight's input from its window's top-left corner."""
    ky, kx, c = np.meshgrid(
        np.arange(window["kernel_h"]), np.arange(window["kernel_w"]), np.arange(window["input"]["c"]), indexing="ij"
    )
    return (ky * row_step + kx * window["dilation_w"] * window["input"]["c"] + c).reshape(-1)


# ---- one lowering per op kind ------------------------------------------------------------------


def lower_fully_connected(op: Op, fmt: str) -> KernelCall:
    inp, out = activation_input(op), op.outputs[0]
    weights = _weights(op, ndim=2, channel_axis=0)
    out_depth, in_depth = weights.shape
    batches = inp.size // in_depth
    if inp.size % in_depth or out.size != batches * out_depth:
        raise fail(op, f"input {list(inp.shape)} and output {list(out.shape)} do not fit weights {list(weights.shape)}")
    stage = _output_stage(op, inp, out, weights, out_depth, channel_axis=0)
    return _fully_connected_call(op, fmt, weights.data, batches, stage)


def lower_conv2d(op: Op, fmt: str) -> KernelCall:
    prefix = f"op{op.index}"
    inp, out = activation_input(op), op.outputs[0]
    weights = _weights(op, ndim=4, channel_axis=0)
    out_c, kh, kw, in_c = weights.shape
    window = _window(op, inp, out, (kh, kw), op.options["dilation"])
    if in_c != window["input"]["c"]:
        raise fail(
            op, f"grouped convolution (input has {window['input']['c']} channels, filters {in_c}) is not supported"
        )
    requant, bias, stage_arrays = _output_stage(op, inp, out, weights, out_c, channel_axis=0)
    matrix = weights.data.reshape(out_c, -1)
    pixels = window["output"]["h"] * window["output"]["w"]
    if _is_one_dot_product(window):
        return _fully_connected_call(op, fmt, matrix, 1, (requant, bias, stage_arrays))
    params = CStruct(f"{prefix}_params", "nn_conv2d_params", {"window": window, "requant": requant})
    if fmt == "dense":
        scratch_bytes = dense_conv_scratch_bytes(window)
        encoded, weights_ref, weight_constants = _encode(matrix, prefix, fmt)
    else:
        _, row_step, _ = _sparse_conv_layout(window)
        encoded, weights_ref, weight_constants = _encode(matrix, prefix, fmt, _conv_offsets(window, row_step), row_step)
        scratch_bytes = sparse_conv_scratch_bytes(window, encoded)
    buffer_args = [SCRATCH if scratch_bytes else "NULL"]
    # Sparse kernels write a tile of SPARSE_CONV_TILE pixels while still reading its first pixel's window.
    distance = window_distance(window) + (0 if fmt == "dense" else (SPARSE_CONV_TILE - 1) * out_c)
    return KernelCall(
        op=op,
        kernel=kernel_name("conv2d", fmt),
        params=params,
        args=[inp, weights_ref, bias, out, *buffer_args],
        constants=[*weight_constants, *stage_arrays, params],
        weights=encoded,
        bias_and_quant_bytes=_nbytes(stage_arrays),
        macs=pixels * matrix.size,
        nonzero_macs=pixels * encoded.nonzeros,
        scratch_bytes=scratch_bytes,
        overlaps={inp: distance},
    )


def _is_one_dot_product(window: dict) -> bool:
    """Whether a CONV_2D computes one output pixel from a window that is its whole input, unpadded.

    Its weights [C_OUT, KH, KW, C_IN] are then rows over the input's bytes in
    their order: a FULLY_CONNECTED. The convolution kernels work on tiles of
    pixels (2 dense, 4 sparse), which a single pixel fills once or four
    times over; the fully connected kernels compute it once (a streaming
    model's last 1x1 convolution on its 1x1 map: 3.8 instructions/MAC dense
    and 12.3 csr as a convolution).
    """
    inp, out = window["input"], window["output"]
    return (
        out["h"] == out["w"] == 1
        and window["kernel_h"] == inp["h"]
        and window["kernel_w"] == inp["w"]
        and window["pad_top"] == window["pad_left"] == 0
    )


# The dense kernel reads folded constants up to this depth (fully_connected_s8.c: folded_rows at SHORT_DEPTH,
# folded_deep_rows at the others); above it the run-time requantization is under 0.3 instructions/MAC.
FOLDED_MAX_DEPTH = 64


def _folded_constants(prefix: str, fmt: str, depth: int, requant: dict, stage_arrays: list) -> tuple[list, dict]:
    """The dense kernel's per-channel constants for up to 64 inputs (kernels.h, nn_fully_connected_params.folded).

    At 8 to 64 MACs per output, deriving a channel's requantization at run
    time (range test, 2^(e-2), e - 1, the offset: about 20 instructions)
    costs as much as a third of the MACs; computed here they cost 12 bytes
    of flash per channel. None (the kernel derives them itself) when some
    channel shifts left or right by 1 bit. Returns the array to emit and
    the params fields that name it.
    """
    if fmt != "dense" or depth > FOLDED_MAX_DEPTH:
        return [], {}
    _, multiplier, shift = stage_arrays
    fits, folds, words = fold_requantization(multiplier.values, shift.values, requant["output_offset"])
    if not fits.all():
        return [], {}
    array = CArray(f"{prefix}_folded", words)
    return [array], {"folded": array.ref, "offset_after_shift": int(not folds.all())}


def _fully_connected_call(op: Op, fmt: str, matrix: np.ndarray, batches: int, stage: tuple) -> KernelCall:
    """A FULLY_CONNECTED kernel call over the rows of matrix, with _output_stage's parts."""
    prefix = f"op{op.index}"
    requant, bias, stage_arrays = stage
    out_depth, depth = matrix.shape
    encoded, weights_ref, weight_constants = _encode(matrix, prefix, fmt)
    folded, folded_fields = _folded_constants(prefix, fmt, depth, requant, stage_arrays)
    fields = {"batches": batches, "input_depth": depth, "output_depth": out_depth, "requant": requant}
    params = CStruct(f"{prefix}_params", "nn_fully_connected_params", fields | folded_fields)
    table = encoded.table_bytes(1)  # nm's slot table, one input vector at a time
    return KernelCall(
        op=op,
        kernel=kernel_name("fully_connected", fmt),
        params=params,
        args=[activation_input(op), weights_ref, bias, op.outputs[0], *([SCRATCH] if table else [])],
        constants=[*weight_constants, *stage_arrays, *folded, params],
        weights=encoded,
        bias_and_quant_bytes=_nbytes([*stage_arrays, *folded]),
        macs=batches * matrix.size,
        nonzero_macs=batches * encoded.nonzeros,
        scratch_bytes=table,
    )


def lower_depthwise_conv2d(op: Op, fmt: str) -> KernelCall:

    prefix = f"op{op.index}"
    inp, out = activation_input(op), op.outputs[0]
    weights = _weights(op, ndim=4, channel_axis=3)
    _, kh, kw, out_c = weights.shape
    window = _window(op, inp, out, (kh, kw), op.options["dilation"])
    in_c = window["input"]["c"]
    if out_c % in_c or window["output"]["c"] != out_c:
        raise fail(op, f"{out_c} output channels are not a multiple of {in_c} input channels")
    requant, bias, stage_arrays = _output_stage(op, inp, out, weights, out_c, channel_axis=3)
    scratch_bytes, buffer_args = 0, []
    if fmt == "dense":
        encoded = encode_depthwise.encode_dense_depthwise(weights.data, f"{prefix}_weights")
        weights_ref, weight_constants = encoded.values.ref, [encoded.values]
    else:
        # One row per output channel, indexed by tap number; taps in the padding read a row of
        # zero points, C_IN bytes of scratch (nn_depthwise_conv2d_csr_s8_get_buffer_size).
        if kh * kw > encode_depthwise.CSR_MAX_TAPS:
            raise fail(
                op,
                f"a {kh}x{kw} window has more than {encode_depthwise.CSR_MAX_TAPS} taps, "
                f"the most the {fmt} kernel takes; use dense weights for this layer",
            )
        encoded, weights_ref, weight_constants = _encode(weights.data.reshape(kh * kw, out_c).T, prefix, fmt)
        pads = sparse_padded_size(window) != (window["input"]["h"], window["input"]["w"])
        scratch_bytes, buffer_args = (in_c, [SCRATCH]) if pads else (0, ["NULL"])
    params = CStruct(
        f"{prefix}_params",
        "nn_depthwise_conv2d_params",
        {"window": window, "depth_multiplier": out_c // in_c, "requant": requant},
    )
    pixels = window["output"]["h"] * window["output"]["w"]
    return KernelCall(
        op=op,
        kernel=kernel_name("depthwise_conv2d", fmt),
        params=params,
        args=[inp, weights_ref, bias, out, *buffer_args],
        constants=[*weight_constants, *stage_arrays, params],
        weights=encoded,
        bias_and_quant_bytes=_nbytes(stage_arrays),
        macs=pixels * weights.size,
        nonzero_macs=pixels * encoded.nonzeros,
        scratch_bytes=scratch_bytes,
        overlaps={inp: window_distance(window)},
    )


def _lower_pool(op: Op, kernel_name: str) -> KernelCall:
    inp, out = activation_input(op), op.outputs[0]
    window = _window(op, inp, out, op.options["filter"])
    act_min, act_max = activation_range(op.options["activation"], out.scale, out.zero_point)
    params = CStruct(
        f"op{op.index}_params", "nn_pool2d_params", {"window": window, "act_min": act_min, "act_max": act_max}
    )
    return KernelCall(
        op=op,
        kernel=kernel_name,
        params=params,
        args=[inp, out],
        constants=[params],
        overlaps={inp: window_distance(window)},
    )


def lower_max_pool2d(op: Op, fmt: str) -> KernelCall:
    return _lower_pool(op, "max_pool2d_s8")


def lower_avg_pool2d(op: Op, fmt: str) -> KernelCall:
    return _lower_pool(op, "avg_pool2d_s8")


def lower_softmax(op: Op, fmt: str) -> KernelCall:
    inp, out = activation_input(op), op.outputs[0]
    if out.zero_point != -128 or np.float32(out.scale) != np.float32(1 / 256):
        raise fail(
            op,
            f"int8 output must have scale 1/256 and zero point -128 (TFLM requires it), "
            f"got scale {out.scale:g} and zero point {out.zero_point}",
        )
    depth = inp.shape[-1]
    if depth > SOFTMAX_MAX_DEPTH:
        raise fail(op, f"{depth} classes; at most {SOFTMAX_MAX_DEPTH} are supported")
    multiplier, left_shift, diff_min = softmax_params(op.options["beta"], inp.scale)
    params = CStruct(
        f"op{op.index}_params",
        "nn_softmax_params",
        {
            "rows": inp.size // depth,
            "depth": depth,
            "input_multiplier": multiplier,
            "input_left_shift": left_shift,
            "diff_min": diff_min,
        },
    )
    return KernelCall(op=op, kernel="softmax_s8", params=params, args=[inp, out], constants=[params])


def lower_reshape(op: Op, fmt: str) -> KernelCall:
    inp, out = activation_input(op), op.outputs[0]
    if inp.nbytes != out.nbytes:
        raise fail(op, f"reshapes {list(inp.shape)} into {list(out.shape)}, which has a different size")
    return KernelCall(op=op, kernel="alias", alias_of=inp)


# The weight formats each op with weights has kernels in.
OP_FORMATS = {
    "FULLY_CONNECTED": KERNEL_FORMATS,
    "CONV_2D": KERNEL_FORMATS,
    "DEPTHWISE_CONV_2D": ("dense", "csr"),
}

LOWERINGS = {
    **lower_tensor_ops.LOWERINGS,
    "FULLY_CONNECTED": lower_fully_connected,
    "CONV_2D": lower_conv2d,
    "DEPTHWISE_CONV_2D": lower_depthwise_conv2d,
    "MAX_POOL_2D": lower_max_pool2d,
    "AVERAGE_POOL_2D": lower_avg_pool2d,
    "SOFTMAX": lower_softmax,
    "RESHAPE": lower_reshape,
}
