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
 * [2^30, 2^31) (or 0) and shift in [-31, 30]: TFLM's
 * MultiplyByQuantizedMultiplier, used to bring an int32 accumulator back to
 * the output scale.
 */
static inline int32_t nn_requantize(int32_t acc, int32_t multiplier, int shift)
{
    const int left_shift = shift > 0 ? shift : 0;
    const int right_shift = shift > 0 ? 0 : -shift;
    /* Shift as unsigned: TFLM's x * (1 << s) wraps the same way without UB. */
    const int32_t scaled = (int32_t)((uint32_t)acc << left_shift);
    return nn_rounding_divide_by_pot(nn_doubling_high_mul(scaled, multiplier), right_shift);
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
