/*
 * Board support for the Arm MPS2 boards as QEMU emulates them: mps2-an385
 * (Cortex-M3), mps2-an386 (Cortex-M4) and mps2-an500 (Cortex-M7). They share
 * the CMSDK UART0, SysTick, and QEMU's semihosting for exiting.
 *
 * Timing assumes QEMU runs with `-icount shift=0` (the upload target does):
 * then every instruction advances virtual time by exactly 1 ns, and SysTick,
 * clocked at the 25 MHz CPU clock of that virtual time, ticks once per 40
 * instructions. QEMU has no cycle counter (DWT reads 0), so the timer counts
 * instructions with a resolution of 40. Checked with a two-instruction loop
 * (subs/bne) of n iterations: it reads 2n + 40 or 2n + 80 for n from 100 to
 * 10^9, the latter across several SysTick wraps.
 */
#include "board.h"
#include "mps2.h"

#define REG(address) (*(volatile uint32_t *)(address))

#define UART0_DATA       REG(0x40004000u)
#define UART0_STATE      REG(0x40004004u)
#define UART0_CTRL       REG(0x40004008u)
#define UART0_INTCLEAR   REG(0x4000400Cu)
#define UART0_BAUDDIV    REG(0x40004010u)
#define UART_STATE_TX_FULL  (1u << 0)
#define UART_STATE_RX_FULL  (1u << 1)
#define UART_CTRL_TX_EN     (1u << 0)
#define UART_CTRL_RX_EN     (1u << 1)
#define UART_CTRL_RX_INT_EN (1u << 3)
#define UART_INT_RX         (1u << 1)
#define UART0_RX_IRQ     0
#define UART_BAUD        115200u

#define SYST_CSR         REG(0xE000E010u)
#define SYST_RVR         REG(0xE000E014u)
#define SYST_CVR         REG(0xE000E018u)
#define SYST_CSR_ENABLE_CPUCLK_TICKINT 0x7u
#define SYSTICK_MAX      0xFFFFFFu      /* 24-bit down-counter */
#define SCB_ICSR         REG(0xE000ED04u)
#define ICSR_PENDSTSET   (1u << 26)     /* SysTick wrapped, handler not run yet */
#define NVIC_ISER0       REG(0xE000E100u)

#define NS_PER_INSTRUCTION    1u        /* -icount shift=0 */
#define INSTRUCTIONS_PER_TICK (1000000000u / NS_PER_INSTRUCTION / (uint32_t)F_CPU)

/* Semihosting SYS_EXIT: QEMU exits with status 0 for "application exit"
 * and 1 for any other reason. */
#define SEMIHOSTING_SYS_EXIT         0x18u
#define ADP_STOPPED_APPLICATION_EXIT 0x20026u
#define ADP_STOPPED_RUNTIME_ERROR    0x20023u

extern uint32_t __stack_bottom[], __stack_top[];

static volatile uint32_t systick_wraps;

static uint32_t irq_save(void)
{
    uint32_t primask;
    __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask) : : "memory");
    return primask;
}

static void irq_restore(uint32_t primask)
{
    __asm__ volatile("msr primask, %0" : : "r"(primask) : "memory");
}

void mps2_systick_handler(void)
{
    systick_wraps++;
}

void mps2_uart0_rx_handler(void)
{
    UART0_INTCLEAR = UART_INT_RX;
}

void board_init(void)
{
    UART0_BAUDDIV = (uint32_t)F_CPU / UART_BAUD;  /* QEMU ignores it; real boards need it */
    UART0_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_INT_EN;
    NVIC_ISER0 = 1u << UART0_RX_IRQ;

    SYST_RVR = SYSTICK_MAX;
    SYST_CVR = 0;
    SYST_CSR = SYST_CSR_ENABLE_CPUCLK_TICKINT;
}

int board_read_byte(void)
{
    /* Sleep instead of polling, or QEMU keeps a host core busy while the
     * host is quiet. Interrupts are masked around the check so a byte that
     * arrives just before WFI still wakes it (a pending interrupt ends WFI
     * even while masked); unmasking then runs the handler that clears it. */
    for (;;) {
        __asm__ volatile("cpsid i" : : : "memory");
        if (UART0_STATE & UART_STATE_RX_FULL) {
            break;
        }
        __asm__ volatile("wfi\n\tcpsie i" : : : "memory");
    }
    __asm__ volatile("cpsie i" : : : "memory");
    return (int)(UART0_DATA & 0xFFu);
}

void board_write(const uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        while (UART0_STATE & UART_STATE_TX_FULL) {
        }
        UART0_DATA = buf[i];
    }
}

static uint64_t systick_ticks(void)
{
    uint32_t primask = irq_save();
    uint32_t wraps = systick_wraps;
    uint32_t count = SYST_CVR;
    if (SCB_ICSR & ICSR_PENDSTSET) {
        /* Wrapped before the handler could count it; count may predate the
         * wrap, so read it again. */
        wraps++;
        count = SYST_CVR;
    }
    irq_restore(primask);
    return ((uint64_t)wraps << 24) + (SYSTICK_MAX - count);
}

uint64_t board_timer_now(void)
{
    return systick_ticks() * INSTRUCTIONS_PER_TICK;
}

const char *board_timer_unit(void)
{
    return "instructions";
}

const char *board_timer_source(void)
{
    return "qemu-icount-systick";
}

const char *board_name(void)
{
    return BOARD_NAME;
}

uint32_t board_clock_hz(void)
{
    return (uint32_t)F_CPU;
}

int board_stack_region(uintptr_t *lo, uintptr_t *hi)
{
    *lo = (uintptr_t)__stack_bottom;
    *hi = (uintptr_t)__stack_top;
    return 0;
}

void board_exit(int code)
{
    register uint32_t operation __asm__("r0") = SEMIHOSTING_SYS_EXIT;
    register uint32_t reason __asm__("r1") =
        code == 0 ? ADP_STOPPED_APPLICATION_EXIT : ADP_STOPPED_RUNTIME_ERROR;
    __asm__ volatile("bkpt 0xab" : : "r"(operation), "r"(reason) : "memory");
    for (;;) {  /* no semihosting host attached: stop here */
    }
}
