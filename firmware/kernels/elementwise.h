/*
 * The output stage shared by ADD and MUL (add_s8.c, mul_s8.c), and the
 * instructions they use beyond simd.h's.
 *
 * Both end in TFLM's MultiplyByQuantizedMultiplier of an int32 value v
 * (ADD's sum at the common scale, MUL's product) by a multiplier m >= 0
 * and a right shift e >= 1, then add the output zero point z. That is
 *     floor((floor((v m + 2^30) / 2^31) + 2^(e-1) - [v < 0]) / 2^e) + z
 * (requantize.h: TFLM's rounding doubling high multiply is this floor, its
 * ties-away-from-zero shift the second; v's sign stands in for the first
 * result's, which differs only where that result is 0, and then both give
 * 0). Nested floors fold, and with twice v,
 *     out + z = floor(SMMLAR(2v, m, k) / 2^e),  k = 2^(e-1) + z 2^e - [v < 0]
 * where SMMLAR(x, y, k) = floor((k 2^32 + x y + 2^31) / 2^32) is the top
 * word of a 64-bit multiply-accumulate with rounding: one instruction on
 * DSP cores, exact as long as 2v and the true value fit in 32 bits, which
 * nn_ew_output_of checks from a bound on |2v|.
 */
#ifndef NN_ELEMENTWISE_H
#define NN_ELEMENTWISE_H

#include "kernel_util.h"

/* floor((acc 2^32 + x y + 2^31) / 2^32) modulo 2^32: SMMLAR. */
#if defined(__ARM_FEATURE_DSP)
static inline int32_t nn_smmlar(int32_t x, int32_t y, int32_t acc)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
    return r;
}
#else
static inline int32_t nn_smmlar(int32_t x, int32_t y, int32_t acc)
{
    const uint64_t sum = ((uint64_t)(uint32_t)acc << 32) + (uint64_t)((int64_t)x * y) + (1u << 31);
    return (int32_t)(uint32_t)(sum >> 32);
}
#endif

/* y's low byte into bits 8 * lane to 8 * lane + 7 of word (a constant lane): BFI. */
#if defined(__ARM_FEATURE_DSP)
#define NN_INSERT_BYTE(word, y, lane) __asm__("bfi %0, %1, #(8 * " #lane "), #8" : "+r"(word) : "r"(y))
#else
#define NN_INSERT_BYTE(word, y, lane) \
    ((word) = (int32_t)(((uint32_t)(word) & ~(0xFFu << 8 * (lane))) | ((uint32_t)(y) & 0xFFu) << 8 * (lane)))
#endif

#if NN_DSP
/*
 * Four results as the int8 lanes of a word, y0 lowest: each saturated
 * (SSAT) and inserted (3 BFI), then, when clamp, clamped to [lo, hi] given
 * in every byte of lo4 and hi4 (2 SSUB8 + SEL). A fused ReLU whose output
 * zero point is -128 clamps nothing, and kernels then pass clamp 0.
 */
NN_INLINE int32_t nn_ew_pack4(int32_t y0, int32_t y1, int32_t y2, int32_t y3, int clamp, int32_t lo4,
                              int32_t hi4)
{
    int32_t word = nn_ssat8(y0);
    NN_INSERT_BYTE(word, nn_ssat8(y1), 1);
    NN_INSERT_BYTE(word, nn_ssat8(y2), 2);
    NN_INSERT_BYTE(word, nn_ssat8(y3), 3);
    return clamp ? nn_min_s8x4(nn_max_s8x4(word, lo4), hi4) : word;
}
#endif

/* The output stage's constants: m, k without its sign term, e. Kernels keep a copy in registers. */
typedef struct {
    int32_t multiplier, round, shift;
} nn_ew_output;

/*
 * Fills out and returns 1 when nn_ew_rescale gives TFLM's result for every
 * |2v| <= largest_twice: a multiplier >= 0, a right shift of 1 to 31 bits,
 * 2v within 32 bits, and SMMLAR's true value, at most |v| m / 2^31 + 1 +
 * |k|, too (bounded in 64-bit arithmetic).
 */
static inline int nn_ew_output_of(int32_t multiplier, int32_t shift, int32_t zero_point, int64_t largest_twice,
                                  nn_ew_output *out)
{
    const int32_t e = -shift;
    if (multiplier < 0 || e < 1 || e > 31 || largest_twice > INT32_MAX) {
        return 0;
    }
    const int64_t z = zero_point < 0 ? -(int64_t)zero_point : zero_point;
    if (largest_twice / 2 + 2 + ((int64_t)1 << (e - 1)) + (z << e) > INT32_MAX) {
        return 0;
    }
    out->multiplier = multiplier;
    out->round = (int32_t)(((int64_t)1 << (e - 1)) + (int64_t)zero_point * ((int64_t)1 << e));
    out->shift = e;
    return 1;
}

/* The output element from twice v, zero point added, not yet clamped. */
static inline int32_t nn_ew_rescale(int32_t twice, nn_ew_output out)
{
    return nn_smmlar(twice, out.multiplier, out.round + (twice >> 31)) >> out.shift;
}

/* Whether act_min..act_max clamps anything that SSAT to int8 leaves (nn_ew_pack4's clamp). */
static inline int nn_ew_clamps(int32_t act_min, int32_t act_max)
{
    return act_min > -128 || act_max < 127;
}

/*
 * A kernel's loop over n output elements; step1 and step2 are 1, or 0
 * for an input whose element repeats (broadcast).
 */
typedef void (*nn_ew_run)(const void *plan, const int8_t *input1, int32_t step1, const int8_t *input2,
                          int32_t step2, int8_t *output, int32_t n);

/*
 * The output in runs along its last dimension, each input read at its
 * broadcast strides (kernels.h), or in one run when neither input is
 * broadcast.
 */
static inline void nn_ew_apply(const nn_broadcast *shape, const int8_t *input1, const int8_t *input2,
                               int8_t *output, nn_ew_run run, const void *plan)
{
    const int32_t *d = shape->dims;
    const int32_t *s1 = shape->input1_stride;
    const int32_t *s2 = shape->input2_stride;
    const int32_t contiguous[4] = {d[1] * d[2] * d[3], d[2] * d[3], d[3], 1};
    if (memcmp(s1, contiguous, sizeof contiguous) == 0 && memcmp(s2, contiguous, sizeof contiguous) == 0) {
        run(plan, input1, 1, input2, 1, output, d[0] * contiguous[0]);
        return;
    }
    for (int32_t i = 0; i < d[0]; ++i) {
        for (int32_t j = 0; j < d[1]; ++j) {
            for (int32_t k = 0; k < d[2]; ++k) {
                run(plan, input1 + i * s1[0] + j * s1[1] + k * s1[2], s1[3],
                    input2 + i * s2[0] + j * s2[1] + k * s2[2], s2[3], output, d[3]);
                output += d[3];
            }
        }
    }
}

#endif /* NN_ELEMENTWISE_H */
