/*
 * CONV_2D, int8, block4 weights (kernels.h): blocks of 4 consecutive
 * inputs (4 input channels of one tap, or across taps where C_IN < 4), at
 * offsets from the window's corner as CSR's. Windows are read in the sparse
 * layout of conv2d_csr_s8.c (in place, or from a padded band), a tile of
 * NN_CONV_TILE pixels at a time: a block's index and values are loaded and
 * widened once per tile, then each pixel costs one word load, two SXTB16
 * and two SMLADs on DSP cores.
 */
#include "kernel_util.h"
#include "simd.h"

/* One channel's blocks against the tile's windows; one of index_u8 / index_u16 is NULL. */
NN_INLINE void tile_dot(const int8_t *v, const uint8_t *index_u8, const uint16_t *index_u16, uint32_t n,
                        const int8_t *const corner[NN_CONV_TILE], int32_t acc[NN_CONV_TILE])
{
    const int8_t *c0 = corner[0], *c1 = corner[1], *c2 = corner[2], *c3 = corner[3];
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (uint32_t k = 0; k < n; ++k, v += 4) {
        const uint32_t o = index_u8 ? index_u8[k] : index_u16[k];
#if NN_DSP
        const int32_t w = nn_read_s8x4(v);
        const int32_t even = nn_sxtb16(w), odd = nn_sxtb16_ror8(w);
        int32_t in = nn_read_s8x4(c0 + o);
        a0 = nn_smlad(odd, nn_sxtb16_ror8(in), nn_smlad(even, nn_sxtb16(in), a0));
        in = nn_read_s8x4(c1 + o);
        a1 = nn_smlad(odd, nn_sxtb16_ror8(in), nn_smlad(even, nn_sxtb16(in), a1));
        in = nn_read_s8x4(c2 + o);
        a2 = nn_smlad(odd, nn_sxtb16_ror8(in), nn_smlad(even, nn_sxtb16(in), a2));
        in = nn_read_s8x4(c3 + o);
        a3 = nn_smlad(odd, nn_sxtb16_ror8(in), nn_smlad(even, nn_sxtb16(in), a3));
#else
        const int8_t *x0 = c0 + o, *x1 = c1 + o, *x2 = c2 + o, *x3 = c3 + o;
        a0 += v[0] * x0[0] + v[1] * x0[1] + v[2] * x0[2] + v[3] * x0[3];
        a1 += v[0] * x1[0] + v[1] * x1[1] + v[2] * x1[2] + v[3] * x1[3];
        a2 += v[0] * x2[0] + v[1] * x2[1] + v[2] * x2[2] + v[3] * x2[3];
        a3 += v[0] * x3[0] + v[1] * x3[1] + v[2] * x3[2] + v[3] * x3[3];
#endif
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* One tile of an output row, every channel; windows narrower than a block read zero-padded copies. */
NN_INLINE void tile(const nn_conv2d_params *params, const nn_block4_s8 *weights, const uint8_t *index_u8,
                    const uint16_t *index_u16, const int8_t *const corner[NN_CONV_TILE], int32_t pixels,
                    const int32_t *bias, int8_t *output)
{
    const int32_t out_c = params->window.output.c;
    uint32_t begin = nn_csr_row_start(weights, 0);
    for (int32_t ch = 0; ch < out_c; ++ch) {
        const uint32_t end = nn_csr_row_start(weights, ch + 1);
        int32_t acc[NN_CONV_TILE];
        tile_dot(weights->values + 4 * begin, index_u8 ? index_u8 + begin : 0,
                 index_u8 ? 0 : index_u16 + begin, end - begin, corner, acc);
        nn_sparse_conv_store(acc, pixels, ch, bias, &params->requant, output, out_c);
        begin = end;
    }
}

nn_status nn_conv2d_block4_s8(const nn_conv2d_params *params, const int8_t *input,
                              const nn_block4_s8 *weights, const int32_t *bias, int8_t *output,
                              int8_t *buffer)
{
    const nn_window *win = &params->window;
    if (!nn_sparse_conv_is_valid(win, buffer)) {
        return NN_ERROR_ARGUMENT;
    }
    const int8_t zero_point = (int8_t)(-params->requant.input_offset);
    const int32_t out_c = win->output.c;
    /* The bytes a window spans; the compiler keeps blocks inside them unless they are fewer than 4. */
    const int32_t span = (win->kernel_h - 1) * nn_sparse_conv_row_step(win) +
                         ((win->kernel_w - 1) * win->dilation_w + 1) * win->input.c;
    nn_sparse_conv_walk walk = nn_sparse_conv_begin(win, input, zero_point, buffer);
    const int8_t *corner[NN_CONV_TILE];
    for (int32_t pixels; (pixels = nn_sparse_conv_next(&walk, corner)) != 0; output += pixels * out_c) {
        int8_t narrow[NN_CONV_TILE][4] = {{0}};
        if (span < 4) {
            for (int32_t k = 0; k < NN_CONV_TILE; ++k) {
                memcpy(narrow[k], corner[k], (size_t)span);
                corner[k] = narrow[k];
            }
        }
        if (weights->index_u8 != 0) {
            tile(params, weights, weights->index_u8, 0, corner, pixels, bias, output);
        } else {
            tile(params, weights, 0, weights->index_u16, corner, pixels, bias, output);
        }
    }
    return NN_OK;
}
