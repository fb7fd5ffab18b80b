/*
 * DEPTHWISE_CONV_2D, int8, CSR weights: row c holds output channel c's
 * nonzero taps, index[k] the tap's number ky * KW + kx.
 *
 * Two paths, both writing pixels in raster order.
 *
 * Runs (most pixels): the output pixels of a row whose windows lie inside
 * the image's columns go channel by channel. A channel has few nonzero
 * taps, known before the run starts, so each tap's weight and input
 * pointer stay in registers for the whole run, as do the channel's
 * requantization constants (the output offset folded into them): an output
 * costs 2 instructions per nonzero (LDRSB, MLA) plus its requantization and
 * store. A tap whose input row lies in the padding adds the same weight *
 * zero point to every output of the run, so it goes into the channel's
 * starting value; a channel left with no tap stores one constant. Over
 * RUN_OUTPUT_TAPS taps, the sums gather in passes of RUN_SUM_TAPS taps on
 * the stack first.
 *
 * Runs need depth multiplier 1, an activation range of all of int8 (SSAT
 * is their clamp) and at least RUN_MIN_PIXELS such pixels a row. Pixels (the columns at the borders, and layers the runs do not
 * take):
 * for each output pixel the kernel points every tap at channel 0 of the
 * input pixel it reads, or, for a tap in the padding, at a row of input
 * zero points (the scratch buffer; what padding reads, see kernels.h).
 * Each nonzero then reads tap[index][c_in] with no bounds test.
 *
 * Writing over the input (kernels.h): a run writes a channel of pixels q
 * and later reads other channels of inputs that only windows before q
 * cover, which the contract does not allow in general. It is safe when
 * the output does not overlap the input, or when each output byte can only
 * land on an input byte of its own channel (an overlap of whole pixels,
 * with depth multiplier 1): every channel is still computed in raster
 * order, and the contract's distance keeps pixel q's bytes off inputs
 * that windows from q on read. Otherwise the whole layer takes the pixel
 * path.
 */
#include <stdint.h>
#include <string.h>

#include "depthwise_util.h"

/* At most this many taps go straight from the inputs to the outputs; more first gather into sums. */
#define RUN_OUTPUT_TAPS 3
/* Taps per pass into the sums: 4 weights, 4 pointers, the index, the step and the sums fill the registers. */
#define RUN_SUM_TAPS 4
/* Pixels a run holds sums for (on the stack); a longer row goes in several runs. */
#define RUN_PIXELS 32
/*
 * Rows with fewer pixels inside the image's columns take the pixel path:
 * a run's set-up per channel (its taps, the call) is paid back over its
 * pixels. Measured on the emulated M4: runs of 14 pixels (16x16x64) are
 * faster at every sparsity; runs of 3 (KWS DS-CNN's 25x5x64) are slower
 * at every one, 0 % to 99.8 % (998 k against 803 k, 245 k against 227 k).
 */
#define RUN_MIN_PIXELS 8

/* Whether some window reaches outside the image: then the kernel needs its row of zero points. */
static int reaches_padding(const nn_window *win)
{
    const int32_t bottom = (win->output.h - 1) * win->stride_h - win->pad_top +
                           (win->kernel_h - 1) * win->dilation_h;
    const int32_t right = (win->output.w - 1) * win->stride_w - win->pad_left +
                          (win->kernel_w - 1) * win->dilation_w;
    return win->pad_top > 0 || win->pad_left > 0 || bottom >= win->input.h ||
           right >= win->input.w;
}

int32_t nn_depthwise_conv2d_csr_s8_get_buffer_size(const nn_depthwise_conv2d_params *params)
{
    return reaches_padding(&params->window) ? params->window.input.c : 0;
}

/* The CSR arrays, copied out of the struct (output bytes may alias it). */
typedef struct {
    const int8_t *values;
    const uint8_t *index; /* tap numbers: 8 bits hold NN_DEPTHWISE_CSR_MAX_TAPS */
    const uint16_t *row_start_u16;
    const uint32_t *row_start_u32;
} csr_rows;

