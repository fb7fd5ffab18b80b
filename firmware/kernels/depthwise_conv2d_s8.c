/*
 * DEPTHWISE_CONV_2D, int8, dense weights (layout in kernels.h: groups of 4
 * output channels, each tap's 4 weights as int16 pairs (0, 2) and (1, 3)).
 *
 * Output pixels in raster order; in each pixel, groups of 4 output channels
 * accumulate in registers over the window's taps, then requantize together
 * (depthwise_util.h).
 * - Depth multiplier 1, a full group: one word load reads the 4 input
 *   channels of a tap. On cores with the DSP extension (NN_DSP, simd.h)
 *   SXTB16 widens them into the same (0, 2), (1, 3) pairs as the weights,
 *   which one LDRD loads already widened, and SMLABB / SMLATT multiply each
 *   channel by its weight: 8 instructions per 4 multiply-accumulates.
 *   Elsewhere the bytes and halves are extracted one by one.
 *   A 3x3 window, the common case, has its 9 taps unrolled; inside the
 *   image its loop tests nothing, at the border it tests one bit per tap
 *   and multiplies the zero point for taps in the padding (what padding
 *   reads, see kernels.h). Other windows test rows and columns of taps.
 * - Otherwise (a depth multiplier above 1, or the last group of a channel
 *   count that is not a multiple of 4) each lane reads its own input
 *   channel, one byte at a time.
 */
#include "depthwise_util.h"

/*
 * GCC's first scheduling pass hoists the output stage's 12 table loads
 * ahead of the multiplies that use them and spills: 10 more instructions
 * per group of 4 channels. Its second pass, after register allocation,
 * still runs.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-schedule-insns")
#endif

/* What every pixel of one call shares, copied from the parameters: output bytes may alias them. */
typedef struct {
    nn_dw_output out;
    const int32_t *weights;    /* packed as in kernels.h */
    int32_t kernel_h, kernel_w;
    int32_t row_step;          /* input bytes from kernel row to row: dilation_h * W * C_IN */
    int32_t col_step;          /* and from column to column: dilation_w * C_IN */
    /* A window inside the image as lines of taps: kernel_h rows of kernel_w, or one column. */
    int32_t lines, line_taps, line_step, tap_step;
    int32_t channels;          /* C_OUT */
    int32_t depth_multiplier;
    int32_t padding;           /* the input zero point, what a tap in the padding reads */
} dw_layer;

/* Which taps of a window lie inside the image: rows [ky0, ky1), columns [kx0, kx1). */
typedef struct {
    int32_t ky0, ky1, kx0, kx1;
} dw_inside;

/* Where a run of output pixels starts and how it steps: rows x cols pixels, input offsets of their windows. */
typedef struct {
    int32_t corner, rows, cols, row_step, col_step;
} dw_run;

static inline int tap_inside(const dw_inside *in, int32_t ky, int32_t kx)
{
    return ky >= in->ky0 && ky < in->ky1 && kx >= in->kx0 && kx < in->kx1;
}

/* Weight of output channel lane (0..3) in one tap's pair of words. */
static inline int32_t lane_weight(const int32_t *pair, int32_t lane)
{
    const int32_t word = pair[lane & 1];
    return lane & 2 ? word >> 16 : (int16_t)word;
}

/*
 * acc += the 4 input channels in x (bytes, channel 0 lowest) times a tap's
 * packed weights w[0], w[1]; and acc += the zero point (prepared by
 * padding_x4) times the weights, for a tap in the padding.
 */
#if NN_DSP
static inline nn_acc4 mac_x4_widened(nn_acc4 acc, int32_t x02, int32_t x13, const int32_t *w)
{
    acc.a0 = nn_smlabb(x02, w[0], acc.a0);
    acc.a2 = nn_smlatt(x02, w[0], acc.a2);
    acc.a1 = nn_smlabb(x13, w[1], acc.a1);
    acc.a3 = nn_smlatt(x13, w[1], acc.a3);
    return acc;
}

