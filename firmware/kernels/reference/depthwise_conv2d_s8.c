/*
 * DEPTHWISE_CONV_2D, int8, dense weights: the reference kernel (the oracle).
 *
 * TFLite Micro's reference_integer_ops::DepthwiseConvPerChannel, one output
 * value at a time: output channel oc reads input channel oc /
 * depth_multiplier over the window, a tap in the padding reading the input
 * zero point (kernels.h), then the general requantization and the clamp.
 * The weights are in the layout kernels.h gives (groups of 4 output
 * channels as int16 pairs); weight_at reads one back.
 */
#include "reference.h"

/* The weight of output channel oc at tap t (ky * KW + kx) of a window of `taps` taps. */
static int32_t weight_at(const int32_t *weights, int32_t taps, int32_t t, int32_t oc)
{
    const int32_t lane = oc % 4;
    const int32_t word = weights[2 * ((oc / 4) * taps + t) + (lane & 1)];
    return lane & 2 ? word >> 16 : (int16_t)word;
}

nn_status nn_depthwise_conv2d_s8(const nn_depthwise_conv2d_params *params, const int8_t *input,
                                 const int32_t *weights, const int32_t *bias, int8_t *output)
{
    const nn_window *win = &params->window;
    const nn_requant *rq = &params->requant;
    const int32_t multiplier = params->depth_multiplier;
    if (!nn_window_is_valid(win) || multiplier <= 0 || win->output.c != win->input.c * multiplier) {
        return NN_ERROR_ARGUMENT;
    }
    const int32_t taps = win->kernel_h * win->kernel_w;
    const int32_t zero_point = -rq->input_offset; /* what a tap in the padding reads */
    for (int32_t out_y = 0; out_y < win->output.h; ++out_y) {
        for (int32_t out_x = 0; out_x < win->output.w; ++out_x) {
            for (int32_t oc = 0; oc < win->output.c; ++oc) {
                const int32_t ic = oc / multiplier;
                int32_t acc = bias[oc];
                for (int32_t ky = 0; ky < win->kernel_h; ++ky) {
                    for (int32_t kx = 0; kx < win->kernel_w; ++kx) {
                        const int32_t pixel = nn_reference_tap(win, out_y, out_x, ky, kx);
                        const int32_t value = pixel < 0 ? zero_point : input[pixel + ic];
                        acc += weight_at(weights, taps, ky * win->kernel_w + kx, oc) * value;
                    }
                }
                *output++ = nn_reference_output(acc, oc, rq);
            }
        }
    }
    return NN_OK;
}
