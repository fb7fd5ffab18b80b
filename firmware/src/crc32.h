/*
 * CRC-32 (IEEE 802.3, the one zlib.crc32 computes), guarding every frame.
 */
#ifndef CRC32_H
#define CRC32_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32(const uint8_t *data, size_t n);

#endif
