/*
 * The fallback timer for cores without a cycle counter (e.g. the RP2040's
 * Cortex-M0+): Arduino's micros(), reported in ns at a resolution of 1000.
 */
#include <Arduino.h>

extern "C" {
#include "cycle_counter.h"
}

#define NS_PER_US 1000u

const struct cycle_counter cycle_counter = {"ns", "arduino-micros", NS_PER_US};

void cycle_counter_init(void)
{
}

uint32_t cycle_counter_read(void)
{
    return (uint32_t)micros();
}

uint32_t cycle_counter_core_hz(void)
{
    return (uint32_t)F_CPU;
}
