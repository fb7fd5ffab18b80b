/*
 * ADD, int8, with broadcasting.
 *
 * TFLM's arithmetic per element (the reference, add() below): each input
 * plus its offset, shifted left by left_shift, rescaled to the common
 * scale (MultiplyByQuantizedMultiplier: a rounding doubling high multiply,
 * then a rounding shift right), the two added, the sum rescaled to the
 * output, offset, clamped. Three 64-bit rescalings, about 100 instructions.
 *
 * The fast path gives the same bytes in about 10 (add_plan_of says when it
 * applies; TFLM's int8 parameters always qualify):
 * - TFLM rescales the input with the larger scale by exactly 1/2 (multiplier
 *   2^30, shift 0), which is exact: 2 * (x << 20) * 2^30 / 2^31, rounded,
 *   is x << 20. So twice its rescaled value is (a + offset) << 20.
 * - The other input has 256 possible values: twice each one's rescaled
 *   value, plus the first input's offset << 20, is a table of 256 words
 *   built once per call with the reference arithmetic (1 KB of stack).
 *   Twice the sum is then table[b] + (a << 20): a load and an ADD.
 * - The output rescaling of a sum S (multiplier m >= 0, right shift e >= 1)
 *   is floor((floor((S m + 2^30) / 2^31) + 2^(e-1) - [S < 0]) / 2^e)
 *   (requantize.h: TFLM's rounding doubling high multiply is this floor,
 *   its ties-away-from-zero shift the second; S's sign stands in for the
 *   first result's, which differs only where that result is 0, and then
 *   both give 0). Nested floors fold, so with the output offset z added,
 *       out + z = floor(SMMLAR(2S, m, k) / 2^e),  k = 2^(e-1) + z 2^e - [S < 0]
 *   where SMMLAR(x, y, k) = floor((k 2^32 + x y + 2^31) / 2^32), the top
 *   word of a 64-bit multiply-accumulate with rounding: one instruction on
 *   DSP cores, exact as long as the true value fits in 32 bits, which
 *   add_plan_of checks from the table's largest entry.
 */
#include "kernel_util.h"

enum { LEFT_SHIFT = 20 }; /* TFLM's for int8; the fast path's `a << 20` is an operand shift */

static int8_t add(int32_t a, int32_t b, const void *context)
{
    const nn_add_params *p = (const nn_add_params *)context;
    /* Both inputs get left_shift bits of headroom, then meet at a common scale. */
    const int32_t scaled_a = nn_requantize((a + p->input1_offset) * (1 << p->left_shift),
                                           p->input1_multiplier, p->input1_shift);
    const int32_t scaled_b = nn_requantize((b + p->input2_offset) * (1 << p->left_shift),
                                           p->input2_multiplier, p->input2_shift);
    const int32_t sum = nn_requantize(scaled_a + scaled_b, p->output_multiplier, p->output_shift);
    return nn_clamp_s8(sum + p->output_offset, p->act_min, p->act_max);
}

/* floor((acc 2^32 + x y + 2^31) / 2^32) modulo 2^32: SMMLAR. */
#if defined(__ARM_FEATURE_DSP)
static inline int32_t smmlar(int32_t x, int32_t y, int32_t acc)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
    return r;
}
#else
static inline int32_t smmlar(int32_t x, int32_t y, int32_t acc)
{
    const uint64_t sum = ((uint64_t)(uint32_t)acc << 32) + (uint64_t)((int64_t)x * y) + (1u << 31);
    return (int32_t)(uint32_t)(sum >> 32);
}
#endif

/* The output stage's constants: the output multiplier, k without its sign term, e. */
typedef struct {
    int32_t multiplier, round, shift;
} add_output;

typedef struct {
    int32_t table[256]; /* indexed by the table input's byte as unsigned */
    add_output out;
    int32_t act_min, act_max;
    int swapped;        /* input1 is the table's, input2 the shifted one's */
} add_plan;

/*
 * The output element, offset added, not yet clamped. The constants come by
 * value: read through the plan, they would be read again after every store
 * (an int8 store may alias them).
 */
static inline int32_t add_fast(const int32_t *table, add_output out, int32_t shifted, uint32_t indexed)
{
    const int32_t twice_sum = table[indexed] + shifted * (1 << LEFT_SHIFT);
    return smmlar(twice_sum, out.multiplier, out.round + (twice_sum >> 31)) >> out.shift;
}

/*
 * table[(uint8_t)b] = 2 z(b + offset) + base for every byte b, where z(v) is
 * TFLM's rescaling of v << 20 by multiplier and a right shift e in [0, 31].
 * Its rounding doubling high multiply is floor((v m 2^20 + 2^30) / 2^31) =
 * floor((v m + 2^10) / 2^11) (the factor 2^20 cancels), and its rounding
 * shift folds in as in requantize.h: with s = 11 + e,
 *     z(v) = floor((v m + c) / 2^s),  c = 2^10 + (2^(e-1) - [v < 0]) 2^11
 * (c = 2^10 for e = 0). Scaled by 2^(32 - s) (when s <= 32; else the rest
 * of the shift follows), that is the high word of a 64-bit sum that grows
 * by m 2^(32 - s) from one v to the next: 256 entries in one pass, where
 * the reference costs 20 to 40 instructions an entry. Out of line: inlined
 * into nn_add_s8 beside the other paths, its loop spilled 4 registers.
 */
