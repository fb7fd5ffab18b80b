/*
 * FULLY_CONNECTED, int8, N:M weights (kernels.h, nm_util.h).
 *
 * On DSP cores each batch row's input is first turned into the slot
 * table (every unit's possible input pairs, packed); a row's dot product
 * is then, per unit, a 4-bit slot extraction, a table load and an SMLAD
 * with the unit's 2 weights, widened two units at a time from one word
 * (SXTB16). Eight units a turn read their slots in one word. Portable
 * cores gather the 2 inputs of each unit directly.
 */
#include "nm_util.h"

static const int8_t zero_group[NN_NM_GROUP] = {0, 0, 0, 0};

/* Group g of the input, or zeros past its end (the padding of a row's last unit). */
static inline const int8_t *group(const int8_t *x, int32_t groups, int32_t g)
{
    return g < groups ? x + NN_NM_GROUP * g : zero_group;
}

int32_t nn_fully_connected_nm_s8_get_buffer_size(const nn_fully_connected_params *params,
                                                 const nn_nm_s8 *weights)
{
    const int32_t n = weights->n;
    return nn_nm_row_units(params->input_depth, n) * nn_nm_slots(n) * (int32_t)sizeof(int32_t);
}

#if NN_DSP
/* Unit pair k's two products: its word of values against the pairs its slot byte names. */
#define UNIT_PAIR(k, slot_byte)                                                                    \
    do {                                                                                           \
        const int32_t w_ = nn_read_s8x4(v + 4 * (k));                                              \
        acc = nn_smlad(nn_sxtb16(w_), table[2 * (k) * S + ((slot_byte) & 15u)], acc);               \
        acc = nn_smlad(nn_sxtb16_ror8(w_), table[(2 * (k) + 1) * S + ((slot_byte) >> 4 & 15u)], acc); \
    } while (0)

/*
 * One unit of the 8 in assembly: its table offset is byte `lane` of
 * `offsets` (uxtb: its slot plus S times its place in the turn), its
 * weights one half pair of w (SXTB16, `ror` picking the odd bytes).
 */
#define UNIT_ASM(offsets, lane, ror)                                                               \
    "uxtb %[i], %[" offsets "], ror #" lane "\n\t"                                                 \
    "ldr %[p], [%[t], %[i], lsl #2]\n\t"                                                           \
    "sxtb16 %[x], %[w]" ror "\n\t"                                                                \
    "smlad %[acc], %[x], %[p], %[acc]\n\t"

/*
 * The 8-unit turns in assembly (at least one), for S slots per unit:
 * the word of 8 slots is split into the even units' nibbles (a byte each)
 * and the odd ones', and one ADD each adds every unit's S * k, so a unit
 * costs UXTB, the table load, SXTB16 and SMLAD: 44 instructions a turn,
 * where GCC's loop (UBFX and ADD per unit) takes 48. It reads memory
 * through its pointers only, hence the "memory" clobber.
 */
#define EIGHTS_ASM(S)                                                                              \
    __asm__("1:\n\t"                                                                               \
            "ldr %[odd], [%[s]], #4\n\t"                                                          \
            "and %[even], %[odd], #0x0F0F0F0F\n\t"                                                \
            "and %[odd], %[odd], #0xF0F0F0F0\n\t"                                                 \
            "add %[even], %[even], %[even_at]\n\t"                                                \
            "add %[odd], %[odd_at], %[odd], lsr #4\n\t"                                           \
            "ldr %[w], [%[v]], #4\n\t"                                                            \
            UNIT_ASM("even", "0", "") UNIT_ASM("odd", "0", ", ror #8")                             \
            "ldr %[w], [%[v]], #4\n\t"                                                            \
            UNIT_ASM("even", "8", "") UNIT_ASM("odd", "8", ", ror #8")                             \
            "ldr %[w], [%[v]], #4\n\t"                                                            \
            UNIT_ASM("even", "16", "") UNIT_ASM("odd", "16", ", ror #8")                           \
            "ldr %[w], [%[v]], #4\n\t"                                                            \
            UNIT_ASM("even", "24", "") UNIT_ASM("odd", "24", ", ror #8")                           \
            "add %[t], %[t], #(32 * " #S ")\n\t"                                                  \
            "cmp %[s], %[end]\n\t"                                                                \
            "bne 1b"                                                                               \
            : [acc] "+r"(acc), [t] "+r"(table), [v] "+r"(v), [s] "+r"(slots), [even] "=&r"(even_),  \
              [odd] "=&r"(odd_), [i] "=&r"(i_), [p] "=&r"(p_), [w] "=&r"(w_), [x] "=&r"(x_)         \
            : [end] "r"(end), [even_at] "r"(NN_NM_PLACES(S, 0)), [odd_at] "r"(NN_NM_PLACES(S, 1))   \
            : "cc", "memory")

