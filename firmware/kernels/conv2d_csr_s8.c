/*
 * CONV_2D, int8, CSR weights.
 *
 * Windows of up to NN_CSR_TILE_WINDOW_MAX values (KH * KW * C_IN) take
 * the buffered path: the windows of a tile of 8 output pixels are first
 * gathered into a stack buffer, widened to int16, the 8 pixels' copies of
 * window value j side by side in 16 bytes (see gather). The index of a
 * nonzero is then j itself, its position in the window (encode_csr stores
 * it so), and one nonzero costs a value load, an index load, an address,
 * 3 loads of its 8 inputs and 8 SMLAxB: 14 instructions for 8 pixels,
 * where gathering each pixel's input from the image took 2.5 per pixel.
 * The gather costs about 2 instructions per window value and pixel,
 * shared by every output channel. The channels' sums, then their outputs,
 * are two passes of inline assembly on DSP cores (channel_sums,
 * channel_outputs). A tile reads no input once gathered, so it writes its
 * pixels after reading their windows, as the raster-order contract of
 * kernels.h asks.
 *
 * Larger windows read their inputs in place: each nonzero stores the
 * offset of its input relative to the window's top-left corner, and a
 * tile of NN_CONV_TILE pixels runs a plain sparse dot product per pixel
 * (packing, SMLAD, would not help: every product needs its own gathered
 * input).
 *
 * Either way, when windows reach outside the image, the kernel_h rows one
 * output row reads are first copied into a band padded with the input zero
 * point (what padding reads, see kernels.h), so the scratch buffer is a
 * few rows, not a padded image.
 */
#include "kernel_util.h"

/* Columns (or rows) the padded image needs: all windows, and all input. */
static int32_t padded_extent(int32_t in_size, int32_t pad_before, int32_t out_size,
                             int32_t stride, int32_t kernel, int32_t dilation)
{
    const int32_t windows_reach = (out_size - 1) * stride + (kernel - 1) * dilation + 1;
    const int32_t input_reach = pad_before + in_size;
    return windows_reach > input_reach ? windows_reach : input_reach;
}

nn_hwc nn_conv2d_csr_s8_padded_size(const nn_window *window)
{
    nn_hwc padded;
    padded.h = padded_extent(window->input.h, window->pad_top, window->output.h,
                             window->stride_h, window->kernel_h, window->dilation_h);
    padded.w = padded_extent(window->input.w, window->pad_left, window->output.w,
                             window->stride_w, window->kernel_w, window->dilation_w);
    padded.c = window->input.c;
    return padded;
}

int32_t nn_conv2d_csr_s8_get_buffer_size(const nn_conv2d_params *params)
{
    const nn_window *win = &params->window;
    if (!nn_sparse_conv_pads(win)) {
        return 0;
    }
    const nn_hwc padded = nn_conv2d_csr_s8_padded_size(win);
    return win->kernel_h * padded.w * padded.c;
}

/* ---- The buffered path: windows of up to NN_CSR_TILE_WINDOW_MAX values ---- */

#define TILE_PIXELS (2 * NN_CONV_TILE) /* two walks' worth of pixels, gathered before either is stored */
#define TILE_WORDS 4                   /* words per window value in the tile buffer: 8 int16 copies */
#define CHANNELS_PER_PASS 32           /* channels whose sums wait on the stack (1 KiB) for the output stage */

/*
 * `count` consecutive window values of the 4 pixels at p[0..3] + at into
 * every TILE_WORDS-th word from out: pixels 0 and 2 in the bottom halves
 * of words 0 and 1, pixels 1 and 3 in the top halves, sign-extended. On
 * DSP cores 4 values of a pixel come in one word load, are split into
 * their even and odd bytes (SXTB16) and paired across two pixels (PKHBT,
 * PKHTB): 4 loads, 8 SXTB16, 8 packs and 8 stores per 4 values of the 4
 * pixels.
 */
