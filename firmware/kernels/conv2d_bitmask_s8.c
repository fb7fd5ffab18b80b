/*
 * CONV_2D, int8, bitmask weights (kernels.h): every (output channel, kernel
 * row) has a mask over the bytes the kernel row spans, from its first
 * input, padded to whole words. Windows are read in the sparse layout of
 * conv2d_csr_s8.c (in place, or from a padded band), a tile of
 * NN_CONV_TILE pixels at a time: each nonzero's bit is found once per tile.
 */
#include "kernel_util.h"

nn_status nn_conv2d_bitmask_s8(const nn_conv2d_params *params, const int8_t *input,
                               const nn_bitmask_s8 *weights, const int32_t *bias, int8_t *output,
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
    const int32_t row_bytes = ((win->kernel_w - 1) * win->dilation_w + 1) * win->input.c;
    const int32_t words = (row_bytes + 31) / 32;
    nn_sparse_conv_walk walk = nn_sparse_conv_begin(win, input, zero_point, buffer);
    const int8_t *corner[NN_CONV_TILE];
    for (int32_t pixels; (pixels = nn_sparse_conv_next(&walk, corner)) != 0; output += pixels * out_c) {
        const int8_t *v = weights->values;
        const uint32_t *mask = weights->mask;
        for (int32_t ch = 0; ch < out_c; ++ch) {
            int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            for (int32_t ky = 0; ky < win->kernel_h; ++ky) {
                for (int32_t word = 0; word < words; ++word) {
                    const int32_t start = ky * row_step + 32 * word;
                    const int8_t *b0 = corner[0] + start, *b1 = corner[1] + start;
                    const int8_t *b2 = corner[2] + start, *b3 = corner[3] + start;
                    for (uint32_t bits = *mask++; bits != 0;) {
                        const uint32_t at = nn_clz32(bits);
                        bits &= ~(0x80000000u >> at);
                        const int32_t w = *v++;
                        a0 += w * b0[at];
                        a1 += w * b1[at];
                        a2 += w * b2[at];
                        a3 += w * b3[at];
                    }
                }
            }
            const int32_t acc[NN_CONV_TILE] = {a0, a1, a2, a3};
            nn_sparse_conv_store(acc, pixels, ch, bias, requant, output, out_c);
        }
    }
    return NN_OK;
}
