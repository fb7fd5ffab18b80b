/* MAX_POOL_2D and AVERAGE_POOL_2D, int8. */
#include "kernel_util.h"
#include "simd.h"

/* AVERAGE_POOL_2D on DSP cores sums 4 channels a word in int16 lanes (SXTB16, SADD16): exact while a
 * window holds at most this many values, whose sum stays within -32768..32512. */
#define NN_AVG_POOL_PACKED_MAX_COUNT 256

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

/* Round half away from zero, as TFLite Micro; C division truncates toward zero. */
static int8_t average_of(int32_t sum, int32_t count, const nn_pool2d_params *params)
{
    const int32_t average = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
    return nn_clamp_s8(average, params->act_min, params->act_max);
}

/* The window's pixels: from `first`, rows of `cols` pixels `row_step` bytes apart, pixels `channels` apart. */
typedef struct {
    const int8_t *first;
    int32_t rows, cols, row_step, channels, count;
} window_pixels;

static int32_t window_sum(const window_pixels *w, int32_t c)
{
    int32_t sum = 0;
    for (int32_t y = 0; y < w->rows; ++y) {
        const int8_t *p = w->first + y * w->row_step + c;
        for (int32_t x = 0; x < w->cols; ++x, p += w->channels) {
            sum += *p;
        }
    }
    return sum;
}

#if NN_DSP
/* Channels c..c+3: one word load per pixel, 2 lanes of 16-bit sums per register. */
static void window_sums4(const window_pixels *w, int32_t c, const nn_pool2d_params *params, int8_t *out)
{
    int32_t even = 0; /* channels c and c+2 */
    int32_t odd = 0;  /* c+1 and c+3 */
    for (int32_t y = 0; y < w->rows; ++y) {
        const int8_t *p = w->first + y * w->row_step + c;
        for (int32_t x = 0; x < w->cols; ++x, p += w->channels) {
            const int32_t word = nn_read_s8x4(p);
            even = nn_sadd16(even, nn_sxtb16(word));
            odd = nn_sadd16(odd, nn_sxtb16_ror8(word));
        }
    }
    out[0] = average_of((int16_t)(uint16_t)((uint32_t)even & 0xFFFFu), w->count, params);
    out[1] = average_of((int16_t)(uint16_t)((uint32_t)odd & 0xFFFFu), w->count, params);
    out[2] = average_of((int16_t)(uint16_t)((uint32_t)even >> 16), w->count, params);
    out[3] = average_of((int16_t)(uint16_t)((uint32_t)odd >> 16), w->count, params);
}
#endif

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
            const window_pixels w = {
                .first = input + ((in_y0 + rows.begin) * win->input.w + in_x0 + cols.begin) * channels,
                .rows = rows.end - rows.begin,
                .cols = cols.end - cols.begin,
                .row_step = win->input.w * channels,
                .channels = channels,
                .count = (rows.end - rows.begin) * (cols.end - cols.begin),
            };
            int32_t c = 0;
#if NN_DSP
            if (w.count <= NN_AVG_POOL_PACKED_MAX_COUNT) {
                for (; c + 4 <= channels; c += 4) {
                    window_sums4(&w, c, params, output + c);
                }
            }
#endif
            for (; c < channels; ++c) {
                output[c] = average_of(window_sum(&w, c), w.count, params);
            }
            output += channels;
        }
    }
    return NN_OK;
}