NN_INLINE void gather_run(uint32_t *out, const int8_t *const p[NN_CONV_TILE], int32_t at, int32_t count)
{
    const int8_t *p0 = p[0] + at, *p1 = p[1] + at, *p2 = p[2] + at, *p3 = p[3] + at;
    int32_t c = 0;
#if NN_DSP
    for (; c + 4 <= count; c += 4, out += 4 * TILE_WORDS) {
        const int32_t a = nn_read_s8x4(p0 + c), b = nn_read_s8x4(p1 + c);
        const int32_t a02 = nn_sxtb16(a), a13 = nn_sxtb16_ror8(a);
        const int32_t b02 = nn_sxtb16(b), b13 = nn_sxtb16_ror8(b);
        out[0] = (uint32_t)nn_pkhbt16(a02, b02);
        out[TILE_WORDS] = (uint32_t)nn_pkhbt16(a13, b13);
        out[2 * TILE_WORDS] = (uint32_t)nn_pkhtb16(b02, a02);
        out[3 * TILE_WORDS] = (uint32_t)nn_pkhtb16(b13, a13);
        const int32_t d = nn_read_s8x4(p2 + c), e = nn_read_s8x4(p3 + c);
        const int32_t d02 = nn_sxtb16(d), d13 = nn_sxtb16_ror8(d);
        const int32_t e02 = nn_sxtb16(e), e13 = nn_sxtb16_ror8(e);
        out[1] = (uint32_t)nn_pkhbt16(d02, e02);
        out[TILE_WORDS + 1] = (uint32_t)nn_pkhbt16(d13, e13);
        out[2 * TILE_WORDS + 1] = (uint32_t)nn_pkhtb16(e02, d02);
        out[3 * TILE_WORDS + 1] = (uint32_t)nn_pkhtb16(e13, d13);
    }
#endif
    for (; c < count; ++c, out += TILE_WORDS) {
        out[0] = (uint32_t)(uint16_t)p0[c] | (uint32_t)p1[c] << 16;
        out[1] = (uint32_t)(uint16_t)p2[c] | (uint32_t)p3[c] << 16;
    }
}

/*
 * The windows at the NN_CONV_TILE corners into the tile buffer's pixel
 * slots slot .. slot + 3 (slot 0 or 4): window value j of slot s is the
 * int16 half s % 2 of word TILE_WORDS * j + s / 2. A window is kernel_h
 * rows of kernel_w runs of C_IN consecutive input bytes, and each row one
 * run when the runs touch (no dilation along the width).
 */
static void gather(uint32_t *tile, int32_t slot, const int8_t *const corner[NN_CONV_TILE],
                   const nn_window *win, int32_t row_step)
{
    const int32_t c_in = win->input.c;
    const int joined = win->dilation_w == 1;
    const int32_t runs = joined ? 1 : win->kernel_w, run = joined ? win->kernel_w * c_in : c_in;
    uint32_t *out = tile + slot / 2;
    for (int32_t ky = 0; ky < win->kernel_h; ++ky) {
        for (int32_t kx = 0; kx < runs; ++kx) {
            gather_run(out, corner, ky * row_step + kx * win->dilation_w * c_in, run);
            out += TILE_WORDS * run;
        }
    }
}

/*
 * One nonzero against the tile's 8 pixels in assembly: its value and
 * window position (post-indexed loads, the position a byte or, in windows
 * of more than 256 values, a halfword), the address of its 16 bytes, 3
 * loads (the last reuses the address register), 8 SMLAxB.
 */
#define TAP8_ASM(iload, istep)                          \
    "ldrsb %[t], [%[v]], #1\n\t"                        \
    iload " %[j], [%[i]], #" #istep "\n\t"               \
    "add %[j], %[tile], %[j], lsl #4\n\t"               \
    "ldr %[w], [%[j], #8]\n\t"                          \
    "smlabb %[a4], %[w], %[t], %[a4]\n\t"               \
    "smlatb %[a5], %[w], %[t], %[a5]\n\t"               \
    "ldr %[w], [%[j], #12]\n\t"                         \
    "smlabb %[a6], %[w], %[t], %[a6]\n\t"               \
    "smlatb %[a7], %[w], %[t], %[a7]\n\t"               \
    "ldrd %[w], %[j], [%[j]]\n\t"                       \
    "smlabb %[a0], %[w], %[t], %[a0]\n\t"               \
    "smlatb %[a1], %[w], %[t], %[a1]\n\t"               \
    "smlabb %[a2], %[j], %[t], %[a2]\n\t"               \
    "smlatb %[a3], %[j], %[t], %[a3]\n\t"

/*
 * A channel's first nonzero, its 8 sums started from the bias in a0
 * (SMLAxB's addend), a0's own last: no 8 moves from the bias.
 */
#define FIRST_TAP8_ASM(iload, istep)                    \
    "ldrsb %[t], [%[v]], #1\n\t"                        \
    iload " %[j], [%[i]], #" #istep "\n\t"               \
    "add %[j], %[tile], %[j], lsl #4\n\t"               \
    "ldr %[w], [%[j], #8]\n\t"                          \
    "smlabb %[a4], %[w], %[t], %[a0]\n\t"               \
    "smlatb %[a5], %[w], %[t], %[a0]\n\t"               \
    "ldr %[w], [%[j], #12]\n\t"                         \
    "smlabb %[a6], %[w], %[t], %[a0]\n\t"               \
    "smlatb %[a7], %[w], %[t], %[a0]\n\t"               \
    "ldrd %[w], %[j], [%[j]]\n\t"                       \
    "smlatb %[a1], %[w], %[t], %[a0]\n\t"               \
    "smlabb %[a2], %[j], %[t], %[a0]\n\t"               \
    "smlatb %[a3], %[j], %[t], %[a0]\n\t"               \
    "smlabb %[a0], %[w], %[t], %[a0]\n\t"

