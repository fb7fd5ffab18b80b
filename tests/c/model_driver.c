/*
 * Host test driver for a generated model.
 *
 * Reads samples of MODEL_INPUT_BYTES raw bytes from stdin until EOF, runs
 * model_invoke() on each and prints the output as lowercase hex, one line
 * per sample. It also checks the generated-model contract: every layer is
 * marked in order, the input is left intact when MODEL_INPUT_PRESERVED
 * says so, and a second invocation on the same input gives the same output.
 */
#include <stdio.h>
#include <string.h>

#include "layer_timer.h"
#include "model.h"

static int next_mark;
static int marks_in_order;

void layer_timer_mark(int layer)
{
    marks_in_order = marks_in_order && layer == next_mark;
    next_mark = layer + 1;
}

static int invoke_checked(void)
{
    next_mark = 1;
    marks_in_order = 1;
    const int status = model_invoke();
    if (status != 0) {
        fprintf(stderr, "model_invoke() failed in layer %d\n", status - 1);
        return 0;
    }
    if (!marks_in_order || next_mark != MODEL_NUM_LAYERS + 1) {
        fprintf(stderr, "layer_timer_mark() was not called once per layer, in order\n");
        return 0;
    }
    return 1;
}

int main(void)
{
    static int8_t first_output[MODEL_OUTPUT_BYTES];
    static int8_t sample[MODEL_INPUT_BYTES];
    int8_t *input = model_input();
    size_t got;
    while ((got = fread(sample, 1, MODEL_INPUT_BYTES, stdin)) == MODEL_INPUT_BYTES) {
        memcpy(input, sample, MODEL_INPUT_BYTES);
        if (!invoke_checked()) {
            return 3;
        }
        if (MODEL_INPUT_PRESERVED && memcmp(input, sample, MODEL_INPUT_BYTES) != 0) {
            fprintf(stderr, "model_invoke() changed an input that MODEL_INPUT_PRESERVED says it keeps\n");
            return 5;
        }
        memcpy(first_output, model_output(), MODEL_OUTPUT_BYTES);
        memcpy(input, sample, MODEL_INPUT_BYTES);
        if (!invoke_checked()) {
            return 3;
        }
        if (memcmp(first_output, model_output(), MODEL_OUTPUT_BYTES) != 0) {
            fprintf(stderr, "a second model_invoke() on the same input gave another output\n");
            return 4;
        }
        for (size_t i = 0; i < MODEL_OUTPUT_BYTES; ++i) {
            printf("%02x", (unsigned)(uint8_t)first_output[i]);
        }
        putchar('\n');
    }
    if (got != 0) {
        fprintf(stderr, "stdin ended inside a sample (%zu of %d bytes)\n", got, MODEL_INPUT_BYTES);
        return 2;
    }
    return 0;
}
