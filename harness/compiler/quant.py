"""Integer requantization parameters, computed exactly as TFLite Micro does.

Bit-exactness starts here: TFLM derives each multiplier from float32 scales
in a particular mix of float and double arithmetic, and rounds half away
from zero. The comments name the TFLM function each piece mirrors.
"""

from __future__ import annotations

import math

import numpy as np

from harness.compiler.ir import CompileError

# Softmax feeds exp() a Q5.26 value (TFLM's kScaledDiffIntegerBits).
SOFTMAX_DIFF_INTEGER_BITS = 5


def round_half_away(x: float) -> int:
    """std::round / TfLiteRound: halves go away from zero (Python's round() goes to even)."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier: real = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31).

    >>> quantize_multiplier(0.5)
    (1073741824, 0)
    >>> quantize_multiplier(0.0)
    (0, 0)
    """
    if real == 0.0:
        return 0, 0
    mantissa, shift = math.frexp(real)
    multiplier = round_half_away(mantissa * (1 << 31))
    if multiplier == 1 << 31:
        multiplier //= 2
        shift += 1
    if shift < -31:  # everything would shift out: TFLM flushes it to zero
        return 0, 0
    if shift > 30:
        raise CompileError(f"requantization scale {real:g} is too large for a 32-bit accumulator")
    return multiplier, shift


def quantize_multiplier_below_one(real: float) -> tuple[int, int]:
    """QuantizeMultiplierSmallerThanOneExp: for 0 < real < 1, so the shift is <= 0."""
    if not 0.0 < real < 1.0:
        raise CompileError(f"rescaling factor {real:g} is outside (0, 1)")
    return quantize_multiplier(real)


