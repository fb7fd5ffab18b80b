/*
 * Cycle counter of Arm Cortex-M3, M4, M7 and M33 cores: the DWT's CYCCNT,
 * which counts core clock cycles once trace is enabled. (Cortex-M0/M0+ have
 * none: use cycles_micros.cpp. QEMU implements no DWT either, which is why
 * the emulated boards time with SysTick instead, see cmsdk_uart.c.)
 */
#include "cycle_counter.h"

#define REG(address) (*(volatile uint32_t *)(address))

#define DEMCR              REG(0xE000EDFCu)
#define DEMCR_TRCENA       (1u << 24)
#define DWT_CTRL           REG(0xE0001000u)
#define DWT_CTRL_CYCCNTENA (1u << 0)
#define DWT_CYCCNT         REG(0xE0001004u)
#define DWT_LAR            REG(0xE0001FB0u)
#define DWT_LAR_UNLOCK     0xC5ACCE55u

extern uint32_t SystemCoreClock;  /* CMSIS: every Cortex-M core's startup code keeps it */

const struct cycle_counter cycle_counter = {"cycles", "dwt-cyccnt", 1};

void cycle_counter_init(void)
{
    DEMCR |= DEMCR_TRCENA;
#ifndef __ARM_ARCH_8M_MAIN__
    /* Cortex-M7 ignores writes to the DWT until its lock is opened; on
     * M3/M4 the lock register accepts the key and changes nothing. ARMv8-M
     * (M33) has no lock register there. */
    DWT_LAR = DWT_LAR_UNLOCK;
#endif
    DWT_CYCCNT = 0;
    DWT_CTRL |= DWT_CTRL_CYCCNTENA;
}

uint32_t cycle_counter_read(void)
{
    return DWT_CYCCNT;
}

uint32_t cycle_counter_core_hz(void)
{
    return SystemCoreClock;
}
