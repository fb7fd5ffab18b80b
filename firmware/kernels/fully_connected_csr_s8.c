/* FULLY_CONNECTED, int8, CSR weights: one sparse dot product per output. */
#include "kernel_util.h"

nn_status nn_fully_connected_csr_s8(const nn_fully_connected_params *params, const int8_t *input,
                                    const nn_csr_s8 *weights, const int32_t *bias, int8_t *output)
{
    if (params->batches <= 0 || params->input_depth <= 0 || params->output_depth <= 0) {
        return NN_ERROR_ARGUMENT;
    }
    const nn_requant *requant = &params->requant;
    for (int32_t b = 0; b < params->batches; ++b) {
        const int8_t *x = input + b * params->input_depth;
        for (int32_t out_c = 0; out_c < params->output_depth; ++out_c) {
            const int32_t acc = nn_csr_row_dot(weights, out_c, x);
            *output++ = nn_requantize_channel(acc, bias, out_c, requant);
        }
    }
    return NN_OK;
}
