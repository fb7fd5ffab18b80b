/*
 * Consistent Overhead Byte Stuffing: re-codes a frame so that it holds no
 * zero byte, which then delimits frames on the wire. A receiver that lands
 * in the middle of a frame, or in garbage, is back in step at the next zero.
 * Costs one byte per 254.
 */
#ifndef COBS_H
#define COBS_H

#include <stddef.h>
#include <stdint.h>

/* Longest encoding of n bytes. */
#define COBS_MAX_ENCODED(n) ((n) + (n) / 254u + 1u)

/* Send the encoding of data[0..n) through write(), without delimiters.
 * Encodes on the fly, so the caller needs no second buffer. */
void cobs_encode(const uint8_t *data, size_t n, void (*write)(const uint8_t *bytes, size_t count));

/* Decode buf[0..n) in place (the decoding is never longer). Returns the
 * decoded length, or -1 if buf is no valid encoding (holds a zero, or a
 * block runs past the end). */
long cobs_decode(uint8_t *buf, size_t n);

#endif
