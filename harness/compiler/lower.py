"""Lower each op to one kernel call: which kernel, its parameters and constants.

This module lowers the ops with weights (FULLY_CONNECTED, CONV_2D,
DEPTHWISE_CONV_2D), pooling, SOFTMAX and RESHAPE, and holds the table of all
lowerings; lower_tensor_ops.py has the rest. A lowering checks what the
kernel needs (constant int8 weights, int32 biases, supported geometry),
computes TFLM's requantization parameters and encodes the weights in the
requested format. Field and kernel names match firmware/kernels/kernels.h.
"""
from __future__ import annotations

import numpy as np

from harness.compiler import lower_tensor_ops
from harness.compiler.calls import SCRATCH, CStruct, KernelCall, activation_input, fail
from harness.compiler.encode import CArray, CsrWeights, DenseWeights, encode_csr, encode_dense
from harness.compiler.ir import Graph, Op, Tensor
from harness.compiler.overlap import window_distance
from harness.compiler.quant import activation_range, channel_multipliers, softmax_params

KERNEL_FORMATS = ("dense", "csr")
SOFTMAX_MAX_DEPTH = 511  # beyond this TFLM's fixed-point reciprocal can overflow


def lower(graph: Graph, kernel: str) -> list[KernelCall]:
    """One call per op, in order; kernel is one of KERNEL_FORMATS."""
    return [LOWERINGS[op.kind](op, kernel) for op in graph.ops]


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


def _output_stage(op: Op, inp: Tensor, out: Tensor, weights: Tensor, channels: int
                  ) -> tuple[dict, str, list[CArray]]:
    """What follows the accumulation: the nn_requant fields, the bias expression, and their arrays."""
    prefix = f"op{op.index}"
    multipliers, shifts = channel_multipliers(inp.scale, weights.quant.scale, out.scale, channels)
    multiplier, shift = CArray(f"{prefix}_multiplier", multipliers), CArray(f"{prefix}_shift", shifts)
    act_min, act_max = activation_range(op.options["activation"], out.scale, out.zero_point)
    requant = {"input_offset": -inp.zero_point, "output_offset": out.zero_point,
               "act_min": act_min, "act_max": act_max, "multiplier": multiplier.ref, "shift": shift.ref}
    bias = op.inputs[2] if len(op.inputs) > 2 else None
    if bias is None:
        return requant, "NULL", [multiplier, shift]
    if not bias.is_constant or bias.dtype != "int32" or bias.size != channels:
        raise fail(op, f"bias must be a constant int32 tensor of {channels} values, "
                        f"got {bias.dtype} {list(bias.shape)}")
    bias_array = CArray(f"{prefix}_bias", bias.data.reshape(-1).astype(np.int32))
    return requant, bias_array.ref, [bias_array, multiplier, shift]


def _nbytes(arrays: list[CArray]) -> int:
    return sum(a.nbytes for a in arrays)


def _csr_struct(weights: CsrWeights, name: str) -> CStruct:
    index_field = "index_u8" if weights.index.values.dtype == np.uint8 else "index_u16"
    start_field = "row_start_u16" if weights.row_start.values.dtype == np.uint16 else "row_start_u32"
    return CStruct(name, "nn_csr_s8", {"values": weights.values.ref, index_field: weights.index.ref,
                                       start_field: weights.row_start.ref})


def _encode(matrix: np.ndarray, prefix: str, kernel: str,
            column_index: np.ndarray | None = None) -> tuple[DenseWeights | CsrWeights, str, list]:
    """Weights in the chosen format, the C expression the call passes, and the constants to emit."""
    if kernel == "csr":
        weights = encode_csr(matrix, f"{prefix}_weights", column_index)
        struct = _csr_struct(weights, f"{prefix}_csr")
        return weights, f"&{struct.name}", [*weights.arrays, struct]
    weights = encode_dense(matrix, f"{prefix}_weights")
    return weights, weights.values.ref, list(weights.arrays)


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


def _window(op: Op, inp: Tensor, out: Tensor, kernel_hw: tuple[int, int],
            dilation: tuple[int, int] = (1, 1)) -> dict:
    (h, w, c), (oh, ow, oc) = _image(op, inp, "input"), _image(op, out, "output")
    stride, padding = op.options["stride"], op.options["padding"]
    expected = tuple(_out_size(padding, size, k, s, d) for size, k, s, d in zip((h, w), kernel_hw, stride, dilation))
    if expected != (oh, ow):
        raise fail(op, f"output is {oh}x{ow} but {padding} padding gives {expected[0]}x{expected[1]}")
    return {"input": {"h": h, "w": w, "c": c}, "output": {"h": oh, "w": ow, "c": oc},
            "kernel_h": kernel_hw[0], "kernel_w": kernel_hw[1],
            "stride_h": stride[0], "stride_w": stride[1],
            "dilation_h": dilation[0], "dilation_w": dilation[1],
            "pad_top": _pad_before(h, kernel_hw[0], stride[0], dilation[0], oh),
            "pad_left": _pad_before(w, kernel_hw[1], stride[1], dilation[1], ow)}


