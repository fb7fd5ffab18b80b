/*
 * ADD, int8, with broadcasting: the reference kernel (the oracle).
 *
 * TFLite Micro's reference_integer_ops::AddElementwise, one output element
 * at a time: each input plus its offset, shifted left by left_shift bits of
 * headroom and rescaled to the common scale, the two summed, the sum
 * rescaled to the output, offset, clamped. Every rescaling is the general
 * MultiplyByQuantizedMultiplier.
 */
#include "reference.h"

static int8_t add(int32_t a, int32_t b, const void *context)
{
    const nn_add_params *p = (const nn_add_params *)context;
    const int32_t shifted_a = (a + p->input1_offset) * (1 << p->left_shift);
    const int32_t shifted_b = (b + p->input2_offset) * (1 << p->left_shift);
    const int32_t scaled_a = nn_requantize_reference(shifted_a, p->input1_multiplier, p->input1_shift);
    const int32_t scaled_b = nn_requantize_reference(shifted_b, p->input2_multiplier, p->input2_shift);
    const int32_t sum = nn_requantize_reference(scaled_a + scaled_b, p->output_multiplier, p->output_shift);
    return nn_clamp_s8(sum + p->output_offset, p->act_min, p->act_max);
}

nn_status nn_add_s8(const nn_add_params *params, const int8_t *input1, const int8_t *input2,
                    int8_t *output)
{
    if (!nn_broadcast_is_valid(&params->shape) || params->left_shift < 0 || params->left_shift > 22) {
        return NN_ERROR_ARGUMENT;
    }
    nn_broadcast_apply(&params->shape, input1, input2, output, add, params);
    return NN_OK;
}
