/*
 * Reset and vector table for the Arm MPS2 boards (Cortex-M3, M4 and M7).
 * Memory layout and the symbols used here: firmware/platform/ldscripts/mps2.ld.
 */
#include <stdint.h>

#include "board.h"
#include "mps2.h"

#define CPACR (*(volatile uint32_t *)0xE000ED88u)
#define CPACR_CP10_CP11_FULL_ACCESS (0xFu << 20)

extern uint32_t __stack_top[];
extern uint32_t __data_start[], __data_end[], __data_load[];
extern uint32_t __bss_start[], __bss_end[];

int main(void);

void mps2_reset_handler(void);

static void init_memory(void)
{
    const uint32_t *from = __data_load;
    for (uint32_t *to = __data_start; to < __data_end; to++) {
        *to = *from++;
    }
    for (uint32_t *p = __bss_start; p < __bss_end; p++) {
        *p = 0;
    }
}

/* A fault means the firmware is broken: end the emulator with an error
 * instead of hanging until the host times out. */
static void fault_handler(void)
{
    board_exit(1);
}

void mps2_reset_handler(void)
{
#ifdef __ARM_FP
    /* Built for the FPU: enable it before the compiler may use its registers. */
    CPACR |= CPACR_CP10_CP11_FULL_ACCESS;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    init_memory();
    board_exit(main());
}

/* Exception n's handler sits in handler[n - 1]; IRQ n is exception 16 + n.
 * Only the exceptions the firmware enables or that signal faults are set. */
struct vector_table {
    uint32_t *initial_sp;
    void (*handler[16])(void);
};

__attribute__((section(".vectors"), used))
static const struct vector_table vectors = {
    .initial_sp = __stack_top,
    .handler = {
        mps2_reset_handler,     /*  1 Reset */
        fault_handler,          /*  2 NMI */
        fault_handler,          /*  3 HardFault */
        fault_handler,          /*  4 MemManage */
        fault_handler,          /*  5 BusFault */
        fault_handler,          /*  6 UsageFault */
        0, 0, 0, 0,             /*  7-10 reserved */
        fault_handler,          /* 11 SVCall */
        fault_handler,          /* 12 DebugMonitor */
        0,                      /* 13 reserved */
        fault_handler,          /* 14 PendSV */
        mps2_systick_handler,   /* 15 SysTick */
        mps2_uart0_rx_handler,  /* 16 IRQ 0: UART0 receive */
    },
};
