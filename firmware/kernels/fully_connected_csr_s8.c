/*
 * FULLY_CONNECTED, int8, CSR weights: one sparse dot product per output.
 *
 * On cores with the DSP extension the whole pass over a block of rows is
 * inline assembly (ROWS_ASM): per row its end, the sum from the bias, the
 * n % 4 leftover nonzeros one at a time, then a loop of 32 nonzeros a
 * turn entered part-way (a Duff's device: a first turn of n / 4 % 8
 * groups of 4), so the loop test and the pointer steps are paid once per
 * 32 and no row has a leftover group. Each 4 values come in one word
 * load, sign-extended in pairs (SXTB16), and meet their 4 gathered
 * inputs, packed in pairs (PKHBT), in 2 SMLADs: the gather itself (an
 * index load and an input load per nonzero) cannot be packed. The output
 * stage, 4 rows at a time, is assembly too (OUTPUTS_ASM). Host builds,
 * NN_EMULATE_DSP included, take the C code below, which computes the same
 * sums and bytes.
 */
#include "kernel_util.h"
#include "simd.h"

/* Rows whose sums wait on the stack (4 bytes each) for the output stage. */
#define ROWS_PER_PASS 64

#if !defined(__ARM_FEATURE_DSP)
/* ---- Host builds: the same sums in C ---- */

/* Index k of the one non-NULL index array: index_u16 when wide (inlining folds every test on it). */
NN_INLINE uint32_t column(int wide, const uint8_t *index_u8, const uint16_t *index_u16, uint32_t k)
{
    return wide ? index_u16[k] : index_u8[k];
}

/* The 4 nonzeros at v against the inputs their 4 indices, from k on, name. */
NN_INLINE int32_t mac4(int32_t acc, const int8_t *v, int wide, const uint8_t *index_u8,
                       const uint16_t *index_u16, uint32_t k, const int8_t *x)
{
    const int32_t x0 = x[column(wide, index_u8, index_u16, k)];
    const int32_t x1 = x[column(wide, index_u8, index_u16, k + 1)];
    const int32_t x2 = x[column(wide, index_u8, index_u16, k + 2)];
    const int32_t x3 = x[column(wide, index_u8, index_u16, k + 3)];
#if NN_DSP
    const int32_t w = nn_read_s8x4(v + k);
    acc = nn_smlad(nn_sxtb16(w), nn_pkhbt16(x0, x2), acc);
    return nn_smlad(nn_sxtb16_ror8(w), nn_pkhbt16(x1, x3), acc);
#else
    return acc + v[k] * x0 + v[k + 1] * x1 + v[k + 2] * x2 + v[k + 3] * x3;
#endif
}


/*
 * acc + sum of v[k] * x[index[k]] for the nonzeros from *v up to end, for
 * the index array the caller passes non-NULL; both pointers are left at
 * end. The n % 8 leftovers go first, then 8 a turn.
 */
NN_INLINE int32_t sparse_dot(int32_t acc, const int8_t **vp, int wide, const uint8_t **index_u8p,
                             const uint16_t **index_u16p, const int8_t *end, const int8_t *x)
{
    const int8_t *v = *vp;
    const uint8_t *index_u8 = *index_u8p;
    const uint16_t *index_u16 = *index_u16p;
    const uint32_t head = (uint32_t)(end - v) & 7u;
    for (uint32_t k = 0; k < head; ++k) {
        acc += v[k] * x[column(wide, index_u8, index_u16, k)];
    }
    v += head;
    if (!wide) {
        index_u8 += head;
    } else {
        index_u16 += head;
    }
    for (; v != end; v += 8) {
        acc = mac4(acc, v, wide, index_u8, index_u16, 0, x);
        acc = mac4(acc, v, wide, index_u8, index_u16, 4, x);
        if (!wide) {
            index_u8 += 8;
        } else {
            index_u16 += 8;
        }
    }
    *vp = v;
    *index_u8p = index_u8;
    *index_u16p = index_u16;
    return acc;
}

/*
 * The sums (bias included) of `count` consecutive rows, whose row starts
 * begin at start_u16 / start_u32, into sum. Exactly one of index_u8 /
 * index_u16 and one of start_u16 / start_u32 is non-NULL; each of the 4
 * combinations is inlined on its own. Rows are consecutive, so the value
 * and index pointers run on from one row into the next.
 */
