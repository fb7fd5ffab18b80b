/*
 * LOGISTIC, int8: the reference kernel.
 *
 * Bit-exact with TFLM's gemmlowp evaluation: 1 / (1 + exp(-|x|)) in fixed
 * point (fixed_point.h), mirrored for negative x.
 */
#include "fixed_point.h"
#include "kernel_util.h"

enum { INPUT_INTEGER_BITS = 4 }; /* the argument is Q4.27 */

/* logistic(a) for a Q4.27 argument, as Q0.31. */
static int32_t logistic(int32_t a)
{
    if (a == 0) {
        return 1 << 30; /* one half */
    }
    const int32_t magnitude = a > 0 ? a : -a;
    const int32_t positive =
        nn_one_over_one_plus_x(nn_exp_on_negative_values(-magnitude, INPUT_INTEGER_BITS));
    return a > 0 ? positive : NN_Q0_ONE - positive;
}

nn_status nn_logistic_s8(const nn_logistic_params *params, const int8_t *input, int8_t *output)
{
    if (params->size <= 0 || params->input_range_radius <= 0) {
        return NN_ERROR_ARGUMENT;
    }
    for (int32_t i = 0; i < params->size; ++i) {
        const int32_t x = input[i] - params->input_zero_point;
        if (x <= -params->input_range_radius) {
            output[i] = INT8_MIN;
        } else if (x >= params->input_range_radius) {
            output[i] = INT8_MAX;
        } else {
            const int32_t argument =
                nn_requantize(x, params->input_multiplier, params->input_left_shift);
            /* Q0.31 probability to units of 1/256, zero point -128. */
            const int32_t scaled = nn_rounding_divide_by_pot(logistic(argument), 31 - 8);
            output[i] = nn_clamp_s8(scaled - 128, INT8_MIN, INT8_MAX);
        }
    }
    return NN_OK;
}