/* S times the places of the turn's even (odd = 0) or odd units, one per byte: units 2j + odd in byte j. */
#define NN_NM_PLACES(S, odd) ((int32_t)(0x06040200u + 0x01010101u * (odd)) * (S))

/*
 * acc + one row's products, for S slots per unit (a constant once
 * inlined): 8 units a turn, then the row's last units 2 at a time. The
 * row's values and slots follow the previous row's: *vp and *sp are left
 * at the next row's. The 8-unit turns are assembly on Arm cores with the
 * DSP extension; NN_EMULATE_DSP host builds take the C loop (same sums).
 */
NN_INLINE int32_t row_dot(int32_t acc, const int32_t *table, const int8_t **vp, const uint8_t **sp,
                          int32_t units, const int32_t S)
{
    const int8_t *v = *vp;
    const uint8_t *slots = *sp;
    const uint8_t *const end = slots + (units >> 3) * 4;
#if defined(__ARM_FEATURE_DSP)
    int32_t even_, odd_, i_, p_, w_, x_; /* EIGHTS_ASM's scratch registers */
    if (slots != end) {
        if (S == 6) {
            EIGHTS_ASM(6);
        } else {
            EIGHTS_ASM(16);
        }
    }
#else
    for (; slots != end; v += 16, slots += 4, table += 8 * S) {
        uint32_t s;
        memcpy(&s, slots, sizeof s);
        UNIT_PAIR(0, s);
        UNIT_PAIR(1, s >> 8);
        UNIT_PAIR(2, s >> 16);
        UNIT_PAIR(3, s >> 24);
    }
#endif
    for (int32_t k = (units & 7) >> 1; k > 0; --k, v += 4, ++slots, table += 2 * S) {
        UNIT_PAIR(0, (uint32_t)*slots);
    }
    *vp = v;
    *sp = slots;
    return acc;
}

/* A row's sum requantized, plus the output offset; shifts above -2 (scales >= 1/4) are rare. */
NN_INLINE int32_t scaled(int32_t acc, int32_t multiplier, int shift, int32_t offset)
{
    if (__builtin_expect(shift <= -2, 1)) {
        return nn_requantize_right_shift(acc, multiplier, shift) + offset;
    }
    return nn_requantize_reference(acc, multiplier, shift) + offset;
}

/*
 * Every output of one batch row, for S slots per unit. Four rows at a
 * time share one saturate, pack and clamp of their results and one store
 * (nn_pack_clamp_s8x4); each sum starts from its bias.
 */
NN_INLINE void rows(const int8_t *v, const uint8_t *slots, int32_t units, const int32_t S,
                    const int32_t *table, int32_t depth, const nn_requant *requant, const int32_t *bias,
                    int8_t *output)
{
    const int32_t *m = requant->multiplier;
    const int8_t *sh = requant->shift;
    const int32_t offset = requant->output_offset;
    const int32_t lo4 = nn_s8x4_splat(requant->act_min), hi4 = nn_s8x4_splat(requant->act_max);
    const int8_t *const end = output + (depth & ~3);
    for (; output != end; output += 4, bias += 4, m += 4, sh += 4) {
        int32_t y[4];
        for (int32_t k = 0; k < 4; ++k) {
            y[k] = scaled(row_dot(bias[k], table, &v, &slots, units, S), m[k], sh[k], offset);
        }
        nn_write_s8x4(output, nn_pack_clamp_s8x4(y[0], y[1], y[2], y[3], lo4, hi4));
    }
    for (int32_t r = 0; r < (depth & 3); ++r) {
        const int32_t y = scaled(row_dot(bias[r], table, &v, &slots, units, S), m[r], sh[r], offset);
        output[r] = nn_clamp_s8(y, requant->act_min, requant->act_max);
    }
}