NN_INLINE void rows_c(int32_t count, const int8_t *x, const int8_t *values, const uint8_t *index_u8,
                      const uint16_t *index_u16, const uint16_t *start_u16, const uint32_t *start_u32,
                      const int32_t *bias, int32_t *sum)
{
    const int wide = index_u16 != 0;
    const uint32_t first = start_u16 ? start_u16[0] : start_u32[0];
    const int8_t *v = values + first;
    if (!wide) {
        index_u8 += first;
    } else {
        index_u16 += first;
    }
    for (int32_t r = 0; r < count; ++r) {
        const int8_t *const end = values + (start_u16 ? start_u16[r + 1] : start_u32[r + 1]);
        sum[r] = sparse_dot(bias[r], &v, wide, &index_u8, &index_u16, end, x);
    }
}

/* The sums (bias included) of rows row0 .. row0 + count - 1 into sum. */
static void row_sums(int32_t count, int32_t row0, const int8_t *x, const nn_csr_s8 *w, const int32_t *bias,
                     int32_t *sum)
{
    const uint16_t *start_u16 = w->row_start_u16 ? w->row_start_u16 + row0 : 0;
    const uint32_t *start_u32 = w->row_start_u32 ? w->row_start_u32 + row0 : 0;
    if (w->index_u8 != 0 && start_u16 != 0) {
        rows_c(count, x, w->values, w->index_u8, 0, start_u16, 0, bias + row0, sum);
    } else if (w->index_u8 != 0) {
        rows_c(count, x, w->values, w->index_u8, 0, 0, start_u32, bias + row0, sum);
    } else if (start_u16 != 0) {
        rows_c(count, x, w->values, 0, w->index_u16, start_u16, 0, bias + row0, sum);
    } else {
        rows_c(count, x, w->values, 0, w->index_u16, 0, start_u32, bias + row0, sum);
    }
}

#else /* ---- Cores with the DSP extension: the row pass in assembly ---- */

/*
 * Two nonzeros: the inputs the indices in t0 and t1 name, packed in
 * halfwords, against the values SXTB16 (with `ror`) takes from w.
 */
#define PAIR_ASM(ror)                                                                              \
    "ldrsb.w %[t0], [%[x], %[t0]]\n\t"                                                             \
    "ldrsb.w %[t1], [%[x], %[t1]]\n\t"                                                             \
    "pkhbt %[t0], %[t0], %[t1], lsl #16\n\t"                                                       \
    "sxtb16 %[t1], %[w]" ror "\n\t"                                                                \
    "smlad %[acc], %[t1], %[t0], %[acc]\n\t"

/* Index k (0..31) of a turn into register reg; i already points past the turn. */
#define INDEX_ASM(load, size, reg, k) load ".w %[" reg "], [%[i], #(" #k "-32)*" #size "]\n\t"

/*
 * Group p (0..7) of 4 nonzeros of a turn of 32: its value word, 4 indices,
 * 4 inputs, 2 PKHBT, 2 SXTB16, 2 SMLAD (15 instructions). Group 0 comes
 * first in a full turn and steps both pointers past the turn (its first
 * loads, post-indexed), so every other group reads below them, at
 * negative offsets, and a turn entered at group p > 0 needs its pointers
 * set past it first.
 */
#define GROUP_ASM(load, size, p)                                                                   \
    "ldr.w %[w], [%[v], #4*" #p "-32]\n\t"                                                         \
    INDEX_ASM(load, size, "t0", 4*p) INDEX_ASM(load, size, "t1", 4*p+2) PAIR_ASM("")               \
    INDEX_ASM(load, size, "t0", 4*p+1) INDEX_ASM(load, size, "t1", 4*p+3) PAIR_ASM(", ror #8")

#define GROUP0_ASM(load, size)                                                                     \
    "ldr.w %[w], [%[v]], #32\n\t"                                                                  \
    load ".w %[t0], [%[i]], #32*" #size "\n\t"                                                     \
    INDEX_ASM(load, size, "t1", 2) PAIR_ASM("")                                                    \
    INDEX_ASM(load, size, "t0", 1) INDEX_ASM(load, size, "t1", 3) PAIR_ASM(", ror #8")

/* One nonzero (4 instructions): index, input, value, SMLABB; the loads step their pointers. */
#define SINGLE_ASM(load, size)                                                                     \
    load " %[t1], [%[i]], #" #size "\n\t"                                                          \
    "ldrsb %[t1], [%[x], %[t1]]\n\t"                                                               \
    "ldrsb %[w], [%[v]], #1\n\t"                                                                   \
    "smlabb %[acc], %[w], %[t1], %[acc]\n\t"

