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

/*
 * 3 x 1 and 5 x 1 windows down a 1-pixel-wide map ([T, 1, C], the time
 * axis of streaming models), stride and dilation 1, every window inside:
 * one channel at a time down the column, so that its weights and
 * requantization constants stay in registers for all T outputs and each
 * input byte is loaded once for the k outputs that read it (a window of
 * k registers slides down the column). By groups of 4 channels a 3-tap
 * output paid 3 table loads and a share of the packed clamp and store on
 * top of its 5-instruction requantization, and 11 instructions/MAC in all
 * (30x1x40); down the column its loop takes 12 per output, 4 per MAC, and
 * the layer 5.9.
 * Two conditions keep the per-output work at the requantization's 5
 * instructions, SSAT and the store: the activation range is all of int8
 * (no clamp after SSAT; also what ReLU gives when the output's zero point
 * is -128), and the output offset is folded into the start value:
 * nn_requantize_folded (a channel outside its range, or with a shift of
 * less than 2 bits right, goes through group_lanes, the general code).
 * Channels are written one after the other down the column, not in raster
 * order: see run_column for an output that overlaps the input.
 */
#define DW_COLUMN_MAX_TAPS 5

/*
 * One channel's constants. Its k weights as int16 halves, tap j in word
 * j / 2's bottom half if j is even, top if odd, except the last tap (k is
 * odd): the top of the last word, whose bottom holds e - 1, so that one
 * register serves SMLABT and ASR (which reads its shift's bottom byte).
 */
typedef struct {
    int32_t bias, multiplier, start_high; /* start_high: nn_requantize_fold's */
    int32_t shift;                        /* e - 1 */
    int32_t words[(DW_COLUMN_MAX_TAPS + 1) / 2];
} dw_column;

/* Two int16 weights in one word, lo in the bottom half. */
static inline int32_t column_pack(int32_t lo, int32_t hi)
{
    return (int32_t)((uint32_t)(uint16_t)lo | (uint32_t)hi << 16);
}

/*
 * Channel c's constants, or 0 when its requantization is not the fast
 * path's (a shift of less than 2 bits right) or its offset does not fold.
 */
static int column_of(const dw_layer *layer, int32_t c, int32_t taps, dw_column *col)
{
    nn_requant_channel t;
    int folds = 0;
    if (nn_requantize_channel_of(layer->out.multiplier[c], layer->out.shift[c], &t)) {
        col->start_high = nn_requantize_fold(&t, layer->out.output_offset, &folds);
    }
    if (!folds) {
        return 0;
    }
    col->bias = layer->out.bias[c];
    col->multiplier = t.multiplier;
    col->shift = t.shift_minus_1;
    /* Channel c's weight is in word c & 1 of each tap's pair, in its top half when c & 2. */
    const int32_t *w = layer->weights + (c / 4) * taps * 2 + (c & 1);
    const int top = c & 2;
    int32_t j = 0;
    for (; j + 1 < taps; j += 2, w += 4) {
        col->words[j / 2] = top ? column_pack(w[0] >> 16, w[2] >> 16) : column_pack(w[0], (int16_t)w[2]);
    }
    col->words[j / 2] = column_pack(t.shift_minus_1, top ? w[0] >> 16 : (int16_t)w[0]);
    return 1;
}

/* acc requantized with the folded offset and saturated to int8 (SSAT on DSP cores). */
static inline int32_t column_requantize(int32_t acc, const dw_column *col)
{
    const int32_t value = nn_requantize_folded(acc, col->multiplier, col->start_high, col->shift);
#if NN_DSP
    return nn_ssat8(value);
#else
    return value < -128 ? -128 : value > 127 ? 127 : value;
#endif
}

#if !defined(__ARM_FEATURE_DSP)
/* One channel's rows outputs in C: the loop of the portable and host builds. */
static void column_plain(const dw_layer *layer, const int8_t *input, int8_t *output, int32_t rows,
                         int32_t c, const dw_column *col)
{
    const int32_t taps = layer->kernel_h, step = layer->row_step;
    const int32_t *pairs = layer->weights + (c / 4) * taps * 2;
    for (int32_t y = 0; y < rows; ++y, input += step, output += step) {
        int32_t acc = col->bias;
        for (int32_t j = 0; j < taps; ++j) {
            acc += input[j * step] * lane_weight(pairs + 2 * j, c % 4);
        }
        *output = (int8_t)column_requantize(acc, col);
    }
}
#endif