#if defined(__GNUC__)
__attribute__((noinline))
#endif
static void add_table(int32_t *table, int32_t offset, int32_t multiplier, int32_t e, int32_t base)
{
    const int32_t up = e <= 21 ? 21 - e : 0, down = e <= 21 ? 0 : e - 21;
    const int64_t scale = (int64_t)1 << up;
    const int64_t half = e == 0 ? 0 : (int64_t)1 << (e - 1);
    const int64_t sign_step = e == 0 ? 0 : 2048 * scale; /* c's change where v reaches 0 */
    const int32_t first = offset - 128;
    int64_t sum = ((int64_t)first * multiplier + 1024 + half * 2048) * scale - (first < 0 ? sign_step : 0);
    const int64_t step = (int64_t)multiplier * scale;
    /* b from -128 to 127: the table's upper half, then its lower half. */
    for (int32_t b = -128; b < 128; ++b) {
        if (b == -offset) {
            sum += sign_step;
        }
        table[b & 0xFF] = base + 2 * ((int32_t)(sum >> 32) >> down);
        sum += step;
    }
}

static int is_half(int32_t multiplier, int32_t shift)
{
    return multiplier == 1 << 30 && shift == 0;
}

/*
 * Fills plan and returns 1 when the fast path gives TFLM's bytes: one input
 * rescaled by exactly 1/2, left shift 20, multipliers >= 0, the other
 * input's shift <= 0, an output right shift of 1 to 31 bits, and every
 * intermediate value within 32 bits. The rescaling is then monotonic
 * (floors of a product with a multiplier >= 0), so the table's extremes are
 * its ends, where the bounds are checked, in 64-bit arithmetic.
 */
static int add_plan_of(const nn_add_params *p, add_plan *plan)
{
    const int32_t e = -p->output_shift;
    if (p->left_shift != LEFT_SHIFT || p->output_multiplier < 0 || e < 1 || e > 31) {
        return 0;
    }
    plan->swapped = !is_half(p->input1_multiplier, p->input1_shift);
    if (plan->swapped && !is_half(p->input2_multiplier, p->input2_shift)) {
        return 0;
    }
    const int32_t shifted_offset = plan->swapped ? p->input2_offset : p->input1_offset;
    const int32_t offset = plan->swapped ? p->input1_offset : p->input2_offset;
    const int32_t multiplier = plan->swapped ? p->input1_multiplier : p->input2_multiplier;
    const int32_t shift = plan->swapped ? p->input1_shift : p->input2_shift;
    const int32_t offset_limit = 1 << (31 - LEFT_SHIFT - 2); /* (b + offset) << 20 fits */
    if (multiplier < 0 || shift > 0 || shifted_offset < -offset_limit || shifted_offset >= offset_limit ||
        offset < -offset_limit || offset >= offset_limit) {
        return 0;
    }
    int64_t largest = 0; /* |table entry| + |a << 20| */
    for (int32_t end = -128; end < 128; end += 255) {
        const int32_t scaled = nn_requantize((end + offset) * (1 << LEFT_SHIFT), multiplier, shift);
        const int64_t entry = 2 * (int64_t)scaled + (int64_t)shifted_offset * (1 << LEFT_SHIFT);
        const int64_t magnitude = (entry < 0 ? -entry : entry) + ((int64_t)128 << LEFT_SHIFT);
        largest = magnitude > largest ? magnitude : largest;
    }
    /* SMMLAR's true value is at most |S| m / 2^31 + 1 + |k|, with |S| <= largest / 2. */
    const int64_t output_offset = p->output_offset < 0 ? -(int64_t)p->output_offset : p->output_offset;
    const int64_t top = largest / 2 + 2 + ((int64_t)1 << (e - 1)) + (output_offset << e);
    if (largest > INT32_MAX || top > INT32_MAX) {
        return 0;
    }
    add_table(plan->table, offset, multiplier, -shift, shifted_offset * (1 << LEFT_SHIFT));
    plan->out.multiplier = p->output_multiplier;
    plan->out.round = (int32_t)(((int64_t)1 << (e - 1)) + (int64_t)p->output_offset * ((int64_t)1 << e));
    plan->out.shift = e;
    plan->act_min = p->act_min;
    plan->act_max = p->act_max;
    return 1;
}

#if NN_DSP
/* y's low byte into bits 8 * lane to 8 * lane + 7 of word: BFI. */
#if defined(__ARM_FEATURE_DSP)
#define ADD_INSERT_BYTE(word, y, lane) __asm__("bfi %0, %1, #(8 * " #lane "), #8" : "+r"(word) : "r"(y))
#else
#define ADD_INSERT_BYTE(word, y, lane) \
    ((word) = (int32_t)(((uint32_t)(word) & ~(0xFFu << 8 * (lane))) | ((uint32_t)(y) & 0xFFu) << 8 * (lane)))
