/*
 * Interrupt handlers that cmsdk_uart.c implements and mps2_startup.c puts
 * in the vector table.
 */
#ifndef MPS2_H
#define MPS2_H

/* SysTick wrapped: extends the 24-bit counter to 64 bits. */
void mps2_systick_handler(void);

/* UART0 received a byte: wakes the core from WFI in board_read_byte(). */
void mps2_uart0_rx_handler(void);

#endif