def csr_padded_size(window: dict) -> tuple[int, int]:
    """nn_conv2d_csr_s8_padded_size: the padded image covers every window and the whole input."""
    def extent(axis: str, pad: int) -> int:
        reach = ((window["output"][axis] - 1) * window[f"stride_{axis}"]
                 + (window[f"kernel_{axis}"] - 1) * window[f"dilation_{axis}"] + 1)
        return max(reach, pad + window["input"][axis])
    return extent("h", window["pad_top"]), extent("w", window["pad_left"])


def _csr_conv_layout(window: dict) -> tuple[bool, int, int]:
    """How nn_conv2d_csr_s8 reads windows: (pads, bytes from one kernel row to the next, scratch bytes).

    Without padding it reads the input in place, kernel rows dilation_h image
    rows apart. With padding it copies the kernel_h rows an output row reads
    into a band nn_conv2d_csr_s8_padded_size() wide, one after the other.
    """
    in_h, in_w, in_c = window["input"]["h"], window["input"]["w"], window["input"]["c"]
    padded_h, padded_w = csr_padded_size(window)
    if (padded_h, padded_w) == (in_h, in_w):
        return False, window["dilation_h"] * in_w * in_c, 0
    return True, padded_w * in_c, window["kernel_h"] * padded_w * in_c


def _conv_offsets(window: dict, row_step: int) -> np.ndarray:
    """Offset of each (ky, kx, c_in) weight's input from its window's top-left corner."""
    ky, kx, c = np.meshgrid(np.arange(window["kernel_h"]), np.arange(window["kernel_w"]),
                            np.arange(window["input"]["c"]), indexing="ij")
    return (ky * row_step + kx * window["dilation_w"] * window["input"]["c"] + c).reshape(-1)


# ---- one lowering per op kind ------------------------------------------------------------------

def lower_fully_connected(op: Op, kernel: str) -> KernelCall:
    prefix = f"op{op.index}"
    inp, out = activation_input(op), op.outputs[0]
    weights = _weights(op, ndim=2, channel_axis=0)
    out_depth, in_depth = weights.shape
    batches = inp.size // in_depth
    if inp.size % in_depth or out.size != batches * out_depth:
        raise fail(op, f"input {list(inp.shape)} and output {list(out.shape)} do not fit "
                        f"weights {list(weights.shape)}")
    requant, bias, stage_arrays = _output_stage(op, inp, out, weights, out_depth)
    encoded, weights_ref, weight_constants = _encode(weights.data, prefix, kernel)
    params = CStruct(f"{prefix}_params", "nn_fully_connected_params",
                     {"batches": batches, "input_depth": in_depth, "output_depth": out_depth, "requant": requant})
    return KernelCall(op=op, kernel="fully_connected_csr_s8" if kernel == "csr" else "fully_connected_s8",
                      params=params, args=[inp, weights_ref, bias, out],
                      constants=[*weight_constants, *stage_arrays, params], weights=encoded,
                      bias_and_quant_bytes=_nbytes(stage_arrays),
                      macs=batches * out_depth * in_depth, nonzero_macs=batches * encoded.nonzeros)


def lower_conv2d(op: Op, kernel: str) -> KernelCall:
    prefix = f"op{op.index}"
    inp, out = activation_input(op), op.outputs[0]
    weights = _weights(op, ndim=4, channel_axis=0)
    out_c, kh, kw, in_c = weights.shape
    window = _window(op, inp, out, (kh, kw), op.options["dilation"])
    if in_c != window["input"]["c"]:
        raise fail(op, f"grouped convolution (input has {window['input']['c']} channels, "
                        f"filters {in_c}) is not supported")
    requant, bias, stage_arrays = _output_stage(op, inp, out, weights, out_c)
    matrix = weights.data.reshape(out_c, -1)
    pixels = window["output"]["h"] * window["output"]["w"]
    params = CStruct(f"{prefix}_params", "nn_conv2d_params", {"window": window, "requant": requant})
    if kernel == "csr":
        padded, row_step, scratch_bytes = _csr_conv_layout(window)
        encoded, weights_ref, weight_constants = _encode(matrix, prefix, kernel, _conv_offsets(window, row_step))
        buffer_args = [SCRATCH if padded else "NULL"]
    else:
        scratch_bytes = 0
        encoded, weights_ref, weight_constants = _encode(matrix, prefix, kernel)
        buffer_args = []
    return KernelCall(op=op, kernel="conv2d_csr_s8" if kernel == "csr" else "conv2d_s8",
                      params=params, args=[inp, weights_ref, bias, out, *buffer_args],
                      constants=[*weight_constants, *stage_arrays, params], weights=encoded,
                      bias_and_quant_bytes=_nbytes(stage_arrays),
                      macs=pixels * matrix.size, nonzero_macs=pixels * encoded.nonzeros,
                      scratch_bytes=scratch_bytes, overlaps={inp: window_distance(window)})


