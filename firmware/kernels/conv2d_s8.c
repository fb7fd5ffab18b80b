/*
 * CONV_2D, int8, dense weights.
 *
 * DSP path (NN_DSP): output pixels go in pairs. Each pair's windows are
 * first copied into `columns` ("im2col"), widened to int16 and padded with
 * the input zero point (what padding reads, see kernels.h). Then a tile of
 * 2 output channels x 2 pixels runs down the window: one weight word per
 * channel (4 weights, split into even and odd int16 pairs by SXTB16) meets
 * two column words per pixel, 8 SMLAD for 16 MACs, and no column word is
 * sign-extended more than once per pixel, however many channels read it.
 * For SMLAD's pairs to match SXTB16's, each group of 4 window values is
 * stored as the words (v0, v2) and (v1, v3), the two pixels' groups side
 * by side: A(v0, v2) A(v1, v3) B(v0, v2) B(v1, v3).
 *
 * The columns (and, when C_IN is not a multiple of 4, a bytewise gather of
 * one window) live on the stack for windows of up to STACK_WINDOW_MAX
 * values, and in the caller's buffer, nn_conv2d_s8_get_buffer_size()
 * bytes, for larger ones, so every window size takes the DSP path. (Small
 * windows stay on the stack so that their arena does not grow past
 * TFLite Micro's: tests/test_compiler.py.) A pair reads the
 * input only while filling its columns, before it writes anything, so
 * outputs go in raster order and writing over the input (kernels.h) is
 * safe.
 *
 * Portable path (no DSP extension): one pixel at a time as the reference,
 * but two output channels at a time, sharing each input load, with the
 * padding test out of the innermost loop.
 */

#include "kernel_util.h"
#include "simd.h"

/* Window values (KH * KW * C_IN) up to which the DSP path's columns are on the stack. */
#define STACK_WINDOW_MAX 256

/*
 * The DSP path's columns: for each group of 4 window values (the last one
 * possibly partial) 2 words per pixel of the pair, 16 bytes; and when C_IN
 * is not a multiple of 4, the window gathered bytewise, rounded up to whole
 * groups. Defined without NN_DSP so the compiler (harness/compiler/lower.py,
 * dense_conv_scratch_bytes) computes the same size for any core.
 */
static int32_t column_bytes(int32_t size)
{
    return (size + 3) / 4 * 16;
}

/* The columns and the gather, in bytes, whether on the stack or in the buffer. */
static int32_t dsp_bytes(const nn_window *win)
{
    const int32_t size = win->kernel_h * win->kernel_w * win->input.c;
    return column_bytes(size) + (win->input.c % 4 != 0 ? (size + 3) / 4 * 4 : 0);
}

int32_t nn_conv2d_s8_get_buffer_size(const nn_conv2d_params *params)
{
    const nn_window *win = &params->window;
    if (win->kernel_h * win->kernel_w * win->input.c <= STACK_WINDOW_MAX) {
        return 0;
    }
    return dsp_bytes(win);
}

#if NN_DSP

/*
 * GCC's first instruction scheduling pass hoists the tile's loads ahead of
 * the SMLADs that consume them, needing more than Thumb-2's 14 registers:
 * the two-group loop then spills and reloads (51 instructions per 32 MACs
 * instead of 41 for the same code unscheduled). Its second pass, after
 * register allocation, still runs.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("no-schedule-insns")
#endif

/* Whether the window at (y0, x0) is undilated across and has no tap in the padding. */
static int window_inside(const nn_window *win, int32_t y0, int32_t x0)
{
    const int32_t last_y = y0 + (win->kernel_h - 1) * win->dilation_h;
    return win->dilation_w == 1 && x0 >= 0 && x0 + win->kernel_w <= win->input.w && y0 >= 0 &&
           last_y < win->input.h;
}

/*
 * The window at (y0, x0) gathered bytewise in the model's order, kernel
 * row after kernel row, taps in the padding set to the zero point, into
 * `dst`, which has room for whole words. Inside, a kernel row is
 * kernel_w * C_IN contiguous input bytes, copied a word at a time. With
 * taps in the padding the window is first the zero point, a word at a
 * time, then the taps inside are copied over: a test per tap, none per
 * byte (a 3x3x3 window with a test per byte took about 500 instructions).
 */
static void gather_window(const nn_window *win, const int8_t *input, int32_t y0, int32_t x0,
                          int32_t zero_point, int8_t *dst)
{
    const int32_t in_c = win->input.c;
    const int32_t row_bytes = win->kernel_w * in_c;
    if (window_inside(win, y0, x0)) {
        for (int32_t ky = 0; ky < win->kernel_h; ++ky, dst += row_bytes) {
            const int8_t *src = input + ((y0 + ky * win->dilation_h) * win->input.w + x0) * in_c;
            int32_t i = 0;
            for (; i + 4 <= row_bytes; i += 4) {
                nn_write_s8x4(dst + i, nn_read_s8x4(src + i));
            }
            for (; i < row_bytes; ++i) {
                dst[i] = src[i];
            }
        }
        return;
    }
    const int32_t fill = (int32_t)((uint32_t)(uint8_t)zero_point * 0x01010101u);
    for (int32_t i = 0; i < win->kernel_h * row_bytes; i += 4) {
        nn_write_s8x4(dst + i, fill);
    }
    for (int32_t ky = 0; ky < win->kernel_h; ++ky, dst += row_bytes) {
        const int32_t y = y0 + ky * win->dilation_h;
        if (y < 0 || y >= win->input.h) {
            continue;
        }
        for (int32_t kx = 0; kx < win->kernel_w; ++kx) {
            const int32_t x = x0 + kx * win->dilation_w;
            if (x >= 0 && x < win->input.w) {
                const int8_t *src = input + (y * win->input.w + x) * in_c;
                for (int32_t c = 0; c < in_c; ++c) {
                    dst[kx * in_c + c] = src[c];
                }
            }
        }
    }
}