def channel_multipliers(
    input_scale: float, filter_scales: np.ndarray, output_scale: float, channels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel (multiplier, shift), as PopulateConvolutionQuantizationParams.

    input_scale * filter_scale / output_scale is evaluated in double from the
    float32 scales; a per-tensor filter scale is broadcast to every channel.
    TFLM does this for every op with weights, per-tensor FULLY_CONNECTED
    included, whereas LiteRT rounds the product to float32 first (the probe
    test in tests/test_compiler.py shows the difference).
    """
    scales = np.broadcast_to(np.asarray(filter_scales, dtype=np.float32), (channels,))
    pairs = [
        quantize_multiplier(float(np.float32(input_scale)) * float(s) / float(np.float32(output_scale))) for s in scales
    ]
    return np.array([m for m, _ in pairs], dtype=np.int32), np.array([s for _, s in pairs], dtype=np.int8)


def fold_requantization(
    multipliers: np.ndarray, shifts: np.ndarray, output_offset: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per channel whether its constants can be precomputed, whether its offset folds, and its 3 words.

    As firmware/kernels/requantize.h's nn_requantize_channel_of and
    nn_requantize_fold compute them at run time: a channel can be
    precomputed when its shift is -e with e >= 2 (a multiplier of 0 takes
    e = 2), and its offset folds when (2 |offset| + 1) * 2^(e-2) <= 2^30 - 2.
    The words are the multiplier; the start's high word, 2^(e-2) plus
    offset * 2^(e-1) when the offset folds (nn_requantize_folded's shift by
    e - 1 then adds it); and e - 1 in bits 0-7 with, in bits 8-31, the
    offset to add after the shift when it does not fold (an ASR by register
    reads bits 0-7 only). Words of channels that cannot be precomputed are 0.

    >>> fits, folds, words = fold_requantization(np.array([1 << 30, 0, 1 << 30, 1]), np.array([-3, 0, -1, -25]), -128)
    >>> fits.tolist(), folds.tolist(), words.tolist()[:6], words.tolist()[9:]
    ([True, True, False, True], [True, True, False, False], [1073741824, -510, 2, 0, -255, 1], [1, 8388608, -32744])
    """
    multipliers = np.asarray(multipliers, dtype=np.int64)
    e = np.where(multipliers == 0, 2, -np.asarray(shifts, dtype=np.int64))
    fits = e >= 2
    e2 = np.maximum(e - 2, 0)
    folds = fits & ((2 * abs(output_offset) + 1) << e2 <= (1 << 30) - 2)
    start = (1 << e2) + np.where(folds, output_offset << (e2 + 1), 0)
    shift_word = (e - 1) + np.where(folds, 0, output_offset * 256)
    words = np.stack([multipliers, start, shift_word], axis=1) * fits[:, None]
    return fits, folds, words.reshape(-1).astype(np.int32)


def _quantize(value: float, scale: float, zero_point: int) -> int:
    # TFLM divides in float32, then rounds half away from zero.
    return zero_point + round_half_away(float(np.float32(value) / np.float32(scale)))


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for an int8 output."""
    lo, hi = -128, 127
    if activation == "RELU":
        return max(lo, _quantize(0.0, scale, zero_point)), hi
    if activation == "RELU6":
        return max(lo, _quantize(0.0, scale, zero_point)), min(hi, _quantize(6.0, scale, zero_point))
    if activation == "RELU_N1_TO_1":
        return max(lo, _quantize(-1.0, scale, zero_point)), min(hi, _quantize(1.0, scale, zero_point))
    return lo, hi


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling and CalculateInputRadius: (multiplier, left shift, diff_min)."""
    integer_bits = SOFTMAX_DIFF_INTEGER_BITS
    real = min(
        float(np.float32(beta)) * float(np.float32(input_scale)) * (1 << (31 - integer_bits)), float((1 << 31) - 1)
    )
    if real <= 1.0:
        raise CompileError(f"softmax input scale {input_scale:g} is too small to be requantized")
    multiplier, left_shift = quantize_multiplier(real)
    return multiplier, left_shift, -_input_radius(integer_bits, left_shift)


def _input_radius(integer_bits: int, left_shift: int) -> int:
    """CalculateInputRadius: the largest input difference whose rescaled value still fits."""
    return math.floor(((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << left_shift))


def add_params(input1_scale: float, input2_scale: float, output_scale: float) -> dict:
    """ADD's rescaling, as TFLM's CalculateOpDataAdd: both inputs to a common scale, then the output."""
    left_shift = 20
    twice_max_input_scale = 2 * max(float(np.float32(input1_scale)), float(np.float32(input2_scale)))
    input1 = quantize_multiplier_below_one(float(np.float32(input1_scale)) / twice_max_input_scale)
    input2 = quantize_multiplier_below_one(float(np.float32(input2_scale)) / twice_max_input_scale)
    output = quantize_multiplier_below_one(
        twice_max_input_scale / ((1 << left_shift) * float(np.float32(output_scale)))
    )
    return {
        "left_shift": left_shift,
        "input1_multiplier": input1[0],
        "input1_shift": input1[1],
        "input2_multiplier": input2[0],
        "input2_shift": input2[1],
        "output_multiplier": output[0],
        "output_shift": output[1],
    }


def mul_multiplier(input1_scale: float, input2_scale: float, output_scale: float) -> tuple[int, int]:
    """CalculateOpDataMul: the product of the input scales over the output scale, in double."""
    return quantize_multiplier(
        float(np.float32(input1_scale)) * float(np.float32(input2_scale)) / float(np.float32(output_scale))
    )


def mean_multiplier(input_scale: float, output_scale: float, count: int) -> tuple[int, int]:
    """MEAN's rescaling of a sum of count values: input_scale / output_scale / count.

    As TFLM: QuantizeMultiplier of the scale ratio, then the division by
    count folded into the multiplier after shifting it left by up to
    floor(log2(count)) bits, so the multiplier keeps its precision.
    (Checked bit for bit against the TFLM interpreter; see the tests.)
    """
    multiplier, shift = quantize_multiplier(float(np.float32(input_scale)) / float(np.float32(output_scale)))
    reduction_shift = min(count.bit_length() - 1, 32, 31 + shift)
    return (multiplier << reduction_shift) // count, shift - reduction_shift


# LOGISTIC feeds gemmlowp's logistic() a Q4.27 value.
LOGISTIC_INPUT_INTEGER_BITS = 4


def logistic_params(input_scale: float) -> tuple[int, int, int]:
    """LOGISTIC's (multiplier, left shift, input range radius), as CalculateArithmeticOpDataLogistic.

    Unlike QuantizeMultiplier, TFLM rounds the mantissa here without
    renormalizing, so a mantissa rounding up to 2^31 cannot be represented.
    """
    integer_bits = LOGISTIC_INPUT_INTEGER_BITS
    mantissa, left_shift = math.frexp(float(np.float32(input_scale)) * float(1 << (31 - integer_bits)))
    multiplier = round_half_away(mantissa * (1 << 31))
    if multiplier >= 1 << 31 or left_shift < 0:
        raise CompileError(f"logistic input scale {input_scale:g} cannot be requantized like TFLM")
    return multiplier, left_shift, _input_radius(integer_bits, left_shift)
