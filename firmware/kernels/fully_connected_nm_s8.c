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
 * acc + one row's products, for S slots per unit (a constant once
 * inlined, so the table offsets are immediates): 8 units a turn, then
 * the row's last units 2 at a time.
 */
NN_INLINE int32_t row_dot(int32_t acc, const int32_t *table, const int8_t *v, const uint8_t *slots,
                          int32_t units, const int32_t S)
{
    for (int32_t k = units >> 3; k > 0; --k, v += 16, slots += 4, table += 8 * S) {
        uint32_t s;
        memcpy(&s, slots, sizeof s);
        UNIT_PAIR(0, s);
        UNIT_PAIR(1, s >> 8);
        UNIT_PAIR(2, s >> 16);
        UNIT_PAIR(3, s >> 24);
    }
    for (int32_t k = (units & 7) >> 1; k > 0; --k, v += 4, ++slots, table += 2 * S) {
        UNIT_PAIR(0, (uint32_t)*slots);
    }
    return acc;
}

/*
 * Every output of one batch row, for S slots per unit. Four rows at a
 * time share one saturate, pack and clamp of their results and one store
 * (nn_pack_clamp_s8x4); each sum starts from its bias.
 */
NN_INLINE void rows(const int8_t *values, const uint8_t *slots, int32_t units, const int32_t S,
                    const int32_t *table, int32_t depth, const nn_requant *requant, const int32_t *bias,
                    int8_t *output)
{
    const int32_t lo4 = nn_s8x4_splat(requant->act_min), hi4 = nn_s8x4_splat(requant->act_max);
    int32_t r = 0;
    for (; r + 4 <= depth; r += 4) {
        int32_t y[4];
        for (int32_t k = 0; k < 4; ++k) {
            const int32_t acc = row_dot(bias[r + k], table, values + (r + k) * 2 * units,
                                        slots + (r + k) * (units / 2), units, S);
            y[k] = nn_requantize(acc, requant->multiplier[r + k], requant->shift[r + k]) + requant->output_offset;
        }
        nn_write_s8x4(output + r, nn_pack_clamp_s8x4(y[0], y[1], y[2], y[3], lo4, hi4));
    }
    for (; r < depth; ++r) {
        const int32_t acc = row_dot(0, table, values + r * 2 * units, slots + r * (units / 2), units, S);
        output[r] = nn_requantize_channel(acc, bias, r, requant);
    }
}

/* The slot table of one input vector: every unit's pairs, a word per slot. */
static void write_table(const int8_t *x, int32_t groups, int32_t units, int32_t n, int32_t *table)
{
    const int32_t slots = nn_nm_slots(n);
    for (int32_t u = 0; u < units; ++u, table += slots) {
        const int32_t g = nn_nm_first_group(u, n);
        nn_nm_write_pairs(group(x, groups, g), group(x, groups, n == 2 ? g : g + 1), n, table, 1);
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