#if !defined(__ARM_FEATURE_DSP)
/*
 * One channel's n nonzeros against the tile buffer: acc[s] = start + the
 * sum of value * window value of slot s (one of index_u8 / index_u16 NULL).
 */
static void dot8(int32_t start, const int8_t *v, const uint8_t *index_u8, const uint16_t *index_u16, uint32_t n,
                 const uint32_t *tile, int32_t acc[TILE_PIXELS])
{
    for (int32_t s = 0; s < TILE_PIXELS; ++s) {
        acc[s] = start;
    }
    for (uint32_t k = 0; k < n; ++k) {
        const uint32_t *pixels = tile + TILE_WORDS * (index_u8 ? index_u8[k] : index_u16[k]);
        for (int32_t s = 0; s < TILE_PIXELS; ++s) {
            acc[s] += v[k] * (int16_t)(uint16_t)(pixels[s / 2] >> (16 * (s % 2)));
        }
    }
}
#endif

/*
 * 4 sums of one channel (bias included) requantized, offset, clamped to
 * [lo, hi] (given in every byte of lo4 and hi4) and packed in one word;
 * saturating to int8 is all the clamp there is to do unless `clamps`.
 * The shift is tested once for the 4, so they share the fast path's
 * per-channel work (nn_requantize_right_shift); on DSP cores the 4
 * results are saturated, packed and clamped together.
 */
NN_INLINE int32_t requantize4(const int32_t sum[NN_CONV_TILE], int32_t multiplier, int shift, int32_t offset,
                              int clamps, int32_t lo4, int32_t hi4)
{
    int32_t q0, q1, q2, q3;
    if (shift <= -2) {
        q0 = nn_requantize_right_shift(sum[0], multiplier, shift);
        q1 = nn_requantize_right_shift(sum[1], multiplier, shift);
        q2 = nn_requantize_right_shift(sum[2], multiplier, shift);
        q3 = nn_requantize_right_shift(sum[3], multiplier, shift);
    } else {
        q0 = nn_requantize_reference(sum[0], multiplier, shift);
        q1 = nn_requantize_reference(sum[1], multiplier, shift);
        q2 = nn_requantize_reference(sum[2], multiplier, shift);
        q3 = nn_requantize_reference(sum[3], multiplier, shift);
    }
#if NN_DSP
    if (!clamps) {
        return nn_pack_s8x4(q0 + offset, q1 + offset, q2 + offset, q3 + offset);
    }
    return nn_pack_clamp_s8x4(q0 + offset, q1 + offset, q2 + offset, q3 + offset, lo4, hi4);
#else
    (void)clamps;
    const int32_t lo = (int8_t)lo4, hi = (int8_t)hi4;
    return (int32_t)((uint32_t)(uint8_t)nn_clamp_s8(q0 + offset, lo, hi)
                     | (uint32_t)(uint8_t)nn_clamp_s8(q1 + offset, lo, hi) << 8
                     | (uint32_t)(uint8_t)nn_clamp_s8(q2 + offset, lo, hi) << 16
                     | (uint32_t)(uint8_t)nn_clamp_s8(q3 + offset, lo, hi) << 24);
#endif
}

/* The first `pixels` bytes of packed, out_c bytes apart from output on (full tiles take STORE4_ASM). */
NN_INLINE void store_pixels(int32_t packed, int32_t pixels, int8_t *output, int32_t out_c)
{
    for (int32_t k = 0; k < pixels; ++k) {
        output[k * out_c] = (int8_t)(packed >> (8 * k));
    }
}

#if defined(__ARM_FEATURE_DSP)
/*
 * Every channel's sums in assembly, for row starts of `step` bytes loaded
 * by `load`. Per channel: its end from the next row start, its bias,
 * the first nonzero (FIRST_TAP8_ASM), then 4 nonzeros a turn (a count of 4k + r
 * enters at the last r), one STM of the 8 sums. The accumulators are r0-r7, so that
 * the STM stores them in slot order; the loop's other registers take the
 * rest, and the channel's pointers wait on the stack.
 */
