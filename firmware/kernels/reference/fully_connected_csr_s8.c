/*
 * FULLY_CONNECTED, int8, CSR weights: the reference kernel (the oracle).
 *
 * The dense reference's loop (reference/fully_connected_s8.c) over a row's
 * nonzeros only: the weights left out are zeros, whose products add
 * nothing, so the bytes are TFLite Micro's for the dense layer.
 */
#include "reference.h"

nn_status nn_fully_connected_csr_s8(const nn_fully_connected_params *params, const int8_t *input,
                                    const nn_csr_s8 *weights, const int32_t *bias, int8_t *output)
{
    const int32_t depth = params->input_depth;
    const int32_t rows = params->output_depth;
    if (params->batches <= 0 || depth <= 0 || rows <= 0) {
        return NN_ERROR_ARGUMENT;
    }
    for (int32_t b = 0; b < params->batches; ++b) {
        for (int32_t row = 0; row < rows; ++row) {
            int32_t acc = bias[row];
            for (uint32_t k = nn_csr_row_start(weights, row); k < nn_csr_row_start(weights, row + 1); ++k) {
                const int32_t col = weights->index_u8 ? weights->index_u8[k] : weights->index_u16[k];
                acc += weights->values[k] * input[b * depth + col];
            }
            output[b * rows + row] = nn_reference_output(acc, row, &params->requant);
        }
    }
    return NN_OK;
}
