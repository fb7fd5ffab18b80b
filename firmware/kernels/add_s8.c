/* ADD, int8, with broadcasting: the reference kernel. */
#include "kernel_util.h"

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

nn_status nn_add_s8(const nn_add_params *params, const int8_t *input1, const int8_t *input2,
                    int8_t *output)
{
    if (!nn_broadcast_is_valid(&params->shape) || params->left_shift < 0 || params->left_shift > 22) {
        return NN_ERROR_ARGUMENT;
    }
    nn_broadcast_apply(&params->shape, input1, input2, output, add, params);
    return NN_OK;
}
