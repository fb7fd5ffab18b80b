/*
 * FULLY_CONNECTED, int8, delta4 weights (kernels.h): one sparse dot product
 * per output, walking each row's entries from input to input.
 *
 * An entry costs a nibble (half a byte load, one AND for the low nibble; the
 * high one shifts inside the ADD), a value, an input and a multiply-add,
 * fillers included: the format trades a little speed against CSR for
 * indices half as wide.
 */
#include "kernel_util.h"

/*
 * A row's n entries against x. Rows follow each other in the nibble
 * stream: *high says the row starts in the high nibble of **deltas (the
 * last row ended mid-byte). v, d and the phase move on to the next row.
 */
static inline int32_t row_dot(const int8_t **values, const uint8_t **deltas, int *high, int32_t n,
                              const int8_t *x)
{
    const int8_t *v = *values;
    const uint8_t *d = *deltas;
    int32_t at = -1; /* where the previous entry's input is */
    int32_t acc = 0;
    if (*high && n > 0) {
        at += (int32_t)(*d++ >> 4);
        acc += *v++ * x[at];
        --n;
        *high = 0;
    }
    for (const int8_t *const pairs_end = v + (n & ~1); v != pairs_end; v += 2) {
        const uint32_t two = *d++;
        at += (int32_t)(two & 15u);
        acc += v[0] * x[at];
        at += (int32_t)(two >> 4);
        acc += v[1] * x[at];
    }
    if (n & 1) {
        at += (int32_t)(*d & 15u);
        acc += *v++ * x[at];
        *high = 1;
    }
    *values = v;
    *deltas = d;
    return acc;
}

nn_status nn_fully_connected_delta4_s8(const nn_fully_connected_params *params, const int8_t *input,
                                       const nn_delta4_s8 *weights, const int32_t *bias, int8_t *output)
{
    if (params->batches <= 0 || params->input_depth <= 0 || params->output_depth <= 0) {
        return NN_ERROR_ARGUMENT;
    }
    /* A local copy: an int8 store may alias anything, so the parameters would be read again every row. */
    const nn_requant requant = params->requant;
    for (int32_t b = 0; b < params->batches; ++b) {
        const int8_t *x = input + b * params->input_depth;
        const int8_t *v = weights->values;
        const uint8_t *d = weights->deltas;
        int high = 0;
        for (int32_t out_c = 0; out_c < params->output_depth; ++out_c) {
            const int32_t n = weights->count_u8 ? weights->count_u8[out_c] : weights->count_u16[out_c];
            const int32_t acc = row_dot(&v, &d, &high, n, x);
            *output++ = nn_requantize_channel(acc, bias, out_c, &requant);
        }
    }
    return NN_OK;
}
