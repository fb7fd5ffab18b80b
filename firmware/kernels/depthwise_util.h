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

/*
 * Each channel's requantization constants (nn_requant_channel), computed
 * once per call: an output then costs 3 loads and 5 instructions, where
 * deriving them from the multiplier and shift each time cost 5 more and a
 * test of the shift. The kernels keep the table on the stack,
 * NN_DW_TABLE_CHANNELS entries at most (3 KiB).
 */
#define NN_DW_TABLE_CHANNELS 256

/* The nn_requant fields and the bias, copied out of the parameters: output bytes may alias them. */
typedef struct {
    const int32_t *bias;
    const int32_t *multiplier;
    const int8_t *shift;
    int32_t output_offset, act_min, act_max;
    int32_t act_min_x4, act_max_x4; /* act_min, act_max in each byte */
    const nn_requant_channel *table; /* or NULL: too many channels, or a left shift */
} nn_dw_output;

/* The accumulators of 4 output channels, one variable each so that they stay in registers. */
typedef struct {
    int32_t a0, a1, a2, a3;
} nn_acc4;

/*
 * The output stage of `channels` channels over `pixels` output pixels;
 * table has room for NN_DW_TABLE_CHANNELS, or is 0 (no table). One pixel
 * goes without the table: it would requantize each channel once, and building the table
 * costs about 10 instructions per channel where the per-output code costs
 * about 5 more (a streaming model's last 15x1 layer: 640 of its 6,200).
 */
static inline nn_dw_output nn_dw_output_stage(const nn_requant *requant, const int32_t *bias,
                                              int32_t channels, int32_t pixels,
                                              nn_requant_channel *table)
{
    int fast = table != 0 && channels <= NN_DW_TABLE_CHANNELS && pixels > 1;
    for (int32_t c = 0; fast && c < channels; ++c) {
        fast = nn_requantize_channel_of(requant->multiplier[c], requant->shift[c], &table[c]);
    }
    const nn_dw_output out = {bias, requant->multiplier, requant->shift, requant->output_offset,
                              requant->act_min, requant->act_max,
                              nn_s8x4_splat(requant->act_min), nn_s8x4_splat(requant->act_max),
                              fast ? table : 0};
    return out;
}

static inline nn_acc4 nn_dw_bias_x4(const nn_dw_output *out, int32_t c)
{
    const nn_acc4 acc = {out->bias[c], out->bias[c + 1], out->bias[c + 2], out->bias[c + 3]};
    return acc;
}

/* One output channel's result, offset added, before the activation clamp. */
static inline int32_t nn_dw_requantize_offset(const nn_dw_output *out, int32_t acc, int32_t c)
{
    if (out->table != 0) {
        return nn_requantize_precomputed(acc, out->table + c) + out->output_offset;
    }
    return nn_requantize(acc, out->multiplier[c], out->shift[c]) + out->output_offset;
}

static inline int8_t nn_dw_requantize(const nn_dw_output *out, int32_t acc, int32_t c)
{
    return nn_clamp_s8(nn_dw_requantize_offset(out, acc, c), out->act_min, out->act_max);
}

#if NN_DSP
/*
 * The 4 results, offset added, without a table (a layer with a left shift
 * or over NN_DW_TABLE_CHANNELS channels: rare): out of line, so that each
 * place nn_dw_store_x4 is inlined holds only the table's code (2.2 KB
 * less on the M4). It takes the nn_dw_output by value, not by pointer: a
 * pointer to a kernel's local copy passed out of line would keep that copy
 * in memory, to be built again for every pixel (7.44 -> 7.71
 * instructions/MAC on MobileNet's 48x48x8 3x3 layer, 2 groups of channels
 * per pixel). And c, not multiplier + c: GCC kept such a sum as one more
 * pointer stepped in the csr kernel's hot loop (5 % slower at 90 %). A
 * loop, not unrolled: 600 B less, on a path no usual layer takes.
 */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static nn_acc4 nn_dw_requantize_x4(const nn_dw_output stage, nn_acc4 acc, int32_t c)
{
    int32_t y[4] = {acc.a0, acc.a1, acc.a2, acc.a3};
#pragma GCC unroll 1
    for (int32_t k = 0; k < 4; ++k) {
        y[k] = nn_requantize(y[k], stage.multiplier[c + k], stage.shift[c + k]) + stage.output_offset;
    }
    const nn_acc4 out = {y[0], y[1], y[2], y[3]};
    return out;
}
#endif

/* Output channels c .. c + 3 from their accumulators (folded bias included). */
NN_INLINE void nn_dw_store_x4(const nn_dw_output *out, nn_acc4 acc, int32_t c, int8_t *output)
{
#if NN_DSP
    nn_acc4 y;
    if (out->table != 0) { /* tested once a group, not once an output */
        const nn_requant_channel *t = out->table + c;
        const int32_t offset = out->output_offset;
        y.a0 = nn_requantize_precomputed(acc.a0, t) + offset;
        y.a1 = nn_requantize_precomputed(acc.a1, t + 1) + offset;
        y.a2 = nn_requantize_precomputed(acc.a2, t + 2) + offset;
        y.a3 = nn_requantize_precomputed(acc.a3, t + 3) + offset;
    } else {
        y = nn_dw_requantize_x4(*out, acc, c);
    }
    nn_write_s8x4(output + c, nn_pack_clamp_s8x4(y.a0, y.a1, y.a2, y.a3, out->act_min_x4,
                                                 out->act_max_x4));
#else
    output[c] = nn_dw_requantize(out, acc.a0, c);
    output[c + 1] = nn_dw_requantize(out, acc.a1, c + 1);
    output[c + 2] = nn_dw_requantize(out, acc.a2, c + 2);
    output[c + 3] = nn_dw_requantize(out, acc.a3, c + 3);
#endif
}

/* Output channels [c, end), a multiple of 4, from their sums (folded bias included) in sums[0..]. */
static inline void nn_dw_store_sums(const nn_dw_output *out, const int32_t *sums, int32_t c,
                                    int32_t end, int8_t *output)
{
    for (; c < end; c += 4, sums += 4) {
        const nn_acc4 acc = {sums[0], sums[1], sums[2], sums[3]};
        nn_dw_store_x4(out, acc, c, output);
    }
}

#endif /* NN_DEPTHWISE_UTIL_H */
