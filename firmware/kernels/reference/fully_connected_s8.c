/*
 * FULLY_CONNECTED, int8, dense weights: the reference kernel (the oracle).
 *
 * TFLite Micro's reference_integer_ops::FullyConnected, one output at a
 * time: the sum of weight * input, plus the folded bias (kernels.h: it
 * holds TFLM's input_offset * sum of the row's weights), requantized by
 * the general MultiplyByQuantizedMultiplier, offset, clamped.
 */
#include "reference.h"

nn_status nn_fully_connected_s8(const nn_fully_connected_params *params, const int8_t *input,
                                const int8_t *weights, const int32_t *bias, int8_t *output)
{
    const int32_t depth = params->input_depth;
    const int32_t rows = params->output_depth;
    const nn_requant *rq = &params->requant;
    if (params->batches <= 0 || depth <= 0 || rows <= 0) {
        return NN_ERROR_ARGUMENT;
    }
    for (int32_t b = 0; b < params->batches; ++b) {
        for (int32_t row = 0; row < rows; ++row) {
            int32_t acc = bias[row];
            for (int32_t i = 0; i < depth; ++i) {
                acc += weights[row * depth + i] * input[b * depth + i];
            }
            output[b * rows + row] = nn_reference_output(acc, row, rq);
        }
    }
    return NN_OK;
}
