/*
 * FULLY_CONNECTED, int8, dense weights.
 *
 * Three output rows at a time share each load of the input, so the input
 * is read (and, on DSP cores, sign-extended) once per three rows. With the
 * DSP extension one 32-bit load brings four int8 values; SXTB16 splits a word
 * into its even and odd bytes as two int16 pairs, and SMLAD multiplies and
 * adds a pair of weights with the matching pair of inputs, so the even and
 * odd halves of the input word meet the even and odd halves of each weight
 * word: 4 MACs per row cost one load, two SXTB16 and two SMLAD. Inputs are
 * raw int8 (the bias is folded, see kernels.h), so no offset is added.
 * Results are the reference loop's: integer sums, in any order.
 */
#include "kernel_util.h"
#include "simd.h"

#if NN_DSP
/*
 * Adds to *a0..*a2 three rows' sums over the `whole` bytes (a multiple of
 * 4, above 0) that end at xe in the input and at w0e..w2e in the rows.
 * Bases at the end, an index counting up to 0: no increments, no end.
 * 12 registers (3 sums, 2 input halves, a weight word and one half of it,
 * 4 bases, the index).
 */
NN_INLINE void three_rows_words(const int8_t *xe, const int8_t *w0e, const int8_t *w1e, const int8_t *w2e,
                                int32_t whole, int32_t *a0, int32_t *a1, int32_t *a2)
{
#if defined(__ARM_FEATURE_DSP)
    /*
     * GCC's loop (the C one below), 20 instructions per word; in assembly
     * so that it keeps its registers wherever it is inlined (in
     * folded_deep_rows GCC's took 21, reloading x from the stack).
     */
    int32_t k = -whole, in, in_even, wv, t;
    __asm__ volatile("1:\n\t"
                     "ldr %[in], [%[x], %[k]]\n\t"
                     "ldr %[wv], [%[w0], %[k]]\n\t"
                     "sxtb16 %[ie], %[in]\n\t"
                     "sxtb16 %[in], %[in], ror #8\n\t"
                     "sxtb16 %[t], %[wv]\n\t"
                     "smlad %[a0], %[t], %[ie], %[a0]\n\t"
                     "sxtb16 %[wv], %[wv], ror #8\n\t"
                     "smlad %[a0], %[wv], %[in], %[a0]\n\t"
                     "ldr %[wv], [%[w1], %[k]]\n\t"
                     "sxtb16 %[t], %[wv]\n\t"
                     "smlad %[a1], %[t], %[ie], %[a1]\n\t"
                     "sxtb16 %[wv], %[wv], ror #8\n\t"
                     "smlad %[a1], %[wv], %[in], %[a1]\n\t"
                     "ldr %[wv], [%[w2], %[k]]\n\t"
                     "adds %[k], %[k], #4\n\t"
                     "sxtb16 %[t], %[wv]\n\t"
                     "smlad %[a2], %[t], %[ie], %[a2]\n\t"
                     "sxtb16 %[wv], %[wv], ror #8\n\t"
                     "smlad %[a2], %[wv], %[in], %[a2]\n\t"
                     "bne 1b"
                     : [k] "+r"(k), [a0] "+r"(*a0), [a1] "+r"(*a1), [a2] "+r"(*a2), [in] "=&r"(in),
                       [ie] "=&r"(in_even), [wv] "=&r"(wv), [t] "=&r"(t)
                     : [x] "r"(xe), [w0] "r"(w0e), [w1] "r"(w1e), [w2] "r"(w2e)
                     : "cc", "memory");
#else
    for (int32_t k = -whole; k != 0; k += 4) {
        const int32_t in = nn_read_s8x4(xe + k);
        const int32_t in_even = nn_sxtb16(in);
        const int32_t in_odd = nn_sxtb16_ror8(in);
        int32_t wv = nn_read_s8x4(w0e + k);
        *a0 = nn_smlad(nn_sxtb16(wv), in_even, *a0);
        *a0 = nn_smlad(nn_sxtb16_ror8(wv), in_odd, *a0);
        wv = nn_read_s8x4(w1e + k);
        *a1 = nn_smlad(nn_sxtb16(wv), in_even, *a1);
        *a1 = nn_smlad(nn_sxtb16_ror8(wv), in_odd, *a1);
        wv = nn_read_s8x4(w2e + k);
        *a2 = nn_smlad(nn_sxtb16(wv), in_even, *a2);
        *a2 = nn_smlad(nn_sxtb16_ror8(wv), in_odd, *a2);
    }
#endif
}
#endif

