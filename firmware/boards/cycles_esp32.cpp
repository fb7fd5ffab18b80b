/*
 * Cycle counter of ESP32 cores (Xtensa CCOUNT, or the RISC-V cores' cycle
 * counter), through the Arduino core, which reads whichever the chip has.
 */
#include <Arduino.h>

extern "C" {
#include "cycle_counter.h"
}

const struct cycle_counter cycle_counter = {"cycles", "esp32-ccount", 1};

void cycle_counter_init(void)
{
}

uint32_t cycle_counter_read(void)
{
    return ESP.getCycleCount();
}

uint32_t cycle_counter_core_hz(void)
{
    return ESP.getCpuFreqMHz() * 1000000u;
}