#if defined(__ARM_FEATURE_DSP)
/*
 * acc, hi (the start's high word) requantized and stored: lo, the window
 * register that is free by then, takes the start's low word; then
 * load_shift, and sh holds e - 1.
 */
#define DW_COLUMN_REQUANTIZE(lo, load_shift, sh) \
    "and %[" lo "], %[acc], #0x80000000\n\t" \
    "orr %[" lo "], %[" lo "], #0x40000000\n\t" \
    "smlal %[" lo "], %[hi], %[acc], %[m]\n\t" \
    load_shift \
    "asr %[hi], %[hi], %[" sh "]\n\t" \
    "ssat %[hi], #8, %[hi]\n\t" \
    "strb %[hi], [%[out], %[i]]\n\t"

/* One output of the 3-tap loop (12 instructions): window registers a, b, c, oldest first; c is loaded. */
#define DW_COLUMN3_OUT(a, b, c, add) \
    "ldrsb %[" c "], [%[in], %[i]]\n\t" \
    "smlabb %[acc], %[" a "], %[w01], %[bias]\n\t" \
    "smlabt %[acc], %[" b "], %[w01], %[acc]\n\t" \
    "smlabt %[acc], %[" c "], %[w2sh], %[acc]\n\t" \
    "add %[hi], %[start], %[acc], asr #31\n\t" \
    DW_COLUMN_REQUANTIZE(a, "", "w2sh") \
    add " %[i], %[i], %[step]\n\t"

/*
 * One output of the 5-tap loop (18 instructions): 14 registers hold the
 * pointers, the window, the multiplier and 4 weights, so the bias, the
 * start and the last word (last weight and shift) are loaded each time.
 */
#define DW_COLUMN5_OUT(a, b, c, d, e, add) \
    "ldrsb %[" e "], [%[in], %[i]]\n\t" \
    "ldr %[hi], %[bias]\n\t" \
    "smlabb %[acc], %[" a "], %[w01], %[hi]\n\t" \
    "smlabt %[acc], %[" b "], %[w01], %[acc]\n\t" \
    "smlabb %[acc], %[" c "], %[w23], %[acc]\n\t" \
    "smlabt %[acc], %[" d "], %[w23], %[acc]\n\t" \
    "ldr %[" a "], %[w4sh]\n\t" \
    "smlabt %[acc], %[" e "], %[" a "], %[acc]\n\t" \
    "ldr %[hi], %[start]\n\t" \
    "add %[hi], %[hi], %[acc], asr #31\n\t" \
    DW_COLUMN_REQUANTIZE(a, "ldr %[" a "], %[w4sh]\n\t", a) \
    add " %[i], %[i], %[step]\n\t"

/* The first window's taps into the registers where output `entry` of the unrolled loop expects them. */
NN_INLINE void column_preload(int32_t *x, int32_t entry, int32_t taps, const int8_t *input, int32_t step)
{
    for (int32_t j = 0; j < taps - 1; ++j) {
        x[(entry + j) % taps] = input[j * step];
    }
}

/*
 * One channel's rows outputs by the loops above, unrolled by the window's
 * length so that the window's registers rotate instead of moving; a row
 * count that is not a multiple enters the loop part-way (entry: the output
 * of the unrolled body to start at, its window x[entry...] preloaded).
 * The index runs from -rows * step up to 0, so both pointers need no
 * step of their own and the last ADDS ends the loop. Host builds take
 * column_plain, which computes the same; the board runs check this one
 * against TFLite Micro.
 */