/* Where row c + 1 starts, that is where row c ends. */
NN_INLINE uint32_t row_end(const csr_rows *w, int32_t c, int start_u16)
{
    return start_u16 ? w->row_start_u16[c + 1] : w->row_start_u32[c + 1];
}

/* ---- Pixels ---- */

/* acc + the sum over entries [*k, end) of value * tap[index][c_in], and *k = end. */
NN_INLINE int32_t row_dot(int32_t acc, const csr_rows *w, uint32_t *k, uint32_t end,
                          const int8_t *const *tap, int32_t c_in)
{
    for (uint32_t i = *k; i < end; ++i) {
        acc += w->values[i] * tap[w->index[i]][c_in];
    }
    *k = end;
    return acc;
}

/*
 * Every output channel of one pixel, whose taps point at their inputs. The
 * usual case (16-bit row starts, depth multiplier 1) calls it with those as
 * constants, so that its loops test neither. A group of 4 channels without
 * a nonzero stores their constants (a heavily pruned layer: KWS DS-CNN's
 * depthwise layers at 90 % keep 1 weight in 576).
 */
NN_INLINE void pixel(const csr_rows *w, const nn_dw_output *out, const int8_t *constants,
                     int32_t channels, int32_t multiplier, int start_u16,
                     const int8_t *const *tap, int8_t *output)
{
    uint32_t k = 0;
    int32_t c = 0;
    for (; c + 4 <= channels; c += 4) {
        if (constants != 0 && row_end(w, c + 3, start_u16) == k) {
            nn_write_s8x4(output + c, nn_read_s8x4(constants + c)); /* 4 channels without a nonzero */
            continue;
        }
        nn_acc4 acc = nn_dw_bias_x4(out, c);
        acc.a0 = row_dot(acc.a0, w, &k, row_end(w, c, start_u16), tap, c / multiplier);
        acc.a1 = row_dot(acc.a1, w, &k, row_end(w, c + 1, start_u16), tap, (c + 1) / multiplier);
        acc.a2 = row_dot(acc.a2, w, &k, row_end(w, c + 2, start_u16), tap, (c + 2) / multiplier);
        acc.a3 = row_dot(acc.a3, w, &k, row_end(w, c + 3, start_u16), tap, (c + 3) / multiplier);
        nn_dw_store_x4(out, acc, c, output);
    }
    for (; c < channels; ++c) {
        const int32_t acc =
            row_dot(out->bias[c], w, &k, row_end(w, c, start_u16), tap, c / multiplier);
        output[c] = nn_dw_requantize(out, acc, c);
    }
}

/* What both paths read: the layer, its weights, input and output stage. */
typedef struct {
    nn_window win; /* a 1-pixel-wide column map turned into a 1-pixel-high row: see layer_window */
    int32_t multiplier;
    const int8_t *input;
    const int8_t *padding; /* C_IN zero points, or NULL when no window reaches outside the image */
    int32_t zero_point;    /* what padding reads */
    csr_rows rows;
    nn_dw_output out;
    const int8_t *constants; /* each channel's output without its taps (all of it when it has no nonzero) */
} dw_layer;

