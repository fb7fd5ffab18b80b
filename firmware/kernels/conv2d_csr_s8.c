/*
 * CONV_2D, int8, CSR weights.
 *
 * Each nonzero weight stores the offset of its input relative to the
 * window's top-left corner, so the inner loop is a plain sparse dot
 * product. When windows reach outside the image, the kernel_h rows one
 * output row reads are first copied into a band padded with the input zero
 * point (what padding reads, see kernels.h), so the scratch buffer is a few
 * rows, not a padded image. Every nonzero and its offset are loaded once
 * per tile of NN_CONV_TILE pixels and used against each pixel's window:
 * packing (SMLAD) would not help here, as every product needs its own
 * gathered input.
 */
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

int32_t nn_conv2d_csr_s8_get_buffer_size(const nn_conv2d_params *params)
{
    const nn_window *win = &params->window;
    if (!nn_sparse_conv_pads(win)) {
        return 0;
    }
    const nn_hwc padded = nn_conv2d_csr_s8_padded_size(win);
    return win->kernel_h * padded.w * padded.c;
}

/* The nonzero of value w whose inputs sit o bytes past each window corner (each evaluated once). */
#define TAP(w, o)                                        \
    do {                                                 \
        const int32_t value_ = (w);                      \
        const uint32_t offset_ = (o);                    \
        a0 += value_ * c0[offset_];                      \
        a1 += value_ * c1[offset_];                      \
        a2 += value_ * c2[offset_];                      \
        a3 += value_ * c3[offset_];                      \
    } while (0)

/*
 * One nonzero in assembly: index and value loads that step their pointers
 * (post-indexed), 4 input loads, 4 SMLABB.
 */
#define TAP_ASM(load, step)                              \
    load " %[o], [%[i]], #" #step "\n\t"                 \
    "ldrsb %[w], [%[v]], #1\n\t"                         \
    "ldrsb %[t], [%[c0], %[o]]\n\t"                      \
    "smlabb %[a0], %[w], %[t], %[a0]\n\t"                \
    "ldrsb %[t], [%[c1], %[o]]\n\t"                      \
    "smlabb %[a1], %[w], %[t], %[a1]\n\t"                \
    "ldrsb %[t], [%[c2], %[o]]\n\t"                      \
    "smlabb %[a2], %[w], %[t], %[a2]\n\t"                \
    "ldrsb %[t], [%[c3], %[o]]\n\t"                      \
    "smlabb %[a3], %[w], %[t], %[a3]\n\t"

/*
 * The nonzeros from v to end (an even count, at least 2) in assembly, 4 a
 * turn; a count of 4k + 2 enters the loop halfway. GCC's own loop steps
 * the pointers with separate ADDs and spills a corner (13.5 instructions
 * per nonzero unrolled by 2, 12 not unrolled); this one takes 10.5, in
 * all 14 allocatable registers. It reads memory through its pointers
 * only, hence the "memory" clobber.
 */
#define NONZEROS_ASM(load, step, index)                                                          \
    __asm__("sub %[t], %[end], %[v]\n\t"                                                         \
            "tst %[t], #2\n\t"                                                                   \
            "bne 2f\n"                                                                           \
            "1:\n\t" TAP_ASM(load, step) TAP_ASM(load, step)                                     \
            "2:\n\t" TAP_ASM(load, step) TAP_ASM(load, step)                                     \
            "cmp %[v], %[end]\n\t"                                                               \
            "bne 1b"                                                                             \
            : [v] "+r"(v), [i] "+r"(index), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2),         \
              [a3] "+r"(a3), [o] "=&r"(o_), [w] "=&r"(w_), [t] "=&r"(t_)                         \
            : [end] "r"(end), [c0] "r"(c0), [c1] "r"(c1), [c2] "r"(c2), [c3] "r"(c3)             \
            : "cc", "memory")

/*
 * One channel's n nonzeros against the tile's windows; one of index_u8 /
 * index_u16 is NULL. An odd n takes one nonzero first, then the loop takes
 * 2 or 4 a turn. The assembly loop runs on Arm cores with the DSP
 * extension (SMLABB); NN_EMULATE_DSP host builds take the C loop, which
 * computes the same sums.
 */
NN_INLINE void tile_dot(const int8_t *v, const uint8_t *index_u8, const uint16_t *index_u16, uint32_t n,
                        const int8_t *const corner[NN_CONV_TILE], int32_t acc[NN_CONV_TILE])
{
    const int8_t *c0 = corner[0], *c1 = corner[1], *c2 = corner[2], *c3 = corner[3];
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    const int8_t *const end = v + n;
#if defined(__ARM_FEATURE_DSP)
    uint32_t o_, w_, t_; /* NONZEROS_ASM's scratch registers */
#endif
    if (n & 1u) {
        TAP(*v++, index_u8 ? *index_u8++ : *index_u16++);
    }
#if defined(__ARM_FEATURE_DSP)
    if (v != end) {
        if (index_u8) {
            NONZEROS_ASM("ldrb", 1, index_u8);
        } else {
            NONZEROS_ASM("ldrh", 2, index_u16);
        }
    }
#else
    while (v != end) {
        TAP(*v++, index_u8 ? *index_u8++ : *index_u16++);
        TAP(*v++, index_u8 ? *index_u8++ : *index_u16++);
    }
#endif
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/*
 * Every channel of one tile; one of index_u8 / index_u16 is NULL, and each
 * case is inlined on its own, so no width test is left in the inner loop.
 */
NN_INLINE void tile(const nn_requant *requant, int32_t out_c, const nn_csr_s8 *weights,
                    const uint8_t *index_u8, const uint16_t *index_u16, const int32_t *bias,
                    const int8_t *const corner[NN_CONV_TILE], int32_t pixels, int8_t *output)
{
    uint32_t begin = nn_csr_row_start(weights, 0);
    for (int32_t ch = 0; ch < out_c; ++ch) {
        const uint32_t end = nn_csr_row_start(weights, ch + 1);
        int32_t acc[NN_CONV_TILE];
        tile_dot(weights->values + begin, index_u8 ? index_u8 + begin : 0, index_u8 ? 0 : index_u16 + begin,
                 end - begin, corner, acc);
        nn_sparse_conv_store(acc, pixels, ch, bias, requant, output, out_c);
        begin = end;
    }
}

nn_status nn_conv2d_csr_s8(const nn_conv2d_params *params, const int8_t *input,
                           const nn_csr_s8 *weights, const int32_t *bias, int8_t *output,
                           int8_t *buffer)
{
    const nn_window *win = &params->window;
    if (!nn_sparse_conv_is_valid(win, buffer)) {
        return NN_ERROR_ARGUMENT;
    }
    /* Local copies: an int8 store may alias anything, so they would be read again every channel. */
    const nn_requant requant = params->requant;
    const nn_csr_s8 w = *weights;
    const int8_t zero_point = (int8_t)(-requant.input_offset);
    const int32_t out_c = win->output.c;
    nn_sparse_conv_walk walk = nn_sparse_conv_begin(win, input, zero_point, buffer);
    const int8_t *corner[NN_CONV_TILE];
    for (int32_t pixels; (pixels = nn_sparse_conv_next(&walk, corner)) != 0; output += pixels * out_c) {
        if (w.index_u8 != 0) {
            tile(&requant, out_c, &w, w.index_u8, 0, bias, corner, pixels, output);
        } else {
            tile(&requant, out_c, &w, 0, w.index_u16, bias, corner, pixels, output);
        }
    }
    return NN_OK;
}