NN_INLINE void column_dsp(const int8_t *input, int8_t *output, int32_t rows, int32_t step,
                          dw_column col, int32_t taps, int32_t entry)
{
    int32_t x[DW_COLUMN_MAX_TAPS] = {0};
#pragma GCC unroll 5
    for (int32_t e = 0; e < taps; ++e) {
        if (entry == e) {
            column_preload(x, e, taps, input, step);
        }
    }
    const int8_t *const in = input + (rows + taps - 1) * step;
    int8_t *const out = output + rows * step;
    int32_t i = -rows * step, hi;
    if (taps == 3) {
        __asm__ volatile("cmp %[acc], #1\n\t"
                "beq 2f\n\t"
                "cmp %[acc], #2\n\t"
                "beq 3f\n\t"
                "1:\n\t"
                DW_COLUMN3_OUT("x0", "x1", "x2", "add")
                "2:\n\t"
                DW_COLUMN3_OUT("x1", "x2", "x0", "add")
                "3:\n\t"
                DW_COLUMN3_OUT("x2", "x0", "x1", "adds")
                "bne 1b"
                : [i] "+r"(i), [x0] "+r"(x[0]), [x1] "+r"(x[1]), [x2] "+r"(x[2]), [acc] "+r"(entry),
                  [hi] "=&r"(hi)
                : [in] "r"(in), [out] "r"(out), [step] "r"(step), [w01] "r"(col.words[0]),
                  [w2sh] "r"(col.words[1]), [m] "r"(col.multiplier), [start] "r"(col.start_high),
                  [bias] "r"(col.bias)
                : "cc", "memory");
    } else {
        __asm__ volatile("cmp %[acc], #1\n\t"
                "beq 2f\n\t"
                "cmp %[acc], #2\n\t"
                "beq 3f\n\t"
                "cmp %[acc], #3\n\t"
                "beq 4f\n\t"
                "cmp %[acc], #4\n\t"
                "beq 5f\n\t"
                "1:\n\t"
                DW_COLUMN5_OUT("x0", "x1", "x2", "x3", "x4", "add")
                "2:\n\t"
                DW_COLUMN5_OUT("x1", "x2", "x3", "x4", "x0", "add")
                "3:\n\t"
                DW_COLUMN5_OUT("x2", "x3", "x4", "x0", "x1", "add")
                "4:\n\t"
                DW_COLUMN5_OUT("x3", "x4", "x0", "x1", "x2", "add")
                "5:\n\t"
                DW_COLUMN5_OUT("x4", "x0", "x1", "x2", "x3", "adds")
                "bne 1b"
                : [i] "+r"(i), [x0] "+r"(x[0]), [x1] "+r"(x[1]), [x2] "+r"(x[2]), [x3] "+r"(x[3]),
                  [x4] "+r"(x[4]), [acc] "+r"(entry), [hi] "=&r"(hi)
                : [in] "r"(in), [out] "r"(out), [step] "r"(step), [w01] "r"(col.words[0]),
                  [w23] "r"(col.words[1]), [m] "r"(col.multiplier), [bias] "m"(col.bias),
                  [start] "m"(col.start_high), [w4sh] "m"(col.words[2])
                : "cc", "memory");
    }
}

/*
 * Out of line: the asm needs all 14 registers, which GCC could not find
 * for it inlined into run_column's loop (on the hard-float ABI).
 */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void column_dsp_call(const int8_t *input, int8_t *output, int32_t rows, int32_t step,
                            const dw_column *col, int32_t taps, int32_t entry)
{
    if (taps == 3) {
        column_dsp(input, output, rows, step, *col, 3, entry);
    } else {
        column_dsp(input, output, rows, step, *col, 5, entry);
    }
}
#endif

/*
 * Output bytes run_column keeps on the stack when the output overlaps the
 * input: as much as the other paths' requantization table, which this path
 * does without, so the stack does not grow.
 */
#define DW_COLUMN_BAND (NN_DW_TABLE_CHANNELS * (int32_t)sizeof(nn_requant_channel))

/* Whether a layer takes run_column (see above). */
static int takes_column(const nn_window *win, const nn_depthwise_conv2d_params *params)
{
    return params->depth_multiplier == 1 && win->input.w == 1 && win->output.w == 1 &&
           win->kernel_w == 1 && (win->kernel_h == 3 || win->kernel_h == 5) && win->stride_h == 1 &&
           win->dilation_h == 1 && win->pad_top == 0 && win->pad_left == 0 &&
           win->output.h + win->kernel_h - 1 <= win->input.h && win->output.c * 4 <= DW_COLUMN_BAND &&
           params->requant.act_min == -128 && params->requant.act_max == 127;
}

