#include "stack_usage.h"

#include "board.h"

#define STACK_PATTERN 0xA5A5A5A5u

/* Left unpainted below stack_paint()'s frame address, for the part of its
 * frame (and of any memset it becomes) that lies below. Reported as used. */
#define FRAME_MARGIN 64u

void stack_paint(void)
{
    uintptr_t lo, hi;
    if (board_stack_region(&lo, &hi) != 0) {
        return;
    }
    uintptr_t end = ((uintptr_t)__builtin_frame_address(0) - FRAME_MARGIN) & ~(uintptr_t)3u;
    for (uint32_t *word = (uint32_t *)lo; (uintptr_t)word < end; word++) {
        *word = STACK_PATTERN;
    }
}

int stack_high_water(uint32_t *used, uint32_t *total)
{
    uintptr_t lo, hi;
    if (board_stack_region(&lo, &hi) != 0) {
        return -1;
    }
    const uint32_t *word = (const uint32_t *)lo;
    while ((uintptr_t)word < hi && *word == STACK_PATTERN) {
        word++;
    }
    *used = (uint32_t)(hi - (uintptr_t)word);
    *total = (uint32_t)(hi - lo);
    return 0;
}