/* A group of 4 window bytes v as SMLAD pairs them: (v0, v2) into out[0], (v1, v3) into out[1]. */
static inline void widen_group(int32_t v, int32_t *out)
{
    out[0] = nn_sxtb16(v);
    out[1] = nn_sxtb16_ror8(v);
}

/* `values` window values in the padding (a multiple of 4) into the columns: the zero point in both halves. */
static inline int32_t *pad_columns(int32_t *col, int32_t values, int32_t pad)
{
    for (int32_t c = 0; c < values; c += 4, col += 4) {
        col[0] = pad;
        col[1] = pad;
    }
    return col;
}

/*
 * The window at (y0, x0) into its half of the columns when C_IN is a
 * multiple of 4: for group g of 4 values, words 4g and 4g + 1 of `col`,
 * a tap being whole groups, widened a word at a time; `pad`: the zero
 * point in both halves. A kernel row is tested and addressed once, a tap
 * only across.
 */
static void taps_to_columns(const nn_window *win, const int8_t *input, int32_t y0, int32_t x0, int32_t pad,
                            int32_t *col)
{
    const int32_t in_c = win->input.c;
    for (int32_t ky = 0; ky < win->kernel_h; ++ky) {
        const int32_t y = y0 + ky * win->dilation_h;
        if (y < 0 || y >= win->input.h) {
            col = pad_columns(col, win->kernel_w * in_c, pad);
            continue;
        }
        const int8_t *const row = input + y * win->input.w * in_c;
        for (int32_t kx = 0, x = x0; kx < win->kernel_w; ++kx, x += win->dilation_w) {
            if (x < 0 || x >= win->input.w) {
                col = pad_columns(col, in_c, pad);
                continue;
            }
            const int8_t *const src = row + x * in_c;
            for (int32_t c = 0; c < in_c; c += 4, col += 4) {
                widen_group(nn_read_s8x4(src + c), col);
            }
        }
    }
}

/*
 * Output pixel `pixel`'s window into its half of the columns (words 4g
 * and 4g + 1 for group g). When C_IN is not a multiple of 4 (C_IN of 1 or
 * 3 in a large window, or a first layer the small path does not take)
 * the window is gathered bytewise first.
 */
static void window_to_columns(const nn_window *win, const int8_t *input, int32_t pixel,
                              int32_t zero_point, int32_t *col, int8_t *window)
{
    const int32_t y0 = (pixel / win->output.w) * win->stride_h - win->pad_top;
    const int32_t x0 = (pixel % win->output.w) * win->stride_w - win->pad_left;
    if (win->input.c % 4 == 0) {
        taps_to_columns(win, input, y0, x0, (int32_t)(((uint32_t)zero_point & 0xFFFFu) * 0x10001u), col);
        return;
    }
    /* Whole groups: a partial last group's other bytes are set (here or by the gather), never multiplied. */
    const int32_t size = win->kernel_h * win->kernel_w * win->input.c;
    if (size & 3) {
        nn_write_s8x4(window + (size & ~3), 0);
    }
    gather_window(win, input, y0, x0, zero_point, window);
    for (int32_t k = 0; k < size; k += 4, col += 4) {
        widen_group(nn_read_s8x4(window + k), col);
    }
}

/* A tile's four sums: channels a, b times the pair's pixels A, B. */
typedef struct {
    int32_t aA, aB, bA, bB;
} tile_sums;

/* One group of 4 window values into the sums: 16 MACs in 8 SMLAD. */
static inline void tile_group(const int8_t *wa, const int8_t *wb, const int32_t *col, tile_sums *s)
{
    const int32_t va = nn_read_s8x4(wa);
    const int32_t vb = nn_read_s8x4(wb);
    const int32_t a_even = nn_sxtb16(va), a_odd = nn_sxtb16_ror8(va);
    const int32_t b_even = nn_sxtb16(vb), b_odd = nn_sxtb16_ror8(vb);
    s->aA = nn_smlad(a_even, col[0], s->aA);
    s->bA = nn_smlad(b_even, col[0], s->bA);
    s->aA = nn_smlad(a_odd, col[1], s->aA);
    s->bA = nn_smlad(b_odd, col[1], s->bA);
    s->aB = nn_smlad(a_even, col[2], s->aB);
    s->bB = nn_smlad(b_even, col[2], s->bB);
    s->aB = nn_smlad(a_odd, col[3], s->aB);
    s->bB = nn_smlad(b_odd, col[3], s->bB);
}

