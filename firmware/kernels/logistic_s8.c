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

/* One output byte from one input byte: saturated outside the input range, else gemmlowp's logistic. */
static int8_t logistic_s8(int32_t input, const nn_logistic_params *params)
{
    const int32_t x = input - params->input_zero_point;
    if (x <= -params->input_range_radius) {
        return INT8_MIN;
    }
    if (x >= params->input_range_radius) {
        return INT8_MAX;
    }
    const int32_t argument = nn_requantize(x, params->input_multiplier, params->input_left_shift);
    /* Q0.31 probability to units of 1/256, zero point -128. */
    const int32_t scaled = nn_rounding_divide_by_pot(logistic(argument), 31 - 8);
    return nn_clamp_s8(scaled - 128, INT8_MIN, INT8_MAX);
}

/*
 * An output byte depends on its input byte alone, and computing one takes
 * about 340 instructions on the M4; so past 256 elements the 256 possible
 * outputs are computed once into a table (256 bytes of stack) and each
 * element is a lookup (2,048 elements on the emulated M4: 693,240 ->
 * 108,560 instructions).
 */
nn_status nn_logistic_s8(const nn_logistic_params *params, const int8_t *input, int8_t *output)
{
    if (params->size <= 0 || params->input_range_radius <= 0) {
        return NN_ERROR_ARGUMENT;
    }
    if (params->size <= 256) {
        for (int32_t i = 0; i < params->size; ++i) {
            output[i] = logistic_s8(input[i], params);
        }
        return NN_OK;
    }
    int8_t table[256];
    for (int32_t v = INT8_MIN; v <= INT8_MAX; ++v) {
        table[(uint8_t)v] = logistic_s8(v, params);
    }
    for (int32_t i = 0; i < params->size; ++i) {
        output[i] = table[(uint8_t)input[i]];
    }
    return NN_OK;
}
