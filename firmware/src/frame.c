#include "frame.h"

#include <string.h>

#include "board.h"
#include "cobs.h"
#include "crc32.h"

#define MAX_BODY    (FRAME_HEADER_BYTES + FRAME_MAX_PAYLOAD + FRAME_CRC_BYTES)
#define MAX_ENCODED COBS_MAX_ENCODED(MAX_BODY)
#define DELIMITER   0u

static uint8_t rx[MAX_ENCODED];
static uint8_t tx[MAX_BODY];
static size_t tx_length;
static uint32_t rx_errors;

static void put_u16(uint8_t *to, uint16_t value)
{
    to[0] = (uint8_t)value;
    to[1] = (uint8_t)(value >> 8);
}

static void put_u32(uint8_t *to, uint32_t value)
{
    put_u16(to, (uint16_t)value);
    put_u16(to + 2, (uint16_t)(value >> 16));
}

uint32_t frame_get_u32(const uint8_t *bytes)
{
    return (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 | (uint32_t)bytes[3] << 24;
}

/* Bytes up to the next delimiter; returns their count, or -1 if there were
 * more than fit (they are skipped, up to that delimiter). */
static long read_until_delimiter(void)
{
    size_t n = 0;
    int overlong = 0;
    for (;;) {
        uint8_t byte = (uint8_t)board_read_byte();
        if (byte == DELIMITER) {
            return overlong ? -1 : (long)n;
        }
        if (n == sizeof rx) {
            overlong = 1;
        } else {
            rx[n++] = byte;
        }
    }
}

static int parse(long encoded, struct frame *request)
{
    long n = encoded < 0 ? -1 : cobs_decode(rx, (size_t)encoded);
    if (n < FRAME_HEADER_BYTES + FRAME_CRC_BYTES) {
        return -1;
    }
    size_t body = (size_t)n - FRAME_CRC_BYTES;
    if (crc32(rx, body) != frame_get_u32(rx + body)) {
        return -1;
    }
    request->version = rx[0];
    request->kind = rx[1];
    request->seq = (uint16_t)(rx[2] | rx[3] << 8);
    request->session = frame_get_u32(rx + 4);
    request->payload = rx + FRAME_HEADER_BYTES;
    request->length = body - FRAME_HEADER_BYTES;
    return 0;
}

void frame_receive(struct frame *request)
{
    for (;;) {
        long encoded = read_until_delimiter();
        if (encoded == 0) {
            continue;  /* two delimiters in a row: the host starts each frame with one */
        }
        if (parse(encoded, request) == 0) {
            return;
        }
        rx_errors++;
    }
}

uint32_t frame_rx_errors(void)
{
    return rx_errors;
}

void reply_begin(void)
{
    tx_length = FRAME_HEADER_BYTES;
}

void reply_bytes(const void *bytes, size_t n)
{
    size_t room = FRAME_HEADER_BYTES + FRAME_MAX_PAYLOAD - tx_length;
    if (n > room) {
        n = room;
    }
    memcpy(tx + tx_length, bytes, n);
    tx_length += n;
}

void reply_u32(uint32_t value)
{
    uint8_t bytes[4];
    put_u32(bytes, value);
    reply_bytes(bytes, sizeof bytes);
}

void reply_u64(uint64_t value)
{
    reply_u32((uint32_t)value);
    reply_u32((uint32_t)(value >> 32));
}

void reply_text(const char *text)
{
    reply_bytes(text, strlen(text));
}

void reply_decimal(int64_t value)
{
    char digits[21];  /* "-" and the 19 digits of 2^63, or the 20 of 2^64 - 1 */
    size_t n = 0;
    uint64_t magnitude = value < 0 ? -(uint64_t)value : (uint64_t)value;
    do {
        digits[sizeof digits - ++n] = (char)('0' + magnitude % 10u);
        magnitude /= 10u;
    } while (magnitude != 0);
    if (value < 0) {
        digits[sizeof digits - ++n] = '-';
    }
    reply_bytes(digits + sizeof digits - n, n);
}

void reply_send(const struct frame *request, enum reply_status status, uint32_t session)
{
    static const uint8_t delimiter = DELIMITER;
    tx[0] = PROTOCOL_VERSION;
    tx[1] = (uint8_t)status;
    put_u16(tx + 2, request->seq);
    put_u32(tx + 4, session);
    put_u32(tx + tx_length, crc32(tx, tx_length));
    board_write(&delimiter, 1);
    cobs_encode(tx, tx_length + FRAME_CRC_BYTES, board_write);
    board_write(&delimiter, 1);
}