#define CHANNELS_ASM(load, step, iload, istep)                                            \
    __asm__ volatile("3:\n\t"                                                                    \
            "ldr %[j], %[start]\n\t"                                                             \
            load " %[t], [%[j], #" #step "]!\n\t"                                                \
            "str %[j], %[start]\n\t"                                                             \
            "ldr %[j], %[values]\n\t"                                                            \
            "add %[t], %[j], %[t]\n\t"                                                           \
            "str %[t], %[end]\n\t"                                                               \
            "ldr %[j], %[bias]\n\t"                                                              \
            "ldr %[a0], [%[j]], #4\n\t"                                                          \
            "str %[j], %[bias]\n\t"                                                              \
            "cmp %[t], %[v]\n\t"                                                                 \
            "beq 8f\n\t" FIRST_TAP8_ASM(iload, istep)                                            \
            "ldr %[j], %[end]\n\t"                                                               \
            "subs %[t], %[j], %[v]\n\t"                                                          \
            "beq 4f\n\t"                                                                         \
            "ands %[t], %[t], #3\n\t"                                                            \
            "beq 1f\n\t"                                                                         \
            "cmp %[t], #2\n\t"                                                                   \
            "beq 6f\n\t"                                                                         \
            "bhi 5f\n\t"                                                                         \
            "b 7f\n"                                                                             \
            "1:\n\t" TAP8_ASM(iload, istep)                                                            \
            "5:\n\t" TAP8_ASM(iload, istep)                                                            \
            "6:\n\t" TAP8_ASM(iload, istep)                                                            \
            "7:\n\t" TAP8_ASM(iload, istep)                                                            \
            "ldr %[j], %[end]\n\t"                                                               \
            "cmp %[v], %[j]\n\t"                                                                 \
            "bne 1b\n\t"                                                                         \
            "b 4f\n"                                                                             \
            "8:\n\t"                                                                             \
            "mov %[a1], %[a0]\n\t"                                                               \
            "mov %[a2], %[a0]\n\t"                                                               \
            "mov %[a3], %[a0]\n\t"                                                               \
            "mov %[a4], %[a0]\n\t"                                                               \
            "mov %[a5], %[a0]\n\t"                                                               \
            "mov %[a6], %[a0]\n\t"                                                               \
            "mov %[a7], %[a0]\n"                                                                  \
            "4:\n\t"                                                                             \
            "ldr %[j], %[sums]\n\t"                                                              \
            "stmia %[j]!, {r0-r7}\n\t"                                                           \
            "str %[j], %[sums]\n\t"                                                              \
            "ldr %[t], %[stop]\n\t"                                                              \
            "cmp %[j], %[t]\n\t"                                                                 \
            "bne 3b"                                                                             \
            : [v] "+r"(v), [i] "+r"(index), [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2),       \
              [a3] "=&r"(a3), [a4] "=&r"(a4), [a5] "=&r"(a5), [a6] "=&r"(a6), [a7] "=&r"(a7),     \
              [t] "=&r"(t_), [j] "=&r"(j_), [w] "=&r"(w_), [start] "+m"(start), [bias] "+m"(bias), \
              [sums] "+m"(out), [end] "=m"(end_)                                                 \
            : [tile] "r"(tile), [values] "m"(values), [stop] "m"(stop)                           \
            : "cc", "memory")
#endif

/*
 * The 8 sums (from the bias) of `count` >= 1 consecutive channels into
 * sums, with their row starts at start_u16 / start_u32 (one of them NULL).
 * The value and index pointers run on from one channel into the next.
 * NN_EMULATE_DSP host builds take the C loop, which computes the same
 * sums. Not inlined: the assembly reaches its stack variables from SP,
 * which a caller's 5 KiB frame could put out of reach.
 */
__attribute__((noinline)) static void channel_sums(int32_t count, const int8_t *values, const uint8_t *index_u8,
                                                   const uint16_t *index_u16, const uint16_t *start_u16,
                                                   const uint32_t *start_u32, const int32_t *bias,
                                                   const uint32_t *tile, int32_t sums[][TILE_PIXELS])
{
    const uint32_t first = start_u16 ? start_u16[0] : start_u32[0];
    const int8_t *v = values + first;
#if defined(__ARM_FEATURE_DSP)
    register int32_t a0 __asm__("r0"), a1 __asm__("r1"), a2 __asm__("r2"), a3 __asm__("r3");
    register int32_t a4 __asm__("r4"), a5 __asm__("r5"), a6 __asm__("r6"), a7 __asm__("r7");
    int32_t t_, j_, w_;        /* scratch registers */
    const int8_t *end_;        /* the channel's last nonzero, on the stack */
    int32_t *out = sums[0];
    const int32_t *const stop = sums[count];
    /* The positions as bytes: the assembly steps the pointer by the width it loads. */
    const uint8_t *index = index_u8 ? index_u8 + first : (const uint8_t *)(index_u16 + first);
    if (start_u16 != 0) {
        const uint16_t *start = start_u16;
        if (index_u8 != 0) {
            CHANNELS_ASM("ldrh", 2, "ldrb", 1);
        } else {
            CHANNELS_ASM("ldrh", 2, "ldrh", 2);
        }
    } else {
        const uint32_t *start = start_u32;
        if (index_u8 != 0) {
            CHANNELS_ASM("ldr", 4, "ldrb", 1);
        } else {
            CHANNELS_ASM("ldr", 4, "ldrh", 2);
        }
    }
#else
    for (int32_t k = 0; k < count; ++k) {
        const uint32_t at = (uint32_t)(v - values);
        const uint32_t n = (start_u16 ? start_u16[k + 1] : start_u32[k + 1]) - at;
        dot8(bias[k], v, index_u8 ? index_u8 + at : 0, index_u8 ? 0 : index_u16 + at, n, tile, sums[k]);
        v += n;
    }
#endif
}

