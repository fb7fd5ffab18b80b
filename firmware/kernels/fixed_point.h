/*
 * gemmlowp's fixed-point exp() and 1/(1+x), used by SOFTMAX and LOGISTIC.
 *
 * TFLM evaluates these functions in gemmlowp's fixed-point arithmetic, so
 * matching it bit for bit means doing the same steps in the same order.
 * Values are raw int32s in a Qm.n format (m integer bits, n = 31 - m
 * fraction bits) named in each comment; the constants are gemmlowp's own
 * Q0.31 and Q2.29 encodings.
 */
#ifndef NN_FIXED_POINT_H
#define NN_FIXED_POINT_H

#include <stdint.h>

#include "requantize.h"

#define NN_Q0_ONE INT32_MAX /* 1.0 in Q0.31 saturates to the largest value */

/* x * 2^exponent, saturating; gemmlowp's SaturatingRoundingMultiplyByPOT for exponent > 0. */
static inline int32_t nn_saturating_shift_left(int32_t x, int exponent)
{
    const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return x * (1 << exponent);
}

/* (a + b) / 2 rounded half away from zero. */
static inline int32_t nn_rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + (int64_t)b;
    return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

static inline int nn_count_leading_zeros(uint32_t x)
{
    int n = 0;
    while (n < 32 && (x & 0x80000000u) == 0) {
        x <<= 1;
        ++n;
    }
    return n;
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: a Taylor series around -1/8. */
static inline int32_t nn_exp_on_quarter_interval(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668;
    const int32_t one_third = 715827883;
    const int32_t x = a + (1 << 28); /* a + 1/8 */
    const int32_t x2 = nn_doubling_high_mul(x, x);
    const int32_t x3 = nn_doubling_high_mul(x2, x);
    const int32_t x4_over_4 = nn_rounding_divide_by_pot(nn_doubling_high_mul(x2, x2), 2);
    const int32_t x4_over_24_plus_x3_over_6_plus_x2_over_2 =
        nn_rounding_divide_by_pot(nn_doubling_high_mul(x4_over_4 + x3, one_third) + x2, 1);
    return exp_minus_one_eighth +
           nn_doubling_high_mul(exp_minus_one_eighth, x + x4_over_24_plus_x3_over_6_plus_x2_over_2);
}

/* exp(a) for a <= 0 given in Q(integer_bits), integer_bits in [1, 5]; the result is Q0.31. */
static inline int32_t nn_exp_on_negative_values(int32_t a, int integer_bits)
{
    /* exp(-2^k) in Q0.31 for k = -2 .. 4: one factor per bit of -a from 1/4 up. */
    static const int32_t exp_of_minus_power_of_two[7] = {
        1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t one_quarter = 1 << (31 - integer_bits - 2);
    /* Split a = r - q with r in [-1/4, 0) and q >= 0 a multiple of 1/4. */
    const int32_t r = (a & (one_quarter - 1)) - one_quarter;
    const int32_t q = r - a;
    /* r to Q0.31: exact, since |r| <= 1/4. */
    int32_t result = nn_exp_on_quarter_interval(r * (1 << integer_bits));
    /* Bits of q at or above 2^integer_bits cannot be set: a fits in Q(integer_bits). */
    for (int k = 0; k < 7 && k - 2 < integer_bits; ++k) {
        if (q & (one_quarter << k)) {
            result = nn_doubling_high_mul(result, exp_of_minus_power_of_two[k]);
        }
    }
    return a == 0 ? NN_Q0_ONE : result;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out: three Newton-Raphson steps. */
static inline int32_t nn_one_over_one_plus_x(int32_t a)
{
    const int32_t half_denominator = nn_rounding_half_sum(a, NN_Q0_ONE); /* Q0.31 */
    const int32_t q2_one = 1 << 29;
    const int32_t forty_eight_over_17 = 1515870810;       /* Q2.29 */
    const int32_t minus_thirty_two_over_17 = -1010580540; /* Q2.29 */
    int32_t x = forty_eight_over_17 + nn_doubling_high_mul(half_denominator, minus_thirty_two_over_17);
    for (int i = 0; i < 3; ++i) {
        const int32_t error = q2_one - nn_doubling_high_mul(half_denominator, x); /* Q2.29 */
        x = x + nn_saturating_shift_left(nn_doubling_high_mul(x, error), 2);    /* Q4.27 to Q2.29 */
    }
    /* x ~ 1 / half_denominator in Q2.29 is 1 / (1 + a) in Q1.30. */
    return nn_saturating_shift_left(x, 1);
}

#endif /* NN_FIXED_POINT_H */
