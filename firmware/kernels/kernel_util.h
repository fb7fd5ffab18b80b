/*
 * Small pieces shared by the kernel files (not part of the kernel API).
 */
#ifndef NN_KERNEL_UTIL_H
#define NN_KERNEL_UTIL_H

#include <string.h>

#include "kernels.h"
#include "requantize.h"
#include "simd.h"

/*
 * Inlined even where the compiler's heuristics would not (functions called
 * from several places): sparse kernels instantiate one loop per index
 * width or per format variant this way, with the choice out of the loop.
 */
#if defined(__GNUC__)
#define NN_INLINE static inline __attribute__((always_inline))
#else
#define NN_INLINE static inline
#endif

/* Leading zero bits of a nonzero word: one CLZ on Arm. */
static inline uint32_t nn_clz32(uint32_t bits)
{
    return (uint32_t)__builtin_clz(bits);
}

static inline int nn_hwc_is_valid(const nn_hwc *shape)
{
    return shape->h > 0 && shape->w > 0 && shape->c > 0;
}

static inline int nn_window_is_valid(const nn_window *window)
{
    return nn_hwc_is_valid(&window->input) && nn_hwc_is_valid(&window->output) &&
           window->kernel_h > 0 && window->kernel_w > 0 &&
           window->stride_h > 0 && window->stride_w > 0 &&
           window->dilation_h > 0 && window->dilation_w > 0 &&
           window->pad_top >= 0 && window->pad_left >= 0;
}

/* The last step of every kernel with weights: (folded) bias, rescale, offset, clamp. */
static inline int8_t nn_requantize_channel(int32_t acc, const int32_t *bias, int32_t channel,
                                           const nn_requant *requant)
{
    const int32_t scaled =
        nn_requantize(acc + bias[channel], requant->multiplier[channel], requant->shift[channel]);
    return nn_clamp_s8(scaled + requant->output_offset, requant->act_min, requant->act_max);
}

/* Where row `row` of a CSR-form matrix (nn_csr_s8, nn_block4_s8) starts; row + 1 gives its end. */
static inline uint32_t nn_csr_row_start(const nn_csr_s8 *matrix, int32_t row)
{
    return matrix->row_start_u16 ? matrix->row_start_u16[row] : matrix->row_start_u32[row];
}

/* ---- Sparse CONV_2D: the shared window layout (kernels.h) and tiles of output pixels ---- */

#define NN_CONV_TILE 4 /* output pixels computed together; lower.SPARSE_CONV_TILE */

static inline int nn_sparse_conv_pads(const nn_window *window)
{
    const nn_hwc padded = nn_conv2d_csr_s8_padded_size(window);
    return padded.h != window->input.h || padded.w != window->input.w;
}

static inline int nn_sparse_conv_is_valid(const nn_window *window, const int8_t *buffer)
{
    return nn_window_is_valid(window) && (buffer != 0 || !nn_sparse_conv_pads(window));
}

/* Bytes from one kernel row of a window to the next (row_step in kernels.h). */
static inline int32_t nn_sparse_conv_row_step(const nn_window *window)
{
    if (nn_sparse_conv_pads(window)) {
        return nn_conv2d_csr_s8_padded_size(window).w * window->input.c;
    }
    return window->dilation_h * window->input.w * window->input.c;
}

/*
 * Where output row out_y's windows start: in the input itself, or in the
 * band, after copying the kernel_h input rows the row reads into it with
 * the input zero point around them.
 */
static inline const int8_t *nn_sparse_conv_row(const nn_window *win, const int8_t *input, int32_t out_y,
                                               int8_t zero_point, int8_t *band)
{
    const nn_hwc padded = nn_conv2d_csr_s8_padded_size(win);
    if (!nn_sparse_conv_pads(win)) {
        return input + out_y * win->stride_h * padded.w * padded.c;
    }
    const int32_t band_row_bytes = padded.w * padded.c;
    const int32_t in_row_bytes = win->input.w * win->input.c;
    const int32_t top = out_y * win->stride_h - win->pad_top;
    memset(band, zero_point, (size_t)(win->kernel_h * band_row_bytes));
    for (int32_t ky = 0; ky < win->kernel_h; ++ky) {
        const int32_t in_y = top + ky * win->dilation_h;
        if (in_y >= 0 && in_y < win->input.h) {
            memcpy(band + ky * band_row_bytes + win->pad_left * padded.c, input + in_y * in_row_bytes,
                   (size_t)in_row_bytes);
        }
    }
    return band;
}

/*
 * Walks the output image a tile at a time. When the windows are read in
 * place, a tile is the next NN_CONV_TILE pixels in raster order, across
 * row ends: a 1-pixel-wide map ([T, 1, C], streaming models) then fills
 * its tiles as a square one does, where tiles of one row would hold one
 * pixel computed 4 times. With padding, a tile stays in the output row
 * whose input the band holds.
 */
typedef struct {
    const nn_window *win;
    const int8_t *input;
    int8_t *band;         /* NULL when the windows are read in place */
    int8_t zero_point;
    int32_t y, x;         /* the next tile's first pixel */
    const int8_t *row;    /* where the windows of output row y start */
} nn_sparse_conv_walk;

static inline nn_sparse_conv_walk nn_sparse_conv_begin(const nn_window *win, const int8_t *input,
                                                       int8_t zero_point, int8_t *buffer)
{
    const nn_sparse_conv_walk walk = {win, input, nn_sparse_conv_pads(win) ? buffer : 0, zero_point,
                                      0, 0, 0};
    return walk;
}

