#include "layer_timer.h"

#include "board.h"
#include "model.h"

static uint64_t stamps[MODEL_NUM_LAYERS + 1];
static int profiling;

void layer_timer_mark(int layer)
{
    if (profiling && layer >= 0 && layer <= MODEL_NUM_LAYERS) {
        stamps[layer] = board_timer_now();
    }
}

void layer_timer_profile(int on)
{
    profiling = on;
}

uint64_t layer_timer_elapsed(int layer)
{
    return stamps[layer + 1] - stamps[layer];
}
