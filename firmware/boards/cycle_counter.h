/*
 * A free-running 32-bit counter for timing on boards with an Arduino core:
 * the core's cycle counter where it has one (cycles_dwt.c on Cortex-M3, M4,
 * M7 and M33; cycles_esp32.cpp on ESP32), else a microsecond timer
 * (cycles_micros.cpp). The environment in platformio.ini picks one file.
 */
#ifndef CYCLE_COUNTER_H
#define CYCLE_COUNTER_H

#include <stdint.h>

struct cycle_counter {
    const char *unit;    /* what board_timer_now() counts: "cycles", or "ns" */
    const char *source;  /* where it comes from, e.g. "dwt-cyccnt" */
    uint32_t scale;      /* units per count: 1 for cycles, 1000 for microseconds as ns */
};

/* The counter's description: each implementation defines it. */
extern const struct cycle_counter cycle_counter;

void cycle_counter_init(void);

/* The counter now; it wraps at 2^32. */
uint32_t cycle_counter_read(void);

/* The core clock in Hz. */
uint32_t cycle_counter_core_hz(void);

#endif