/*
 * The window corners of the next tile, and how many pixels it has (0 once
 * the image is done). Past its last pixel a tile repeats it, computed and
 * not stored, so kernels need no partial tiles. A band is refilled only
 * when a tile starts a row, after every channel of the tile before.
 */
static inline int32_t nn_sparse_conv_next(nn_sparse_conv_walk *walk, const int8_t *corner[NN_CONV_TILE])
{
    const nn_window *win = walk->win;
    const int32_t col_step = win->stride_w * win->input.c;
    int32_t pixels = 0;
    while (pixels < NN_CONV_TILE && walk->y < win->output.h) {
        if (walk->x == 0) {
            walk->row = nn_sparse_conv_row(win, walk->input, walk->y, walk->zero_point, walk->band);
        }
        corner[pixels++] = walk->row + walk->x * col_step;
        if (++walk->x == win->output.w) {
            walk->x = 0;
            ++walk->y;
            if (walk->band != 0) {
                break;
            }
        }
    }
    for (int32_t k = pixels; k > 0 && k < NN_CONV_TILE; ++k) {
        corner[k] = corner[pixels - 1];
    }
    return pixels;
}

/*
 * Requantize one channel of a tile into output, whose pixels are out_c
 * bytes apart. The channel's parameters are read once, before any store:
 * an int8 store may alias anything, so the compiler would otherwise read
 * them again for every pixel. The shift is tested once per channel, so
 * the 4 pixels share the fast path's per-channel work (3 instructions)
 * and pay 5 each (nn_requantize_right_shift). On DSP cores the 4 results
 * are saturated to int8 (SSAT), packed in one word (2 PKHBT, 2 UXTB16, an
 * ORR) and clamped to the activation range all 4 at once (2 bytewise
 * SSUB8 + SEL): 13 instructions per tile, where a compare-and-select
 * clamp costs 6 per pixel.
 */
NN_INLINE void nn_sparse_conv_store(const int32_t acc[NN_CONV_TILE], int32_t pixels, int32_t channel,
                                    const int32_t *bias, const nn_requant *requant, int8_t *output,
                                    int32_t out_c)
{
    const int32_t b = bias[channel], multiplier = requant->multiplier[channel];
    const int shift = requant->shift[channel];
    const int32_t offset = requant->output_offset, lo = requant->act_min, hi = requant->act_max;
    int32_t q0, q1, q2, q3;
    if (shift <= -2) {
        q0 = nn_requantize_right_shift(acc[0] + b, multiplier, shift);
        q1 = nn_requantize_right_shift(acc[1] + b, multiplier, shift);
        q2 = nn_requantize_right_shift(acc[2] + b, multiplier, shift);
        q3 = nn_requantize_right_shift(acc[3] + b, multiplier, shift);
    } else {
        q0 = nn_requantize_reference(acc[0] + b, multiplier, shift);
        q1 = nn_requantize_reference(acc[1] + b, multiplier, shift);
        q2 = nn_requantize_reference(acc[2] + b, multiplier, shift);
        q3 = nn_requantize_reference(acc[3] + b, multiplier, shift);
    }
    output += channel;
#if NN_DSP
    const uint32_t out = (uint32_t)nn_pack_clamp_s8x4(q0 + offset, q1 + offset, q2 + offset,
                                                       q3 + offset, nn_s8x4_splat(lo),
                                                       nn_s8x4_splat(hi));
    output[0] = (int8_t)out;
    if (pixels == NN_CONV_TILE) { /* every tile but a row's last */
        output[out_c] = (int8_t)(out >> 8);
        output[2 * out_c] = (int8_t)(out >> 16);
        output[3 * out_c] = (int8_t)(out >> 24);
        return;
    }
    for (int32_t k = 1; k < pixels; ++k) {
        output[k * out_c] = (int8_t)(out >> (8 * k));
    }
#else
    const int8_t out[NN_CONV_TILE] = {
        nn_clamp_s8(q0 + offset, lo, hi), nn_clamp_s8(q1 + offset, lo, hi),
        nn_clamp_s8(q2 + offset, lo, hi), nn_clamp_s8(q3 + offset, lo, hi)};
    for (int32_t k = 0; k < pixels; ++k) {
        output[k * out_c] = out[k];
    }
#endif
}

/* One output element of an elementwise op, from one element of each input. */
typedef int8_t (*nn_binary_op)(int32_t a, int32_t b, const void *params);

static inline int nn_broadcast_is_valid(const nn_broadcast *shape)
{
    return shape->dims[0] > 0 && shape->dims[1] > 0 && shape->dims[2] > 0 && shape->dims[3] > 0;
}

/* Apply op to every output element, reading each input at its broadcast strides. */
static inline void nn_broadcast_apply(const nn_broadcast *shape, const int8_t *input1,
                                      const int8_t *input2, int8_t *output, nn_binary_op op,
                                      const void *params)
{
    const int32_t *d = shape->dims;
    const int32_t *s1 = shape->input1_stride;
    const int32_t *s2 = shape->input2_stride;
    for (int32_t i = 0; i < d[0]; ++i) {
        for (int32_t j = 0; j < d[1]; ++j) {
            for (int32_t k = 0; k < d[2]; ++k) {
                for (int32_t l = 0; l < d[3]; ++l) {
                    const int32_t a = input1[i * s1[0] + j * s1[1] + k * s1[2] + l * s1[3]];
                    const int32_t b = input2[i * s2[0] + j * s2[1] + k * s2[2] + l * s2[3]];
                    *output++ = op(a, b, params);
                }
            }
        }
    }
}

#endif /* NN_KERNEL_UTIL_H */
