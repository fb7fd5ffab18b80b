/*
 * FULLY_CONNECTED, int8, CSR weights: one sparse dot product per output.
 *
 * The dot product takes 8 nonzeros per loop turn (inline assembly on DSP
 * cores), so the loop test and the pointer steps are paid once per 8. On
 * DSP cores each 4 values come in one word load, sign-extended in pairs
 * (SXTB16), and meet their 4 gathered inputs, packed in pairs (PKHBT), in
 * 2 SMLADs: the gather itself (an index load and an input load per
 * nonzero) cannot be packed. A row's n % 8 leftovers take straight-line
 * code before the loop, not a loop of their own, and the sum starts from
 * the bias.
 */
#include "kernel_util.h"
#include "simd.h"

/* Rows whose sums wait on the stack (4 bytes each) for the output stage. */
#define ROWS_PER_PASS 64

/*
 * Index k of the one non-NULL index array: index_u16 when wide. wide is
 * fixed before any pointer moves (the assembly loop's pointer outputs
 * would hide which one is NULL), so inlining folds every test on it.
 */
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
 * Two nonzeros in assembly: the inputs their indices (at addresses a, b)
 * name, packed in halfwords, against the values SXTB16 (with `ror`)
 * takes from the word w. b is loaded first, so a may step the pointer.
 */
#define PAIR_ASM(load, a, b, ror)                                                                  \
    load " %[t1], " b "\n\t"                                                                     \
    load " %[t0], " a "\n\t"                                                                     \
    "ldrsb %[t0], [%[x], %[t0]]\n\t"                                                             \
    "ldrsb %[t1], [%[x], %[t1]]\n\t"                                                             \
    "pkhbt %[t0], %[t0], %[t1], lsl #16\n\t"                                                     \
    "sxtb16 %[t1], %[w]" ror "\n\t"                                                              \
    "smlad %[acc], %[t1], %[t0], %[acc]\n\t"

/*
 * The 8-wide loop in assembly (a multiple of 8 nonzeros, at least 8), for
 * indices of `size` bytes loaded by `load`: 32 instructions per 8
 * nonzeros, where GCC's takes 34 (it steps both pointers with ADDs and
 * copies one). Here the last value load and the last index load step
 * their pointers (post-indexed), so nonzeros 4..7 go first and index 0 is
 * loaded last. It reads memory through its pointers only, hence the
 * "memory" clobber.
 */
