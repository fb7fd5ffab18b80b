/*
 * Benchmark runtime: runs the generated model on the host's commands
 * (protocol version 2, docs/design.md). Every well-formed request gets
 * exactly one reply; broken frames get none, and the host sends again.
 * Every command can be repeated with the same effect (retries rely on it),
 * apart from exit.
 */
#include <string.h>

#include "board.h"
#include "build_info.h"
#include "frame.h"
#include "layer_timer.h"
#include "model.h"
#include "runtime.h"
#include "stack_usage.h"

enum command {
    CMD_HELLO = 1,   /* -> text "key=value ..." */
    CMD_LOAD = 2,    /* u32 offset, bytes: into the input tensor */
    CMD_INFER = 3,   /* u32 offset, bytes: load as LOAD, run once -> the output, up to a payload */
    CMD_OUTPUT = 4,  /* u32 offset -> the output from there, up to a payload */
    CMD_BENCH = 5,   /* u32 warmup (0..BENCH_MAX_WARMUP), u32 runs -> u64 time of each run */
    CMD_LAYERS = 6,  /* u32 first layer -> u64 time per layer from there (first 0: profile a run) */
    CMD_STACK = 7,   /* -> i32 bytes used, i32 stack size; -1 each if unknown */
    CMD_EXIT = 8,
};

#define TIMES_PER_REPLY (FRAME_MAX_PAYLOAD / 8)
/* A few untimed inferences warm the caches; more only keep the board from
 * answering (the harness's [device] warmup has the same bound). */
#define BENCH_MAX_WARMUP 100
#define STRINGIFY(x) #x
#define EXPAND_AND_STRINGIFY(x) STRINGIFY(x)

/* Named by the host's hello and sent back in every reply: after a reset it
 * is 0 again, so the host notices the reset even between two commands. */
static uint32_t session;

/* A handler appends its reply's payload and returns 0, or returns
 * fail(reason), which makes the reply an error. */
typedef int (*handler)(const struct frame *request);

static int fail(const char *reason)
{
    reply_begin();
    reply_text(reason);
    return -1;
}

static int invoke(void)
{
    int status = model_invoke();
    if (status != 0) {
        fail("model_invoke returned ");
        reply_decimal(status);
    }
    return status;
}

/* The stack an inference needs, as STACK reports it: painted right before
 * the inference and read right after, in INFER (which is not timed). The
 * least reading since boot is kept: an interrupt that lands at the deepest
 * point (a byte arriving, a timer tick) adds its frame to that one reading,
 * and how often that happens depends on the link, not on the model. */
static uint32_t inference_stack = UINT32_MAX;

static int invoke_measuring_stack(void)
{
    stack_paint();
    int status = invoke();
    uint32_t used, total;
    if (status == 0 && stack_high_water(&used, &total) == 0 && used < inference_stack) {
        inference_stack = used;
    }
    return status;
}

static void reply_field(const char *name, const char *value)
{
    reply_text(" ");
    reply_text(name);
    reply_text("=");
    reply_text(value);
}

static void reply_number_field(const char *name, int64_t value)
{
    reply_field(name, "");
    reply_decimal(value);
}

static int cmd_hello(const struct frame *request)
{
    if (request->length != 0) {
        return fail("hello takes no payload");
    }
    session = request->session;
    reply_text("proto=" EXPAND_AND_STRINGIFY(PROTOCOL_VERSION));
    reply_field("model", model_id);
    reply_field("build", build_id);
    reply_field("board", board_name());
    reply_field("unit", board_timer_unit());
    reply_field("timer", board_timer_source());
    reply_number_field("clock", board_clock_hz());
    reply_number_field("in", MODEL_INPUT_BYTES);
    reply_number_field("out", MODEL_OUTPUT_BYTES);
    reply_number_field("layers", MODEL_NUM_LAYERS);
    reply_number_field("arena", MODEL_ARENA_BYTES);
    reply_number_field("max_payload", FRAME_MAX_PAYLOAD);
    reply_number_field("rx_errors", frame_rx_errors());
    return 0;
}

/* Copies a "u32 offset, bytes" payload into the input tensor. */
static int load_input(const struct frame *request)
{
    if (request->length < 4) {
        return fail("payload: u32 offset, then input bytes");
    }
    uint32_t offset = frame_get_u32(request->payload);
    size_t n = request->length - 4;
    if (offset > MODEL_INPUT_BYTES || n > MODEL_INPUT_BYTES - offset) {
        return fail("input bytes beyond MODEL_INPUT_BYTES");
    }
    memcpy(model_input() + offset, request->payload + 4, n);
    return 0;
}

