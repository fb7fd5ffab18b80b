/*
 * CONV_2D, int8, CSR weights.
 *
 * The input is first copied into a buffer padded with the input zero point,
 * so every window lies inside it and the inner loop is a plain sparse dot
 * product: each nonzero weight stores the offset of its input relative to
 * the window's top-left corner.
 */
#include <string.h>

#include "kernel_util.h"

/* Rows (or columns) the padded image needs: all windows, and all input. */
static int32_t padded_extent(int32_t in_size, int32_t pad_before, int32_t out_size,
                             int32_t stride, int32_t kernel, int32_t dilation)
{
    const int32_t windows_reach = (out_size - 1) * stride + (kernel - 1) * dilation + 1;
    const int32_t input_reach = pad_before + in_size;
    return windows_reach > input_reach ? windows_reach : input_reach;
}

nn_hwc nn_conv2d_csr_s8_padded_size(const nn_window *window)
{
    nn_hwc padded;
    padded.h = padded_extent(window->input.h, window->pad_top, window->output.h,
                             window->stride_h, window->kernel_h, window->dilation_h);
    padded.w = padded_extent(window->input.w, window->pad_left, window->output.w,
                             window->stride_w, window->kernel_w, window->dilation_w);
    padded.c = window->input.c;
    return padded;
}

static int needs_padding(const nn_window *window)
{
    const nn_hwc padded = nn_conv2d_csr_s8_padded_size(window);
    return padded.h != window->input.h || padded.w != window->input.w;
}

int32_t nn_conv2d_csr_s8_get_buffer_size(const nn_conv2d_params *params)
{
    const nn_window *win = &params->window;
    if (!needs_padding(win)) {
        return 0;
    }
    const nn_hwc padded = nn_conv2d_csr_s8_padded_size(win);
    return padded.h * padded.w * padded.c;
}

/* The image the windows slide over: the input itself, or a padded copy. */
static const int8_t *padded_input(const nn_window *win, const int8_t *input, int8_t pad_value,
                                  int8_t *buffer)
{
    if (!needs_padding(win)) {
        return input;
    }
    const nn_hwc padded = nn_conv2d_csr_s8_padded_size(win);
    const int32_t in_row_bytes = win->input.w * win->input.c;
    memset(buffer, pad_value, (size_t)(padded.h * padded.w * padded.c));
    for (int32_t y = 0; y < win->input.h; ++y) {
        int8_t *row = buffer + ((y + win->pad_top) * padded.w + win->pad_left) * padded.c;
        memcpy(row, input + y * in_row_bytes, (size_t)in_row_bytes);
    }
    return buffer;
}

nn_status nn_conv2d_csr_s8(const nn_conv2d_params *params, const int8_t *input,
                           const nn_csr_s8 *weights, const int32_t *bias, int8_t *output,
                           int8_t *buffer)
{
    const nn_window *win = &params->window;
    const nn_requant *requant = &params->requant;
    if (!nn_window_is_valid(win) || (needs_padding(win) && buffer == 0)) {
        return NN_ERROR_ARGUMENT;
    }
    const int8_t zero_point = (int8_t)(-requant->input_offset);
    const int8_t *image = padded_input(win, input, zero_point, buffer);
    const nn_hwc padded = nn_conv2d_csr_s8_padded_size(win);

    for (int32_t out_y = 0; out_y < win->output.h; ++out_y) {
        for (int32_t out_x = 0; out_x < win->output.w; ++out_x) {
            const int8_t *corner =
                image + (out_y * win->stride_h * padded.w + out_x * win->stride_w) * padded.c;
            for (int32_t out_c = 0; out_c < win->output.c; ++out_c) {
                const int32_t acc = nn_csr_row_dot(weights, out_c, corner, requant->input_offset);
                *output++ = nn_requantize_channel(acc, bias, out_c, requant);
            }
        }
    }
    return NN_OK;
}
