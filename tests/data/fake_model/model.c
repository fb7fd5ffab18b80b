#include "model.h"

#include "layer_timer.h"

/* Layout: input, then the int32 sum, then the output. */
static union {
    int32_t align;
    int8_t bytes[MODEL_ARENA_BYTES];
} arena;

#define INPUT  (arena.bytes)
#define SUM    ((int32_t *)(arena.bytes + MODEL_INPUT_BYTES))
#define OUTPUT (arena.bytes + MODEL_INPUT_BYTES + 4)

const char model_id[] = "fake-model-1";
const char *const model_layer_names[] = {"0:SUM", "1:SPIN", "2:ADD_INDEX"};

int8_t *model_input(void)
{
    return INPUT;
}

const int8_t *model_output(void)
{
    return OUTPUT;
}

int model_invoke(void)
{
    int32_t sum = 0;
    for (int i = 0; i < MODEL_INPUT_BYTES; i++) {
        sum += INPUT[i];
    }
    *SUM = sum;
    layer_timer_mark(1);

    /* Known, data-independent work, so that layer 1 takes measurable time. */
    for (volatile int i = 0; i < 10000; i++) {
    }
    layer_timer_mark(2);

    for (int i = 0; i < MODEL_OUTPUT_BYTES; i++) {
        OUTPUT[i] = (int8_t)(*SUM + i);
    }
    layer_timer_mark(3);
    return 0;
}