def lower_depthwise_conv2d(op: Op, kernel: str) -> KernelCall:
    # No sparse variant yet: both formats use the dense kernel.
    prefix = f"op{op.index}"
    inp, out = activation_input(op), op.outputs[0]
    weights = _weights(op, ndim=4, channel_axis=3)
    _, kh, kw, out_c = weights.shape
    window = _window(op, inp, out, (kh, kw), op.options["dilation"])
    in_c = window["input"]["c"]
    if out_c % in_c or window["output"]["c"] != out_c:
        raise fail(op, f"{out_c} output channels are not a multiple of {in_c} input channels")
    requant, bias, stage_arrays = _output_stage(op, inp, out, weights, out_c)
    encoded, weights_ref, weight_constants = _encode(weights.data, prefix, "dense")
    params = CStruct(f"{prefix}_params", "nn_depthwise_conv2d_params",
                     {"window": window, "depth_multiplier": out_c // in_c, "requant": requant})
    pixels = window["output"]["h"] * window["output"]["w"]
    return KernelCall(op=op, kernel="depthwise_conv2d_s8", params=params,
                      args=[inp, weights_ref, bias, out],
                      constants=[*weight_constants, *stage_arrays, params], weights=encoded,
                      bias_and_quant_bytes=_nbytes(stage_arrays),
                      macs=pixels * weights.size, nonzero_macs=pixels * encoded.nonzeros,
                      overlaps={inp: window_distance(window)})


def _lower_pool(op: Op, kernel_name: str) -> KernelCall:
    inp, out = activation_input(op), op.outputs[0]
    window = _window(op, inp, out, op.options["filter"])
    act_min, act_max = activation_range(op.options["activation"], out.scale, out.zero_point)
    params = CStruct(f"op{op.index}_params", "nn_pool2d_params",
                     {"window": window, "act_min": act_min, "act_max": act_max})
    return KernelCall(op=op, kernel=kernel_name, params=params, args=[inp, out], constants=[params],
                      overlaps={inp: window_distance(window)})


def lower_max_pool2d(op: Op, kernel: str) -> KernelCall:
    return _lower_pool(op, "max_pool2d_s8")


def lower_avg_pool2d(op: Op, kernel: str) -> KernelCall:
    return _lower_pool(op, "avg_pool2d_s8")


def lower_softmax(op: Op, kernel: str) -> KernelCall:
    inp, out = activation_input(op), op.outputs[0]
    if out.zero_point != -128 or np.float32(out.scale) != np.float32(1 / 256):
        raise fail(op, f"int8 output must have scale 1/256 and zero point -128 (TFLM requires it), "
                        f"got scale {out.scale:g} and zero point {out.zero_point}")
    depth = inp.shape[-1]
    if depth > SOFTMAX_MAX_DEPTH:
        raise fail(op, f"{depth} classes; at most {SOFTMAX_MAX_DEPTH} are supported")
    multiplier, left_shift, diff_min = softmax_params(op.options["beta"], inp.scale)
    params = CStruct(f"op{op.index}_params", "nn_softmax_params",
                     {"rows": inp.size // depth, "depth": depth, "input_multiplier": multiplier,
                      "input_left_shift": left_shift, "diff_min": diff_min})
    return KernelCall(op=op, kernel="softmax_s8", params=params, args=[inp, out], constants=[params])


def lower_reshape(op: Op, kernel: str) -> KernelCall:
    inp, out = activation_input(op), op.outputs[0]
    if inp.nbytes != out.nbytes:
        raise fail(op, f"reshapes {list(inp.shape)} into {list(out.shape)}, which has a different size")
    return KernelCall(op=op, kernel="alias", alias_of=inp)


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
