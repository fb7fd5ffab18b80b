/* CONV_2D, int8, dense weights: the reference kernel. */
#include "kernel_util.h"

nn_status nn_conv2d_s8(const nn_conv2d_params *params, const int8_t *input, const int8_t *weights,
                       const int32_t *bias, int8_t *output)
{
    const nn_window *win = &params->window;
    const nn_requant *requant = &params->requant;
    if (!nn_window_is_valid(win)) {
        return NN_ERROR_ARGUMENT;
    }
    const int32_t in_c = win->input.c;
    const int32_t filter_size = win->kernel_h * win->kernel_w * in_c;
    const int32_t padding = -requant->input_offset; /* the input zero point */

    for (int32_t out_y = 0; out_y < win->output.h; ++out_y) {
        const int32_t in_y0 = out_y * win->stride_h - win->pad_top;
        for (int32_t out_x = 0; out_x < win->output.w; ++out_x) {
            const int32_t in_x0 = out_x * win->stride_w - win->pad_left;
            for (int32_t out_c = 0; out_c < win->output.c; ++out_c) {
                const int8_t *filter = weights + out_c * filter_size;
                int32_t acc = 0;
                for (int32_t ky = 0; ky < win->kernel_h; ++ky) {
                    const int32_t in_y = in_y0 + ky * win->dilation_h;
                    for (int32_t kx = 0; kx < win->kernel_w; ++kx) {
                        const int32_t in_x = in_x0 + kx * win->dilation_w;
                        const int inside = in_y >= 0 && in_y < win->input.h && in_x >= 0 && in_x < win->input.w;
                        const int8_t *pixel = inside ? input + (in_y * win->input.w + in_x) * in_c : 0;
                        const int8_t *taps = filter + (ky * win->kernel_w + kx) * in_c;
                        for (int32_t c = 0; c < in_c; ++c) {
                            acc += taps[c] * (inside ? pixel[c] : padding);
                        }
                    }
                }
                *output++ = nn_requantize_channel(acc, bias, out_c, requant);
            }
        }
    }
    return NN_OK;
}
