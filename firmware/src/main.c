/* Entry point for boards without a framework (the MPS2 boards, the host). */
#include "runtime.h"

int main(void)
{
    runtime_run();
    return 0;  /* not reached */
}
