/*
 * A hand-written stand-in for a generated model (docs/design.md), to test
 * the runtime and the boards without the compiler:
 * output[i] = (int8_t)(sum of the inputs + i), computed in three "layers".
 */
#ifndef MODEL_H
#define MODEL_H

#include <stdint.h>

#define MODEL_INPUT_BYTES   16
#define MODEL_OUTPUT_BYTES  4
#define MODEL_NUM_LAYERS    3
#define MODEL_ARENA_BYTES   (MODEL_INPUT_BYTES + MODEL_OUTPUT_BYTES + 4)

extern const char model_id[];
extern const char *const model_layer_names[];
int8_t *model_input(void);
const int8_t *model_output(void);
int model_invoke(void);

#endif
