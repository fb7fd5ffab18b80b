#include "cobs.h"

/* A block is a code byte c and c - 1 data bytes; unless c is 0xFF (a full
 * block) or the block is the last, a zero follows it in the decoding. */
#define FULL_BLOCK 0xFFu

void cobs_encode(const uint8_t *data, size_t n, void (*write)(const uint8_t *bytes, size_t count))
{
    size_t i = 0;
    for (;;) {
        size_t run = 0;
        while (i + run < n && data[i + run] != 0 && run < FULL_BLOCK - 1u) {
            run++;
        }
        uint8_t code = (uint8_t)(run + 1u);
        write(&code, 1);
        write(data + i, run);
        i += run;
        if (code != FULL_BLOCK) {
            if (i >= n) {
                return;
            }
            i++;  /* the zero this block stands for */
        }
    }
}

long cobs_decode(uint8_t *buf, size_t n)
{
    size_t in = 0, out = 0;
    while (in < n) {
        uint8_t code = buf[in++];
        if (code == 0 || code - 1u > n - in) {
            return -1;
        }
        for (uint8_t k = 1; k < code; k++) {
            if (buf[in] == 0) {
                return -1;
            }
            buf[out++] = buf[in++];
        }
        if (code != FULL_BLOCK && in < n) {
            buf[out++] = 0;
        }
    }
    return (long)out;
}