static inline nn_acc4 mac_x4(nn_acc4 acc, int32_t x, const int32_t *w)
{
    return mac_x4_widened(acc, nn_sxtb16(x), nn_sxtb16_ror8(x), w);
}

/* The zero point in both halves, as SXTB16 would widen it. */
static inline int32_t padding_x4(int32_t zero_point)
{
    return nn_sxtb16((int32_t)(0x00010001u * (uint8_t)zero_point));
}

static inline nn_acc4 mac_padding_x4(nn_acc4 acc, int32_t padding, const int32_t *w)
{
    return mac_x4_widened(acc, padding, padding, w);
}
#else
/* Byte lane of a little-endian word, sign-extended (SXTB with a rotation on Armv7-M). */
static inline int32_t byte_lane(uint32_t x, int shift)
{
    return (int8_t)(uint8_t)(x >> shift);
}

static inline nn_acc4 mac_x4(nn_acc4 acc, int32_t x, const int32_t *w)
{
    acc.a0 += byte_lane((uint32_t)x, 0) * lane_weight(w, 0);
    acc.a1 += byte_lane((uint32_t)x, 8) * lane_weight(w, 1);
    acc.a2 += byte_lane((uint32_t)x, 16) * lane_weight(w, 2);
    acc.a3 += byte_lane((uint32_t)x, 24) * lane_weight(w, 3);
    return acc;
}

static inline int32_t padding_x4(int32_t zero_point)
{
    return zero_point;
}

static inline nn_acc4 mac_padding_x4(nn_acc4 acc, int32_t padding, const int32_t *w)
{
    acc.a0 += padding * lane_weight(w, 0);
    acc.a1 += padding * lane_weight(w, 1);
    acc.a2 += padding * lane_weight(w, 2);
    acc.a3 += padding * lane_weight(w, 3);
    return acc;
}
#endif

/* acc += one tap: 4 input channels at input + offset, or the zero point for a padding tap. */
static inline nn_acc4 tap_x4(nn_acc4 acc, const int8_t *input, int32_t offset, uint32_t inside,
                             int32_t padding, const int32_t *w)
{
    if (inside) {
        return mac_x4(acc, nn_read_s8x4(input + offset), w);
    }
    return mac_padding_x4(acc, padding, w);
}

/*
 * All output channels of a pixel with a 3x3 window, depth multiplier 1,
 * C_OUT a multiple of 4: the hot loop of the usual layers. Bit ky * 3 + kx
 * of inside says whether that tap lies in the image; the interior passes
 * the constant 0x1FF, so that its copy of the loop tests nothing.
 */
NN_INLINE void pixel_3x3(const dw_layer *params, const int8_t *input, int32_t corner,
                            uint32_t inside, int8_t *output)
{
    const dw_layer layer = *params; /* a local copy: its fields can live in registers */
    const int32_t padding = padding_x4(layer.padding);
    const int32_t *w = layer.weights;
    for (int32_t c = 0; c < layer.channels; c += 4) {
        nn_acc4 acc = nn_dw_bias_x4(&layer.out, c);
        int32_t offset = corner + c;
        uint32_t taps = inside;
#pragma GCC unroll 3
        for (int32_t ky = 0; ky < 3; ++ky) {
            acc = tap_x4(acc, input, offset, taps & 1, padding, w);
            acc = tap_x4(acc, input, offset + layer.col_step, taps & 2, padding, w + 2);
            acc = tap_x4(acc, input, offset + 2 * layer.col_step, taps & 4, padding, w + 4);
            offset += layer.row_step;
            taps >>= 3;
            w += 6;
        }
        nn_dw_store_x4(&layer.out, acc, c, output);
    }
}

/*
 * The two copies of pixel_3x3, out of line: each gets its own register
 * allocation, where inlined into the kernel beside the other paths it
 * spilled more (a 3x3 layer of 8 channels: 6.9 -> 6.6 instructions/MAC).
 * The interior one takes a run of pixels (a row's interior), which saves
 * each pixel its window bounds, dispatch and call.
 */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void run_3x3_inside(const dw_layer *layer, const int8_t *input, const dw_run *run, int8_t *output)
{
    for (int32_t y = 0, row = run->corner; y < run->rows; ++y, row += run->row_step) {
        for (int32_t x = 0, corner = row; x < run->cols; ++x, corner += run->col_step) {
            pixel_3x3(layer, input, corner, 0x1FFu, output);
            output += layer->channels;
        }
    }
}

