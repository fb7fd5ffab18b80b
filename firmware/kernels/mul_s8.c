/*
 * MUL, int8, with broadcasting.
 *
 * TFLM's arithmetic per element (the reference, mul() below): the product
 * of the two inputs plus their offsets, rescaled to the output
 * (MultiplyByQuantizedMultiplier), offset, clamped. The fast path gives
 * the same bytes with the rescaling in one SMMLAR and a shift
 * (elementwise.h), about 10 instructions an element; mul_plan_of says
 * when it applies (an output right shift of at least 1 bit, as an output
 * scale above the product of the input scales gives).
 */
#include "elementwise.h"

static int8_t mul(int32_t a, int32_t b, const void *context)
{
    const nn_mul_params *p = (const nn_mul_params *)context;
    const int32_t product = (a + p->input1_offset) * (b + p->input2_offset);
    const int32_t scaled = nn_requantize(product, p->output_multiplier, p->output_shift);
    return nn_clamp_s8(scaled + p->output_offset, p->act_min, p->act_max);
}

typedef struct {
    int32_t offset1, twice_offset2;
    nn_ew_output out;
    int32_t act_min, act_max;
} mul_plan;

/* The output element, offset added, not yet clamped: twice the product is (a + o1) (2b + 2 o2). */
static inline int32_t mul_fast(int32_t a, int32_t b, int32_t offset1, int32_t twice_offset2, nn_ew_output out)
{
    return nn_ew_rescale((a + offset1) * (2 * b + twice_offset2), out);
}

/* The largest |x + offset| of an int8 x. */
static int32_t largest_shifted(int32_t offset)
{
    const int32_t low = offset - 128 < 0 ? 128 - offset : offset - 128;
    const int32_t high = offset + 127 < 0 ? -offset - 127 : offset + 127;
    return low > high ? low : high;
}

/* Fills plan and returns 1 when the fast path gives TFLM's bytes (offsets below 2^10 keep 2v in 22 bits). */
static int mul_plan_of(const nn_mul_params *p, mul_plan *plan)
{
    const int32_t limit = 1 << 10;
    if (p->input1_offset <= -limit || p->input1_offset >= limit || p->input2_offset <= -limit ||
        p->input2_offset >= limit) {
        return 0;
    }
    const int64_t largest = 2 * (int64_t)largest_shifted(p->input1_offset) * largest_shifted(p->input2_offset);
    if (!nn_ew_output_of(p->output_multiplier, p->output_shift, p->output_offset, largest, &plan->out)) {
        return 0;
    }
    plan->offset1 = p->input1_offset;
    plan->twice_offset2 = 2 * p->input2_offset;
    plan->act_min = p->act_min;
    plan->act_max = p->act_max;
    return 1;
}

#if NN_DSP
/*
 * n elements of contiguous inputs, 4 at a time: one word of each input,
 * split into pairs of int16 lanes (SXTB16) with the offsets added (SADD16;
 * the second input's doubled), 4 products (SMULBB, SMULTT: 14 instructions
 * where byte by byte they took 19), one packed store. The lanes stay
 * within int16: offsets below 2^10 (mul_plan_of).
 */
NN_INLINE void mul_run_x4(const mul_plan *plan, const int8_t *input1, const int8_t *input2, int8_t *output,
                          int32_t n, int clamp)
{
    const int32_t o1 = plan->offset1, o2 = plan->twice_offset2;
    const int32_t o1_pair = nn_pkhbt16(o1, o1), o2_pair = nn_pkhbt16(o2, o2);
    const nn_ew_output out = plan->out;
    const int32_t lo = plan->act_min, hi = plan->act_max;
    const int32_t lo4 = nn_s8x4_splat(lo), hi4 = nn_s8x4_splat(hi);
    for (; n >= 4; n -= 4) {
        const int32_t a = nn_read_s8x4(input1), b = nn_read_s8x4(input2);
        input1 += 4;
        input2 += 4;
        const int32_t a02 = nn_sadd16(nn_sxtb16(a), o1_pair), a13 = nn_sadd16(nn_sxtb16_ror8(a), o1_pair);
        const int32_t b02 = nn_sxtb16(b), b13 = nn_sxtb16_ror8(b);
        const int32_t twice_b02 = nn_sadd16(nn_sadd16(b02, b02), o2_pair);
        const int32_t twice_b13 = nn_sadd16(nn_sadd16(b13, b13), o2_pair);
        const int32_t word = nn_ew_pack4(nn_ew_rescale(nn_smlabb(a02, twice_b02, 0), out),
                                         nn_ew_rescale(nn_smlabb(a13, twice_b13, 0), out),
                                         nn_ew_rescale(nn_smlatt(a02, twice_b02, 0), out),
                                         nn_ew_rescale(nn_smlatt(a13, twice_b13, 0), out), clamp, lo4, hi4);
        nn_write_s8x4(output, word);
        output += 4;
    }
    for (; n > 0; --n) {
        *output++ = nn_clamp_s8(mul_fast(*input1++, *input2++, o1, o2, out), lo, hi);
    }
}
#endif

/* An nn_ew_run. */
static void mul_run(const void *context, const int8_t *input1, int32_t step1, const int8_t *input2,
                    int32_t step2, int8_t *output, int32_t n)
{
    const mul_plan *plan = (const mul_plan *)context;
#if NN_DSP
    if (step1 == 1 && step2 == 1) {
        if (nn_ew_clamps(plan->act_min, plan->act_max)) {
            mul_run_x4(plan, input1, input2, output, n, 1);
        } else {
            mul_run_x4(plan, input1, input2, output, n, 0);
        }
        return;
    }
#endif
    const int32_t o1 = plan->offset1, o2 = plan->twice_offset2;
    const nn_ew_output out = plan->out;
    const int32_t lo = plan->act_min, hi = plan->act_max;
    for (int32_t i = 0; i < n; ++i) {
        output[i] = nn_clamp_s8(mul_fast(input1[i * step1], input2[i * step2], o1, o2, out), lo, hi);
    }
}

nn_status nn_mul_s8(const nn_mul_params *params, const int8_t *input1, const int8_t *input2,
                    int8_t *output)
{
    if (!nn_broadcast_is_valid(&params->shape)) {
        return NN_ERROR_ARGUMENT;
    }
    mul_plan plan;
    if (mul_plan_of(params, &plan)) {
        nn_ew_apply(&params->shape, input1, input2, output, mul_run, &plan);
    } else {
        nn_broadcast_apply(&params->shape, input1, input2, output, mul, params);
    }
    return NN_OK;
}