static int reply_output_from(uint32_t offset)
{
    if (offset > MODEL_OUTPUT_BYTES) {
        return fail("offset beyond MODEL_OUTPUT_BYTES");
    }
    size_t n = MODEL_OUTPUT_BYTES - offset;
    reply_bytes(model_output() + offset, n < FRAME_MAX_PAYLOAD ? n : FRAME_MAX_PAYLOAD);
    return 0;
}

static int cmd_load(const struct frame *request)
{
    return load_input(request);
}

static int cmd_infer(const struct frame *request)
{
    if (load_input(request) != 0 || invoke_measuring_stack() != 0) {
        return -1;
    }
    return reply_output_from(0);
}

static int cmd_output(const struct frame *request)
{
    if (request->length != 4) {
        return fail("payload: u32 offset");
    }
    return reply_output_from(frame_get_u32(request->payload));
}

static int cmd_bench(const struct frame *request)
{
    if (request->length != 8) {
        return fail("payload: u32 warmup, u32 runs");
    }
    uint32_t warmup = frame_get_u32(request->payload);
    uint32_t runs = frame_get_u32(request->payload + 4);
    if (warmup > BENCH_MAX_WARMUP) {
        return fail("warmup must be 0.." EXPAND_AND_STRINGIFY(BENCH_MAX_WARMUP));
    }
    if (runs < 1 || runs > TIMES_PER_REPLY) {
        return fail("runs must be 1.." EXPAND_AND_STRINGIFY(TIMES_PER_REPLY));
    }
    for (uint32_t i = 0; i < warmup; i++) {
        if (invoke() != 0) {
            return -1;
        }
    }
    for (uint32_t i = 0; i < runs; i++) {
        uint64_t start = board_timer_now();
        if (invoke() != 0) {
            return -1;
        }
        reply_u64(board_timer_now() - start);
    }
    return 0;
}

static int cmd_layers(const struct frame *request)
{
    if (request->length != 4) {
        return fail("payload: u32 first layer");
    }
    uint32_t first = frame_get_u32(request->payload);
    if (first > MODEL_NUM_LAYERS) {
        return fail("first layer beyond MODEL_NUM_LAYERS");
    }
    if (first == 0) {
        layer_timer_profile(1);
        layer_timer_mark(0);
        int status = invoke();
        layer_timer_profile(0);
        if (status != 0) {
            return -1;
        }
    }
    for (uint32_t layer = first; layer < MODEL_NUM_LAYERS && layer < first + TIMES_PER_REPLY; layer++) {
        reply_u64(layer_timer_elapsed((int)layer));
    }
    return 0;
}

static int cmd_stack(const struct frame *request)
{
    if (request->length != 0) {
        return fail("stack takes no payload");
    }
    uint32_t used, total;
    int known = stack_high_water(&used, &total) == 0;
    if (known && inference_stack != UINT32_MAX) {
        used = inference_stack;
    }
    reply_u32(known ? used : UINT32_MAX);   /* -1 as i32 */
    reply_u32(known ? total : UINT32_MAX);
    return 0;
}

static int cmd_exit(const struct frame *request)
{
    if (request->length != 0) {
        return fail("exit takes no payload");
    }
    reply_send(request, STATUS_OK, session);  /* before the board stops */
    board_exit(0);
    return 0;
}

static handler handler_for(uint8_t command)
{
    switch (command) {
    case CMD_HELLO: return cmd_hello;
    case CMD_LOAD: return cmd_load;
    case CMD_INFER: return cmd_infer;
    case CMD_OUTPUT: return cmd_output;
    case CMD_BENCH: return cmd_bench;
    case CMD_LAYERS: return cmd_layers;
    case CMD_STACK: return cmd_stack;
    case CMD_EXIT: return cmd_exit;
    default: return NULL;
    }
}

static void serve(const struct frame *request)
{
    reply_begin();
    handler run = handler_for(request->kind);
    int status;
    if (request->version != PROTOCOL_VERSION) {
        status = fail("protocol version mismatch: this board speaks " EXPAND_AND_STRINGIFY(PROTOCOL_VERSION));
    } else if (run == NULL) {
        status = fail("unknown command");
    } else {
        status = run(request);
    }
    reply_send(request, status == 0 ? STATUS_OK : STATUS_ERROR, session);
}

void runtime_run(void)
{
    stack_paint();
    board_init();
    struct frame request;
    for (;;) {
        frame_receive(&request);
        serve(&request);
    }
}
