/*
 * Per-layer timing of one model_invoke().
 *
 * The generated model calls layer_timer_mark(i + 1) after its layer i, and
 * the runtime calls layer_timer_mark(0) just before model_invoke(), so
 * layer i took layer_timer_elapsed(i). Marks only record while profiling is
 * on; otherwise a mark costs a call and a test.
 */
#ifndef LAYER_TIMER_H
#define LAYER_TIMER_H

#include <stdint.h>

void layer_timer_mark(int layer);

/* Switch recording on (nonzero) or off. */
void layer_timer_profile(int on);

/* board_timer_now() units between marks layer and layer + 1. */
uint64_t layer_timer_elapsed(int layer);

#endif