#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void pixel_3x3_border(const dw_layer *layer, const int8_t *input, int32_t corner,
                             uint32_t inside, int8_t *output)
{
    pixel_3x3(layer, input, corner, inside, output);
}

/* One group of 4 output channels, depth multiplier 1, any window. */
static nn_acc4 group_x4(const dw_layer *layer, const int8_t *input, int32_t corner, int32_t c,
                        const dw_inside *inside)
{
    const int32_t padding = padding_x4(layer->padding);
    const int32_t kernel_w = layer->kernel_w;
    const int32_t *w = layer->weights + (c / 4) * layer->kernel_h * kernel_w * 2;
    nn_acc4 acc = nn_dw_bias_x4(&layer->out, c);
    for (int32_t ky = 0; ky < layer->kernel_h; ++ky) {
        const int row_inside = ky >= inside->ky0 && ky < inside->ky1;
        const int32_t kx0 = row_inside ? inside->kx0 : kernel_w;
        const int32_t kx1 = row_inside ? inside->kx1 : kernel_w;
        int32_t kx = 0;
        for (; kx < kx0; ++kx, w += 2) {
            acc = mac_padding_x4(acc, padding, w);
        }
        int32_t offset = corner + c + ky * layer->row_step + kx * layer->col_step;
        for (; kx < kx1; ++kx, w += 2, offset += layer->col_step) {
            acc = mac_x4(acc, nn_read_s8x4(input + offset), w);
        }
        for (; kx < kernel_w; ++kx, w += 2) {
            acc = mac_padding_x4(acc, padding, w);
        }
    }
    return acc;
}

/*
 * Output channels [c, c + lanes), lanes <= 4, one input byte per lane and
 * tap: any depth multiplier, any window.
 */
static void group_lanes(const dw_layer *layer, const int8_t *input, int32_t corner, int32_t c,
                        int32_t lanes, const dw_inside *inside, int8_t *output)
{
    const int32_t *w = layer->weights + (c / 4) * layer->kernel_h * layer->kernel_w * 2;
    int32_t channel[4], acc[4];
    for (int32_t lane = 0; lane < lanes; ++lane) {
        channel[lane] = (c + lane) / layer->depth_multiplier;
        acc[lane] = layer->out.bias[c + lane];
    }
    for (int32_t ky = 0; ky < layer->kernel_h; ++ky) {
        for (int32_t kx = 0; kx < layer->kernel_w; ++kx) {
            const int32_t offset = corner + ky * layer->row_step + kx * layer->col_step;
            const int read = tap_inside(inside, ky, kx);
            for (int32_t lane = 0; lane < lanes; ++lane) {
                const int32_t x = read ? input[offset + channel[lane]] : layer->padding;
                acc[lane] += lane_weight(w, lane) * x;
            }
            w += 2;
        }
    }
    for (int32_t lane = 0; lane < lanes; ++lane) {
        output[c + lane] = nn_dw_requantize(&layer->out, acc[lane], c + lane);
    }
}

#if defined(__ARM_FEATURE_DSP)
/* One tap of line_x4's assembly loop: 9 instructions. */
#define DW_TAP_ASM \
    "ldr %[x], [%[tap]]\n\t" \
    "add %[tap], %[tap], %[step]\n\t" \
    "ldrd %[w0], %[w1], [%[w]], #8\n\t" \
    "sxtb16 %[x13], %[x], ror #8\n\t" \
    "sxtb16 %[x], %[x]\n\t" \
    "smlabb %[a0], %[x], %[w0], %[a0]\n\t" \
    "smlatt %[a2], %[x], %[w0], %[a2]\n\t" \
    "smlabb %[a1], %[x13], %[w1], %[a1]\n\t" \
    "smlatt %[a3], %[x13], %[w1], %[a3]\n\t"