/*
 * Bias plus the sums of weight * window for channels a, b (weight rows wa,
 * wb) and the pair's two windows in `col`, `size` values each. Two groups
 * per iteration halve the loop's own instructions (its pointer step,
 * compare and branch, and GCC's reload of the end pointer it spills).
 */
static inline tile_sums tile_2x2(const int8_t *wa, const int8_t *wb, const int32_t *col,
                                 int32_t size, int32_t bias_a, int32_t bias_b)
{
    tile_sums s = {bias_a, bias_a, bias_b, bias_b};
    const int32_t groups = size >> 2;
    const int32_t *const pairs_end = col + (groups >> 1) * 8;
    while (col != pairs_end) {
        tile_group(wa, wb, col, &s);
        tile_group(wa + 4, wb + 4, col + 4, &s);
        wa += 8;
        wb += 8;
        col += 8;
    }
    if (groups & 1) {
        tile_group(wa, wb, col, &s);
        wa += 4;
        wb += 4;
        col += 4;
    }
    /* The last size % 4 values: v0 is the bottom of word 0, v1 of word 1, v2 the top of word 0. */
    const int32_t rest = size & 3;
    if (rest != 0) {
        s.aA = nn_smlabb(wa[0], col[0], s.aA);
        s.aB = nn_smlabb(wa[0], col[2], s.aB);
        s.bA = nn_smlabb(wb[0], col[0], s.bA);
        s.bB = nn_smlabb(wb[0], col[2], s.bB);
        if (rest > 1) {
            s.aA = nn_smlabb(wa[1], col[1], s.aA);
            s.aB = nn_smlabb(wa[1], col[3], s.aB);
            s.bA = nn_smlabb(wb[1], col[1], s.bA);
            s.bB = nn_smlabb(wb[1], col[3], s.bB);
        }
        if (rest > 2) {
            s.aA = nn_smlabt(wa[2], col[0], s.aA);
            s.aB = nn_smlabt(wa[2], col[2], s.aB);
            s.bA = nn_smlabt(wb[2], col[0], s.bA);
            s.bB = nn_smlabt(wb[2], col[2], s.bB);
        }
    }
    return s;
}

/*
 * One pixel's results for channels a and b (requantized, output offset
 * added) clamped to the activation range together: saturated to int16,
 * packed into the halves of a word, then one packed max and one packed min
 * against `lo` and `hi`, the range's bounds in both halves. Saturating
 * first changes nothing, the range being within int8.
 */
static inline void clamp_store_pair(int32_t va, int32_t vb, int32_t lo, int32_t hi, int8_t *out_a,
                                    int8_t *out_b)
{
    const int32_t v = nn_smin16(nn_smax16(nn_pkhbt16(nn_ssat16bit(va), nn_ssat16bit(vb)), lo), hi);
    /* Each half is within int8: its low byte is the output (GCC converts modulo 2^8). */
    *out_a = (int8_t)v;
    *out_b = (int8_t)(v >> 16);
}

/*
 * A tile's accumulators (bias included) to int8 outputs: channels a and b
 * at pixel A's `first` and pixel B's `second` (0 for an odd last pixel).
 * When every channel shifts right by 2 or more bits (`right_shifts`, known
 * for the whole layer), the fast path is straight-line code and each
 * channel's multiplier and shift work is shared by its two pixels.
 */
static inline void requantize_tile(const tile_sums *acc, int32_t a, int32_t b, int right_shifts,
                                   const nn_requant *rq, int32_t lo, int32_t hi, int8_t *first,
                                   int8_t *second)
{
    const int32_t ma = rq->multiplier[a], mb = rq->multiplier[b];
    const int sa = rq->shift[a], sb = rq->shift[b];
    int32_t aA, aB, bA, bB;
    if (right_shifts) {
        aA = nn_requantize_right_shift(acc->aA, ma, sa);
        aB = nn_requantize_right_shift(acc->aB, ma, sa);
        bA = nn_requantize_right_shift(acc->bA, mb, sb);
        bB = nn_requantize_right_shift(acc->bB, mb, sb);
    } else {
        aA = nn_requantize(acc->aA, ma, sa);
        aB = nn_requantize(acc->aB, ma, sa);
        bA = nn_requantize(acc->bA, mb, sb);
        bB = nn_requantize(acc->bB, mb, sb);
    }
    const int32_t offset = rq->output_offset;
    clamp_store_pair(aA + offset, bA + offset, lo, hi, first + a, first + b);
    if (second != 0) {
        clamp_store_pair(aB + offset, bB + offset, lo, hi, second + a, second + b);
    }
}

/* Whether all `channels` shift right by 2 bits or more (nn_requantize_right_shift's domain). */
static int all_right_shifts(const int8_t *shift, int32_t channels)
{
    for (int32_t c = 0; c < channels; ++c) {
        if (shift[c] > -2) {
            return 0;
        }
    }
    return 1;
}

