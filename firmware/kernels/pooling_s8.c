/* MAX_POOL_2D and AVERAGE_POOL_2D, int8: the reference kernels. */
#include "kernel_util.h"

/* The part [begin, end) of a window's kernel that falls inside the image. */
typedef struct {
    int32_t begin, end;
} span;

static span inside(int32_t origin, int32_t kernel, int32_t in_size)
{
    span s;
    s.begin = origin < 0 ? -origin : 0;
    s.end = in_size - origin < kernel ? in_size - origin : kernel;
    return s;
}

/* Also rejects windows lying entirely in the padding: they have no average. */
static int pool_is_valid(const nn_pool2d_params *params)
{
    const nn_window *win = &params->window;
    return nn_window_is_valid(win) && win->dilation_h == 1 && win->dilation_w == 1 &&
           win->output.c == win->input.c &&
           win->pad_top < win->kernel_h && win->pad_left < win->kernel_w &&
           (win->output.h - 1) * win->stride_h - win->pad_top < win->input.h &&
           (win->output.w - 1) * win->stride_w - win->pad_left < win->input.w;
}

nn_status nn_max_pool2d_s8(const nn_pool2d_params *params, const int8_t *input, int8_t *output)
{
    if (!pool_is_valid(params)) {
        return NN_ERROR_ARGUMENT;
    }
    const nn_window *win = &params->window;
    const int32_t channels = win->input.c;
    for (int32_t out_y = 0; out_y < win->output.h; ++out_y) {
        const int32_t in_y0 = out_y * win->stride_h - win->pad_top;
        const span rows = inside(in_y0, win->kernel_h, win->input.h);
        for (int32_t out_x = 0; out_x < win->output.w; ++out_x) {
            const int32_t in_x0 = out_x * win->stride_w - win->pad_left;
            const span cols = inside(in_x0, win->kernel_w, win->input.w);
            for (int32_t c = 0; c < channels; ++c) {
                int32_t max = INT8_MIN;
                for (int32_t ky = rows.begin; ky < rows.end; ++ky) {
                    for (int32_t kx = cols.begin; kx < cols.end; ++kx) {
                        const int32_t in_y = in_y0 + ky;
                        const int32_t in_x = in_x0 + kx;
                        const int32_t value = input[(in_y * win->input.w + in_x) * channels + c];
                        max = value > max ? value : max;
                    }
                }
                *output++ = nn_clamp_s8(max, params->act_min, params->act_max);
            }
        }
    }
    return NN_OK;
}

nn_status nn_avg_pool2d_s8(const nn_pool2d_params *params, const int8_t *input, int8_t *output)
{
    if (!pool_is_valid(params)) {
        return NN_ERROR_ARGUMENT;
    }
    const nn_window *win = &params->window;
    const int32_t channels = win->input.c;
    for (int32_t out_y = 0; out_y < win->output.h; ++out_y) {
        const int32_t in_y0 = out_y * win->stride_h - win->pad_top;
        const span rows = inside(in_y0, win->kernel_h, win->input.h);
        for (int32_t out_x = 0; out_x < win->output.w; ++out_x) {
            const int32_t in_x0 = out_x * win->stride_w - win->pad_left;
            const span cols = inside(in_x0, win->kernel_w, win->input.w);
            const int32_t count = (rows.end - rows.begin) * (cols.end - cols.begin);
            for (int32_t c = 0; c < channels; ++c) {
                int32_t sum = 0;
                for (int32_t ky = rows.begin; ky < rows.end; ++ky) {
                    for (int32_t kx = cols.begin; kx < cols.end; ++kx) {
                        const int32_t in_y = in_y0 + ky;
                        const int32_t in_x = in_x0 + kx;
                        sum += input[(in_y * win->input.w + in_x) * channels + c];
                    }
                }
                /* Round half away from zero; C division truncates toward zero. */
                const int32_t average =
                    sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                *output++ = nn_clamp_s8(average, params->act_min, params->act_max);
            }
        }
    }
    return NN_OK;
}
