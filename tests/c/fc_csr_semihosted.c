/*
 * nn_fully_connected_csr_s8 against a plain C reference, on the emulated
 * Cortex-M4 itself (qemu-system-arm -M mps2-an386 -semihosting), so the
 * assembly paths run: random matrices of 1 to 300 columns and 150 rows (3
 * passes, the last of 22 rows) at densities from 0 to 100 % in all 4
 * index / row-start widths, and outputs whose shifts fall outside the
 * assembly output stage's domain (-1, 0, 1), multipliers of 0 and fused
 * activation ranges, which the one-layer models of `harness kernels`
 * never have. It prints "ALL OK" and exits 0, or names each failing case
 * and exits 1 (tests/test_csr_kernels.py).
 *
 * Bare metal: the vector table holds the stack top and the entry; I/O and
 * exit are semihosting calls (BKPT 0xAB). The kernel's C file is included
 * so that its static helpers build with it.
 */
#include "fully_connected_csr_s8.c"

#define ROWS 150
#define MAX_COLS 300
#define TRIALS 40

/* GCC may call memcpy for struct copies; there is no libc. */
void *memcpy(void *to, const void *from, unsigned n)
{
    char *a = to;
    const char *b = from;
    while (n--) {
        *a++ = *b++;
    }
    return to;
}

static int semihost(int op, void *arg)
{
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static void print(const char *text)
{
    semihost(0x04, (void *)text); /* SYS_WRITE0 */
}

static void leave(int code)
{
    int block[2] = {0x20026, code}; /* ADP_Stopped_ApplicationExit, exit code */
    semihost(0x20, block);          /* SYS_EXIT_EXTENDED */
    for (;;) {
    }
}

static uint32_t seed = 12345;

static uint32_t next_random(void)
{
    seed = seed * 1664525u + 1013904223u;
    return seed >> 8;
}

static int8_t weights[ROWS][MAX_COLS], input[MAX_COLS], values[ROWS * MAX_COLS], output[ROWS], expected[ROWS];
static uint8_t index_u8[ROWS * MAX_COLS];
static uint16_t index_u16[ROWS * MAX_COLS], start_u16[ROWS + 1];
static uint32_t start_u32[ROWS + 1];
static int32_t bias[ROWS], multiplier[ROWS];
static int8_t shift[ROWS];
static int failures;

/* Weights of `cols` columns, about density % of them nonzero, in CSR form. */
static void random_matrix(int32_t cols, uint32_t density)
{
    uint32_t n = 0;
    for (int32_t r = 0; r < ROWS; ++r) {
        start_u16[r] = (uint16_t)n;
        start_u32[r] = n;
        for (int32_t c = 0; c < cols; ++c) {
            const int8_t v = next_random() % 100 < density ? (int8_t)(next_random() % 255 - 127) : 0;
            weights[r][c] = v;
            if (v != 0) {
                values[n] = v;
                index_u8[n] = (uint8_t)c;
                index_u16[n] = (uint16_t)c;
                ++n;
            }
        }
    }
    start_u16[ROWS] = (uint16_t)n;
    start_u32[ROWS] = n;
}

/* Per-row requantization; odd trials mix in shifts of -1, 0 and 1, which the assembly leaves to C. */
static void random_requant(int trial)
{
    for (int32_t r = 0; r < ROWS; ++r) {
        bias[r] = (int32_t)(next_random() % 20001) - 10000;
        multiplier[r] = next_random() % 50 == 0 ? 0 : (int32_t)(0x40000000u + next_random() * 64u % 0x40000000u);
        const int32_t k = (int32_t)(next_random() % 16);
        shift[r] = (int8_t)(trial % 2 == 1 && k < 3 ? k - 1 : -2 - (int32_t)(next_random() % 12));
    }
}

static void check(const nn_fully_connected_params *params, const nn_csr_s8 *csr, const char *name)
{
    nn_fully_connected_csr_s8(params, input, csr, bias, output);
    for (int32_t r = 0; r < ROWS; ++r) {
        if (output[r] != expected[r]) {
            print(name);
            print(" differs\n");
            ++failures;
            return;
        }
    }
}

static void trial(int number)
{
    const int32_t cols = 1 + (int32_t)(next_random() % MAX_COLS);
    random_matrix(cols, next_random() % 101);
    random_requant(number);
    for (int32_t c = 0; c < cols; ++c) {
        input[c] = (int8_t)(next_random() % 256 - 128);
    }
    const int32_t offset = (int32_t)(next_random() % 256) - 128;
    const int clamps = number % 3 == 1;
    nn_fully_connected_params params = {1, cols, ROWS, {0, offset, clamps ? -100 : -128, clamps ? 100 : 127, multiplier, shift}, NULL, 0};
    for (int32_t r = 0; r < ROWS; ++r) {
        int32_t acc = bias[r];
        for (int32_t c = 0; c < cols; ++c) {
            acc += weights[r][c] * input[c];
        }
        const nn_requant *q = &params.requant;
        expected[r] = nn_clamp_s8(nn_requantize_reference(acc, multiplier[r], shift[r]) + offset, q->act_min, q->act_max);
    }
    if (cols <= 256) {
        const nn_csr_s8 narrow = {values, index_u8, 0, start_u16, 0}, narrow32 = {values, index_u8, 0, 0, start_u32};
        check(&params, &narrow, "8-bit indices, 16-bit row starts");
        check(&params, &narrow32, "8-bit indices, 32-bit row starts");
    }
    const nn_csr_s8 wide = {values, 0, index_u16, start_u16, 0}, wide32 = {values, 0, index_u16, 0, start_u32};
    check(&params, &wide, "16-bit indices, 16-bit row starts");
    check(&params, &wide32, "16-bit indices, 32-bit row starts");
}

void reset(void)
{
    for (int number = 0; number < TRIALS; ++number) {
        trial(number);
    }
    print(failures ? "FAILED\n" : "ALL OK\n");
    leave(failures != 0);
}

extern uint32_t stack_top;
__attribute__((section(".vectors"), used)) const void *const vectors[2] = {&stack_top, (const void *)reset};
