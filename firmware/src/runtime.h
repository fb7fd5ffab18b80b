/*
 * The benchmark runtime: serves the host's commands (protocol version 2,
 * docs/design.md) for ever. A board's entry point calls it once: main() on
 * bare-metal boards and the host, setup() under Arduino.
 */
#ifndef RUNTIME_H
#define RUNTIME_H

void runtime_run(void);

#endif