#if defined(__ARM_FEATURE_DSP)
/*
 * The output stage of `count` channels of full tiles in assembly, for
 * layers whose every channel shifts right by 2 bits or more: per channel
 * the shift's work (nn_requantize_right_shift: 2^(e-2) and e - 1) once,
 * with the output offset folded into the start's high word (offset *
 * 2^(e-1) there adds exactly offset to the shifted result; for e <= 23 the
 * high word stays within int32), then per output 6 instructions: the
 * rounding start (AND, ORR, ADD), SMLAL, the shift, SSAT to int8, which is
 * all the clamp there is without a fused activation. A channel shifting by
 * more than 23 bits (an empty one's tiny scale) adds the offset after the
 * shift instead (LDR, ADD: 8 per output). Each output is then
 * one byte store (4 addresses per channel). With a fused activation the 4
 * outputs of a half are packed (2 PKHBT, 2 UXTB16, ORR), clamped (2 SSUB8
 * + SEL) and stored from the word (4 byte stores, 3 shifts, an address).
 * The 4 sums of a half come in one LDM, so they live in r0-r3.
 */
#define REQUANTIZE_ASM(r, add_offset)                    \
    "and %[lo], " r ", #0x80000000\n\t"                  \
    "orr %[lo], %[lo], #0x40000000\n\t"                  \
    "add %[hi], %[h], " r ", asr #31\n\t"                \
    "smlal %[lo], %[hi], " r ", %[m]\n\t"                \
    "asr " r ", %[hi], %[e]\n\t" add_offset(r)           \
    "ssat " r ", #8, " r "\n\t"

/* r0-r3 to base, base + out_c, ... (lo is free by then). */
#define STORE_BYTES_ASM(base)                            \
    "strb r0, [" base "]\n\t"                            \
    "strb r1, [" base ", %[oc]]\n\t"                     \
    "add %[lo], " base ", %[oc], lsl #1\n\t"             \
    "strb r2, [%[lo]]\n\t"                               \
    "strb r3, [%[lo], %[oc]]\n\t"

/* The 4 bytes of r0 at base, base + out_c, ... (r1 and r2 are free by then). */
#define STORE_WORD_ASM(base)                             \
    "strb r0, [" base "]\n\t"                            \
    "lsr r1, r0, #8\n\t"                                 \
    "strb r1, [" base ", %[oc]]\n\t"                     \
    "add r2, " base ", %[oc], lsl #1\n\t"                \
    "lsr r1, r0, #16\n\t"                                \
    "strb r1, [r2]\n\t"                                  \
    "lsr r1, r0, #24\n\t"                                \
    "strb r1, [r2, %[oc]]\n\t"

/* r0-r3 packed into r0 and clamped to [lo4, hi4] bytewise (r1-r3 are free then). */
#define PACK_CLAMP_ASM                                   \
    "pkhbt r0, r0, r2, lsl #16\n\t"                      \
    "pkhbt r1, r1, r3, lsl #16\n\t"                      \
    "uxtb16 r0, r0\n\t"                                  \
    "uxtb16 r1, r1\n\t"                                  \
    "orr r0, r0, r1, lsl #8\n\t"                         \
    NN_CLAMP_R0_ASM

#define FOLDED(r) ""
#define ADD_OFFSET(r) "ldr %[hi], %[offset]\n\tadd " r ", " r ", %[hi]\n\t"

#define HALF_ASM(add_offset)                             \
    "ldmia %[s]!, {r0-r3}\n\t"                           \
    REQUANTIZE_ASM("r0", add_offset) REQUANTIZE_ASM("r1", add_offset) \
    REQUANTIZE_ASM("r2", add_offset) REQUANTIZE_ASM("r3", add_offset)

