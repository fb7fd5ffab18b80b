/*
 * FULLY_CONNECTED, int8, block4 weights (kernels.h): one dot product per
 * output over its blocks of 4 consecutive inputs.
 *
 * On DSP cores a block is one index load, two word loads (values, inputs),
 * two SXTB16 each and two SMLADs: 4 multiply-adds in 9 instructions.
 */
#include "kernel_util.h"
#include "simd.h"

/* The 4 values at v against the 4 inputs at x. */
static inline int32_t block_mac(int32_t acc, const int8_t *v, const int8_t *x)
{
#if NN_DSP
    const int32_t w = nn_read_s8x4(v);
    const int32_t in = nn_read_s8x4(x);
    acc = nn_smlad(nn_sxtb16(w), nn_sxtb16(in), acc);
    return nn_smlad(nn_sxtb16_ror8(w), nn_sxtb16_ror8(in), acc);
#else
    return acc + v[0] * x[0] + v[1] * x[1] + v[2] * x[2] + v[3] * x[3];
#endif
}

/* Every output of one batch row; one of index_u8 / index_u16 is NULL. */
NN_INLINE void rows(const nn_fully_connected_params *params, const int8_t *x, const nn_block4_s8 *weights,
                    const uint8_t *index_u8, const uint16_t *index_u16, const int32_t *bias,
                    int8_t *output)
{
    /* A local copy: an int8 store may alias anything, so the parameters would be read again every row. */
    const nn_requant requant = params->requant;
    const int32_t depth = params->output_depth;
    uint32_t begin = nn_csr_row_start(weights, 0);
    for (int32_t out_c = 0; out_c < depth; ++out_c) {
        const uint32_t end = nn_csr_row_start(weights, out_c + 1);
        const int8_t *v = weights->values + 4 * begin;
        int32_t acc = 0;
        for (uint32_t k = begin; k < end; ++k, v += 4) {
            acc = block_mac(acc, v, x + (index_u8 ? index_u8[k] : index_u16[k]));
        }
        output[out_c] = nn_requantize_channel(acc, bias, out_c, &requant);
        begin = end;
    }
}

nn_status nn_fully_connected_block4_s8(const nn_fully_connected_params *params, const int8_t *input,
                                       const nn_block4_s8 *weights, const int32_t *bias, int8_t *output)
{
    if (params->batches <= 0 || params->input_depth <= 0 || params->output_depth <= 0) {
        return NN_ERROR_ARGUMENT;
    }
    for (int32_t b = 0; b < params->batches; ++b) {
        const int8_t *x = input + b * params->input_depth;
        /* A row shorter than a block: its block reads a zero-padded copy, not past the input. */
        int8_t short_row[4] = {0, 0, 0, 0};
        if (params->input_depth < 4) {
            memcpy(short_row, x, (size_t)params->input_depth);
            x = short_row;
        }
        int8_t *out = output + b * params->output_depth;
        if (weights->index_u8 != 0) {
            rows(params, x, weights, weights->index_u8, 0, bias, out);
        } else {
            rows(params, x, weights, 0, weights->index_u16, bias, out);
        }
    }
    return NN_OK;
}