/*
 * Every row of a pass, for indices of `size` bytes loaded by `load`
 * (`scale` turns a count of nonzeros into their index bytes) and row
 * starts loaded by `load_start`, `step` bytes apart. Per row: its end,
 * the bias, n % 4 single nonzeros (LSLS puts bit 1 of n in C and bit 0
 * in N), then, if n / 4 % 8 = c > 0, a first turn of c groups: the
 * pointers are set past it and ADD PC jumps 60 (8 - c) bytes into the
 * groups (each group exactly 60 bytes, 15 wide instructions; the
 * assembler checks it); then full turns. The sum is stored (post-indexed)
 * and the pass ends at stop. It reads memory through its pointers only,
 * hence the "memory" clobber.
 */
#define ROWS_ASM(load, size, scale, load_start, step)                                              \
    __asm__ volatile("1:\n\t"                                                                      \
            load_start " %[t0], [%[start]], #" #step "\n\t"                                        \
            "add %[end], %[values], %[t0]\n\t"                                                     \
            "ldr %[acc], [%[bias]], #4\n\t"                                                        \
            "sub %[t0], %[end], %[v]\n\t"                                                          \
            "lsls %[t1], %[t0], #31\n\t"                                                           \
            "bpl 2f\n\t"                                                                           \
            SINGLE_ASM(load, size)                                                                 \
            "2:\n\t"                                                                               \
            "bcc 3f\n\t"                                                                           \
            SINGLE_ASM(load, size) SINGLE_ASM(load, size)                                          \
            "3:\n\t"                                                                               \
            "ands %[t0], %[t0], #28\n\t"                                                           \
            "bne 6f\n\t"                                                                           \
            "cmp %[v], %[end]\n\t"                                                                 \
            "bne 10f\n\t"                                                                          \
            "b 8f\n"                                                                               \
            "6:\n\t"                                                                               \
            "add %[v], %[v], %[t0]\n\t"                                                            \
            "add %[i], %[i], %[t0]" scale "\n\t"                                                   \
            "rsb %[t0], %[t0], #32\n\t"                                                            \
            "rsb %[t0], %[t0], %[t0], lsl #4\n\t"                                                  \
            "add pc, %[t0]\n\t"                                                                    \
            "nop.n\n"                                                                              \
            "10:\n\t" GROUP0_ASM(load, size)                                                       \
            "11:\n\t" GROUP_ASM(load, size, 1)                                                     \
            "12:\n\t" GROUP_ASM(load, size, 2)                                                     \
            "13:\n\t" GROUP_ASM(load, size, 3)                                                     \
            "14:\n\t" GROUP_ASM(load, size, 4)                                                     \
            "15:\n\t" GROUP_ASM(load, size, 5)                                                     \
            "16:\n\t" GROUP_ASM(load, size, 6)                                                     \
            "17:\n\t" GROUP_ASM(load, size, 7)                                                     \
            ".if (11b - 10b != 60) || (17b - 11b != 6 * 60)\n\t"                                   \
            ".error \"a group of 4 is not 60 bytes: the computed entry misses\"\n\t"               \
            ".endif\n\t"                                                                           \
            "cmp %[v], %[end]\n\t"                                                                 \
            "bne 10b\n"                                                                            \
            "8:\n\t"                                                                               \
            "str %[acc], [%[sum]], #4\n\t"                                                         \
            "cmp %[sum], %[stop]\n\t"                                                              \
            "bne 1b"                                                                               \
            : [v] "+r"(v), [i] "+r"(index), [start] "+r"(start), [bias] "+r"(bias), [sum] "+r"(sum), \
              [acc] "=&r"(acc_), [w] "=&r"(w_), [t0] "=&r"(t0_), [t1] "=&r"(t1_), [end] "=&r"(end_) \
            : [x] "r"(x), [values] "r"(values), [stop] "r"(stop)                                   \
            : "cc", "memory")

/*
 * The sums (bias included) of rows row0 .. row0 + count - 1 (count >= 1)
 * into sum, through ROWS_ASM for the arrays' widths.
 */
