/*
 * Benchmark runtime: runs the generated model on the host's commands, sent
 * over the board's serial port (protocol version 1, docs/design.md). Every
 * line from the host gets exactly one reply line, "ok <command> ..." or
 * "err <reason>", except an empty line: the host sends one to end whatever
 * half line an earlier session left behind, and expects no answer.
 */
#include <string.h>

#include "board.h"
#include "layer_timer.h"
#include "model.h"
#include "serial_io.h"
#include "stack_usage.h"

#define PROTOCOL_VERSION 1

/* bench keeps every run's time until the end, so that a failing run can
 * still turn the whole reply into an error. */
#define BENCH_MAX_RUNS 100
#define COUNT_MAX_DIGITS 9  /* so a count always fits in uint32_t */

#define STRINGIFY(x) #x
#define EXPAND_AND_STRINGIFY(x) STRINGIFY(x)

struct command {
    const char *name;
    int takes_arguments;
    void (*run)(const char *arguments);
};

static void reply_error(const char *reason)
{
    serial_send_text("err ");
    serial_send_text(reason);
    serial_send_text("\n");
}

static void reply_invoke_failed(int status)
{
    serial_send_text("err model_invoke returned ");
    serial_send_i64(status);
    serial_send_text("\n");
}

/* Parses " <digits>" at *text and advances past it; returns 0 on success. */
static int parse_count(const char **text, uint32_t *count)
{
    const char *p = *text;
    if (*p++ != ' ') {
        return -1;
    }
    uint32_t value = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (++digits > COUNT_MAX_DIGITS) {
            return -1;
        }
        value = value * 10u + (uint32_t)(*p - '0');
    }
    if (digits == 0) {
        return -1;
    }
    *count = value;
    *text = p;
    return 0;
}

static void cmd_hello(const char *arguments)
{
    (void)arguments;
    serial_send_text("ok hello proto=");
    serial_send_u64(PROTOCOL_VERSION);
    serial_send_text(" model=");
    serial_send_text(model_id);
    serial_send_text(" board=");
    serial_send_text(board_name());
    serial_send_text(" unit=");
    serial_send_text(board_timer_unit());
    serial_send_text(" timer=");
    serial_send_text(board_timer_source());
    serial_send_text(" clock=");
    serial_send_u64(board_clock_hz());
    serial_send_text(" in=");
    serial_send_u64(MODEL_INPUT_BYTES);
    serial_send_text(" out=");
    serial_send_u64(MODEL_OUTPUT_BYTES);
    serial_send_text(" layers=");
    serial_send_u64(MODEL_NUM_LAYERS);
    serial_send_text(" arena=");
    serial_send_u64(MODEL_ARENA_BYTES);
    serial_send_text("\n");
}

static void cmd_infer(const char *arguments)
{
    (void)arguments;
    int8_t *input = model_input();
    for (size_t i = 0; i < MODEL_INPUT_BYTES; i++) {
        input[i] = (int8_t)board_read_byte();
    }
    int status = model_invoke();
    if (status != 0) {
        reply_invoke_failed(status);
        return;
    }
    serial_send_text("ok infer ");
    serial_send_hex((const uint8_t *)model_output(), MODEL_OUTPUT_BYTES);
    serial_send_text("\n");
}

static void cmd_bench(const char *arguments)
{
    static uint64_t times[BENCH_MAX_RUNS];
    uint32_t warmup, runs;
    if (parse_count(&arguments, &warmup) != 0 || parse_count(&arguments, &runs) != 0 ||
        *arguments != '\0' || runs < 1 || runs > BENCH_MAX_RUNS) {
        reply_error("usage: bench <warmup> <runs>, runs 1.." EXPAND_AND_STRINGIFY(BENCH_MAX_RUNS));
        return;
    }
    for (uint32_t i = 0; i < warmup + runs; i++) {
        uint64_t start = board_timer_now();
        int status = model_invoke();
        uint64_t end = board_timer_now();
        if (status != 0) {
            reply_invoke_failed(status);
            return;
        }
        if (i >= warmup) {
            times[i - warmup] = end - start;
        }
    }
    serial_send_text("ok bench");
    for (uint32_t i = 0; i < runs; i++) {
        serial_send_text(" ");
        serial_send_u64(times[i]);
    }
    serial_send_text("\n");
}

static void cmd_layers(const char *arguments)
{
    (void)arguments;
    layer_timer_profile(1);
    layer_timer_mark(0);
    int status = model_invoke();
    layer_timer_profile(0);
    if (status != 0) {
        reply_invoke_failed(status);
        return;
    }
    serial_send_text("ok layers");
    for (int layer = 0; layer < MODEL_NUM_LAYERS; layer++) {
        serial_send_text(" ");
        serial_send_u64(layer_timer_elapsed(layer));
    }
    serial_send_text("\n");
}

static void cmd_stack(const char *arguments)
{
    (void)arguments;
    uint32_t used, total;
    int supported = stack_high_water(&used, &total) == 0;
    serial_send_text("ok stack used=");
    serial_send_i64(supported ? (int64_t)used : -1);
    serial_send_text(" total=");
    serial_send_i64(supported ? (int64_t)total : -1);
    serial_send_text("\n");
}

static void cmd_exit(const char *arguments)
{
    (void)arguments;
    serial_send_text("ok exit\n");
    board_exit(0);
}

static const struct command commands[] = {
    {"hello", 0, cmd_hello},
    {"infer", 0, cmd_infer},
    {"bench", 1, cmd_bench},
    {"layers", 0, cmd_layers},
    {"stack", 0, cmd_stack},
    {"exit", 0, cmd_exit},
};

static void run_command(const char *line)
{
    size_t name_length = strcspn(line, " ");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const struct command *command = &commands[i];
        if (strlen(command->name) != name_length ||
            strncmp(command->name, line, name_length) != 0) {
            continue;
        }
        if (!command->takes_arguments && line[name_length] != '\0') {
            reply_error("this command takes no arguments");
            return;
        }
        command->run(line + name_length);
        return;
    }
    reply_error("unknown command");
}

int main(void)
{
    stack_paint();
    board_init();
    char line[SERIAL_LINE_MAX + 1];
    for (;;) {
        if (serial_read_line(line) < 0) {
            reply_error("line longer than 80 characters");
            continue;
        }
        if (line[0] != '\0') {
            run_command(line);
        }
    }
}