/* Output pixels [x_from, x_to) of row out_y, one at a time; output points at the row's first pixel. */
static void pixels(const dw_layer *layer, int32_t out_y, int32_t x_from, int32_t x_to,
                   int8_t *output)
{
    const nn_window *win = &layer->win;
    const int32_t in_c = win->input.c;
    const int32_t in_y0 = out_y * win->stride_h - win->pad_top;
    const int8_t *tap[NN_DEPTHWISE_CSR_MAX_TAPS]; /* where each tap of the current window reads */
    for (int32_t out_x = x_from; out_x < x_to; ++out_x) {
        const int32_t in_x0 = out_x * win->stride_w - win->pad_left;
        int32_t t = 0;
        for (int32_t ky = 0; ky < win->kernel_h; ++ky) {
            const int32_t in_y = in_y0 + ky * win->dilation_h;
            for (int32_t kx = 0; kx < win->kernel_w; ++kx, ++t) {
                const int32_t in_x = in_x0 + kx * win->dilation_w;
                const int inside =
                    in_y >= 0 && in_y < win->input.h && in_x >= 0 && in_x < win->input.w;
                tap[t] = inside ? layer->input + (in_y * win->input.w + in_x) * in_c
                                : layer->padding;
            }
        }
        int8_t *pixel_out = output + out_x * win->output.c;
        if (layer->rows.row_start_u16 != 0 && layer->multiplier == 1) {
            pixel(&layer->rows, &layer->out, layer->constants, win->output.c, 1, 1, tap, pixel_out);
        } else {
            /* Without the constant groups: code size, for layers that are rare anyway. */
            pixel(&layer->rows, &layer->out, 0, win->output.c, layer->multiplier,
                  layer->rows.row_start_u16 != 0, tap, pixel_out);
        }
    }
}

/* ---- Runs ---- */

/* One run of output pixels, for every channel. */
typedef struct {
    int32_t count;             /* pixels, at most RUN_PIXELS */
    int32_t in_step, out_step; /* bytes from one pixel to the next */
    int32_t act_min, act_max;
} run_shape;

/* A channel's nonzero taps whose rows lie inside the image: the input of the run's first pixel, the weight. */
typedef struct {
    const int8_t *src[NN_DEPTHWISE_CSR_MAX_TAPS];
    int32_t weight[NN_DEPTHWISE_CSR_MAX_TAPS];
} run_taps;

/*
 * sums[j] (or start, when first) plus the n taps' products at pixel j, n a
 * constant where inlined; the loads of the taps n does not use go unread.
 */
NN_INLINE void run_to_sums(int n, const int8_t *const *src, const int32_t *weight, int first,
                           int32_t start, int32_t *sums, const run_shape *shape)
{
    const int8_t *s0 = src[0], *s1 = src[1], *s2 = src[2], *s3 = src[3];
    const int32_t w0 = weight[0], w1 = weight[1], w2 = weight[2], w3 = weight[3];
    const int32_t step = shape->in_step;
    const int32_t *end = sums + shape->count;
    for (int32_t i = 0; sums < end; ++sums, i += step) {
        int32_t acc = first ? start : *sums;
        acc += w0 * s0[i];
        if (n > 1) {
            acc += w1 * s1[i];
        }
        if (n > 2) {
            acc += w2 * s2[i];
        }
        if (n > 3) {
            acc += w3 * s3[i];
        }
        *sums = acc;
    }
}

/*
 * Two taps' weights in one register, for the runs: on DSP cores SMLABB and
 * SMLABT multiply by its halves, which leaves the loop of 2 taps a register
 * to spare and that of 3 one spill fewer. Elsewhere the halves are taken
 * out once, before the loop.
 */
NN_INLINE int32_t pair_weights(int32_t first, int32_t second)
{
    return (int32_t)(((uint32_t)second << 16) | ((uint32_t)first & 0xFFFFu));
}

NN_INLINE int32_t mac_first(int32_t acc, int32_t x, int32_t pair)
{
#if NN_DSP
    return nn_smlabb(x, pair, acc);
#else
    return acc + x * (int16_t)(pair & 0xFFFF);
#endif
}

NN_INLINE int32_t mac_second(int32_t acc, int32_t x, int32_t pair)
{
#if NN_DSP
    return nn_smlabt(x, pair, acc);
#else
    return acc + x * (pair >> 16);
#endif
}

/* y clamped to int8: one SSAT on DSP cores, where GCC makes branches of nn_clamp_s8(y, -128, 127). */
NN_INLINE int8_t saturate_s8(int32_t y)
{
#if NN_DSP
    return (int8_t)nn_ssat8(y);
#else
    return nn_clamp_s8(y, -128, 127);
#endif
}

/*
 * The outputs of a run: sums[j] (or start, when sums is NULL) plus the n
 * taps' products, requantized, for an activation range that is all of int8.
 */
