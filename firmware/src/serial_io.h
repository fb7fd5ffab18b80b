/*
 * Text over the board's serial port: lines from the host, replies built
 * from pieces (serial_send_text("ok bench"); serial_send_u64(t); ...).
 */
#ifndef SERIAL_IO_H
#define SERIAL_IO_H

#include <stddef.h>
#include <stdint.h>

/* Longest line the host may send, without its "\n". */
#define SERIAL_LINE_MAX 80

/* Read the next line into line, NUL-terminated, without "\n" or "\r\n".
 * Returns its length, or -1 if it was too long (it is then skipped whole). */
int serial_read_line(char line[SERIAL_LINE_MAX + 1]);

void serial_send_text(const char *text);
void serial_send_u64(uint64_t value);
void serial_send_i64(int64_t value);

/* Two lowercase hex digits per byte, no separators. */
void serial_send_hex(const uint8_t *bytes, size_t n);

#endif