static void row_sums(int32_t count, int32_t row0, const int8_t *x, const nn_csr_s8 *w, const int32_t *bias,
                     int32_t *sum)
{
    const uint32_t first = nn_csr_row_start(w, row0);
    const int8_t *const values = w->values;
    const int8_t *v = values + first;
    const int32_t *const stop = sum + count;
    int32_t acc_, w_, t0_, t1_; /* ROWS_ASM's scratch registers */
    const int8_t *end_;
    bias += row0;
    if (w->index_u8 != 0) {
        const uint8_t *index = w->index_u8 + first;
        if (w->row_start_u16 != 0) {
            const uint16_t *start = w->row_start_u16 + row0 + 1;
            ROWS_ASM("ldrb", 1, "", "ldrh", 2);
        } else {
            const uint32_t *start = w->row_start_u32 + row0 + 1;
            ROWS_ASM("ldrb", 1, "", "ldr", 4);
        }
    } else {
        const uint16_t *index = w->index_u16 + first;
        if (w->row_start_u16 != 0) {
            const uint16_t *start = w->row_start_u16 + row0 + 1;
            ROWS_ASM("ldrh", 2, ", lsl #1", "ldrh", 2);
        } else {
            const uint32_t *start = w->row_start_u32 + row0 + 1;
            ROWS_ASM("ldrh", 2, ", lsl #1", "ldr", 4);
        }
    }
}

/*
 * One output of the 4 in r0-r3 (its sum), in nn_requantize_right_shift's
 * domain, its ASR amount e - 2 (e = -shift) in the bottom byte of e:
 * the 64-bit start 2^30 - [sum < 0] 2^31 (AND, ORR, ASR), SMLAL with the
 * multiplier, the high word shifted by e - 2, then (+ 2 offset + 1) / 2:
 * the rounding's last bit and the output offset in one ADD and ASR
 * (floor((floor(u / 2^(e-2)) + 1) / 2) = floor((u + 2^(e-2)) / 2^(e-1))),
 * and SSAT to int8. 9 instructions with the multiplier's load.
 */
#define REQUANTIZE_ASM(r)                                                                          \
    "ldr %[m], [%[mp]], #4\n\t"                                                                    \
    "and %[lo], " r ", #0x80000000\n\t"                                                            \
    "orr %[lo], %[lo], #0x40000000\n\t"                                                            \
    "asr %[hi], " r ", #31\n\t"                                                                    \
    "smlal %[lo], %[hi], " r ", %[m]\n\t"                                                          \
    "asr " r ", %[hi], %[e]\n\t"                                                                   \
    "add " r ", " r ", %[k]\n\t"                                                                   \
    "asr " r ", " r ", #1\n\t"                                                                     \
    "ssat " r ", #8, " r "\n\t"

/*
 * 4 rows a turn: their 4 shifts in one word, checked together (SADD8 of
 * 1 per byte sets a GE bit for each shift >= -1, outside the domain: the
 * turn then ends the loop before it stores anything) and turned into the
 * 4 ASR amounts -shift - 2 = 0xFE - shift, byte by byte (USUB8); the 4
 * sums in one LDM; 4 REQUANTIZE_ASM; 3 BFI pack the bytes; one word store.
 */
#define OUTPUTS_ASM(clamp)                                                                         \
    __asm__ volatile("1:\n\t"                                                                      \
            "ldr %[lo], [%[shp]], #4\n\t"                                                          \
            "mov %[hi], #0x01010101\n\t"                                                           \
            "sadd8 %[hi], %[lo], %[hi]\n\t"                                                        \
            "mrs %[hi], apsr\n\t"                                                                  \
            "tst %[hi], #0x000F0000\n\t"                                                           \
            "bne 9f\n\t"                                                                           \
            "mov %[hi], #0xFEFEFEFE\n\t"                                                           \
            "usub8 %[e], %[hi], %[lo]\n\t"                                                         \
            "ldmia %[s]!, {r0-r3}\n\t"                                                             \
            REQUANTIZE_ASM("r0") "lsr %[e], %[e], #8\n\t"                                          \
            REQUANTIZE_ASM("r1") "lsr %[e], %[e], #8\n\t"                                          \
            REQUANTIZE_ASM("r2") "lsr %[e], %[e], #8\n\t"                                          \
            REQUANTIZE_ASM("r3")                                                                   \
            "bfi r0, r1, #8, #8\n\t"                                                               \
            "bfi r0, r2, #16, #8\n\t"                                                              \
            "bfi r0, r3, #24, #8\n\t" clamp                                                        \
            "str r0, [%[o]], #4\n\t"                                                               \
            "cmp %[s], %[stop]\n\t"                                                                \
            "bne 1b\n"                                                                             \
            "9:"                                                                                   \
            : [s] "+r"(s), [mp] "+r"(multiplier), [shp] "+r"(shift), [o] "+r"(output),             \
              "=&r"(r0), "=&r"(r1), "=&r"(r2), "=&r"(r3), [m] "=&r"(m_), [e] "=&r"(e_),            \
              [lo] "=&r"(lo_), [hi] "=&r"(hi_)                                                     \
            : [k] "r"(k), [stop] "r"(stop), [lo4] "m"(lo4), [hi4] "m"(hi4)                         \
            : "cc", "memory")