#define EIGHTS_ASM(load, size, index)                                                              \
    __asm__("1:\n\t"                                                                             \
            "ldr %[w], [%[v], #4]\n\t"                                                           \
            PAIR_ASM(load, "[%[i], #4 * " #size "]", "[%[i], #6 * " #size "]", "")               \
            PAIR_ASM(load, "[%[i], #5 * " #size "]", "[%[i], #7 * " #size "]", ", ror #8")       \
            "ldr %[w], [%[v]], #8\n\t"                                                           \
            PAIR_ASM(load, "[%[i], #1 * " #size "]", "[%[i], #3 * " #size "]", ", ror #8")       \
            PAIR_ASM(load, "[%[i]], #8 * " #size, "[%[i], #2 * " #size "]", "")                  \
            "cmp %[v], %[end]\n\t"                                                               \
            "bne 1b"                                                                             \
            : [v] "+r"(v), [i] "+r"(index), [acc] "+r"(acc), [w] "=&r"(w_), [t0] "=&r"(t0_),     \
              [t1] "=&r"(t1_)                                                                    \
            : [end] "r"(end), [x] "r"(x)                                                         \
            : "cc", "memory")

/*
 * acc + sum of v[k] * x[index[k]] for the nonzeros from *v up to end, for
 * the index array the caller passes non-NULL; both pointers are left at
 * end. The n % 8 leftovers go first, through one computed entry (a jump
 * table, TBH): n % 4 single nonzeros (4 instructions each) and, for
 * n % 8 >= 4, one mac4; the 8-wide loop then ends the row with nothing
 * left over.
 */
NN_INLINE int32_t sparse_dot(int32_t acc, const int8_t **vp, int wide, const uint8_t **index_u8p,
                             const uint16_t **index_u16p, const int8_t *end, const int8_t *x)
{
    const int8_t *v = *vp;
    const uint8_t *index_u8 = *index_u8p;
    const uint16_t *index_u16 = *index_u16p;
    const uint32_t n = (uint32_t)(end - v);
    switch (n & 7u) {
    case 7:
        acc += v[6] * x[column(wide, index_u8, index_u16, 6)];
        /* fall through */
    case 6:
        acc += v[5] * x[column(wide, index_u8, index_u16, 5)];
        /* fall through */
    case 5:
        acc += v[4] * x[column(wide, index_u8, index_u16, 4)];
        /* fall through */
    case 4:
        acc = mac4(acc, v, wide, index_u8, index_u16, 0, x);
        break;
    case 3:
        acc += v[2] * x[column(wide, index_u8, index_u16, 2)];
        /* fall through */
    case 2:
        acc += v[1] * x[column(wide, index_u8, index_u16, 1)];
        /* fall through */
    case 1:
        acc += v[0] * x[column(wide, index_u8, index_u16, 0)];
        break;
    default:
        break;
    }
    const uint32_t head = n & 7u;
    v += head;
    if (!wide) {
        index_u8 += head;
    } else {
        index_u16 += head;
    }
    /* The assembly on Arm DSP cores only: NN_EMULATE_DSP host builds take the C loop (same sums). */
#if defined(__ARM_FEATURE_DSP)
    int32_t w_, t0_, t1_; /* EIGHTS_ASM's scratch registers */
    if (v != end) {
        if (!wide) {
            EIGHTS_ASM("ldrb", 1, index_u8);
        } else {
            EIGHTS_ASM("ldrh", 2, index_u16);
        }
    }
#else
    for (; v != end; v += 8) {
        acc = mac4(acc, v, wide, index_u8, index_u16, 0, x);
        acc = mac4(acc, v, wide, index_u8, index_u16, 4, x);
        if (!wide) {
            index_u8 += 8;
        } else {
            index_u16 += 8;
        }
    }
#endif
    *vp = v;
    *index_u8p = index_u8;
    *index_u16p = index_u16;
    return acc;
}

/*
 * Outputs row0 .. row0 + count - 1 from their sums (bias included). On
 * DSP cores 4 at a time: requantized, saturated, packed and clamped
 * together (nn_pack_clamp_s8x4) and stored in one word, where one output
 * at a time took SSAT, 2 SSUB8 + SEL and a byte store each, with the
 * clamp's range spilled from the registers the dot products needed.
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

/*
 * The sums (bias included) of `count` consecutive rows, whose row starts
 * begin at start_u16 / start_u32, into sum. Exactly one of index_u8 /
 * index_u16 and one of start_u16 / start_u32 is non-NULL; each of the 4
 * combinations is inlined on its own, so no width test is left in the
 * row loop. Rows are consecutive, so the value and index pointers run on
 * from one row into the next and a row costs one row-start load (its end).
 */
NN_INLINE void row_sums(int32_t count, const int8_t *x, const int8_t *values, const uint8_t *index_u8,
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
            const uint16_t *start_u16 = w.row_start_u16 ? w.row_start_u16 + row0 : 0;
            const uint32_t *start_u32 = w.row_start_u32 ? w.row_start_u32 + row0 : 0;
            if (w.index_u8 != 0 && start_u16 != 0) {
                row_sums(count, x, w.values, w.index_u8, 0, start_u16, 0, bias + row0, sum);
            } else if (w.index_u8 != 0) {
                row_sums(count, x, w.values, w.index_u8, 0, 0, start_u32, bias + row0, sum);
            } else if (start_u16 != 0) {
                row_sums(count, x, w.values, 0, w.index_u16, start_u16, 0, bias + row0, sum);
            } else {
                row_sums(count, x, w.values, 0, w.index_u16, 0, start_u32, bias + row0, sum);
            }
            output_stage(sum, count, row0, &params->requant, out + row0);
        }
    }
    return NN_OK;
}
