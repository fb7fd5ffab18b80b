/* CONCATENATION, int8: interleave the inputs' chunks along the axis. */
#include <string.h>

#include "kernel_util.h"

nn_status nn_concatenation_s8(const nn_concatenation_params *params, const int8_t *const *inputs,
                              int8_t *output)
{
    if (params->outer <= 0 || params->count <= 0) {
        return NN_ERROR_ARGUMENT;
    }
    for (int32_t o = 0; o < params->outer; ++o) {
        for (int32_t i = 0; i < params->count; ++i) {
            const int32_t chunk = params->chunk[i];
            memcpy(output, inputs[i] + o * chunk, (size_t)chunk);
            output += chunk;
        }
    }
    return NN_OK;
}
