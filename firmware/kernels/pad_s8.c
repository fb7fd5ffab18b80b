/* PAD and PADV2, int8: fill with the pad value, then copy the input's rows in. */
#include <string.h>

#include "kernel_util.h"

nn_status nn_pad_s8(const nn_pad_params *params, const int8_t *input, int8_t *output)
{
    const int32_t *in = params->input_dims;
    const int32_t *out = params->output_dims;
    const int32_t *before = params->before;
    for (int d = 0; d < 4; ++d) {
        if (in[d] <= 0 || before[d] < 0 || out[d] < in[d] + before[d]) {
            return NN_ERROR_ARGUMENT;
        }
    }
    memset(output, (int8_t)params->pad_value, (size_t)(out[0] * out[1] * out[2] * out[3]));
    for (int32_t i = 0; i < in[0]; ++i) {
        for (int32_t j = 0; j < in[1]; ++j) {
            for (int32_t k = 0; k < in[2]; ++k) {
                const int8_t *row = input + ((i * in[1] + j) * in[2] + k) * in[3];
                int8_t *target = output +
                    (((i + before[0]) * out[1] + j + before[1]) * out[2] + k + before[2]) * out[3] +
                    before[3];
                memcpy(target, row, (size_t)in[3]);
            }
        }
    }
    return NN_OK;
}