/*
 * Three rows' sums of weight * input; a row's weights are `depth` bytes
 * after the previous row's. Three, not four: the DSP loop keeps 12 values
 * in registers; four rows would need all 14 that Thumb-2 has, and GCC
 * then spills inside the loop, which costs more than the fourth row
 * saves.
 */
NN_INLINE void dot_three_rows(const int8_t *x, const int8_t *w, int32_t depth, int32_t acc[3])
{
    const int8_t *w0 = w;
    const int8_t *w1 = w0 + depth;
    const int8_t *w2 = w1 + depth;
    int32_t a0 = 0, a1 = 0, a2 = 0;
    int32_t i = 0;
#if NN_DSP
    const int32_t whole = depth & ~3;
    if (whole != 0) {
        three_rows_words(x + whole, w0 + whole, w1 + whole, w2 + whole, whole, &a0, &a1, &a2);
    }
    i = whole;
#endif
    /* Portable path, and the DSP path's last depth % 4 columns. */
    for (; i < depth; ++i) {
        const int32_t in = x[i];
        a0 += w0[i] * in;
        a1 += w1[i] * in;
        a2 += w2[i] * in;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
}

/* One row's sum of weight * input. */
NN_INLINE int32_t dot_one_row(const int8_t *x, const int8_t *w, int32_t depth)
{
    int32_t acc = 0;
    int32_t i = 0;
#if NN_DSP
    for (; i + 4 <= depth; i += 4) {
        const int32_t in = nn_read_s8x4(x + i);
        const int32_t wv = nn_read_s8x4(w + i);
        acc = nn_smlad(nn_sxtb16(wv), nn_sxtb16(in), acc);
        acc = nn_smlad(nn_sxtb16_ror8(wv), nn_sxtb16_ror8(in), acc);
    }
#endif
    for (; i < depth; ++i) {
        acc += w[i] * x[i];
    }
    return acc;
}

#if NN_DSP
/* Shifts above -2 (effective scales >= 1/4: rare), out of line to keep short_rows small. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static int32_t requantize_rare(int32_t acc, int32_t multiplier, int shift)
{
    return nn_requantize_reference(acc, multiplier, shift);
}

#define SHORT_DEPTH 8

/* The input's SHORT_DEPTH bytes as int16 pairs, even and odd bytes, widened once for all rows. */
NN_INLINE void widen_short(const int8_t *x, int32_t *even, int32_t *odd)
{
    for (int32_t k = 0; k < SHORT_DEPTH / 4; ++k) {
        const int32_t in = nn_read_s8x4(x + 4 * k);
        even[k] = nn_sxtb16(in);
        odd[k] = nn_sxtb16_ror8(in);
    }
}

/* acc plus one row of SHORT_DEPTH weights against the widened input. */
NN_INLINE int32_t short_dot(const int8_t *w, const int32_t *even, const int32_t *odd, int32_t acc)
{
    for (int32_t k = 0; k < SHORT_DEPTH / 4; ++k) {
        const int32_t wv = nn_read_s8x4(w + 4 * k);
        acc = nn_smlad(nn_sxtb16(wv), even[k], acc);
        acc = nn_smlad(nn_sxtb16_ror8(wv), odd[k], acc);
    }
    return acc;
}

/* One row of SHORT_DEPTH weights, bias included, requantized. */
NN_INLINE int32_t short_row(const int8_t *w, const int32_t *even, const int32_t *odd, int32_t acc,
                            int32_t multiplier, int shift)
{
    acc = short_dot(w, even, odd, acc);
    return __builtin_expect(shift <= -2, 1) ? nn_requantize_right_shift(acc, multiplier, shift)
                                            : requantize_rare(acc, multiplier, shift);
}

/*
 * Every row of a layer with SHORT_DEPTH inputs: an autoencoder's 8 -> 128
 * layer has 8 MACs per output, and the 3-row loop spent about 57
 * instructions per output on it, 40 of them outside its two turns. Here
 * the input is widened once for all rows and its halves stay in
 * registers; rows go 4 at a time, so 4 outputs share one packed clamp and
 * store (nn_pack_clamp_s8x4). Out of line, so that the other layers'
 * loops keep the registers they had (inlined, fc-256x256 lost 14 %).
 * Layers whose constants the compiler folded take folded_rows instead.
 */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void short_rows(const int8_t *x, const int8_t *w, int32_t rows, const int32_t *bias,
                       const nn_requant *params, int8_t *output)
{
    const nn_requant requant = *params; /* output bytes may alias *params */
    int32_t even[SHORT_DEPTH / 4], odd[SHORT_DEPTH / 4];
    widen_short(x, even, odd);
    const int32_t *const m = requant.multiplier;
    const int8_t *const sh = requant.shift;
    const int32_t offset = requant.output_offset;
    const int32_t lo4 = nn_s8x4_splat(requant.act_min), hi4 = nn_s8x4_splat(requant.act_max);
    int32_t r = 0;
    for (; r + 4 <= rows; r += 4, w += 4 * SHORT_DEPTH) {
        const int8_t *const w1 = w + SHORT_DEPTH, *const w2 = w1 + SHORT_DEPTH, *const w3 = w2 + SHORT_DEPTH;
        const int32_t y0 = short_row(w, even, odd, bias[r], m[r], sh[r]) + offset;
        const int32_t y1 = short_row(w1, even, odd, bias[r + 1], m[r + 1], sh[r + 1]) + offset;
        const int32_t y2 = short_row(w2, even, odd, bias[r + 2], m[r + 2], sh[r + 2]) + offset;
        const int32_t y3 = short_row(w3, even, odd, bias[r + 3], m[r + 3], sh[r + 3]) + offset;
        nn_write_s8x4(output + r, nn_pack_clamp_s8x4(y0, y1, y2, y3, lo4, hi4));
    }
    for (; r < rows; ++r, w += SHORT_DEPTH) {
        output[r] = nn_clamp_s8(short_row(w, even, odd, bias[r], m[r], sh[r]) + offset, requant.act_min,
                                requant.act_max);
    }
}

/*
 * short_rows with the compiler's per-channel constants (params->folded):
 * per output the 8 MACs, the bias and the 3 words, then only
 * nn_requantize_folded (ADD, AND, ORR, SMLAL, ASR), SSAT and STRB; no
 * range test, no 2^(e-2), and the offset only where it did not fold (an
 * ADD). One row at a time: 4 rows' results and constants would not fit
 * in registers. A clamped activation range (ReLU6, or a ReLU whose zero
 * point is not -128) adds a MAX and a MIN.
 */
/* acc (bias included) requantized with a channel's 3 folded words, saturated to int8. */
NN_INLINE int32_t folded_value(int32_t acc, const int32_t *folded)
{
    return nn_ssat8(nn_requantize_folded(acc, folded[0], folded[1], folded[2] & 0xFF) + (folded[2] >> 8));
}

NN_INLINE int8_t folded_output(int32_t acc, const int32_t *folded, int32_t lo, int32_t hi)
{
    return nn_clamp_s8(folded_value(acc, folded), lo, hi);
}

NN_INLINE void folded_rows_c(const int32_t *even, const int32_t *odd, const int8_t *w, int32_t rows,
                             const int32_t *bias, const int32_t *folded, int8_t *output, int32_t lo, int32_t hi)
{
    for (int32_t r = 0; r < rows; ++r, w += SHORT_DEPTH, folded += 3) {
        output[r] = folded_output(short_dot(w, even, odd, bias[r]), folded, lo, hi);
    }
}

#if defined(__ARM_FEATURE_DSP)
/*
 * One output of folded_rows' assembly loops, 20 instructions (21 with
 * `after`, the ADD of an offset that did not fold: bits 8-31 of the word
 * whose bits 0-7 the ASR reads): 2 LDR of weights, the bias, 4 SXTB16 and
 * 4 SMLAD, LDR and LDRD of the constants, the 5 of the requantization,
 * SSAT, STRB. GCC's loop (the C one above) took 25: it steps the 3
 * pointers with separate ADDs and tests the end after each row.
 */
#define FC_FOLDED_ROW_ASM(after) \
    "ldr %[wb], [%[w], #4]\n\t" \
    "ldr %[wa], [%[w]], #8\n\t" \
    "ldr %[acc], [%[bias]], #4\n\t" \
    "sxtb16 %[t], %[wa]\n\t" \
    "smlad %[acc], %[t], %[x0], %[acc]\n\t" \
    "sxtb16 %[wa], %[wa], ror #8\n\t" \
    "smlad %[acc], %[wa], %[x1], %[acc]\n\t" \
    "sxtb16 %[t], %[wb]\n\t" \
    "smlad %[acc], %[t], %[x2], %[acc]\n\t" \
    "sxtb16 %[wb], %[wb], ror #8\n\t" \
    "smlad %[acc], %[wb], %[x3], %[acc]\n\t" \
    "ldr %[t], [%[f], #8]\n\t" \
    "ldrd %[wa], %[wb], [%[f]], #12\n\t" \
    "add %[wb], %[wb], %[acc], asr #31\n\t" \
    "and %[lo], %[acc], #0x80000000\n\t" \
    "orr %[lo], %[lo], #0x40000000\n\t" \
    "smlal %[lo], %[wb], %[acc], %[wa]\n\t" \
    "asr %[wb], %[wb], %[t]\n\t" \
    after \
    "ssat %[wb], #8, %[wb]\n\t" \
    "strb %[wb], [%[out]], #1\n\t"

/* Two rows a turn, an odd count entering at the second. */
#define FC_FOLDED_LOOP_ASM(after) \
    __asm__ volatile("cmp %[lo], #0\n\t" \
                     "bne 2f\n\t" \
                     "1:\n\t" \
                     FC_FOLDED_ROW_ASM(after) \
                     "2:\n\t" \
                     FC_FOLDED_ROW_ASM(after) \
                     "cmp %[out], %[end]\n\t" \
                     "bne 1b" \
                     : [w] "+r"(w), [bias] "+r"(bias), [f] "+r"(folded), [out] "+r"(output), [lo] "+r"(lo), \
                       [wa] "=&r"(wa), [wb] "=&r"(wb), [t] "=&r"(t), [acc] "=&r"(acc) \
                     : [x0] "r"(even[0]), [x1] "r"(odd[0]), [x2] "r"(even[1]), [x3] "r"(odd[1]), [end] "r"(end) \
                     : "cc", "memory")
#endif

/*
 * folded_rows_c for the activation range all of int8 (SSAT the only
 * clamp). All 14 registers: the 4 input halves, 4 pointers and the end,
 * 5 temporaries. A layer whose offsets all fold (not pruned: e - 1 below
 * 23 with any offset) takes the loop without the ADD.
 */
NN_INLINE void folded_rows_unclamped(const int32_t *even, const int32_t *odd, const int8_t *w, int32_t rows,
                                     const int32_t *bias, const int32_t *folded, int8_t *output,
                                     int32_t offset_after_shift)
{
#if defined(__ARM_FEATURE_DSP)
    const int8_t *const end = output + rows;
    int32_t wa, wb, t, acc, lo = rows & 1;
    if (offset_after_shift) {
        FC_FOLDED_LOOP_ASM("add %[wb], %[wb], %[t], asr #8\n\t");
    } else {
        FC_FOLDED_LOOP_ASM("");
    }
#else
    (void)offset_after_shift; /* the C loop adds bits 8-31, 0 where the offset folded */
    folded_rows_c(even, odd, w, rows, bias, folded, output, -128, 127);
#endif
}

/*
 * Every row of a layer with SHORT_DEPTH inputs whose constants the
 * compiler computed. Out of line, as short_rows.
 */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void folded_rows(const int8_t *x, const int8_t *w, int32_t rows, const int32_t *bias,
                        const nn_fully_connected_params *params, int8_t *output)
{
    const int32_t lo = params->requant.act_min, hi = params->requant.act_max;
    int32_t even[SHORT_DEPTH / 4], odd[SHORT_DEPTH / 4];
    widen_short(x, even, odd);
    if (lo == -128 && hi == 127) {
        folded_rows_unclamped(even, odd, w, rows, bias, params->folded, output, params->offset_after_shift);
    } else {
        folded_rows_c(even, odd, w, rows, bias, params->folded, output, lo, hi);
    }
}

/*
 * Rows in threes, from output up to output_end, of a layer whose depth is
 * a multiple of 4 (not SHORT_DEPTH), with the compiler's constants and
 * the activation range all of int8: each sum starts from its bias, and
 * per output only nn_requantize_folded, SSAT and STRB follow
 * three_rows_words. A wake-word model's FC 32 -> 3 is one such triple.
 */
#if defined(__ARM_FEATURE_DSP)
/*
 * One input word against the 3 rows' words (addresses x, w0, w1, w2): 4
 * LDR, 8 SXTB16, 6 SMLAD into r6-r8.
 */
#define FC_TRIPLE_WORD(x, w0, w1, w2) \
    "ldr r9, " x "\n\t" \
    "ldr r11, " w0 "\n\t" \
    "sxtb16 r10, r9\n\t" \
    "sxtb16 r9, r9, ror #8\n\t" \
    "sxtb16 r12, r11\n\t" \
    "smlad r6, r12, r10, r6\n\t" \
    "sxtb16 r11, r11, ror #8\n\t" \
    "smlad r6, r11, r9, r6\n\t" \
    "ldr r11, " w1 "\n\t" \
    "sxtb16 r12, r11\n\t" \
    "smlad r7, r12, r10, r7\n\t" \
    "sxtb16 r11, r11, ror #8\n\t" \
    "smlad r7, r11, r9, r7\n\t" \
    "ldr r11, " w2 "\n\t" \
    "sxtb16 r12, r11\n\t" \
    "smlad r8, r12, r10, r8\n\t" \
    "sxtb16 r11, r11, ror #8\n\t" \
    "smlad r8, r11, r9, r8\n\t"

/* The sum in `acc` requantized with the 3 words at r3 (which it steps), saturated: 8 instructions. */
#define FC_TRIPLE_REQUANTIZE(acc) \
    "ldmia r3!, {r9, r10, r11}\n\t" \
    "and r12, " acc ", #0x80000000\n\t" \
    "add r10, r10, " acc ", asr #31\n\t" \
    "orr r12, r12, #0x40000000\n\t" \
    "smlal r12, r10, " acc ", r9\n\t" \
    "asr r10, r10, r11\n\t" \
    "add r10, r10, r11, asr #8\n\t" \
    "ssat " acc ", #8, r10\n\t"

/*
 * In assembly: 197 instructions for the wake word's triple, where GCC's
 * (the C below) took 239. Per triple: LDM of the 3 biases into the sums,
 * the input and row pointers, the test of an odd word count (6; 5 more
 * when odd: the loop then enters at its second word); 18 per input word
 * (FC_TRIPLE_WORD) and CMP, BNE per 2; per output FC_TRIPLE_REQUANTIZE
 * (LDM of its 3 words, ADD, AND, ORR, SMLAL, ASR, the ADD of an offset
 * that did not fold: bits 8-31 of the word whose bits 0-7 the ASR reads;
 * SSAT) and STRB; folded, output and output_end from and to the stack
 * arguments (6), the next row pointer, CMP, BNE. Registers: r0 the input,
 * r1 r3 r4 the rows, r5 the input's end, r2 depth, r6-r8 the sums, r9-r12
 * temporaries, lr the bias pointer: all 14.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter" /* the assembly reads them from r0-r3 and the stack */
__attribute__((naked, noinline)) static void folded_row_triples(const int8_t *x, const int8_t *w, int32_t depth,
                                                               const int32_t *bias, const int32_t *folded,
                                                               int8_t *output, const int8_t *output_end)
{
    __asm__ volatile("push {r4-r11, lr}\n\t"
                     "add r5, r0, r2\n\t"
                     "mov lr, r3\n\t"
                     "1:\n\t"
                     "ldmia lr!, {r6, r7, r8}\n\t"
                     "sub r0, r5, r2\n\t"
                     "add r3, r1, r2\n\t"
                     "add r4, r3, r2\n\t"
                     "tst r2, #4\n\t"
                     "beq 2f\n\t"
                     "adds r0, r0, #4\n\t"
                     "adds r1, r1, #4\n\t"
                     "adds r3, r3, #4\n\t"
                     "adds r4, r4, #4\n\t"
                     "b 3f\n\t"
                     "2:\n\t"
                     FC_TRIPLE_WORD("[r0], #8", "[r1], #8", "[r3], #8", "[r4], #8")
                     "3:\n\t"
                     FC_TRIPLE_WORD("[r0, #-4]", "[r1, #-4]", "[r3, #-4]", "[r4, #-4]")
                     "cmp r0, r5\n\t"
                     "bne 2b\n\t"
                     "ldr r3, [sp, #36]\n\t" /* folded, above the 9 registers pushed */
                     FC_TRIPLE_REQUANTIZE("r6") FC_TRIPLE_REQUANTIZE("r7") FC_TRIPLE_REQUANTIZE("r8")
                     "str r3, [sp, #36]\n\t"
                     "ldr r3, [sp, #40]\n\t" /* output */
                     "ldr r12, [sp, #44]\n\t" /* output_end */
                     "strb r6, [r3], #1\n\t"
                     "strb r7, [r3], #1\n\t"
                     "strb r8, [r3], #1\n\t"
                     "str r3, [sp, #40]\n\t"
                     "mov r1, r4\n\t"
                     "cmp r3, r12\n\t"
                     "bne 1b\n\t"
                     "pop {r4-r11, pc}");
}
#pragma GCC diagnostic pop
#else
static void folded_row_triples(const int8_t *x, const int8_t *w, int32_t depth, const int32_t *bias,
                               const int32_t *folded, int8_t *output, const int8_t *output_end)
{
    const int8_t *const xe = x + depth;
    for (; output != output_end; output += 3, bias += 3, folded += 9) {
        const int8_t *const w0e = w + depth, *const w1e = w0e + depth, *const w2e = w1e + depth;
        int32_t a0 = bias[0], a1 = bias[1], a2 = bias[2];
        three_rows_words(xe, w0e, w1e, w2e, depth, &a0, &a1, &a2);
        output[0] = (int8_t)folded_value(a0, folded);
        output[1] = (int8_t)folded_value(a1, folded + 3);
        output[2] = (int8_t)folded_value(a2, folded + 6);
        w = w2e;
    }
}
#endif

/*
 * Rows of a layer of up to 64 inputs, not SHORT_DEPTH, with the
 * compiler's constants that folded_row_triples does not take (any depth,
 * any activation range): the 3-row loop, then per output the bias and
 * folded_output. Out of line, as short_rows.
 */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void folded_deep_rows(const int8_t *x, const int8_t *w, int32_t depth, int32_t rows, const int32_t *bias,
                             const int32_t *folded, int8_t *output, int32_t lo, int32_t hi)
{
    const int8_t *const end = output + rows;
    /* The 3 outputs spelled out: a loop over acc[] kept it on the stack. */
    for (; end - output >= 3; output += 3, w += 3 * depth, bias += 3, folded += 9) {
        int32_t acc[3];
        dot_three_rows(x, w, depth, acc);
        output[0] = folded_output(acc[0] + bias[0], folded, lo, hi);
        output[1] = folded_output(acc[1] + bias[1], folded + 3, lo, hi);
        output[2] = folded_output(acc[2] + bias[2], folded + 6, lo, hi);
    }
    for (; output != end; ++output, w += depth, ++bias, folded += 3) {
        *output = folded_output(dot_one_row(x, w, depth) + *bias, folded, lo, hi);
    }
}

/*
 * One batch of a layer whose constants the compiler computed. Out of line:
 * in folded_layer's loop GCC kept everything this computes for the rest
 * of the loop, 40 more instructions for a single batch.
 */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static nn_status folded_batch(const nn_fully_connected_params *params, const int8_t *x, const int8_t *weights,
                              const int32_t *bias, int8_t *output)
{
    const int32_t depth = params->input_depth, rows = params->output_depth;
    const int32_t lo = params->requant.act_min, hi = params->requant.act_max;
    if (depth == SHORT_DEPTH) {
        folded_rows(x, weights, rows, bias, params, output);
        return NN_OK;
    }
    /* Rows folded_row_triples takes; folded_deep_rows the others. */
    const int32_t done = depth % 4 == 0 && lo == -128 && hi == 127 ? rows - rows % 3 : 0;
    if (done) {
        folded_row_triples(x, weights, depth, bias, params->folded, output, output + done);
    }
    if (done != rows) {
        folded_deep_rows(x, weights + done * depth, depth, rows - done, bias + done, params->folded + 3 * done,
                         output + done, lo, hi);
    }
    return NN_OK;
}

/* Out of line, so that nn_fully_connected_s8 saves no registers before it dispatches. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static nn_status folded_layer(const nn_fully_connected_params *params, const int8_t *input, const int8_t *weights,
                              const int32_t *bias, int8_t *output)
{
    for (int32_t b = 0; b < params->batches; ++b) {
        folded_batch(params, input + b * params->input_depth, weights, bias, output + b * params->output_depth);
    }
    return NN_OK;
}
#endif

/* A layer whose constants are derived at run time: the 3-row loop, or short_rows for SHORT_DEPTH inputs. */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static nn_status run_time_layer(const nn_fully_connected_params *params, const int8_t *input,
                                const int8_t *weights, const int32_t *bias, int8_t *output)
{
    const int32_t depth = params->input_depth;
    const int32_t rows = params->output_depth;
#if NN_DSP
    if (depth == SHORT_DEPTH) {
        for (int32_t b = 0; b < params->batches; ++b) {
            short_rows(input + b * depth, weights, rows, bias, &params->requant, output + b * rows);
        }
        return NN_OK;
    }
#endif
    /* A local copy: stores through int8_t pointers could alias *params, forcing reloads. */
    const nn_requant requant = params->requant;
    for (int32_t b = 0; b < params->batches; ++b) {
        const int8_t *x = input + b * depth;
        int32_t row = 0;
        for (; row + 3 <= rows; row += 3) {
            int32_t acc[3];
            dot_three_rows(x, weights + row * depth, depth, acc);
            for (int32_t k = 0; k < 3; ++k) {
                *output++ = nn_requantize_channel(acc[k], bias, row + k, &requant);
            }
        }
        for (; row < rows; ++row) {
            const int32_t acc = dot_one_row(x, weights + row * depth, depth);
            *output++ = nn_requantize_channel(acc, bias, row, &requant);
        }
    }
    return NN_OK;
}

/* Out of line, both paths: this function then needs no registers saved before it dispatches. */
nn_status nn_fully_connected_s8(const nn_fully_connected_params *params, const int8_t *input,
                                const int8_t *weights, const int32_t *bias, int8_t *output)
{
    if (params->batches <= 0 || params->input_depth <= 0 || params->output_depth <= 0) {
        return NN_ERROR_ARGUMENT;
    }
#if NN_DSP
    if (params->folded) {
        return params->batches == 1 ? folded_batch(params, input, weights, bias, output)
                                    : folded_layer(params, input, weights, bias, output);
    }
#endif
    return run_time_layer(params, input, weights, bias, output);
}
