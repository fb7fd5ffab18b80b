/*
 * Fixed-point helpers shared by the int8 kernels.
 *
 * They reproduce TensorFlow Lite Micro's integer arithmetic bit for bit:
 * gemmlowp's saturating rounding doubling high multiply, its rounding
 * divide by a power of two, and the "double rounding" flavour of
 * MultiplyByQuantizedMultiplier that TFLM uses by default. Any change here
 * changes every model's outputs, so the host tests compare against TFLM.
 *
 * Right shifts of negative values are assumed to be arithmetic, as on every
 * compiler TFLM itself supports.
 */
#ifndef NN_REQUANTIZE_H
#define NN_REQUANTIZE_H

#include <stdint.h>

/* round(a * b / 2^31), saturating the one overflowing case. */
static inline int32_t nn_doubling_high_mul(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t product = (int64_t)a * (int64_t)b;
    const int32_t nudge = product >= 0 ? (1 << 30) : (1 - (1 << 30));
    /* C99 division truncates toward zero, as gemmlowp expects. */
    return (int32_t)((product + nudge) / ((int64_t)1 << 31));
}

/* x / 2^exponent rounded to nearest, ties away from zero; exponent in [0, 31]. */
static inline int32_t nn_rounding_divide_by_pot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/*
 * acc * multiplier * 2^shift, where multiplier is a Q31 value in
 * [0, 2^31) (TFLM's are in [2^30, 2^31), or 0) and shift in [-31, 30]:
 * TFLM's MultiplyByQuantizedMultiplier, used to bring an int32
 * accumulator back to the output scale. This general form is the
 * definition; nn_requantize below computes the same faster.
 */
static inline int32_t nn_requantize_reference(int32_t acc, int32_t multiplier, int shift)
{
    const int left_shift = shift > 0 ? shift : 0;
    const int right_shift = shift > 0 ? 0 : -shift;
    /* Shift as unsigned: TFLM's x * (1 << s) wraps the same way without UB. */
    const int32_t scaled = (int32_t)((uint32_t)acc << left_shift);
    return nn_rounding_divide_by_pot(nn_doubling_high_mul(scaled, multiplier), right_shift);
}

/*
 * The same result in one 32x32->64 multiply-accumulate (SMLAL on Armv7-M)
 * and a shift, for the usual right shifts of 2 or more bits (e = -shift).
 * With a = acc and m = multiplier >= 0 (so INT32_MIN * INT32_MIN, the one
 * saturating case, cannot occur), TFLM computes
 *   x = floor((a*m + 2^30) / 2^31)     (its nudge 1 - 2^30 for negative
 *                                       products, with division toward
 *                                       zero, is this floor)
 *   result = floor((x + 2^(e-1) - [x < 0]) / 2^e)   (ties away from zero)
 * Nested floors fold: floor((floor(u / p) + k) / q) = floor((u + k p) / (p q))
 * for integers k, p, q > 0. The sign of a stands in for the sign of x
 * (when a < 0 <= x, x is 0 and both give 0), so with
 *   D = a*m + 2^30 - [a < 0] * 2^31 + 2^(e-2) * 2^32
 * result = floor(D / 2^32) / 2^(e-1), rounded down: the high word of D
 * shifted right by e - 1. D starts as a 64-bit value whose low word is
 * 2^30 with a's sign bit on top and whose high word is 2^(e-2) plus a's
 * sign (0 or -1), so it is never negative; the high word of D stays within
 * int32 (|a*m| < 2^62). The test suite checks this against a model of
 * TFLM's arithmetic (tests/test_dense_kernels.py).
 * nn_requantize_right_shift() is this fast path alone, for shift <= -2.
 */
static inline int32_t nn_requantize_right_shift(int32_t acc, int32_t multiplier, int shift)
{
    const uint32_t sign = (uint32_t)(acc >> 31);            /* all ones or zero */
    const uint32_t half = (1u << 30) >> (shift + 32);        /* 2^(e-2), e - 2 = -shift - 2 */
    const uint64_t start = (uint64_t)(sign + half) << 32 | (sign << 31 | (1u << 30));
    const int32_t high = (int32_t)(((int64_t)acc * multiplier + (int64_t)start) >> 32);
    return high >> ~shift; /* ~shift = e - 1 */
}