/* rows x C_OUT outputs, channel by channel, into output (C_OUT bytes a row). */
static void column_rows(const dw_layer *layer, const int8_t *input, int32_t rows, int8_t *output)
{
    const int32_t taps = layer->kernel_h;
#if defined(__ARM_FEATURE_DSP)
    const int32_t entry = (taps - rows % taps) % taps;
#endif
    const dw_inside all = {0, taps, 0, 1};
    for (int32_t c = 0; c < layer->channels; ++c) {
        dw_column col;
        if (!column_of(layer, c, taps, &col)) { /* rare: a pixel at a time, the general code */
            for (int32_t y = 0; y < rows; ++y) {
                group_lanes(layer, input + y * layer->row_step, 0, c, 1, &all, output + y * layer->row_step);
            }
            continue;
        }
#if defined(__ARM_FEATURE_DSP)
        column_dsp_call(input + c, output + c, rows, layer->row_step, &col, taps, entry);
#else
        column_plain(layer, input + c, output + c, rows, c, &col);
#endif
    }
}

/*
 * A layer that takes_column. Channel by channel is not raster order, so
 * an output that overlaps the input (kernels.h, "Writing over the
 * input") goes through the stack in bands of rows: a band's outputs are
 * copied out once all of its inputs have been read, and later bands read
 * only rows below it, which the raster-order contract keeps intact.
 */
static void run_column(const dw_layer *layer, const int8_t *input, int32_t in_rows, int32_t rows,
                       int8_t *output)
{
    const int32_t c_out = layer->channels;
    const uintptr_t in = (uintptr_t)input, out = (uintptr_t)output;
    if (out + (uintptr_t)(rows * c_out) <= in || in + (uintptr_t)(in_rows * c_out) <= out) {
        column_rows(layer, input, rows, output);
        return;
    }
    int8_t band[DW_COLUMN_BAND];
    const int32_t band_rows = DW_COLUMN_BAND / c_out;
    for (int32_t y = 0; y < rows; y += band_rows) {
        const int32_t n = rows - y < band_rows ? rows - y : band_rows;
        column_rows(layer, input + y * c_out, n, band);
        memcpy(output + y * c_out, band, (size_t)(n * c_out));
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

/* What every pixel of the call shares; table: room for the requantization table, or 0 for none. */
static dw_layer layer_of(const nn_depthwise_conv2d_params *params, const int32_t *weights,
                         const int32_t *bias, nn_requant_channel *table)
{
    const nn_window *win = &params->window;
    const int32_t in_c = win->input.c;
    const int32_t row_step = win->dilation_h * win->input.w * in_c;
    const int32_t col_step = win->dilation_w * in_c;
    const int column = win->kernel_w == 1;
    const dw_layer layer = {nn_dw_output_stage(&params->requant, bias, win->output.c,
                                               win->output.h * win->output.w, table),
                            weights,
                            win->kernel_h, win->kernel_w, row_step, col_step,
                            column ? 1 : win->kernel_h, column ? win->kernel_h : win->kernel_w,
                            row_step, column ? row_step : col_step,
                            win->output.c, params->depth_multiplier, -params->requant.input_offset};
    return layer;
}

/*
 * Every layer but those that take_column. Out of line, so that its table
 * and run_column's band are never on the stack together.
 */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void run_pixels(const nn_depthwise_conv2d_params *params, const int8_t *input,
                       const int32_t *weights, const int32_t *bias, int8_t *output)
{
    const nn_window *win = &params->window;
    const int32_t multiplier = params->depth_multiplier;
    const int32_t in_c = win->input.c;
    nn_requant_channel table[NN_DW_TABLE_CHANNELS];
    const dw_layer layer = layer_of(params, weights, bias, table);
    if (multiplier == 1 && !takes_3x3(&layer) &&
        axis_inside(win->pad_top, win->output.h, win->stride_h, win->kernel_h, win->dilation_h,
                    win->input.h) &&
        axis_inside(win->pad_left, win->output.w, win->stride_w, win->kernel_w, win->dilation_w,
                    win->input.w)) {
        const dw_run all = {-(win->pad_top * win->input.w + win->pad_left) * in_c, win->output.h,
                            win->output.w, win->stride_h * win->input.w * in_c,
                            win->stride_w * in_c};
        run_inside(&layer, input, &all, output);
        return;
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
    if (takes_column(win, params)) {
        const dw_layer layer = layer_of(params, weights, bias, 0);
        run_column(&layer, input, win->input.h, win->output.h, output);
    } else {
        run_pixels(params, input, weights, bias, output);
    }
    return NN_OK;
}
