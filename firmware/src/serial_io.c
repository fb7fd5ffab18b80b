#include "serial_io.h"

#include <string.h>

#include "board.h"

int serial_read_line(char line[SERIAL_LINE_MAX + 1])
{
    size_t length = 0;
    int too_long = 0;
    for (;;) {
        char c = (char)board_read_byte();
        if (c == '\n') {
            break;
        }
        if (length == SERIAL_LINE_MAX) {
            too_long = 1;  /* keep reading: the rest must not become a line */
        } else {
            line[length++] = c;
        }
    }
    if (length > 0 && line[length - 1] == '\r') {
        length--;
    }
    line[length] = '\0';
    return too_long ? -1 : (int)length;
}

void serial_send_text(const char *text)
{
    board_write((const uint8_t *)text, strlen(text));
}

void serial_send_u64(uint64_t value)
{
    char digits[20];  /* 2^64 - 1 has 20 digits */
    size_t n = 0;
    do {
        digits[sizeof digits - ++n] = (char)('0' + value % 10u);
        value /= 10u;
    } while (value != 0);
    board_write((const uint8_t *)digits + sizeof digits - n, n);
}

void serial_send_i64(int64_t value)
{
    if (value < 0) {
        serial_send_text("-");
        serial_send_u64(-(uint64_t)value);
    } else {
        serial_send_u64((uint64_t)value);
    }
}

void serial_send_hex(const uint8_t *bytes, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        uint8_t pair[2] = {(uint8_t)hex[bytes[i] >> 4], (uint8_t)hex[bytes[i] & 0xFu]};
        board_write(pair, sizeof pair);
    }
}