/*
 * nn_requantize_right_shift split into its per-channel part, the start's
 * high word 2^(e-2) and e - 1, and its per-output part, for kernels whose
 * consecutive outputs are different channels (the depthwise kernels
 * precompute the first once per call). A multiplier of 0 (TFLM's for a
 * scale too small to represent, with shift 0; a pruned channel's) gives 0
 * from any start, so it takes e = 2. nn_requantize_channel_of returns 0
 * for a channel outside that domain (shift > -2, multiplier not 0).
 */
typedef struct {
    int32_t multiplier, half, shift_minus_1;
} nn_requant_channel;

static inline int nn_requantize_channel_of(int32_t multiplier, int shift, nn_requant_channel *channel)
{
    const int e = multiplier == 0 ? 2 : -shift;
    if (e < 2) {
        return 0;
    }
    channel->multiplier = multiplier;
    channel->half = (int32_t)(1u << (e - 2));
    channel->shift_minus_1 = e - 1;
    return 1;
}

static inline int32_t nn_requantize_precomputed(int32_t acc, const nn_requant_channel *channel)
{
    const uint32_t sign = (uint32_t)(acc >> 31);
    const uint64_t start = (uint64_t)(sign + (uint32_t)channel->half) << 32 | (sign << 31 | (1u << 30));
    const int32_t high = (int32_t)(((int64_t)acc * channel->multiplier + (int64_t)start) >> 32);
    return high >> channel->shift_minus_1;
}

/*
 * nn_requantize_precomputed with the output offset added by the same
 * shift: (high + offset * 2^(e-1)) >> (e-1) = (high >> (e-1)) + offset,
 * exact while the sum stays within int32: |high| <= 2^30 + 2^(e-2) + 1
 * before the offset (|acc * m| < 2^62), so the offset folds when
 * |offset| * 2^(e-1) + 2^(e-2) + 2^30 + 1 < 2^31 (any int8 offset up to
 * e - 1 = 22; a channel of tiny scale, e - 1 of 24 or more as pruning
 * leaves some, only with a small offset). For kernels that keep one
 * channel's constants in registers over many outputs: an output then
 * costs the 5 instructions of the start, SMLAL and the shift, and no ADD
 * for the offset. nn_requantize_fold returns the start's high word for
 * nn_requantize_folded, with the offset folded when *ok is 1, without it
 * when 0 (the offset is then to be added to the result).
 */
static inline int32_t nn_requantize_fold(const nn_requant_channel *channel, int32_t output_offset, int *ok)
{
    /* The bound as (2 |offset| + 1) * 2^(e-2) <= 2^30 - 2, in 32 bits (e - 2 <= 29; offset within int8). */
    const uint32_t magnitude = (uint32_t)(output_offset < 0 ? -output_offset : output_offset);
    *ok = 2 * magnitude + 1 <= ((1u << 30) - 2) >> (channel->shift_minus_1 - 1);
    return *ok ? channel->half + (int32_t)((uint32_t)output_offset << channel->shift_minus_1) : channel->half;
}

static inline int32_t nn_requantize_folded(int32_t acc, int32_t multiplier, int32_t start_high,
                                           int32_t shift_minus_1)
{
    const uint32_t sign = (uint32_t)(acc >> 31);
    const uint64_t start = (uint64_t)(sign + (uint32_t)start_high) << 32 | (sign << 31 | (1u << 30));
    const int32_t high = (int32_t)(((int64_t)acc * multiplier + (int64_t)start) >> 32);
    return high >> shift_minus_1;
}

/*
 * Kernels that requantize several accumulators of one channel may test the
 * shift once and call nn_requantize_right_shift() directly, so that the
 * compiler shares its per-channel work.
 */
static inline int32_t nn_requantize(int32_t acc, int32_t multiplier, int shift)
{
    if (shift > -2) {
        return nn_requantize_reference(acc, multiplier, shift);
    }
    return nn_requantize_right_shift(acc, multiplier, shift);
}

static inline int8_t nn_clamp_s8(int32_t value, int32_t lo, int32_t hi)
{
    if (value < lo) {
        return (int8_t)lo;
    }
    if (value > hi) {
        return (int8_t)hi;
    }
    return (int8_t)value;
}

#endif /* NN_REQUANTIZE_H */