/*
 * The slot table of one input vector: every unit's pairs, a word per
 * slot; units past the input (a row's padding, an odd last group's
 * partner) read zeros.
 */
static void write_table(const int8_t *x, int32_t groups, int32_t units, int32_t n, int32_t *table)
{
    int32_t u = 0;
    if (n == 2) {
        for (; u < groups; ++u, table += 6, x += NN_NM_GROUP) {
            nn_nm_write_pairs(x, x, 2, table, 1);
        }
    } else {
        for (; u < groups / 2; ++u, table += 16, x += 2 * NN_NM_GROUP) {
            nn_nm_write_pairs(x, x + NN_NM_GROUP, 1, table, 1);
        }
    }
    for (; u < units; ++u, table += nn_nm_slots(n)) {
        const int8_t *last = n == 1 && u == groups / 2 && groups % 2 ? x : zero_group;
        nn_nm_write_pairs(last, zero_group, n, table, 1);
    }
}
#else
/* Every output of one batch row, each unit's 2 inputs gathered. */
static void rows(const int8_t *x, int32_t groups, const int8_t *values, const uint8_t *slots, int32_t units,
                 int32_t n, int32_t depth, const nn_requant *requant, const int32_t *bias, int8_t *output)
{
    for (int32_t r = 0; r < depth; ++r, values += 2 * units, slots += units / 2) {
        int32_t acc = 0;
        for (int32_t u = 0; u < units; ++u) {
            const uint32_t s = (uint32_t)(slots[u / 2] >> (4 * (u & 1))) & 15u;
            const int8_t *pair = nn_nm_unit_values(values, u);
            const int32_t g = nn_nm_first_group(u, n);
            acc += pair[0] * group(x, groups, g)[nn_nm_first(n, s)];
            acc += pair[2] * group(x, groups, n == 2 ? g : g + 1)[nn_nm_second(n, s)];
        }
        output[r] = nn_requantize_channel(acc, bias, r, requant);
    }
}
#endif

nn_status nn_fully_connected_nm_s8(const nn_fully_connected_params *params, const int8_t *input,
                                   const nn_nm_s8 *weights, const int32_t *bias, int8_t *output,
                                   int8_t *buffer)
{
    const int32_t inputs = params->input_depth, depth = params->output_depth;
    if (params->batches <= 0 || inputs <= 0 || inputs % NN_NM_GROUP || depth <= 0 ||
        !nn_nm_is_valid(weights) || (NN_DSP && buffer == 0)) {
        return NN_ERROR_ARGUMENT;
    }
    /* A local copy: an int8 store may alias anything, so the parameters would be read again every row. */
    const nn_requant requant = params->requant;
    const int32_t n = weights->n, groups = inputs / NN_NM_GROUP;
    const int32_t units = nn_nm_row_units(inputs, n);
    for (int32_t b = 0; b < params->batches; ++b) {
        const int8_t *x = input + b * inputs;
        int8_t *out = output + b * depth;
#if NN_DSP
        int32_t *table = (int32_t *)(void *)buffer;
        write_table(x, groups, units, n, table);
        if (n == 2) {
            rows(weights->values, weights->slots, units, 6, table, depth, &requant, bias, out);
        } else {
            rows(weights->values, weights->slots, units, 16, table, depth, &requant, bias, out);
        }
#else
        (void)buffer;
        rows(x, groups, weights->values, weights->slots, units, n, depth, &requant, bias, out);
#endif
    }
    return NN_OK;
}
