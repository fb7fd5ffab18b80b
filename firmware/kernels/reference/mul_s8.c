/*
 * MUL, int8, with broadcasting: the reference kernel (the oracle).
 *
 * TFLite Micro's reference_integer_ops::MulElementwise, one output element
 * at a time: the product of the two inputs plus their offsets, rescaled to
 * the output by the general MultiplyByQuantizedMultiplier, offset, clamped.
 */
#include "reference.h"

static int8_t mul(int32_t a, int32_t b, const void *context)
{
    const nn_mul_params *p = (const nn_mul_params *)context;
    const int32_t product = (a + p->input1_offset) * (b + p->input2_offset);
    const int32_t scaled = nn_requantize_reference(product, p->output_multiplier, p->output_shift);
    return nn_clamp_s8(scaled + p->output_offset, p->act_min, p->act_max);
}

nn_status nn_mul_s8(const nn_mul_params *params, const int8_t *input1, const int8_t *input2,
                    int8_t *output)
{
    if (!nn_broadcast_is_valid(&params->shape)) {
        return NN_ERROR_ARGUMENT;
    }
    nn_broadcast_apply(&params->shape, input1, input2, output, mul, params);
    return NN_OK;
}
