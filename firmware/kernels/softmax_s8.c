/*
 * SOFTMAX, int8 in and out: the reference kernel.
 *
 * Bit-exact with TFLM, which evaluates exp() and 1/x in gemmlowp's
 * fixed-point arithmetic (fixed_point.h).
 */
#include "fixed_point.h"
#include "kernel_util.h"

enum {
    DIFF_INTEGER_BITS = 5, /* exp() argument: Q5.26 */
    SUM_INTEGER_BITS = 12  /* sum of exps: Q12.19 */
};

/* 1 / sum for a Q12.19 sum >= 1: a Q0.31 mantissa, and its exponent. */
static int32_t reciprocal(int32_t sum, int *bits_over_unit)
{
    const int headroom = nn_count_leading_zeros((uint32_t)sum);
    *bits_over_unit = SUM_INTEGER_BITS - headroom;
    const int32_t mantissa_minus_one =
        (int32_t)(((uint32_t)sum << headroom) - (1u << 31)); /* in [0, 1) */
    return nn_one_over_one_plus_x(mantissa_minus_one);
}

/* beta * input_scale * diff, as a Q5.26 exp() argument. */
static int32_t scaled_diff(int32_t diff, const nn_softmax_params *params)
{
    const int32_t shifted = (int32_t)((uint32_t)diff << params->input_left_shift);
    return nn_doubling_high_mul(shifted, params->input_multiplier);
}

nn_status nn_softmax_s8(const nn_softmax_params *params, const int8_t *input, int8_t *output)
{
    if (params->rows <= 0 || params->depth <= 0 || params->input_left_shift < 0 ||
        params->input_left_shift > 31) {
        return NN_ERROR_ARGUMENT;
    }
    for (int32_t row = 0; row < params->rows; ++row) {
        const int8_t *x = input + row * params->depth;
        int8_t *y = output + row * params->depth;

        int32_t max = INT8_MIN;
        for (int32_t i = 0; i < params->depth; ++i) {
            max = x[i] > max ? x[i] : max;
        }

        int32_t sum_of_exps = 0; /* Q12.19 */
        for (int32_t i = 0; i < params->depth; ++i) {
            const int32_t diff = x[i] - max;
            if (diff >= params->diff_min) {
                const int32_t e = nn_exp_on_negative_values(scaled_diff(diff, params), DIFF_INTEGER_BITS);
                sum_of_exps += nn_rounding_divide_by_pot(e, SUM_INTEGER_BITS); /* Q0.31 to Q12.19 */
            }
        }

        int bits_over_unit;
        const int32_t inverse = reciprocal(sum_of_exps, &bits_over_unit);
        /* Output probabilities in units of 1/256: 8 fraction bits. */
        const int exponent = bits_over_unit + 31 - 8;

        for (int32_t i = 0; i < params->depth; ++i) {
            const int32_t diff = x[i] - max;
            int32_t probability = 0;
            if (diff >= params->diff_min) {
                const int32_t e = nn_exp_on_negative_values(scaled_diff(diff, params), DIFF_INTEGER_BITS);
                probability = nn_rounding_divide_by_pot(nn_doubling_high_mul(inverse, e), exponent);
            }
            y[i] = nn_clamp_s8(probability - 128, INT8_MIN, INT8_MAX);
        }
    }
    return NN_OK;
}
