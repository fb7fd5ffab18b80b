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
 *   built once per call (add_table; 1 KB of stack).
 *   Twice the sum is then table[b] + (a << 20): a load and an ADD.
 * - The output rescaling of the sum is one SMMLAR and a shift
 *   (elementwise.h).
 */
#include "elementwise.h"

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

typedef struct {
    int32_t table[256]; /* indexed by the table input's byte as unsigned */
    nn_ew_output out;
    int32_t act_min, act_max;
    int swapped;        /* input1 is the table's, input2 the shifted one's */
} add_plan;

/* The output element, offset added, not yet clamped. */
static inline int32_t add_fast(const int32_t *table, nn_ew_output out, int32_t shifted, uint32_t indexed)
{
    return nn_ew_rescale(table[indexed] + shifted * (1 << LEFT_SHIFT), out);
}

static int is_half(int32_t multiplier, int32_t shift)
{
    return multiplier == 1 << 30 && shift == 0;
}

/*
 * Fills plan and returns 1 when the fast path gives TFLM's bytes: one input
 * rescaled by exactly 1/2, left shift 20, the other input's multiplier >= 0
 * and shift <= 0, and the output stage's conditions (nn_ew_output_of) for
 * twice the largest sum. The rescaling is monotonic (floors of a product
 * with a multiplier >= 0), so the table's extremes are its ends, computed
 * here with the reference arithmetic, in 64 bits.
 */
static int add_plan_of(const nn_add_params *p, add_plan *plan)
{
    if (p->left_shift != LEFT_SHIFT) {
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
    if (!nn_ew_output_of(p->output_multiplier, p->output_shift, p->output_offset, largest, &plan->out)) {
        return 0;
    }
    add_table(plan->table, offset, multiplier, -shift, shifted_offset * (1 << LEFT_SHIFT));
    plan->act_min = p->act_min;
    plan->act_max = p->act_max;
    return 1;
}

#if NN_DSP
/* n elements of contiguous inputs, 4 at a time: one word of each input, one packed store. */
NN_INLINE void add_run_x4(const add_plan *plan, const int8_t *shifted, const int8_t *indexed, int8_t *output,
                          int32_t n, int clamp)
{
    const int32_t *table = plan->table;
    const nn_ew_output out = plan->out;
    const int32_t lo = plan->act_min, hi = plan->act_max;
    const int32_t lo4 = nn_s8x4_splat(lo), hi4 = nn_s8x4_splat(hi);
    for (; n >= 4; n -= 4) {
        const int32_t s = nn_read_s8x4(shifted), x = nn_read_s8x4(indexed);
        shifted += 4;
        indexed += 4;
        const int32_t word = nn_ew_pack4(add_fast(table, out, (int8_t)s, (uint8_t)x),
                                         add_fast(table, out, (int8_t)(s >> 8), (uint8_t)(x >> 8)),
                                         add_fast(table, out, (int8_t)(s >> 16), (uint8_t)(x >> 16)),
                                         add_fast(table, out, s >> 24, (uint32_t)x >> 24), clamp, lo4, hi4);
        nn_write_s8x4(output, word);
        output += 4;
    }
    for (; n > 0; --n) {
        *output++ = nn_clamp_s8(add_fast(table, out, *shifted++, (uint8_t)*indexed++), lo, hi);
    }
}
#endif

/* An nn_ew_run, with the shifted input first. */
static void add_run(const void *context, const int8_t *shifted, int32_t shifted_step, const int8_t *indexed,
                    int32_t indexed_step, int8_t *output, int32_t n)
{
    const add_plan *plan = (const add_plan *)context;
#if NN_DSP
    if (shifted_step == 1 && indexed_step == 1) {
        if (nn_ew_clamps(plan->act_min, plan->act_max)) {
            add_run_x4(plan, shifted, indexed, output, n, 1);
        } else {
            add_run_x4(plan, shifted, indexed, output, n, 0);
        }
        return;
    }
#endif
    const int32_t *table = plan->table;
    const nn_ew_output out = plan->out;
    const int32_t lo = plan->act_min, hi = plan->act_max;
    for (int32_t i = 0; i < n; ++i) {
        output[i] = nn_clamp_s8(add_fast(table, out, shifted[i * shifted_step], (uint8_t)indexed[i * indexed_step]),
                                lo, hi);
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
        if (plan.swapped) {
            const nn_broadcast *shape = &params->shape;
            nn_broadcast swapped = *shape;
            memcpy(swapped.input1_stride, shape->input2_stride, sizeof swapped.input1_stride);
            memcpy(swapped.input2_stride, shape->input1_stride, sizeof swapped.input2_stride);
            nn_ew_apply(&swapped, input2, input1, output, add_run, &plan);
        } else {
            nn_ew_apply(&params->shape, input1, input2, output, add_run, &plan);
        }
    } else {
        nn_broadcast_apply(&params->shape, input1, input2, output, add, params);
    }
    return NN_OK;
}
