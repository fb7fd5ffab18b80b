/*
 * Extends a wrapping 32-bit counter to 64 bits in software. Correct as long
 * as it is read at least once per wrap: the benchmark reads it before and
 * after each inference, so one inference must take less than a wrap (23.8 s
 * for a cycle counter at 180 MHz, 17.9 s at 240 MHz).
 */
#ifndef COUNTER64_H
#define COUNTER64_H

#include <stdint.h>

struct counter64 {
    uint32_t last;
    uint64_t wraps;  /* in units of 2^32 */
};

uint64_t counter64_extend(struct counter64 *counter, uint32_t now);

#endif
