/*
 * Board support: everything the benchmark runtime needs from a board.
 *
 * One C file per board family implements all of it (cmsdk_uart.c for the
 * QEMU-emulated Arm MPS2 boards, host_pty.c for a Linux process); the
 * environment in platformio.ini picks the file.
 */
#ifndef BOARD_H
#define BOARD_H

#include <stddef.h>
#include <stdint.h>

/* Start the serial port and the timer. Call once, before anything else here. */
void board_init(void);

/* Next byte from the host (0..255); blocks until one arrives. */
int board_read_byte(void);

/* Send n bytes to the host; returns once they are handed to the port. */
void board_write(const uint8_t *buf, size_t n);

/* Monotonic time in board_timer_unit() since an arbitrary origin. Only
 * differences mean anything; their resolution is board specific. */
uint64_t board_timer_now(void);

/* What board_timer_now() counts: "instructions" (an emulator's instruction
 * count), "cycles" (a real core's clock cycles) or "ns" (wall time). */
const char *board_timer_unit(void);

/* Where the time comes from, e.g. "qemu-icount-systick"; reported with
 * every result so figures from different sources are never mixed up. */
const char *board_timer_source(void);

/* The board's name, as in platformio.ini (e.g. "mps2_an386"). */
const char *board_name(void);

/* Core clock in Hz, or 0 if unknown. */
uint32_t board_clock_hz(void);

/* Bounds of the stack, lo <= sp < hi. Returns 0 if the stack can be
 * painted to measure its high-water mark, nonzero (lo and hi untouched)
 * if not. */
int board_stack_region(uintptr_t *lo, uintptr_t *hi);

/* Stop the board: an emulator or process exits with status code (0 = ok). */
void board_exit(int code);

#endif
