/*
 * Frames of protocol version 2 (docs/design.md) over the board's serial port.
 *
 * On the wire a frame is 0x00, COBS(body), 0x00, where body is
 *   version u8 | kind u8 | seq u16 | session u32 | payload | crc32 u32
 * with every integer little-endian and the CRC over everything before it.
 * In a request, kind is the command; in a reply, the status. A reply has
 * the request's seq and the session the board is in (0 until the host's
 * hello names one, so a board that reset is recognised by its next reply).
 */
#ifndef FRAME_H
#define FRAME_H

#include <stddef.h>
#include <stdint.h>

#define PROTOCOL_VERSION    2
#define FRAME_HEADER_BYTES  8
#define FRAME_CRC_BYTES     4
#define FRAME_MAX_PAYLOAD   512

enum reply_status {
    STATUS_OK = 0,
    STATUS_ERROR = 1,  /* payload: the reason, as text */
};

struct frame {
    uint8_t version;
    uint8_t kind;
    uint16_t seq;
    uint32_t session;
    const uint8_t *payload;
    size_t length;
};

/* Block until a well-formed frame arrives and return it; its payload stays
 * valid until the next call. Garbage, broken and overlong frames are
 * dropped and counted. Any protocol version is returned, so the caller can
 * answer a host that speaks another one. */
void frame_receive(struct frame *request);

/* Frames dropped since boot. */
uint32_t frame_rx_errors(void);

/* A reply is built in one buffer: reply_begin(), then appends, then
 * reply_send(). Appends past FRAME_MAX_PAYLOAD are cut off. */
void reply_begin(void);
void reply_bytes(const void *bytes, size_t n);
void reply_u32(uint32_t value);
void reply_u64(uint64_t value);
void reply_text(const char *text);
void reply_decimal(int64_t value);
void reply_send(const struct frame *request, enum reply_status status, uint32_t session);

/* Little-endian field of a payload. */
uint32_t frame_get_u32(const uint8_t *bytes);

#endif