NN_INLINE void run_to_output(int n, const int8_t *const *src, const int32_t *weight,
                             int32_t start, const int32_t *sums, nn_requant_channel q,
                             const run_shape *shape, int8_t *out)
{
    /* Copied: stores through out could alias *shape, which would then be read again each output. */
    const int32_t step = shape->in_step, out_step = shape->out_step;
    /*
     * The input index counts up to 0 from minus the run's length, so that
     * its step also ends the loop (ADDS, BNE): no end pointer to hold.
     */
    const int32_t length = shape->count * step;
    const int8_t *s0 = n > 0 ? src[0] + length : 0, *s1 = n > 1 ? src[1] + length : 0,
                 *s2 = n > 2 ? src[2] + length : 0;
    const int32_t w01 = pair_weights(n > 0 ? weight[0] : 0, n > 1 ? weight[1] : 0);
    const int32_t w2 = n > 2 ? weight[2] : 0;
    for (int32_t i = -length; i != 0; i += step, out += out_step) {
        int32_t acc = sums != 0 ? *sums++ : start;
        if (n > 0) {
            acc = mac_first(acc, s0[i], w01);
        }
        if (n > 1) {
            acc = mac_second(acc, s1[i], w01);
        }
        if (n > 2) {
            acc += w2 * s2[i];
        }
        *out = saturate_s8(nn_requantize_precomputed(acc, &q));
    }
}

/*
 * One channel's run: n taps from start, its requantization q and output
 * offset, out its first output. The runs with taps fold the offset into q
 * (offsets_fold checked that they may).
 */
#if defined(__GNUC__)
__attribute__((noinline)) /* its loops get the registers; inlined, the outer loops' values took them */
#endif
static void run_channel(const run_taps *taps, int32_t n, int32_t start, nn_requant_channel q,
                        int32_t offset, const run_shape *shape, int8_t *out)
{
    const int8_t *const *src = taps->src;
    const int32_t *weight = taps->weight;
    if (n == 0) {
        const int8_t value = nn_clamp_s8(nn_requantize_precomputed(start, &q) + offset,
                                         shape->act_min, shape->act_max);
        for (int32_t j = 0; j < shape->count; ++j, out += shape->out_step) {
            *out = value;
        }
        return;
    }
    q.half += (int32_t)((uint32_t)offset << q.shift_minus_1);
    switch (n) {
    case 1:
        run_to_output(1, src, weight, start, 0, q, shape, out);
        return;
    case 2:
        run_to_output(2, src, weight, start, 0, q, shape, out);
        return;
    case 3:
        run_to_output(3, src, weight, start, 0, q, shape, out);
        return;
    default:
        break;
    }
    int32_t sums[RUN_PIXELS];
    run_to_sums(RUN_SUM_TAPS, src, weight, 1, start, sums, shape);
    for (n -= RUN_SUM_TAPS; n > RUN_OUTPUT_TAPS; n -= RUN_SUM_TAPS) {
        src += RUN_SUM_TAPS;
        weight += RUN_SUM_TAPS;
        run_to_sums(RUN_SUM_TAPS, src, weight, 0, 0, sums, shape);
    }
    src += RUN_SUM_TAPS;
    weight += RUN_SUM_TAPS;
    switch (n) {
    case 0:
        run_to_output(0, src, weight, 0, sums, q, shape, out);
        break;
    case 1:
        run_to_output(1, src, weight, 0, sums, q, shape, out);
        break;
    case 2:
        run_to_output(2, src, weight, 0, sums, q, shape, out);
        break;
    default:
        run_to_output(3, src, weight, 0, sums, q, shape, out);
        break;
    }
}

/*
 * Output pixels [x0, x0 + count) of row out_y, whose windows lie inside the
 * image's columns, channel by channel; output points at the row's first
 * pixel.
 */