/*
 * The outputs of the first rows of count4 (a multiple of 4, at least 4)
 * from their sums, 4 at a time, up to the first 4 with a shift outside
 * nn_requantize_right_shift's domain (> -2); returns how many were done.
 * Not inlined: the assembly takes every register, and reaches lo4 and
 * hi4 from SP.
 */
__attribute__((noinline)) static int32_t outputs_asm(int clamps, const int32_t *sum, int32_t count4,
                                                     const int32_t *multiplier, const int8_t *shift,
                                                     int32_t offset, int32_t lo4, int32_t hi4, int8_t *output)
{
    register int32_t r0 __asm__("r0"), r1 __asm__("r1"), r2 __asm__("r2"), r3 __asm__("r3");
    int32_t m_, e_, lo_, hi_; /* scratch registers */
    const int32_t *s = sum;
    const int32_t *const stop = sum + count4;
    const int32_t k = 2 * offset + 1;
    if (clamps) {
        OUTPUTS_ASM(NN_CLAMP_R0_ASM);
    } else {
        OUTPUTS_ASM("");
    }
    return (int32_t)(s - sum);
}

#endif

/*
 * Outputs row0 .. row0 + count - 1 from their sums (bias included), 4 at
 * a time: through the assembly on Arm DSP cores while the shifts allow,
 * else requantized, saturated, packed and clamped together
 * (nn_pack_clamp_s8x4) and stored in one word.
 */
static void output_stage(const int32_t *sum, int32_t count, int32_t row0, const nn_requant *requant,
                         int8_t *output)
{
    const int32_t *multiplier = requant->multiplier + row0;
    const int8_t *shift = requant->shift + row0;
    const int32_t offset = requant->output_offset, lo = requant->act_min, hi = requant->act_max;
    int32_t r = 0;
#if NN_DSP
    const int32_t lo4 = nn_s8x4_splat(lo), hi4 = nn_s8x4_splat(hi);
    for (; r + 4 <= count; r += 4) {
#if defined(__ARM_FEATURE_DSP)
        r += outputs_asm(lo > -128 || hi < 127, sum + r, (count - r) & ~3, multiplier + r, shift + r, offset, lo4,
                         hi4, output + r);
        if (r + 4 > count) {
            break;
        }
#endif
        const int32_t q0 = nn_requantize(sum[r], multiplier[r], shift[r]);
        const int32_t q1 = nn_requantize(sum[r + 1], multiplier[r + 1], shift[r + 1]);
        const int32_t q2 = nn_requantize(sum[r + 2], multiplier[r + 2], shift[r + 2]);
        const int32_t q3 = nn_requantize(sum[r + 3], multiplier[r + 3], shift[r + 3]);
        nn_write_s8x4(output + r, nn_pack_clamp_s8x4(q0 + offset, q1 + offset, q2 + offset, q3 + offset, lo4, hi4));
    }
#endif
    for (; r < count; ++r) {
        output[r] = nn_clamp_s8(nn_requantize(sum[r], multiplier[r], shift[r]) + offset, lo, hi);
    }
}

nn_status nn_fully_connected_csr_s8(const nn_fully_connected_params *params, const int8_t *input,
                                    const nn_csr_s8 *weights, const int32_t *bias, int8_t *output)
{
    if (params->batches <= 0 || params->input_depth <= 0 || params->output_depth <= 0) {
        return NN_ERROR_ARGUMENT;
    }
    const int32_t depth = params->output_depth;
    const nn_csr_s8 w = *weights;
    int32_t sum[ROWS_PER_PASS];
    for (int32_t b = 0; b < params->batches; ++b) {
        const int8_t *x = input + b * params->input_depth;
        int8_t *out = output + b * depth;
        for (int32_t row0 = 0; row0 < depth; row0 += ROWS_PER_PASS) {
            const int32_t count = depth - row0 < ROWS_PER_PASS ? depth - row0 : ROWS_PER_PASS;
            row_sums(count, row0, x, &w, bias, sum);
            output_stage(sum, count, row0, &params->requant, out + row0);
        }
    }
    return NN_OK;
}