#endif

/* acc += one line of taps, words / 2 of them (at least 1), tap_step input bytes apart. */
static inline nn_acc4 line_x4(nn_acc4 acc, const int8_t *tap, const int32_t *w, int32_t words,
                              int32_t tap_step)
{
#if defined(__ARM_FEATURE_DSP)
    /*
     * GCC steps the pointers with separate ADDs, loads the weight pair as 2
     * LDR and moves the accumulators around the loop's entry: 11 to 13
     * instructions per tap where this loop takes 10 (per pair: 2 x (LDR,
     * ADD, LDRD post-indexed, 2 SXTB16, 4 SMLAxy), SUBS, BNE). An odd count
     * enters at the pair's second tap. Host builds take the C loop below,
     * which computes the same sums; the board runs check this one against
     * TFLite Micro.
     */
    int32_t pairs = words >> 1, x, x13, w0, w1;
    __asm__("lsrs %[pairs], %[pairs], #1\n\t"
            "bcc 1f\n\t"
            "adds %[pairs], %[pairs], #1\n\t"
            "b 2f\n\t"
            "1:\n\t"
            DW_TAP_ASM
            "2:\n\t"
            DW_TAP_ASM
            "subs %[pairs], %[pairs], #1\n\t"
            "bne 1b"
            : [a0] "+r"(acc.a0), [a1] "+r"(acc.a1), [a2] "+r"(acc.a2), [a3] "+r"(acc.a3),
              [tap] "+r"(tap), [w] "+r"(w), [pairs] "+r"(pairs), [x] "=&r"(x), [x13] "=&r"(x13),
              [w0] "=&r"(w0), [w1] "=&r"(w1)
            : [step] "r"(tap_step)
            : "cc", "memory");
#else
    if (words & 2) {
        acc = mac_x4(acc, nn_read_s8x4(tap), w);
        tap += tap_step;
        w += 2;
    }
    const int32_t *const end = w + (words & ~2);
    for (; w != end; w += 4, tap += 2 * tap_step) {
        acc = mac_x4(acc, nn_read_s8x4(tap), w);
        acc = mac_x4(acc, nn_read_s8x4(tap + tap_step), w + 2);
    }
#endif
    return acc;
}

/*
 * Channels whose sums run_inside keeps on the stack between its two
 * passes (256 B).
 */
#define DW_SUMS 64

/*
 * The sums of output channels [c, end), a multiple of 4, into sums[0..]:
 * lines lines of taps from input at first. Returns the weights that follow.
 */
NN_INLINE const int32_t *window_sums(const dw_layer *layer, const int8_t *first, const int32_t *w,
                                     int32_t c, int32_t end, int32_t lines, int32_t *sums)
{
    const int32_t line_step = layer->line_step, tap_step = layer->tap_step;
    const int32_t line_words = 2 * layer->line_taps;
    const int32_t *const bias = layer->out.bias;
    for (; c < end; c += 4, sums += 4) {
        nn_acc4 acc = {bias[c], bias[c + 1], bias[c + 2], bias[c + 3]};
        const int8_t *line = first + c;
        for (int32_t l = 0; l < lines; ++l, line += line_step, w += line_words) {
            acc = line_x4(acc, line, w, line_words, tap_step);
        }
        sums[0] = acc.a0;
        sums[1] = acc.a1;
        sums[2] = acc.a2;
        sums[3] = acc.a3;
    }
    return w;
}

