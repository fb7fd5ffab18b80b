/*
 * MEAN, int8, over adjacent axes: the reference kernel.
 *
 * Sums the reduced values minus the input zero point, then rescales the
 * sum with one multiplier that folds in both input_scale / output_scale
 * and the division by the count, as TFLM does.
 */
#include "kernel_util.h"

nn_status nn_mean_s8(const nn_mean_params *params, const int8_t *input, int8_t *output)
{
    if (params->outer <= 0 || params->reduced <= 0 || params->inner <= 0) {
        return NN_ERROR_ARGUMENT;
    }
    for (int32_t o = 0; o < params->outer; ++o) {
        const int8_t *slab = input + o * params->reduced * params->inner;
        for (int32_t n = 0; n < params->inner; ++n) {
            int32_t sum = 0;
            for (int32_t r = 0; r < params->reduced; ++r) {
                sum += slab[r * params->inner + n] - params->input_zero_point;
            }
            const int32_t mean = nn_requantize(sum, params->multiplier, params->shift);
            *output++ = nn_clamp_s8(mean + params->output_zero_point, INT8_MIN, INT8_MAX);
        }
    }
    return NN_OK;
}