static void conv_dsp(const nn_window *win, const nn_requant *requant, const int8_t *input,
                     const int8_t *weights, const int32_t *bias, int8_t *output, int8_t *buffer)
{
    /* A local copy, so that output stores (int8_t, which may alias anything) force no reloads. */
    const nn_requant rq = *requant;
    const int32_t size = win->kernel_h * win->kernel_w * win->input.c;
    const int32_t out_c = win->output.c;
    const int32_t pixels = win->output.h * win->output.w;
    const int right_shifts = all_right_shifts(rq.shift, out_c);
    /* The activation range's bounds in both halves of a word. */
    const int32_t lo = nn_pkhbt16(rq.act_min, rq.act_min);
    const int32_t hi = nn_pkhbt16(rq.act_max, rq.act_max);
    /* Per group of 4 values: 2 words for each pixel (buffer is 4-byte aligned), then the gather. */
    int32_t *const columns = (int32_t *)(void *)buffer;
    int8_t *const gather = buffer + column_bytes(size);
    for (int32_t p = 0; p < pixels; p += 2) {
        /* An odd last pixel pairs with itself; its second copy's sums are dropped. */
        const int pair = p + 1 < pixels;
        window_to_columns(win, input, p, -rq.input_offset, columns, gather);
        window_to_columns(win, input, pair ? p + 1 : p, -rq.input_offset, columns + 2, gather);
        int8_t *out = output + p * out_c;
        int8_t *out_second = pair ? out + out_c : 0;
        for (int32_t c = 0; c < out_c; c += 2) {
            /* An odd last channel pairs with itself too, and is written twice. */
            const int32_t c2 = c + 1 < out_c ? c + 1 : c;
            const tile_sums acc =
                tile_2x2(weights + c * size, weights + c2 * size, columns, size, bias[c], bias[c2]);
            requantize_tile(&acc, c, c2, right_shifts, &rq, lo, hi, out, out_second);
        }
    }
}

/* conv_dsp with its columns and gather on the stack: windows of up to STACK_WINDOW_MAX values. */
static void conv_dsp_on_stack(const nn_window *win, const nn_requant *requant, const int8_t *input,
                              const int8_t *weights, const int32_t *bias, int8_t *output)
{
    /* Columns (16 B per group of 4 values), then the gather (4 B per group): dsp_bytes() at most. */
    int32_t stack[(STACK_WINDOW_MAX + 3) / 4 * 5];
    conv_dsp(win, requant, input, weights, bias, output, (int8_t *)(void *)stack);
}

/*
 * 1x1 convolutions over 8 input channels, stride 1 (MobileNet v1-0.25's
 * 8 -> 16 layer on its 48x48 map): 8 MACs per output, against which the
 * 2x2 tile's per-output work (about 29 instructions: its set-up, the
 * per-channel shift work, 4 requantizations and 2 packed clamps per tile)
 * cost 5.5 instructions/MAC. Here a band of SHORT_BAND pixels is widened
 * once (4 words of int16 pairs per pixel, as SXTB16 splits a word), then
 * one output channel at a time runs down the band with its 4 weight words
 * and its requantization constants in registers: per output 4 loads, 4
 * SMLAD, the 5 instructions of the requantization, SSAT and one store
 * (20 with the loop; 2.8 instructions/MAC on a 16x16 map). The offset is
 * folded into the requantization (nn_requantize_folded; a channel outside
 * the fold's range adds it after the shift, in a second copy of the loop)
 * and no clamp follows SSAT, so the layer must shift every channel right
 * by 2 bits or more and have the whole int8 range as activation range (no
 * activation, or ReLU with the output zero point at -128, as calibrated
 * models have); others take the 2x2 tile. A band reads all its input
 * before writing, and a 1x1 window is its own pixel, so writing over the
 * input (kernels.h) stays safe.
 */
#define SHORT_IN 8
#define SHORT_BAND 64

/*
 * One output channel's constants over a band: its 8 weights widened as the
 * inputs are (the 1x1 path), then its requantization: the offset folded
 * into start_high, or, for a channel outside the fold's range, in offset.
 */
typedef struct {
    int32_t w[4];
    int32_t bias, multiplier, start_high, shift_minus_1, offset;
} short_channel;

/* Channel c's requantization constants, or 0 when its shift is not 2 bits right or more. */
static int short_requant_of(const nn_requant *rq, int32_t c, short_channel *ch)
{
    nn_requant_channel t;
    if (!nn_requantize_channel_of(rq->multiplier[c], rq->shift[c], &t)) {
        return 0;
    }
    int folds;
    ch->start_high = nn_requantize_fold(&t, rq->output_offset, &folds);
    ch->offset = folds ? 0 : rq->output_offset;
    ch->multiplier = t.multiplier;
    ch->shift_minus_1 = t.shift_minus_1;
    return 1;
}

/* Whether the activation range is all of int8 and every channel shifts right by 2 bits or more. */
static int short_layer_fits(const nn_window *win, const nn_requant *rq)
{
    if (rq->act_min != -128 || rq->act_max != 127) {
        return 0;
    }
    short_channel ch;
    for (int32_t c = 0; c < win->output.c; ++c) {
        if (!short_requant_of(rq, c, &ch)) {
            return 0;
        }
    }
    return 1;
}

/* A channel's output from its sum: requantized, offset added if not folded, saturated (SSAT). */
static inline int8_t short_output(int32_t acc, const short_channel *ch)
{
    const int32_t v = nn_requantize_folded(acc, ch->multiplier, ch->start_high, ch->shift_minus_1);
    return (int8_t)nn_ssat8(v + ch->offset);
}

