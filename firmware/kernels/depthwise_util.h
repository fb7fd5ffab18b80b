/*
 * The output stage the DEPTHWISE_CONV_2D kernels share (not part of the
 * kernel API): folded bias in, requantized bytes out, 4 output channels at
 * a time. With 9 taps per output, this stage costs about as much as the
 * multiply-accumulates, so it works on groups: on DSP cores the 4 results
 * are saturated to int8, packed into one word and clamped to the
 * activation range with two bytewise SIMD operations.
 */
#ifndef NN_DEPTHWISE_UTIL_H
#define NN_DEPTHWISE_UTIL_H

#include "kernel_util.h"
#include "simd.h"

/* The nn_requant fields and the bias, copied out of the parameters: output bytes may alias them. */
typedef struct {
    const int32_t *bias;
    const int32_t *multiplier;
    const int8_t *shift;
    int32_t output_offset, act_min, act_max;
    int32_t act_min_x4, act_max_x4; /* act_min, act_max in each byte */
} nn_dw_output;

/* The accumulators of 4 output channels, one variable each so that they stay in registers. */
typedef struct {
    int32_t a0, a1, a2, a3;
} nn_acc4;

static inline nn_dw_output nn_dw_output_stage(const nn_requant *requant, const int32_t *bias)
{
    const nn_dw_output out = {bias, requant->multiplier, requant->shift, requant->output_offset,
                              requant->act_min, requant->act_max,
                              (int32_t)(0x01010101u * (uint8_t)requant->act_min),
                              (int32_t)(0x01010101u * (uint8_t)requant->act_max)};
    return out;
}

static inline nn_acc4 nn_dw_bias_x4(const nn_dw_output *out, int32_t c)
{
    const nn_acc4 acc = {out->bias[c], out->bias[c + 1], out->bias[c + 2], out->bias[c + 3]};
    return acc;
}

static inline int8_t nn_dw_requantize(const nn_dw_output *out, int32_t acc, int32_t c)
{
    const int32_t scaled = nn_requantize(acc, out->multiplier[c], out->shift[c]);
    return nn_clamp_s8(scaled + out->output_offset, out->act_min, out->act_max);
}

/* Output channels c .. c + 3 from their accumulators (folded bias included). */
NN_INLINE void nn_dw_store_x4(const nn_dw_output *out, nn_acc4 acc, int32_t c, int8_t *output)
{
#if NN_DSP
    const int32_t *multiplier = out->multiplier + c;
    const int8_t *shift = out->shift + c;
    const int32_t offset = out->output_offset;
    const int32_t y0 = nn_ssat8(nn_requantize(acc.a0, multiplier[0], shift[0]) + offset);
    const int32_t y1 = nn_ssat8(nn_requantize(acc.a1, multiplier[1], shift[1]) + offset);
    const int32_t y2 = nn_ssat8(nn_requantize(acc.a2, multiplier[2], shift[2]) + offset);
    const int32_t y3 = nn_ssat8(nn_requantize(acc.a3, multiplier[3], shift[3]) + offset);
    const int32_t bytes = (int32_t)((uint32_t)nn_uxtb16(nn_pkhbt16(y0, y2)) |
                                    (uint32_t)nn_uxtb16(nn_pkhbt16(y1, y3)) << 8);
    nn_write_s8x4(output + c,
                  nn_min_s8x4(nn_max_s8x4(bytes, out->act_min_x4), out->act_max_x4));
#else
    output[c] = nn_dw_requantize(out, acc.a0, c);
    output[c + 1] = nn_dw_requantize(out, acc.a1, c + 1);
    output[c + 2] = nn_dw_requantize(out, acc.a2, c + 2);
    output[c + 3] = nn_dw_requantize(out, acc.a3, c + 3);
#endif
}

#endif /* NN_DEPTHWISE_UTIL_H */