/* The second half's pixels start 4 * out_c bytes after the first's. */
#define OUTPUTS_ASM(first_store, second_store)                                                     \
    __asm__ volatile("1:\n\t"                                                                    \
            "ldr %[m], [%[mp]], #4\n\t"                                                          \
            "ldrsb %[e], [%[shp]], #1\n\t"                                                       \
            "add %[h], %[e], #32\n\t"                                                            \
            "mov %[lo], #0x40000000\n\t"                                                         \
            "lsr %[h], %[lo], %[h]\n\t"                                                          \
            "mvn %[e], %[e]\n\t"                                                                 \
            "cmp %[e], #22\n\t"                                                                  \
            "bhi 2f\n\t"                                                                         \
            "ldr %[lo], %[offset]\n\t"                                                           \
            "lsl %[lo], %[lo], %[e]\n\t"                                                         \
            "add %[h], %[h], %[lo]\n\t"                                                          \
            HALF_ASM(FOLDED) first_store                                                         \
            HALF_ASM(FOLDED) second_store                                                        \
            "b 3f\n"                                                                             \
            "2:\n\t"                                                                             \
            HALF_ASM(ADD_OFFSET) first_store                                                     \
            HALF_ASM(ADD_OFFSET) second_store                                                    \
            "3:\n\t"                                                                             \
            "add %[o], %[o], #1\n\t"                                                             \
            "ldr %[lo], %[stop]\n\t"                                                             \
            "cmp %[s], %[lo]\n\t"                                                                \
            "bne 1b"                                                                             \
            : [s] "+r"(s), [mp] "+r"(multiplier), [shp] "+r"(shift), [o] "+r"(output),            \
              "=&r"(r0), "=&r"(r1), "=&r"(r2), "=&r"(r3), [m] "=&r"(m_), [h] "=&r"(h_),          \
              [e] "=&r"(e_), [lo] "=&r"(lo_), [hi] "=&r"(hi_)                                    \
            : [oc] "r"(out_c), [offset] "m"(offset), [lo4] "m"(lo4), [hi4] "m"(hi4),             \
              [stop] "m"(stop)                                                                   \
            : "cc", "memory")

/*
 * Outputs of `count` channels from their sums, both halves of the tile
 * full (NN_CONV_TILE pixels each, out_c bytes apart), every channel in
 * the folded domain above. Not inlined: the assembly reaches its stack
 * variables from SP.
 */
__attribute__((noinline)) static void channel_outputs(int clamps, int32_t count, const int32_t sums[][TILE_PIXELS],
                                                      const int32_t *multiplier, const int8_t *shift,
                                                      int32_t offset, int32_t lo4, int32_t hi4, int8_t *output,
                                                      int32_t out_c)
{
    register int32_t r0 __asm__("r0"), r1 __asm__("r1"), r2 __asm__("r2"), r3 __asm__("r3");
    int32_t m_, h_, e_, lo_, hi_; /* scratch registers */
    const int32_t *s = sums[0];
    const int32_t *const stop = sums[count];
    if (clamps) {
        OUTPUTS_ASM(PACK_CLAMP_ASM STORE_WORD_ASM("%[o]"),
                    PACK_CLAMP_ASM "add r3, %[o], %[oc], lsl #2\n\t" STORE_WORD_ASM("r3"));
    } else {
        OUTPUTS_ASM(STORE_BYTES_ASM("%[o]"), "add %[hi], %[o], %[oc], lsl #2\n\t" STORE_BYTES_ASM("%[hi]"));
    }
}
#endif

/*
 * Every channel of a gathered tile, CHANNELS_PER_PASS at a time: first
 * their 8 sums each into sums, then their outputs, the tile's first
 * `first` pixels from slot 0 on and `second` from slot NN_CONV_TILE on
 * (none past the last pixel), through the assembly when the tile is full
 * and every channel shifts right by 2 bits or more (right_shifts). Two
 * passes, because the dot products need every register and the output
 * stage most of them. clamps: whether a fused activation narrows the
 * int8 range.
 */
