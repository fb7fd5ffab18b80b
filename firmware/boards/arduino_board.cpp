/*
 * Board support for any board with an Arduino core (PlatformIO's official
 * platforms, `framework = arduino`): the serial port is Serial, time comes
 * from the cycle counter the environment picks (cycle_counter.h), extended
 * to 64 bits. Stack painting covers a window of BENCH_STACK_WINDOW bytes
 * below the runtime's entry, which needs no linker symbols and so works on
 * every core; the window must fit in the stack setup() runs on (8 KiB for
 * ESP32's loop task, more elsewhere). The serial speed, BENCH_BAUD, has no
 * default here: platformio.ini sets it to the environment's monitor_speed,
 * the speed the harness opens the port at.
 */
#include <Arduino.h>

extern "C" {
#include "board.h"
#include "build_info.h"
#include "counter64.h"
#include "cycle_counter.h"
#include "runtime.h"
}

#ifndef BENCH_STACK_WINDOW
#define BENCH_STACK_WINDOW 4096
#endif

static struct counter64 timer;

void setup()
{
    runtime_run();  /* never returns */
}

void loop()
{
}

void board_init(void)
{
    Serial.begin(BENCH_BAUD);
    while (!Serial) {  /* a USB CDC port is ready once the host opens it */
        yield();
    }
    cycle_counter_init();
}

int board_read_byte(void)
{
    int byte;
    while ((byte = Serial.read()) < 0) {
        yield();  /* lets an RTOS (mbed, FreeRTOS) run the USB stack */
    }
    return byte;
}

void board_write(const uint8_t *buf, size_t n)
{
    Serial.write(buf, n);
}

uint64_t board_timer_now(void)
{
    return counter64_extend(&timer, cycle_counter_read()) * cycle_counter.scale;
}

const char *board_timer_unit(void)
{
    return cycle_counter.unit;
}

const char *board_timer_source(void)
{
    return cycle_counter.source;
}

const char *board_name(void)
{
    return build_env;
}

uint32_t board_clock_hz(void)
{
    return cycle_counter_core_hz();
}

int board_stack_region(uintptr_t *lo, uintptr_t *hi)
{
    /* First called from stack_paint() at the runtime's entry: the window ends there. */
    static uintptr_t top;
    if (top == 0) {
        top = (uintptr_t)__builtin_frame_address(0);
    }
    *lo = top - BENCH_STACK_WINDOW;
    *hi = top;
    return 0;
}

void board_exit(int code)
{
    (void)code;
    Serial.flush();
    for (;;) {  /* a real board has nowhere to exit to: the host resets or re-flashes it */
        yield();
    }
}