static void run(const dw_layer *layer, int32_t out_y, int32_t x0, int32_t count, int8_t *output)
{
    const nn_window *win = &layer->win;
    const int32_t in_c = win->input.c;
    const int32_t taps = win->kernel_h * win->kernel_w;
    const int8_t *row_src[NN_DEPTHWISE_CSR_MAX_TAPS]; /* channel 0 of each tap at pixel x0, or NULL: padding */
    const int32_t in_y0 = out_y * win->stride_h - win->pad_top;
    const int32_t in_x0 = x0 * win->stride_w - win->pad_left;
    for (int32_t t = 0; t < taps; ++t) {
        const int32_t in_y = in_y0 + (t / win->kernel_w) * win->dilation_h;
        const int32_t in_x = in_x0 + (t % win->kernel_w) * win->dilation_w;
        row_src[t] = in_y >= 0 && in_y < win->input.h
                         ? layer->input + (in_y * win->input.w + in_x) * in_c
                         : 0;
    }
    const run_shape shape = {count, win->stride_w * in_c, win->output.c, layer->out.act_min,
                             layer->out.act_max};
    const csr_rows *w = &layer->rows;
    const int start_u16 = w->row_start_u16 != 0;
    int8_t *out = output + x0 * win->output.c;
    run_taps found;
    uint32_t k = start_u16 ? w->row_start_u16[0] : w->row_start_u32[0];
    for (int32_t c = 0; c < win->output.c; ++c) {
        const uint32_t end = row_end(w, c, start_u16);
        int32_t start = layer->out.bias[c];
        int32_t n = 0;
        for (; k < end; ++k) {
            const int8_t *src = row_src[w->index[k]];
            if (src != 0) {
                found.src[n] = src + c;
                found.weight[n++] = w->values[k];
            } else {
                start += w->values[k] * layer->zero_point;
            }
        }
        run_channel(&found, n, start, layer->out.table[c], layer->out.output_offset, &shape,
                    out + c);
    }
}

/* ---- The layer ---- */

/*
 * The window the kernel walks: a map 1 pixel wide under a (k x 1) window
 * (streaming models' [T, 1, C]) is the same bytes as a map 1 pixel high
 * under a (1 x k) window, whose rows are long enough for runs. Tap numbers
 * are the same either way (ky with one column, kx with one row).
 */
static nn_window layer_window(const nn_window *win)
{
    nn_window w = *win;
    if (win->input.w == 1 && win->output.w == 1 && win->kernel_w == 1) {
        const nn_hwc in = {1, win->input.h, win->input.c};
        const nn_hwc out = {1, win->output.h, win->output.c};
        const nn_window row = {in, out, 1, win->kernel_h, 1, win->stride_h,
                               1, win->dilation_h, 0, win->pad_top};
        w = row;
    }
    return w;
}

/* Whether the output may be written a channel at a time (see "Writing over the input" above); depth multiplier 1. */
static int runs_may_write(const dw_layer *layer, const int8_t *output)
{
    const nn_window *win = &layer->win;
    const uintptr_t in = (uintptr_t)layer->input;
    const uintptr_t out = (uintptr_t)output;
    const uintptr_t in_end = in + (uintptr_t)(win->input.h * win->input.w * win->input.c);
    const uintptr_t out_end = out + (uintptr_t)(win->output.h * win->output.w * win->output.c);
    return out_end <= in || out >= in_end ||
           (out <= in && (in - out) % (uintptr_t)win->input.c == 0);
}

/*
 * Whether the output offset folds into the requantization of every channel
 * with a nonzero tap (a channel without one stores a constant, computed
 * apart): offset * 2^(e-1) plus the rounding constant 2^(e-2) plus the
 * product's high word must stay within int32, and the high word is at most
 * |bias| + 128 * sum |weight| times the multiplier, over 2^32, plus 1.
 */