/*
 * All output channels of a run of pixels whose windows lie inside the
 * image (one pixel, or the whole layer when no window reaches the
 * padding), depth multiplier 1, any window but 3x3. A window one tap wide
 * (k x 1, the time axis of streaming models on [T, 1, C] maps) is one line
 * of kernel_h taps down the column rather than kernel_h lines of one tap,
 * whose loop and padding tests cost more than the tap; one line has its
 * own copy of the loop, without the loop over lines.
 * Two passes over each span of DW_SUMS channels: the sums, then the output
 * stage. In one loop the taps' 13 live registers and the output stage's
 * pointers (input, weights, bias, table, output) do not fit in Thumb-2's
 * 14, and GCC spilled and reloaded about 40 instructions per group of 4
 * channels, which at 3 taps (12 MACs) cost more than the multiplies. Out of
 * line for the same reason: inlined into the kernel, GCC allocates its
 * registers with the 3x3 path's in mind. A whole layer in one run saves
 * each pixel the window bounds, the dispatch and this call (about 110
 * instructions: 0.9/MAC on a 3x1 layer of 40 channels).
 */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void run_inside(const dw_layer *layer, const int8_t *input, const dw_run *run, int8_t *output)
{
    const int32_t groups_end = layer->channels & ~3;
    int32_t sums[DW_SUMS];
    for (int32_t y = 0, row = run->corner; y < run->rows; ++y, row += run->row_step) {
        for (int32_t x = 0, corner = row; x < run->cols; ++x, corner += run->col_step) {
            const int32_t *w = layer->weights;
            for (int32_t span = 0; span < groups_end; span += DW_SUMS) {
                const int32_t span_end = groups_end - span < DW_SUMS ? groups_end : span + DW_SUMS;
                if (layer->lines == 1) {
                    w = window_sums(layer, input + corner, w, span, span_end, 1, sums);
                } else {
                    w = window_sums(layer, input + corner, w, span, span_end, layer->lines, sums);
                }
                nn_dw_store_sums(&layer->out, sums, span, span_end, output);
            }
            if (groups_end < layer->channels) {
                const dw_inside all = {0, layer->kernel_h, 0, layer->kernel_w};
                group_lanes(layer, input, corner, groups_end, layer->channels - groups_end, &all,
                            output);
            }
            output += layer->channels;
        }
    }
}

/* Whether the layer's pixels take pixel_3x3 (with depth multiplier 1). */
static int takes_3x3(const dw_layer *layer)
{
    return layer->kernel_h == 3 && layer->kernel_w == 3 && layer->channels % 4 == 0;
}

/* Whether the windows of one axis's first and last output pixels lie inside [0, size). */
static int axis_inside(int32_t pad, int32_t outputs, int32_t stride, int32_t kernel, int32_t dilation,
                       int32_t size)
{
    return pad <= 0 && (outputs - 1) * stride - pad + (kernel - 1) * dilation < size;
}

/* All output channels of one pixel; corner is the input offset of its window's first tap. */
static void pixel(const dw_layer *layer, const int8_t *input, int32_t corner,
                  const dw_inside *inside, int8_t *output)
{
    const int32_t out_c = layer->channels;
    int32_t c = 0;
    if (layer->depth_multiplier == 1) {
        if (takes_3x3(layer)) {
            const uint32_t row = (1u << inside->kx1) - (1u << inside->kx0); /* columns inside */
            uint32_t taps = 0;
            for (int32_t ky = inside->ky0; ky < inside->ky1; ++ky) {
                taps |= row << (3 * ky);
            }
            if (taps == 0x1FFu) {
                const dw_run one = {corner, 1, 1, 0, 0};
                run_3x3_inside(layer, input, &one, output);
            } else {
                pixel_3x3_border(layer, input, corner, taps, output);
            }
            return;
        }
        if (inside->ky0 == 0 && inside->ky1 == layer->kernel_h && inside->kx0 == 0 &&
            inside->kx1 == layer->kernel_w) {
            const dw_run one = {corner, 1, 1, 0, 0};
            run_inside(layer, input, &one, output);
            return;
        }
        for (; c + 4 <= out_c; c += 4) {
            nn_dw_store_x4(&layer->out, group_x4(layer, input, corner, c, inside), c, output);
        }
    }
    for (; c < out_c; c += 4) {
        group_lanes(layer, input, corner, c, out_c - c < 4 ? out_c - c : 4, inside, output);
    }
}

