/*
 * FULLY_CONNECTED, int8, bitmask weights (kernels.h): one sparse dot
 * product per output, finding each row's nonzeros 32 inputs at a time.
 *
 * Per nonzero: a count of leading zeros gives its input, one shift and a
 * BIC clear its bit, then a value, an input and a multiply-add; a word with
 * no nonzeros costs its load and one test. The smallest format at medium
 * sparsity, not the fastest.
 */
#include "kernel_util.h"

nn_status nn_fully_connected_bitmask_s8(const nn_fully_connected_params *params, const int8_t *input,
                                        const nn_bitmask_s8 *weights, const int32_t *bias, int8_t *output)
{
    if (params->batches <= 0 || params->input_depth <= 0 || params->output_depth <= 0) {
        return NN_ERROR_ARGUMENT;
    }
    const int32_t words = (params->input_depth + 31) / 32;
    /* A local copy: an int8 store may alias anything, so the parameters would be read again every row. */
    const nn_requant requant = params->requant;
    for (int32_t b = 0; b < params->batches; ++b) {
        const int8_t *x = input + b * params->input_depth;
        const int8_t *v = weights->values;
        const uint32_t *mask = weights->mask;
        for (int32_t out_c = 0; out_c < params->output_depth; ++out_c) {
            int32_t acc = 0;
            for (int32_t word = 0; word < words; ++word) {
                const int8_t *x32 = x + 32 * word;
                for (uint32_t bits = *mask++; bits != 0;) {
                    const uint32_t at = nn_clz32(bits);
                    bits &= ~(0x80000000u >> at);
                    acc += *v++ * x32[at];
                }
            }
            *output++ = nn_requantize_channel(acc, bias, out_c, &requant);
        }
    }
    return NN_OK;
}