static void buffered_channels(const nn_requant *requant, int clamps, int right_shifts, int32_t out_c,
                              const nn_csr_s8 *weights, const int32_t *bias, const uint32_t *tile, int32_t first,
                              int32_t second, int8_t *output)
{
    /* Local copies: an int8 store may alias anything, so they would be read again every channel. */
    const int32_t lo4 = nn_s8x4_splat(requant->act_min), hi4 = nn_s8x4_splat(requant->act_max);
    const int32_t offset = requant->output_offset;
    const int32_t *const multiplier = requant->multiplier;
    const int8_t *const shift = requant->shift;
    const nn_csr_s8 w = *weights;
    const int32_t second_at = first * out_c;
    int32_t sums[CHANNELS_PER_PASS][TILE_PIXELS];
    for (int32_t ch0 = 0; ch0 < out_c; ch0 += CHANNELS_PER_PASS) {
        const int32_t count = out_c - ch0 < CHANNELS_PER_PASS ? out_c - ch0 : CHANNELS_PER_PASS;
        channel_sums(count, w.values, w.index_u8, w.index_u16, w.row_start_u16 ? w.row_start_u16 + ch0 : 0,
                     w.row_start_u32 ? w.row_start_u32 + ch0 : 0, bias + ch0, tile, sums);
#if defined(__ARM_FEATURE_DSP)
        if (right_shifts && first == NN_CONV_TILE && second == NN_CONV_TILE) {
            channel_outputs(clamps, count, sums, multiplier + ch0, shift + ch0, offset, lo4, hi4, output + ch0,
                            out_c);
            continue;
        }
#else
        (void)right_shifts;
#endif
        for (int32_t k = 0; k < count; ++k) {
            const int32_t ch = ch0 + k;
            store_pixels(requantize4(sums[k], multiplier[ch], shift[ch], offset, clamps, lo4, hi4), first,
                         output + ch, out_c);
            store_pixels(requantize4(sums[k] + NN_CONV_TILE, multiplier[ch], shift[ch], offset, clamps, lo4, hi4),
                         second, output + second_at + ch, out_c);
        }
    }
}

/*
 * The whole image, 8 pixels (two walks of NN_CONV_TILE) at a time. Each
 * walk's windows are gathered before the next walk may refill the band;
 * past the image's last pixel the second half repeats the first (the walk
 * leaves the corners as they were), computed and not stored.
 */
static void buffered(const nn_window *win, const nn_requant *requant, const int8_t *input,
                     const nn_csr_s8 *weights, const int32_t *bias, int8_t *output, int8_t *buffer)
{
    uint32_t tile[NN_CSR_TILE_WINDOW_MAX * TILE_WORDS];
    const int32_t row_step = nn_sparse_conv_row_step(win);
    const int32_t out_c = win->output.c;
    const int clamps = requant->act_min > -128 || requant->act_max < 127; /* a fused activation */
    int right_shifts = 1; /* channel_outputs' domain */
    for (int32_t ch = 0; ch < out_c; ++ch) {
        right_shifts &= requant->shift[ch] <= -2;
    }
    nn_sparse_conv_walk walk = nn_sparse_conv_begin(win, input, (int8_t)(-requant->input_offset), buffer);
    const int8_t *corner[NN_CONV_TILE];
    for (int32_t first; (first = nn_sparse_conv_next(&walk, corner)) != 0;) {
        gather(tile, 0, corner, win, row_step);
        const int32_t second = nn_sparse_conv_next(&walk, corner);
        gather(tile, NN_CONV_TILE, corner, win, row_step);
        buffered_channels(requant, clamps, right_shifts, out_c, weights, bias, tile, first, second, output);
        output += (first + second) * out_c;
    }
}

/* ---- Larger windows: inputs gathered from the image per nonzero ---- */

/* The nonzero of value w whose inputs sit o bytes past each window corner (each evaluated once). */
#define TAP(w, o)                                        \
    do {                                                 \
        const int32_t value_ = (w);                      \
        const uint32_t offset_ = (o);                    \
        a0 += value_ * c0[offset_];                      \
        a1 += value_ * c1[offset_];                      \
        a2 += value_ * c2[offset_];                      \
        a3 += value_ * c3[offset_];                      \
    } while (0)

/*
 * One nonzero in assembly: index and value loads that step their pointers
 * (post-indexed), 4 input loads, 4 SMLABB.
 */
#define TAP_ASM(load, step)                              \
    load " %[o], [%[i]], #" #step "\n\t"                 \
    "ldrsb %[w], [%[v]], #1\n\t"                         \
    "ldrsb %[t], [%[c0], %[o]]\n\t"                      \
    "smlabb %[a0], %[w], %[t], %[a0]\n\t"                \
    "ldrsb %[t], [%[c1], %[o]]\n\t"                      \
    "smlabb %[a1], %[w], %[t], %[a1]\n\t"                \
    "ldrsb %[t], [%[c2], %[o]]\n\t"                      \
    "smlabb %[a2], %[w], %[t], %[a2]\n\t"                \
    "ldrsb %[t], [%[c3], %[o]]\n\t"                      \
    "smlabb %[a3], %[w], %[t], %[a3]\n\t"

/*
 * The nonzeros from v to end (an even count, at least 2) in assembly, 4 a
 * turn; a count of 4k + 2 enters the loop halfway. GCC's own loop steps
 * the pointers with separate ADDs and spills a corner (13.5 instructions
 * per nonzero unrolled by 2, 12 not unrolled); this one takes 10.5, in
 * all 14 allocatable registers. It reads memory through its pointers
 * only, hence the "memory" clobber.
 */