/* The taps [first, last) of one axis that land inside [0, size) from position start. */
static void inside_range(int32_t start, int32_t kernel, int32_t dilation, int32_t size,
                         int32_t *first, int32_t *last)
{
    int32_t k = 0;
    while (k < kernel && start + k * dilation < 0) {
        ++k;
    }
    *first = k;
    while (k < kernel && start + k * dilation < size) {
        ++k;
    }
    *last = k;
}

nn_status nn_depthwise_conv2d_s8(const nn_depthwise_conv2d_params *params, const int8_t *input,
                                 const int32_t *weights, const int32_t *bias, int8_t *output)
{
    const nn_window *win = &params->window;
    const int32_t multiplier = params->depth_multiplier;
    if (!nn_window_is_valid(win) || multiplier <= 0 ||
        win->output.c != win->input.c * multiplier) {
        return NN_ERROR_ARGUMENT;
    }
    const int32_t in_c = win->input.c;
    const nn_requant *requant = &params->requant;
    const int32_t row_step = win->dilation_h * win->input.w * in_c;
    const int32_t col_step = win->dilation_w * in_c;
    const int column = win->kernel_w == 1;
    nn_requant_channel table[NN_DW_TABLE_CHANNELS];
    const dw_layer layer = {nn_dw_output_stage(requant, bias, win->output.c,
                                               win->output.h * win->output.w, table),
                            weights,
                            win->kernel_h, win->kernel_w, row_step, col_step,
                            column ? 1 : win->kernel_h, column ? win->kernel_h : win->kernel_w,
                            row_step, column ? row_step : col_step,
                            win->output.c, multiplier, -requant->input_offset};

    if (multiplier == 1 && !takes_3x3(&layer) &&
        axis_inside(win->pad_top, win->output.h, win->stride_h, win->kernel_h, win->dilation_h,
                    win->input.h) &&
        axis_inside(win->pad_left, win->output.w, win->stride_w, win->kernel_w, win->dilation_w,
                    win->input.w)) {
        const dw_run all = {-(win->pad_top * win->input.w + win->pad_left) * in_c, win->output.h,
                            win->output.w, win->stride_h * win->input.w * in_c,
                            win->stride_w * in_c};
        run_inside(&layer, input, &all, output);
        return NN_OK;
    }
    /* The output columns [x_first, x_last) whose windows lie inside the image's width. */
    const int32_t x_first = (win->pad_left + win->stride_w - 1) / win->stride_w;
    const int32_t x_span = win->input.w - 1 - (win->kernel_w - 1) * win->dilation_w + win->pad_left;
    const int32_t x_end = x_span < 0 ? 0 : x_span / win->stride_w + 1;
    const int32_t x_last = x_end < win->output.w ? x_end : win->output.w;
    for (int32_t out_y = 0; out_y < win->output.h; ++out_y) {
        const int32_t in_y0 = out_y * win->stride_h - win->pad_top;
        dw_inside inside;
        inside_range(in_y0, win->kernel_h, win->dilation_h, win->input.h, &inside.ky0, &inside.ky1);
        const int run_row = multiplier == 1 && inside.ky0 == 0 && inside.ky1 == win->kernel_h &&
                            x_first < x_last;
        for (int32_t out_x = 0; out_x < win->output.w; ++out_x) {
            const int32_t in_x0 = out_x * win->stride_w - win->pad_left;
            const int32_t corner = (in_y0 * win->input.w + in_x0) * in_c;
            if (run_row && out_x == x_first) {
                /* The row's interior in one call. */
                const dw_run run = {corner, 1, x_last - x_first, 0, win->stride_w * in_c};
                if (takes_3x3(&layer)) {
                    run_3x3_inside(&layer, input, &run, output);
                } else {
                    run_inside(&layer, input, &run, output);
                }
                output += run.cols * win->output.c;
                out_x = x_last - 1;
                continue;
            }
            inside_range(in_x0, win->kernel_w, win->dilation_w, win->input.w, &inside.kx0,
                         &inside.kx1);
            pixel(&layer, input, corner, &inside, output);
            output += win->output.c;
        }
    }
    return NN_OK;
}
