/*
 * DEPTHWISE_CONV_2D, int8, CSR weights: row c holds output channel c's
 * nonzero taps, index[k] the tap's number ky * KW + kx.
 *
 * For each output pixel the kernel first points every tap at channel 0 of
 * the input pixel it reads, or, for a tap in the padding, at a row of input
 * zero points (the scratch buffer; what padding reads, see kernels.h).
 * Each nonzero then reads tap[index][c_in] with no bounds test, border or
 * not, and the weights need no offsets that depend on the image size.
 * Pixels are written in raster order and read only their own window, as
 * the dense kernel does.
 */
#include <string.h>

#include "depthwise_util.h"

/* Whether some window reaches outside the image: then the kernel needs its row of zero points. */
static int reaches_padding(const nn_window *win)
{
    const int32_t bottom = (win->output.h - 1) * win->stride_h - win->pad_top +
                           (win->kernel_h - 1) * win->dilation_h;
    const int32_t right = (win->output.w - 1) * win->stride_w - win->pad_left +
                          (win->kernel_w - 1) * win->dilation_w;
    return win->pad_top > 0 || win->pad_left > 0 || bottom >= win->input.h ||
           right >= win->input.w;
}

int32_t nn_depthwise_conv2d_csr_s8_get_buffer_size(const nn_depthwise_conv2d_params *params)
{
    return reaches_padding(&params->window) ? params->window.input.c : 0;
}

/* The CSR arrays, copied out of the struct (output bytes may alias it). */
typedef struct {
    const int8_t *values;
    const uint8_t *index; /* tap numbers: 8 bits hold NN_DEPTHWISE_CSR_MAX_TAPS */
    const uint16_t *row_start_u16;
    const uint32_t *row_start_u32;
} csr_rows;

/* Where row c + 1 starts, that is where row c ends. */
NN_INLINE uint32_t row_end(const csr_rows *w, int32_t c, int start_u16)
{
    return start_u16 ? w->row_start_u16[c + 1] : w->row_start_u32[c + 1];
}

/* acc + the sum over entries [*k, end) of value * tap[index][c_in], and *k = end. */
NN_INLINE int32_t row_dot(int32_t acc, const csr_rows *w, uint32_t *k, uint32_t end,
                          const int8_t *const *tap, int32_t c_in)
{
    for (uint32_t i = *k; i < end; ++i) {
        acc += w->values[i] * tap[w->index[i]][c_in];
    }
    *k = end;
    return acc;
}

/*
 * Every output channel of one pixel, whose taps point at their inputs. The
 * usual case (16-bit row starts, depth multiplier 1) calls it with those as
 * constants, so that its loops test neither.
 */
NN_INLINE void pixel(const csr_rows *w, const nn_dw_output *out, int32_t channels,
                     int32_t multiplier, int start_u16, const int8_t *const *tap, int8_t *output)
{
    uint32_t k = 0;
    int32_t c = 0;
    for (; c + 4 <= channels; c += 4) {
        nn_acc4 acc = nn_dw_bias_x4(out, c);
        acc.a0 = row_dot(acc.a0, w, &k, row_end(w, c, start_u16), tap, c / multiplier);
        acc.a1 = row_dot(acc.a1, w, &k, row_end(w, c + 1, start_u16), tap, (c + 1) / multiplier);
        acc.a2 = row_dot(acc.a2, w, &k, row_end(w, c + 2, start_u16), tap, (c + 2) / multiplier);
        acc.a3 = row_dot(acc.a3, w, &k, row_end(w, c + 3, start_u16), tap, (c + 3) / multiplier);
        nn_dw_store_x4(out, acc, c, output);
    }
    for (; c < channels; ++c) {
        const int32_t acc =
            row_dot(out->bias[c], w, &k, row_end(w, c, start_u16), tap, c / multiplier);
        output[c] = nn_dw_requantize(out, acc, c);
    }
}

nn_status nn_depthwise_conv2d_csr_s8(const nn_depthwise_conv2d_params *params,
                                     const int8_t *input, const nn_csr_s8 *weights,
                                     const int32_t *bias, int8_t *output, int8_t *buffer)
{
    const nn_window *win = &params->window;
    const int32_t multiplier = params->depth_multiplier;
    const int padding = reaches_padding(win);
    if (!nn_window_is_valid(win) || multiplier <= 0 ||
        win->output.c != win->input.c * multiplier || (padding && buffer == 0) ||
        win->kernel_h * win->kernel_w > NN_DEPTHWISE_CSR_MAX_TAPS || weights->index_u16 != 0) {
        return NN_ERROR_ARGUMENT;
    }
    const int32_t in_c = win->input.c;
    nn_requant_channel table[NN_DW_TABLE_CHANNELS];
    const nn_dw_output out = nn_dw_output_stage(&params->requant, bias, win->output.c,
                                                win->output.h * win->output.w, table);
    const csr_rows rows = {weights->values, weights->index_u8, weights->row_start_u16,
                           weights->row_start_u32};
    if (padding) {
        memset(buffer, (int8_t)(-params->requant.input_offset), (size_t)in_c);
    }
    const int8_t *tap[NN_DEPTHWISE_CSR_MAX_TAPS]; /* where each tap of the current window reads */

    for (int32_t out_y = 0; out_y < win->output.h; ++out_y) {
        const int32_t in_y0 = out_y * win->stride_h - win->pad_top;
        for (int32_t out_x = 0; out_x < win->output.w; ++out_x) {
            const int32_t in_x0 = out_x * win->stride_w - win->pad_left;
            int32_t t = 0;
            for (int32_t ky = 0; ky < win->kernel_h; ++ky) {
                const int32_t in_y = in_y0 + ky * win->dilation_h;
                for (int32_t kx = 0; kx < win->kernel_w; ++kx, ++t) {
                    const int32_t in_x = in_x0 + kx * win->dilation_w;
                    const int inside = in_y >= 0 && in_y < win->input.h && in_x >= 0 &&
                                       in_x < win->input.w;
                    tap[t] = inside ? input + (in_y * win->input.w + in_x) * in_c : buffer;
                }
            }
            if (rows.row_start_u16 != 0 && multiplier == 1) {
                pixel(&rows, &out, win->output.c, 1, 1, tap, output);
            } else {
                pixel(&rows, &out, win->output.c, multiplier, rows.row_start_u16 != 0, tap,
                      output);
            }
            output += win->output.c;
        }
    }
    return NN_OK;
}
