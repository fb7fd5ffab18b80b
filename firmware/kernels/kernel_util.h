/*
 * Small pieces shared by the kernel files (not part of the kernel API).
 */
#ifndef NN_KERNEL_UTIL_H
#define NN_KERNEL_UTIL_H

#include "kernels.h"
#include "requantize.h"

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

/* sum over row's nonzeros of value * x[index]. */
static inline int32_t nn_csr_row_dot(const nn_csr_s8 *matrix, int32_t row, const int8_t *x)
{
    const uint32_t begin = matrix->row_start_u16 ? matrix->row_start_u16[row]
                                                 : matrix->row_start_u32[row];
    const uint32_t end = matrix->row_start_u16 ? matrix->row_start_u16[row + 1]
                                               : matrix->row_start_u32[row + 1];
    int32_t acc = 0;
    /* One loop per index width keeps the width test out of the inner loop. */
    if (matrix->index_u8 != 0) {
        for (uint32_t k = begin; k < end; ++k) {
            acc += matrix->values[k] * x[matrix->index_u8[k]];
        }
    } else {
        for (uint32_t k = begin; k < end; ++k) {
            acc += matrix->values[k] * x[matrix->index_u16[k]];
        }
    }
    return acc;
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