static int takes_short_1x1(const nn_window *win, const nn_requant *rq)
{
    return win->kernel_h == 1 && win->kernel_w == 1 && win->input.c == SHORT_IN && win->stride_h == 1 &&
           win->stride_w == 1 && win->input.h == win->output.h && win->input.w == win->output.w &&
           short_layer_fits(win, rq);
}

/* Words 0, 2 and 1, 3 of 8 bytes, each an int16 pair: the order SMLAD pairs them in. */
static inline void short_widen(const int8_t *bytes, int32_t *words)
{
    const int32_t lo = nn_read_s8x4(bytes), hi = nn_read_s8x4(bytes + 4);
    words[0] = nn_sxtb16(lo);
    words[1] = nn_sxtb16_ror8(lo);
    words[2] = nn_sxtb16(hi);
    words[3] = nn_sxtb16_ror8(hi);
}

/*
 * The outputs of one channel over a band of `pixels` widened inputs x,
 * out_c bytes apart; folded: the channel's offset is folded (ch->offset
 * 0), a constant where inlined, so that the usual loop has no ADD.
 */
NN_INLINE void short_outputs(const int32_t *x, int32_t pixels, const short_channel *ch, int folded,
                             int8_t *out, int32_t out_c)
{
    const int32_t w0 = ch->w[0], w1 = ch->w[1], w2 = ch->w[2], w3 = ch->w[3];
    const int32_t bias = ch->bias, m = ch->multiplier, start = ch->start_high, shift = ch->shift_minus_1;
    const int32_t offset = folded ? 0 : ch->offset;
    for (const int32_t *const end = x + 4 * pixels; x != end; x += 4, out += out_c) {
        int32_t acc = nn_smlad(x[0], w0, bias);
        acc = nn_smlad(x[1], w1, acc);
        acc = nn_smlad(x[2], w2, acc);
        acc = nn_smlad(x[3], w3, acc);
        *out = (int8_t)nn_ssat8(nn_requantize_folded(acc, m, start, shift) + offset);
    }
}

static void conv_short_1x1(const nn_requant *requant, int32_t pixels, int32_t out_c, const int8_t *input,
                           const int8_t *weights, const int32_t *bias, int8_t *output)
{
    const nn_requant rq = *requant; /* output bytes may alias *requant */
    int32_t x[SHORT_BAND * 4];
    for (int32_t p = 0; p < pixels; p += SHORT_BAND) {
        const int32_t band = pixels - p < SHORT_BAND ? pixels - p : SHORT_BAND;
        for (int32_t k = 0; k < band; ++k) {
            short_widen(input + (p + k) * SHORT_IN, x + 4 * k);
        }
        for (int32_t c = 0; c < out_c; ++c) {
            short_channel ch;
            short_requant_of(&rq, c, &ch); /* takes_short_1x1 checked that it can */
            short_widen(weights + c * SHORT_IN, ch.w);
            ch.bias = bias[c];
            if (ch.offset == 0) {
                short_outputs(x, band, &ch, 1, output + p * out_c + c, out_c);
            } else {
                short_outputs(x, band, &ch, 0, output + p * out_c + c, out_c);
            }
        }
    }
}

/*
 * Windows of up to SMALL_GROUPS groups of 4 values (first layers: 3x3x3
 * is 27, 7 groups), with the same conditions on the requantization and
 * activation as the 1x1 path: the 2x2 tile spends about 29 instructions
 * per output outside its MACs, more than the 27 MACs of a 3x3x3 window
 * cost. Here the columns of a band of SMALL_BAND pixel pairs are built
 * once (as conv_dsp's, but in rows_to_groups' order of the window's
 * values, weights likewise), then one output channel at a time
 * runs down the band with its widened weights on the stack and its
 * requantization constants in registers: per pair and group 3 LDRD and 4
 * SMLAD; per pair 2 requantizations, SSAT and stores. A band reads
 * all its windows before writing, and later bands read only windows of
 * later pixels, so writing over the input (kernels.h) stays safe.
 */
#define SMALL_GROUPS 8
#define SMALL_BAND 16

static int takes_small_window(const nn_window *win, const nn_requant *rq)
{
    return win->kernel_h * win->kernel_w * win->input.c <= 4 * SMALL_GROUPS && short_layer_fits(win, rq);
}

#if defined(__ARM_FEATURE_DSP)
/* One group of small_sums' loop: 3 LDRD, 4 SMLAD. */
#define SMALL_GROUP_ASM \
    "ldrd %[c0], %[c1], [%[col]], #8\n\t" \
    "ldrd %[c2], %[c3], [%[col]], #8\n\t" \
    "ldrd %[w0], %[w1], [%[w]], #8\n\t" \
    "smlad %[a], %[c0], %[w0], %[a]\n\t" \
    "smlad %[a], %[c1], %[w1], %[a]\n\t" \
    "smlad %[b], %[c2], %[w0], %[b]\n\t" \
    "smlad %[b], %[c3], %[w1], %[b]\n\t"
#endif

/*
 * A pair's sums, a and b, over `groups` groups (at least 1) of its columns
 * col and the channel's widened weights w; returns the next pair's columns.
 */
