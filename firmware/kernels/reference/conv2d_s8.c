/*
 * CONV_2D, int8, dense weights: the reference kernel (the oracle).
 *
 * TFLite Micro's reference_integer_ops::ConvPerChannel, one output value at
 * a time: every tap of the window, a tap in the padding reading the input
 * zero point (kernels.h: with the folded bias that cancels, as TFLM's
 * skipped taps do), then the general requantization and the clamp. Output
 * pixels go in raster order and each reads only its own window, so writing
 * over the input (kernels.h) is safe.
 */
#include "reference.h"

/* The reference needs no scratch memory; it ignores the buffer the compiler plans for the optimized kernel. */
int32_t nn_conv2d_s8_get_buffer_size(const nn_conv2d_params *params)
{
    (void)params;
    return 0;
}

nn_status nn_conv2d_s8(const nn_conv2d_params *params, const int8_t *input, const int8_t *weights,
                       const int32_t *bias, int8_t *output, int8_t *buffer)
{
    const nn_window *win = &params->window;
    const nn_requant *rq = &params->requant;
    (void)buffer;
    if (!nn_window_is_valid(win)) {
        return NN_ERROR_ARGUMENT;
    }
    const int32_t in_c = win->input.c;
    const int32_t zero_point = -rq->input_offset; /* what a tap in the padding reads */
    for (int32_t out_y = 0; out_y < win->output.h; ++out_y) {
        for (int32_t out_x = 0; out_x < win->output.w; ++out_x) {
            for (int32_t oc = 0; oc < win->output.c; ++oc) {
                const int8_t *filter = weights + oc * win->kernel_h * win->kernel_w * in_c;
                int32_t acc = bias[oc];
                for (int32_t ky = 0; ky < win->kernel_h; ++ky) {
                    for (int32_t kx = 0; kx < win->kernel_w; ++kx) {
                        const int32_t pixel = nn_reference_tap(win, out_y, out_x, ky, kx);
                        for (int32_t ic = 0; ic < in_c; ++ic) {
                            const int32_t value = pixel < 0 ? zero_point : input[pixel + ic];
                            acc += filter[(ky * win->kernel_w + kx) * in_c + ic] * value;
                        }
                    }
                }
                *output++ = nn_reference_output(acc, oc, rq);
            }
        }
    }
    return NN_OK;
}
