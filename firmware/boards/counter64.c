#include "counter64.h"

uint64_t counter64_extend(struct counter64 *counter, uint32_t now)
{
    if (now < counter->last) {
        counter->wraps++;
    }
    counter->last = now;
    return counter->wraps << 32 | now;
}