static inline const int32_t *small_sums(const int32_t *col, const int32_t *w, int32_t groups, int32_t *a,
                                        int32_t *b)
{
#if defined(__ARM_FEATURE_DSP)
    /*
     * GCC loads the words one by one and steps three pointers: 14
     * instructions per group where this loop takes 8 (two groups per turn,
     * an odd count entering at the second, as line_x4 in
     * depthwise_conv2d_s8.c). Host builds take the C loop, which computes
     * the same; the board runs check this one against TFLite Micro.
     */
    int32_t sa = *a, sb = *b, n = groups, c0, c1, c2, c3, w0, w1;
    __asm__("lsrs %[n], %[n], #1\n\t"
            "bcc 1f\n\t"
            "adds %[n], %[n], #1\n\t"
            "b 2f\n\t"
            "1:\n\t"
            SMALL_GROUP_ASM
            "2:\n\t"
            SMALL_GROUP_ASM
            "subs %[n], %[n], #1\n\t"
            "bne 1b"
            : [a] "+r"(sa), [b] "+r"(sb), [col] "+r"(col), [w] "+r"(w), [n] "+r"(n), [c0] "=&r"(c0),
              [c1] "=&r"(c1), [c2] "=&r"(c2), [c3] "=&r"(c3), [w0] "=&r"(w0), [w1] "=&r"(w1)
            :
            : "cc", "memory");
    *a = sa;
    *b = sb;
#else
    for (int32_t g = 0; g < groups; ++g, col += 4, w += 2) {
        *a = nn_smlad(col[0], w[0], *a);
        *a = nn_smlad(col[1], w[1], *a);
        *b = nn_smlad(col[2], w[0], *b);
        *b = nn_smlad(col[3], w[1], *b);
    }
#endif
    return col;
}

/*
 * small_sums over 3 groups (windows of 9 to 12 values: 3x3 over one
 * channel), straight-line: the loop's entry at its second group and its
 * counting took 8 instructions beside the 3 groups' 21.
 */
static inline const int32_t *small_sums3(const int32_t *col, const int32_t *w, int32_t *a, int32_t *b)
{
#if defined(__ARM_FEATURE_DSP)
    int32_t sa = *a, sb = *b, c0, c1, c2, c3, w0, w1;
    __asm__(SMALL_GROUP_ASM SMALL_GROUP_ASM SMALL_GROUP_ASM
            : [a] "+r"(sa), [b] "+r"(sb), [col] "+r"(col), [w] "+r"(w), [c0] "=&r"(c0), [c1] "=&r"(c1),
              [c2] "=&r"(c2), [c3] "=&r"(c3), [w0] "=&r"(w0), [w1] "=&r"(w1)
            :
            : "memory");
    *a = sa;
    *b = sb;
    return col;
#else
    return small_sums(col, w, 3, a, b);
#endif
}

/*
 * Channel c's sums over the band's pairs and their outputs; wt: its
 * weights widened, 2 words per group. Inlined, with `three` a constant
 * where called, so that no copy tests the group count per pair.
 */
NN_INLINE void small_outputs(const int32_t *col, int32_t pairs, int32_t groups, const int32_t *wt,
                             const short_channel *ch, int8_t *out, int32_t out_c, int odd_last, int three)
{
    for (int32_t k = 0; k < pairs; ++k, out += 2 * out_c) {
        int32_t a = ch->bias, b = ch->bias;
        col = three ? small_sums3(col, wt, &a, &b) : small_sums(col, wt, groups, &a, &b);
        out[0] = short_output(a, ch);
        if (k + 1 < pairs || !odd_last) {
            out[out_c] = short_output(b, ch);
        }
    }
}

/*
 * The small path's order of a window's values, the same for its columns
 * and its weights: each kernel row's whole words in turn, widened straight
 * from where the row lies, and the rows' last row_bytes % 4 bytes packed
 * into shared groups as they come (a 3x3x3 window: 2 words per row, then
 * one group of the rows' last bytes and a zero). That is ceil(size / 4)
 * groups, as many as the model's order takes, but an interior window is
 * read a word at a time from the input, with no gather and no test per
 * tap. `rows` rows of row_bytes bytes, `row_stride` apart; each group
 * into 2 words of `out`, groups `step` words apart.
 */
static void rows_to_groups_any(const int8_t *row, int32_t row_stride, int32_t rows, int32_t row_bytes,
                               int32_t *out, int32_t step)
{
    const int32_t words = row_bytes >> 2;
    uint32_t tail = 0;
    int32_t bits = 0;
    for (int32_t r = 0; r < rows; ++r, row += row_stride) {
        const int8_t *src = row;
        for (const int8_t *const end = row + 4 * words; src != end; src += 4, out += step) {
            widen_group(nn_read_s8x4(src), out);
        }
        for (const int8_t *const end = row + row_bytes; src != end; ++src) {
            tail |= (uint32_t)(uint8_t)*src << bits;
            bits += 8;
            if (bits == 32) {
                widen_group((int32_t)tail, out);
                out += step;
                tail = 0;
                bits = 0;
            }
        }
    }
    /* A partial last group's other bytes are zero: in the weights, so the columns' never count. */
    if (bits != 0) {
        widen_group((int32_t)tail, out);
    }
}

