/*
 * What the N:M kernels share (fully_connected_nm_s8.c, conv2d_nm_s8.c):
 * the unit layout of nn_nm_s8 (kernels.h) and the slot table.
 *
 * A unit holds 2 weights and a slot naming the 2 inputs they multiply:
 * n = 2, one group of 4 inputs and one of its 6 pairs of positions; n = 1,
 * two groups and the slot p + 4q (position p in the first, q in the
 * second). A unit's inputs are reached through its two group pointers
 * (the same group twice when n = 2), so a CONV_2D unit may span taps.
 *
 * On DSP cores the kernels never gather at run time: for each unit they
 * first write the input pair of every slot, packed as SMLAD takes it
 * (first input in the bottom half), into a table, so that a unit costs
 * one slot extraction, one table load and one SMLAD (per pixel).
 */
#ifndef NN_NM_UTIL_H
#define NN_NM_UTIL_H

#include "kernel_util.h"
#include "simd.h"

#define NN_NM_GROUP 4 /* m: inputs per group */

static inline int nn_nm_is_valid(const nn_nm_s8 *weights)
{
    return weights->m == NN_NM_GROUP && (weights->n == 1 || weights->n == 2);
}

/* Slots per unit: the table's words per unit (and pixel). */
static inline int32_t nn_nm_slots(int32_t n)
{
    return n == 2 ? 6 : 16;
}

/* Units of a row of `inputs` inputs (a multiple of 4), rounded up to an even count. */
static inline int32_t nn_nm_row_units(int32_t inputs, int32_t n)
{
    const int32_t groups = inputs / NN_NM_GROUP;
    const int32_t units = n == 2 ? groups : (groups + 1) / 2;
    return units + (units & 1);
}

/* Which groups unit u reads: group indices g0 and g1 (g1 = g0 when n = 2). */
static inline int32_t nn_nm_first_group(int32_t u, int32_t n)
{
    return n == 2 ? u : 2 * u;
}

/* Positions of slot s's two inputs: the first within group g0, the second within g1. */
static inline int32_t nn_nm_first(int32_t n, uint32_t s)
{
    static const uint8_t first2[6] = {0, 0, 0, 1, 1, 2};
    return n == 2 ? first2[s] : (int32_t)(s & 3u);
}

static inline int32_t nn_nm_second(int32_t n, uint32_t s)
{
    static const uint8_t second2[6] = {1, 2, 3, 2, 3, 3};
    return n == 2 ? second2[s] : (int32_t)(s >> 2);
}

/* Where unit u's first weight sits (its second is 2 bytes on): unit pairs share a word a, a', b, b'. */
static inline const int8_t *nn_nm_unit_values(const int8_t *row_values, int32_t u)
{
    return row_values + 4 * (u >> 1) + (u & 1);
}

#if NN_DSP
/* The pairs of x0..x3 with one input yq of a unit's second group (n = 1): slots 4q .. 4q + 3. */
static inline void nn_nm_write_four(int32_t x0, int32_t x1, int32_t x2, int32_t x3, int32_t yq, int32_t *table,
                                    int32_t stride)
{
    table[0] = nn_pkhbt16(x0, yq);
    table[stride] = nn_pkhbt16(x1, yq);
    table[2 * stride] = nn_pkhbt16(x2, yq);
    table[3 * stride] = nn_pkhbt16(x3, yq);
}

/*
 * One unit's table entries: slot s's input pair goes to table[s * stride]
 * (stride 1: one input vector; NN_CONV_TILE: a tile's pixels interleaved).
 * x and y are the unit's groups (y = x when n = 2).
 */
static inline void nn_nm_write_pairs(const int8_t *x, const int8_t *y, int32_t n, int32_t *table,
                                     int32_t stride)
{
    const int32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
    if (n == 2) {
        table[0] = nn_pkhbt16(x0, x1);
        table[stride] = nn_pkhbt16(x0, x2);
        table[2 * stride] = nn_pkhbt16(x0, x3);
        table[3 * stride] = nn_pkhbt16(x1, x2);
        table[4 * stride] = nn_pkhbt16(x1, x3);
        table[5 * stride] = nn_pkhbt16(x2, x3);
        return;
    }
    nn_nm_write_four(x0, x1, x2, x3, y[0], table, stride);
    nn_nm_write_four(x0, x1, x2, x3, y[1], table + 4 * stride, stride);
    nn_nm_write_four(x0, x1, x2, x3, y[2], table + 8 * stride, stride);
    nn_nm_write_four(x0, x1, x2, x3, y[3], table + 12 * stride, stride);
}
#endif

#endif /* NN_NM_UTIL_H */
