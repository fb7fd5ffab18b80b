/*
 * Stack high-water mark by painting: fill the unused stack with a pattern
 * (at boot, and again before each measured inference), later find the
 * deepest word that no longer holds it.
 */
#ifndef STACK_USAGE_H
#define STACK_USAGE_H

#include <stdint.h>

/* Paint the stack below the caller's frame: first thing in main(), and
 * right before what is to be measured. */
void stack_paint(void);

/* Deepest stack use since stack_paint(), in bytes, and the stack's size.
 * Returns nonzero if the board cannot tell (see board_stack_region()). */
int stack_high_water(uint32_t *used, uint32_t *total);

#endif