/*
 * rows_to_groups_any's order for 3 rows of 9 bytes (3x3 windows over 3
 * channels: the first layers of MobileNet, ResNet-8, VWW), straight-line:
 * 6 LDR, 3 LDRB and 2 ORR for the last bytes, 14 SXTB16, 14 STR, 42
 * instructions with the row addresses, where rows_to_groups_any's loops
 * take about 125.
 */
static inline void rows9_to_groups(const int8_t *row, int32_t row_stride, int32_t *out, int32_t step)
{
    const int8_t *const mid = row + row_stride, *const low = mid + row_stride;
    widen_group(nn_read_s8x4(row), out);
    widen_group(nn_read_s8x4(row + 4), out + step);
    widen_group(nn_read_s8x4(mid), out + 2 * step);
    widen_group(nn_read_s8x4(mid + 4), out + 3 * step);
    widen_group(nn_read_s8x4(low), out + 4 * step);
    widen_group(nn_read_s8x4(low + 4), out + 5 * step);
    const uint32_t tail =
        (uint32_t)(uint8_t)row[8] | (uint32_t)(uint8_t)mid[8] << 8 | (uint32_t)(uint8_t)low[8] << 16;
    widen_group((int32_t)tail, out + 6 * step);
}

/*
 * rows_to_groups_any's order for 3 rows of 3 bytes (3x3 windows over one
 * channel: the digits CNN's first layer), straight-line: 3 LDR and the
 * bytes shifted into place, about 20 instructions where
 * rows_to_groups_any's bytewise loop takes about 110. Each word read
 * stays within the window's first and last bytes: the top and middle
 * rows' words from their first byte, the bottom row's from the byte
 * before it.
 */
static inline void rows3_to_groups(const int8_t *row, int32_t row_stride, int32_t *out, int32_t step)
{
    const int8_t *const mid = row + row_stride, *const low = mid + row_stride;
    const uint32_t top_word = (uint32_t)nn_read_s8x4(row);
    const uint32_t mid_word = (uint32_t)nn_read_s8x4(mid);
    const uint32_t low_word = (uint32_t)nn_read_s8x4(low - 1);
    widen_group((int32_t)((top_word & 0xFFFFFFu) | mid_word << 24), out);
    widen_group((int32_t)((mid_word >> 8 & 0xFFFFu) | (low_word << 8 & 0xFFFF0000u)), out + step);
    widen_group((int32_t)(low_word >> 24), out + 2 * step);
}

static inline void rows_to_groups(const int8_t *row, int32_t row_stride, int32_t rows, int32_t row_bytes,
                                  int32_t *out, int32_t step)
{
    if (rows == 3 && row_bytes == 9) {
        rows9_to_groups(row, row_stride, out, step);
    } else if (rows == 3 && row_bytes == 3) {
        rows3_to_groups(row, row_stride, out, step);
    } else {
        rows_to_groups_any(row, row_stride, rows, row_bytes, out, step);
    }
}

/*
 * The window whose origin is (y0, x0) into its half of a pair's columns,
 * in rows_to_groups' order. A window with a tap in the padding or
 * dilated across is gathered first (gather: room for the window).
 */
static void small_window(const nn_window *win, const int8_t *input, int32_t y0, int32_t x0,
                         int32_t zero_point, int32_t *col, int8_t *gather)
{
    const int32_t row_bytes = win->kernel_w * win->input.c;
    const int8_t *rows = gather;
    int32_t row_stride = row_bytes;
    if (window_inside(win, y0, x0)) {
        const int32_t image_row = win->input.w * win->input.c;
        rows = input + y0 * image_row + x0 * win->input.c;
        row_stride = win->dilation_h * image_row;
    } else {
        gather_window(win, input, y0, x0, zero_point, gather);
    }
    rows_to_groups(rows, row_stride, win->kernel_h, row_bytes, col, 4);
}

/*
 * The columns of `count` output pixels from `first` on, in pairs (groups
 * of 4 values each); an odd last pixel pairs with itself. The origin
 * steps along the output row, with no division per pixel.
 */
static void band_columns(const nn_window *win, const int8_t *input, int32_t first, int32_t count,
                         int32_t zero_point, int32_t groups, int32_t *columns, int8_t *gather)
{
    int32_t out_x = first % win->output.w;
    int32_t y0 = (first / win->output.w) * win->stride_h - win->pad_top;
    int32_t x0 = out_x * win->stride_w - win->pad_left;
    for (int32_t k = 0; k < count + (count & 1); ++k) {
        small_window(win, input, y0, x0, zero_point, columns + 4 * groups * (k >> 1) + 2 * (k & 1), gather);
        if (k + 1 == count) {
            continue; /* the odd last pixel's second copy, same origin */
        }
        x0 += win->stride_w;
        if (++out_x == win->output.w) {
            out_x = 0;
            x0 = -win->pad_left;
            y0 += win->stride_h;
        }
    }
}