static int offsets_fold(const dw_layer *layer)
{
    const nn_dw_output *out = &layer->out;
    if (out->table == 0) {
        return 0;
    }
    const csr_rows *w = &layer->rows;
    const int start_u16 = w->row_start_u16 != 0;
    const uint64_t offset = (uint64_t)(out->output_offset < 0 ? -out->output_offset
                                                               : out->output_offset);
    uint32_t k = 0;
    for (int32_t c = 0; c < layer->win.output.c; ++c) {
        const uint32_t end = row_end(w, c, start_u16);
        if (k == end) {
            continue;
        }
        uint64_t bound = (uint64_t)(out->bias[c] < 0 ? -(int64_t)out->bias[c] : out->bias[c]);
        for (; k < end; ++k) {
            bound += 128u * (uint64_t)(w->values[k] < 0 ? -w->values[k] : w->values[k]);
        }
        const nn_requant_channel *q = &out->table[c];
        const uint64_t high = ((bound * (uint64_t)q->multiplier) >> 32) + 2 + (uint64_t)q->half +
                              (offset << q->shift_minus_1);
        if (high >= ((uint64_t)1 << 31)) {
            return 0;
        }
    }
    return 1;
}

nn_status nn_depthwise_conv2d_csr_s8(const nn_depthwise_conv2d_params *params,
                                     const int8_t *input, const nn_csr_s8 *weights,
                                     const int32_t *bias, int8_t *output, int8_t *buffer)
{
    const nn_window *given = &params->window;
    const int32_t multiplier = params->depth_multiplier;
    const int padding = reaches_padding(given);
    if (!nn_window_is_valid(given) || multiplier <= 0 ||
        given->output.c != given->input.c * multiplier || (padding && buffer == 0) ||
        given->kernel_h * given->kernel_w > NN_DEPTHWISE_CSR_MAX_TAPS ||
        weights->index_u16 != 0) {
        return NN_ERROR_ARGUMENT;
    }
    nn_requant_channel table[NN_DW_TABLE_CHANNELS];
    int8_t constants[NN_DW_TABLE_CHANNELS];
    const nn_dw_output out = nn_dw_output_stage(&params->requant, bias, given->output.c,
                                                given->output.h * given->output.w, table);
    const int32_t zero_point = -params->requant.input_offset;
    const dw_layer layer = {
        layer_window(given), multiplier, input, padding ? buffer : 0, zero_point,
        {weights->values, weights->index_u8, weights->row_start_u16, weights->row_start_u32},
        out, out.table != 0 ? constants : 0};
    for (int32_t c = 0; layer.constants != 0 && c < given->output.c; ++c) {
        constants[c] = nn_clamp_s8(nn_requantize_precomputed(bias[c], &table[c]) + out.output_offset,
                                   out.act_min, out.act_max);
    }
    if (padding) {
        memset(buffer, (int8_t)zero_point, (size_t)given->input.c);
    }
    const nn_window *win = &layer.win;
    /* The output columns whose windows lie inside the image's columns. */
    const int32_t span = (win->kernel_w - 1) * win->dilation_w + 1;
    const int32_t x_lo = (win->pad_left + win->stride_w - 1) / win->stride_w;
    const int32_t last = win->input.w - span + win->pad_left; /* in_x0 + pad_left of the last such column */
    int32_t x_hi = last < 0 ? 0 : last / win->stride_w + 1;
    x_hi = x_hi > win->output.w ? win->output.w : x_hi;
    const int runs = multiplier == 1 && out.act_min == -128 && out.act_max == 127 &&
                     x_hi - x_lo >= RUN_MIN_PIXELS && offsets_fold(&layer) &&
                     runs_may_write(&layer, output);
    const int32_t row_bytes = win->output.w * win->output.c;
    for (int32_t out_y = 0; out_y < win->output.h; ++out_y, output += row_bytes) {
        if (!runs) {
            pixels(&layer, out_y, 0, win->output.w, output);
            continue;
        }
        pixels(&layer, out_y, 0, x_lo, output);
        for (int32_t x0 = x_lo; x0 < x_hi; x0 += RUN_PIXELS) {
            run(&layer, out_y, x0, x_hi - x0 < RUN_PIXELS ? x_hi - x0 : RUN_PIXELS, output);
        }
        pixels(&layer, out_y, x_hi, win->output.w, output);
    }
    return NN_OK;
}
