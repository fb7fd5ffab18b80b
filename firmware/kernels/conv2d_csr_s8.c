/*
 * CONV_2D, int8, CSR weights.
 *
 * Each nonzero weight stores the offset of its input relative to the
 * window's top-left corner, so the inner loop is a plain sparse dot
 * product. When windows reach outside the image, the kernel_h rows one
 * output row reads are first copied into a band padded with the input zero
 * point (what padding reads, see kernels.h), so the scratch buffer is a few
 * rows, not a padded image.
 */
#include <string.h>

#include "kernel_util.h"

/* Columns (or rows) the padded image needs: all windows, and all input. */
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
    return win->kernel_h * padded.w * padded.c;
}

/* Copy the kernel_h input rows that output row out_y reads into the band, padding around them. */
static void fill_band(const nn_window *win, const int8_t *input, int32_t out_y, int8_t pad_value,
                      int8_t *band)
{
    const nn_hwc padded = nn_conv2d_csr_s8_padded_size(win);
    const int32_t band_row_bytes = padded.w * padded.c;
    const int32_t in_row_bytes = win->input.w * win->input.c;
    const int32_t top = out_y * win->stride_h - win->pad_top;
    memset(band, pad_value, (size_t)(win->kernel_h * band_row_bytes));
    for (int32_t ky = 0; ky < win->kernel_h; ++ky) {
        const int32_t in_y = top + ky * win->dilation_h;
        if (in_y >= 0 && in_y < win->input.h) {
            memcpy(band + ky * band_row_bytes + win->pad_left * padded.c,
                   input + in_y * in_row_bytes, (size_t)in_row_bytes);
        }
    }
}

nn_status nn_conv2d_csr_s8(const nn_conv2d_params *params, const int8_t *input,
                           const nn_csr_s8 *weights, const int32_t *bias, int8_t *output,
                           int8_t *buffer)
{
    const nn_window *win = &params->window;
    const nn_requant *requant = &params->requant;
    const int padding = needs_padding(win);
    if (!nn_window_is_valid(win) || (padding && buffer == 0)) {
        return NN_ERROR_ARGUMENT;
    }
    const int8_t zero_point = (int8_t)(-requant->input_offset);
    const nn_hwc padded = nn_conv2d_csr_s8_padded_size(win);

    for (int32_t out_y = 0; out_y < win->output.h; ++out_y) {
        /* Where this output row's windows start: in the band, or in the input itself. */
        const int8_t *rows = input + out_y * win->stride_h * padded.w * padded.c;
        if (padding) {
            fill_band(win, input, out_y, zero_point, buffer);
            rows = buffer;
        }
        for (int32_t out_x = 0; out_x < win->output.w; ++out_x) {
            const int8_t *corner = rows + out_x * win->stride_w * padded.c;
            for (int32_t out_c = 0; out_c < win->output.c; ++out_c) {
                const int32_t acc = nn_csr_row_dot(weights, out_c, corner);
                *output++ = nn_requantize_channel(acc, bias, out_c, requant);
            }
        }
    }
    return NN_OK;
}