#define NONZEROS_ASM(load, step, index)                                                          \
    __asm__("sub %[t], %[end], %[v]\n\t"                                                         \
            "tst %[t], #2\n\t"                                                                   \
            "bne 2f\n"                                                                           \
            "1:\n\t" TAP_ASM(load, step) TAP_ASM(load, step)                                     \
            "2:\n\t" TAP_ASM(load, step) TAP_ASM(load, step)                                     \
            "cmp %[v], %[end]\n\t"                                                               \
            "bne 1b"                                                                             \
            : [v] "+r"(v), [i] "+r"(index), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2),         \
              [a3] "+r"(a3), [o] "=&r"(o_), [w] "=&r"(w_), [t] "=&r"(t_)                         \
            : [end] "r"(end), [c0] "r"(c0), [c1] "r"(c1), [c2] "r"(c2), [c3] "r"(c3)             \
            : "cc", "memory")

/*
 * One channel's n nonzeros against the tile's windows; one of index_u8 /
 * index_u16 is NULL. An odd n takes one nonzero first, then the loop takes
 * 2 or 4 a turn. The assembly loop runs on Arm cores with the DSP
 * extension (SMLABB); NN_EMULATE_DSP host builds take the C loop, which
 * computes the same sums.
 */
NN_INLINE void tile_dot(const int8_t *v, const uint8_t *index_u8, const uint16_t *index_u16, uint32_t n,
                        const int8_t *const corner[NN_CONV_TILE], int32_t acc[NN_CONV_TILE])
{
    const int8_t *c0 = corner[0], *c1 = corner[1], *c2 = corner[2], *c3 = corner[3];
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    const int8_t *const end = v + n;
#if defined(__ARM_FEATURE_DSP)
    uint32_t o_, w_, t_; /* NONZEROS_ASM's scratch registers */
#endif
    if (n & 1u) {
        TAP(*v++, index_u8 ? *index_u8++ : *index_u16++);
    }
#if defined(__ARM_FEATURE_DSP)
    if (v != end) {
        if (index_u8) {
            NONZEROS_ASM("ldrb", 1, index_u8);
        } else {
            NONZEROS_ASM("ldrh", 2, index_u16);
        }
    }
#else
    while (v != end) {
        TAP(*v++, index_u8 ? *index_u8++ : *index_u16++);
        TAP(*v++, index_u8 ? *index_u8++ : *index_u16++);
    }
#endif
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/*
 * Every channel of one tile; one of index_u8 / index_u16 is NULL, and each
 * case is inlined on its own, so no width test is left in the inner loop.
 */
NN_INLINE void tile(const nn_requant *requant, int32_t out_c, const nn_csr_s8 *weights,
                    const uint8_t *index_u8, const uint16_t *index_u16, const int32_t *bias,
                    const int8_t *const corner[NN_CONV_TILE], int32_t pixels, int8_t *output)
{
    uint32_t begin = nn_csr_row_start(weights, 0);
    for (int32_t ch = 0; ch < out_c; ++ch) {
        const uint32_t end = nn_csr_row_start(weights, ch + 1);
        int32_t acc[NN_CONV_TILE];
        tile_dot(weights->values + begin, index_u8 ? index_u8 + begin : 0, index_u8 ? 0 : index_u16 + begin,
                 end - begin, corner, acc);
        nn_sparse_conv_store(acc, pixels, ch, bias, requant, output, out_c);
        begin = end;
    }
}

nn_status nn_conv2d_csr_s8(const nn_conv2d_params *params, const int8_t *input,
                           const nn_csr_s8 *weights, const int32_t *bias, int8_t *output,
                           int8_t *buffer)
{
    const nn_window *win = &params->window;
    if (!nn_sparse_conv_is_valid(win, buffer)) {
        return NN_ERROR_ARGUMENT;
    }
    /* Local copies: an int8 store may alias anything, so they would be read again every channel. */
    const nn_requant requant = params->requant;
    const nn_csr_s8 w = *weights;
    if (win->kernel_h * win->kernel_w * win->input.c <= NN_CSR_TILE_WINDOW_MAX) {
        buffered(win, &requant, input, &w, bias, output, buffer);
        return NN_OK;
    }
    const int8_t zero_point = (int8_t)(-requant.input_offset);
    const int32_t out_c = win->output.c;
    nn_sparse_conv_walk walk = nn_sparse_conv_begin(win, input, zero_point, buffer);
    const int8_t *corner[NN_CONV_TILE];
    for (int32_t pixels; (pixels = nn_sparse_conv_next(&walk, corner)) != 0; output += pixels * out_c) {
        if (w.index_u8 != 0) {
            tile(&requant, out_c, &w, w.index_u8, 0, bias, corner, pixels, output);
        } else {
            tile(&requant, out_c, &w, 0, w.index_u16, bias, corner, pixels, output);
        }
    }
    return NN_OK;
}
