/* Test stand-in for firmware/src/layer_timer.h: the host driver records the marks. */
#ifndef LAYER_TIMER_H
#define LAYER_TIMER_H

#include <stdint.h>

void layer_timer_mark(int layer);

#endif /* LAYER_TIMER_H */