static void conv_small_window(const nn_window *win, const nn_requant *requant, const int8_t *input,
                              const int8_t *weights, const int32_t *bias, int8_t *output)
{
    const nn_requant rq = *requant; /* output bytes may alias *requant */
    const int32_t size = win->kernel_h * win->kernel_w * win->input.c, groups = (size + 3) / 4;
    const int32_t row_bytes = win->kernel_w * win->input.c;
    const int32_t out_c = win->output.c, pixels = win->output.h * win->output.w;
    int32_t columns[SMALL_BAND * SMALL_GROUPS * 4];
    int8_t gather[SMALL_GROUPS * 4];
    int32_t wt[SMALL_GROUPS * 2];
    for (int32_t p = 0; p < pixels; p += 2 * SMALL_BAND) {
        const int32_t band = pixels - p < 2 * SMALL_BAND ? pixels - p : 2 * SMALL_BAND;
        band_columns(win, input, p, band, -rq.input_offset, groups, columns, gather);
        for (int32_t c = 0; c < out_c; ++c) {
            short_channel ch;
            short_requant_of(&rq, c, &ch); /* takes_small_window checked that it can */
            ch.bias = bias[c];
            /* The weights in the columns' order, 2 words per group, past `size` zero. */
            rows_to_groups(weights + c * size, row_bytes, win->kernel_h, row_bytes, wt, 2);
            int8_t *const out = output + p * out_c + c;
            if (groups == 3) {
                small_outputs(columns, (band + 1) / 2, groups, wt, &ch, out, out_c, band & 1, 1);
            } else {
                small_outputs(columns, (band + 1) / 2, groups, wt, &ch, out, out_c, band & 1, 0);
            }
        }
    }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif /* NN_DSP */

/*
 * Two output channels' sums over one pixel's window: each input byte is
 * loaded once for both. Taps in the padding multiply the input zero point.
 */
static void window_dot_2(const nn_window *win, const int8_t *input, int32_t y0, int32_t x0,
                         const int8_t *w0, const int8_t *w1, int32_t padding, int32_t sums[2])
{
    const int32_t in_c = win->input.c;
    int32_t s0 = 0, s1 = 0;
    for (int32_t ky = 0; ky < win->kernel_h; ++ky) {
        const int32_t y = y0 + ky * win->dilation_h;
        const int row_inside = y >= 0 && y < win->input.h;
        for (int32_t kx = 0; kx < win->kernel_w; ++kx, w0 += in_c, w1 += in_c) {
            const int32_t x = x0 + kx * win->dilation_w;
            if (row_inside && x >= 0 && x < win->input.w) {
                const int8_t *pixel = input + (y * win->input.w + x) * in_c;
                for (int32_t c = 0; c < in_c; ++c) {
                    const int32_t v = pixel[c];
                    s0 += w0[c] * v;
                    s1 += w1[c] * v;
                }
            } else {
                for (int32_t c = 0; c < in_c; ++c) {
                    s0 += w0[c] * padding;
                    s1 += w1[c] * padding;
                }
            }
        }
    }
    sums[0] = s0;
    sums[1] = s1;
}

/* The portable path: one pixel at a time, in raster order, two output channels at a time. */
static void conv_portable(const nn_window *win, const nn_requant *requant, const int8_t *input,
                          const int8_t *weights, const int32_t *bias, int8_t *output)
{
    const nn_requant rq = *requant; /* see conv_dsp */
    const int32_t filter_size = win->kernel_h * win->kernel_w * win->input.c;
    const int32_t out_c = win->output.c;
    for (int32_t out_y = 0; out_y < win->output.h; ++out_y) {
        const int32_t y0 = out_y * win->stride_h - win->pad_top;
        for (int32_t out_x = 0; out_x < win->output.w; ++out_x) {
            const int32_t x0 = out_x * win->stride_w - win->pad_left;
            for (int32_t c = 0; c < out_c; c += 2) {
                /* An odd last channel pairs with itself and is written twice. */
                const int32_t c2 = c + 1 < out_c ? c + 1 : c;
                int32_t sums[2];
                window_dot_2(win, input, y0, x0, weights + c * filter_size,
                             weights + c2 * filter_size, -rq.input_offset, sums);
                const int8_t first = nn_requantize_channel(sums[0], bias, c, &rq);
                const int8_t second = nn_requantize_channel(sums[1], bias, c2, &rq);
                output[c] = first;
                output[c2] = second;
            }
            output += out_c;
        }
    }
}

nn_status nn_conv2d_s8(const nn_conv2d_params *params, const int8_t *input, const int8_t *weights,
                       const int32_t *bias, int8_t *output, int8_t *buffer)
{
    const nn_window *win = &params->window;
    if (!nn_window_is_valid(win)) {
        return NN_ERROR_ARGUMENT;
    }
#if NN_DSP
    if (takes_short_1x1(win, &params->requant)) {
        conv_short_1x1(&params->requant, win->output.h * win->output.w, win->output.c, input, weights,
                       bias, output);
        return NN_OK;
    }
    if (takes_small_window(win, &params->requant)) {
        conv_small_window(win, &params->requant, input, weights, bias, output);
        return NN_OK;
    }
    if (buffer != 0) {
        conv_dsp(win, &params->requant, input, weights, bias, output, buffer);
        return NN_OK;
    }
    if (win->kernel_h * win->kernel_w * win->input.c <= STACK_WINDOW_MAX) {
        conv_dsp_on_stack(win, &params->requant, input, weights, bias, output);
        return NN_OK;
    }
#else
    (void)buffer; /* the portable path needs none */
#endif
    conv_portable(win, &params->requant, input, weights, bias, output);
    return NN_OK;
}