#endif

/*
 * n elements of contiguous inputs, 4 at a time: one word of each input,
 * 4 results saturated to int8 (SSAT) and inserted into one word (3 BFI),
 * one store; clamped to the activation range only when it is narrower than
 * int8 (a fused ReLU whose output zero point is -128 clamps nothing).
 */
NN_INLINE void add_run_x4(const add_plan *plan, const int8_t *shifted, const int8_t *indexed, int8_t *output,
                          int32_t n, int clamp)
{
    const int32_t *table = plan->table;
    const add_output out = plan->out;
    const int32_t lo = plan->act_min, hi = plan->act_max;
    const int32_t lo4 = nn_s8x4_splat(lo), hi4 = nn_s8x4_splat(hi);
    for (; n >= 4; n -= 4) {
        const int32_t s = nn_read_s8x4(shifted), x = nn_read_s8x4(indexed);
        shifted += 4;
        indexed += 4;
        int32_t word = nn_ssat8(add_fast(table, out, (int8_t)s, (uint8_t)x));
        ADD_INSERT_BYTE(word, nn_ssat8(add_fast(table, out, (int8_t)(s >> 8), (uint8_t)(x >> 8))), 1);
        ADD_INSERT_BYTE(word, nn_ssat8(add_fast(table, out, (int8_t)(s >> 16), (uint8_t)(x >> 16))), 2);
        ADD_INSERT_BYTE(word, nn_ssat8(add_fast(table, out, s >> 24, (uint32_t)x >> 24)), 3);
        if (clamp) {
            word = nn_min_s8x4(nn_max_s8x4(word, lo4), hi4);
        }
        nn_write_s8x4(output, word);
        output += 4;
    }
    for (; n > 0; --n) {
        *output++ = nn_clamp_s8(add_fast(table, out, *shifted++, (uint8_t)*indexed++), lo, hi);
    }
}
#endif

/* n elements; a step of 0 repeats that input's element (broadcast). */
static void add_run(const add_plan *plan, const int8_t *shifted, int32_t shifted_step, const int8_t *indexed,
                    int32_t indexed_step, int8_t *output, int32_t n)
{
#if NN_DSP
    if (shifted_step == 1 && indexed_step == 1) {
        if (plan->act_min > -128 || plan->act_max < 127) {
            add_run_x4(plan, shifted, indexed, output, n, 1);
        } else {
            add_run_x4(plan, shifted, indexed, output, n, 0);
        }
        return;
    }
#endif
    const int32_t *table = plan->table;
    const add_output out = plan->out;
    const int32_t lo = plan->act_min, hi = plan->act_max;
    for (int32_t i = 0; i < n; ++i) {
        output[i] = nn_clamp_s8(add_fast(table, out, shifted[i * shifted_step], (uint8_t)indexed[i * indexed_step]),
                                lo, hi);
    }
}

static void add_fast_apply(const nn_broadcast *shape, const add_plan *plan, const int8_t *input1,
                           const int8_t *input2, int8_t *output)
{
    const int32_t *d = shape->dims;
    const int32_t *s1 = plan->swapped ? shape->input2_stride : shape->input1_stride;
    const int32_t *s2 = plan->swapped ? shape->input1_stride : shape->input2_stride;
    const int8_t *shifted = plan->swapped ? input2 : input1;
    const int8_t *indexed = plan->swapped ? input1 : input2;
    const int32_t n = d[0] * d[1] * d[2] * d[3];
    const int32_t contiguous[4] = {d[1] * d[2] * d[3], d[2] * d[3], d[3], 1};
    if (memcmp(s1, contiguous, sizeof contiguous) == 0 && memcmp(s2, contiguous, sizeof contiguous) == 0) {
        add_run(plan, shifted, 1, indexed, 1, output, n);
        return;
    }
    for (int32_t i = 0; i < d[0]; ++i) {
        for (int32_t j = 0; j < d[1]; ++j) {
            for (int32_t k = 0; k < d[2]; ++k) {
                add_run(plan, shifted + i * s1[0] + j * s1[1] + k * s1[2], s1[3],
                        indexed + i * s2[0] + j * s2[1] + k * s2[2], s2[3], output, d[3]);
                output += d[3];
            }
        }
    }
}

nn_status nn_add_s8(const nn_add_params *params, const int8_t *input1, const int8_t *input2,
                    int8_t *output)
{
    if (!nn_broadcast_is_valid(&params->shape) || params->left_shift < 0 || params->left_shift > 22) {
        return NN_ERROR_ARGUMENT;
    }
    add_plan plan;
    if (add_plan_of(params, &plan)) {
        add_fast_apply(&params->shape, &plan, input1, input2, output);
    } else {
        nn_broadcast_apply(&params->shape, input1, input2, output, add, params);
    }
    return NN_OK;
}
