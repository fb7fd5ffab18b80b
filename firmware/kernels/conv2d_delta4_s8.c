/*
 * CONV_2D, int8, delta4 weights (kernels.h): every (output channel, kernel
 * row) is a row of entries whose positions count from that kernel row's
 * first input, so no delta ever spans the gap between kernel rows. Windows
 * are read in the sparse layout of conv2d_csr_s8.c (in place, or from a
 * padded band), a tile of NN_CONV_TILE pixels at a time: each entry's
 * nibble and value are decoded once per tile.
 */
#include "kernel_util.h"

/*
 * A row's n entries against the tile's kernel rows at base[]; adds to
 * acc[]. Rows follow each other in the nibble stream: *high says the row
 * starts in the high nibble of **deltas. v, d and the phase move on.
 */
static inline void row_dot(const int8_t **values, const uint8_t **deltas, int *high, int32_t n,
                           const int8_t *const base[NN_CONV_TILE], int32_t acc[NN_CONV_TILE])
{
    const int8_t *v = *values;
    const uint8_t *d = *deltas;
    const int8_t *b0 = base[0], *b1 = base[1], *b2 = base[2], *b3 = base[3];
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t at = -1; /* where the previous entry's input is, from the kernel row's first */
    if (*high && n > 0) {
        at += (int32_t)(*d++ >> 4);
        const int32_t w = *v++;
        a0 += w * b0[at];
        a1 += w * b1[at];
        a2 += w * b2[at];
        a3 += w * b3[at];
        --n;
        *high = 0;
    }
    /* Entries in pairs, one byte of deltas each; the byte is loaded twice, so it need not hold a register. */
    for (const int8_t *const pairs_end = v + (n & ~1); v != pairs_end; v += 2, ++d) {
        at += (int32_t)(d[0] & 15u);
        int32_t w = v[0];
        a0 += w * b0[at];
        a1 += w * b1[at];
        a2 += w * b2[at];
        a3 += w * b3[at];
        at += (int32_t)(d[0] >> 4);
        w = v[1];
        a0 += w * b0[at];
        a1 += w * b1[at];
        a2 += w * b2[at];
        a3 += w * b3[at];
    }
    if (n & 1) {
        at += (int32_t)(*d & 15u);
        const int32_t w = *v++;
        a0 += w * b0[at];
        a1 += w * b1[at];
        a2 += w * b2[at];
        a3 += w * b3[at];
        *high = 1;
    }
    *values = v;
    *deltas = d;
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

nn_status nn_conv2d_delta4_s8(const nn_conv2d_params *params, const int8_t *input,
                              const nn_delta4_s8 *weights, const int32_t *bias, int8_t *output,
                              int8_t *buffer)
{
    const nn_window *win = &params->window;
    const nn_requant *requant = &params->requant;
    if (!nn_sparse_conv_is_valid(win, buffer)) {
        return NN_ERROR_ARGUMENT;
    }
    const int8_t zero_point = (int8_t)(-requant->input_offset);
    const int32_t out_c = win->output.c;
    const int32_t row_step = nn_sparse_conv_row_step(win);
    nn_sparse_conv_walk walk = nn_sparse_conv_begin(win, input, zero_point, buffer);
    const int8_t *corner[NN_CONV_TILE];
    for (int32_t pixels; (pixels = nn_sparse_conv_next(&walk, corner)) != 0; output += pixels * out_c) {
        const int8_t *v = weights->values;
        const uint8_t *d = weights->deltas;
        int high = 0;
        int32_t segment = 0;
        for (int32_t ch = 0; ch < out_c; ++ch) {
            int32_t acc[NN_CONV_TILE] = {0, 0, 0, 0};
            for (int32_t ky = 0; ky < win->kernel_h; ++ky, ++segment) {
                const int32_t n = weights->count_u8 ? weights->count_u8[segment]
                                                    : weights->count_u16[segment];
                const int32_t step = ky * row_step;
                const int8_t *base[NN_CONV_TILE] = {corner[0] + step, corner[1] + step,
                                                    corner[2] + step, corner[3] + step};
                row_dot(&v, &d, &high, n, base, acc);
            }
            nn_sparse_conv_store(acc, pixels, ch, bias, requant, output, out_c);
        }
    }
    return NN_OK;
}
