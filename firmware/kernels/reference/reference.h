/*
 * What the reference kernels share (not part of the kernel API).
 */
#ifndef NN_REFERENCE_H
#define NN_REFERENCE_H

#include "kernel_util.h"

/*
 * An accumulator (folded bias included) of output channel `channel` to its
 * int8 output: TFLM's MultiplyByQuantizedMultiplier in its general form
 * (nn_requantize_reference, not the fast path the optimized kernels
 * take), the output offset, the activation clamp.
 */
static inline int8_t nn_reference_output(int32_t acc, int32_t channel, const nn_requant *rq)
{
    const int32_t scaled = nn_requantize_reference(acc, rq->multiplier[channel], rq->shift[channel]);
    return nn_clamp_s8(scaled + rq->output_offset, rq->act_min, rq->act_max);
}

/*
 * Where tap (ky, kx) of output pixel (out_y, out_x)'s window reads: the
 * index of the input pixel's first byte, or -1 when the tap lies in the
 * padding (kernels.h, nn_window).
 */
static inline int32_t nn_reference_tap(const nn_window *win, int32_t out_y, int32_t out_x, int32_t ky, int32_t kx)
{
    const int32_t y = out_y * win->stride_h - win->pad_top + ky * win->dilation_h;
    const int32_t x = out_x * win->stride_w - win->pad_left + kx * win->dilation_w;
    if (y < 0 || y >= win->input.h || x < 0 || x >= win->input.w) {
        return -1;
    }
    return (y * win->input.w + x) * win->input.c;
}

#endif /* NN_REFERENCE_H */
