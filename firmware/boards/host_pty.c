/*
 * Board support for running the firmware as a Linux process (env `host`):
 * a quick way to check the runtime and the kernels without an emulator.
 *
 * Its serial port is a pseudo-terminal. Started as `firmware.elf PATH`, it
 * links the pty's slave device at PATH, which the host opens like any serial
 * port. Times are wall-clock nanoseconds, so they are noisy.
 */
#define _DEFAULT_SOURCE     /* cfmakeraw */
#define _XOPEN_SOURCE 700   /* posix_openpt, grantpt, unlockpt, ptsname */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "board.h"

/* On exit, how long to wait for our last reply to reach the host's side of
 * the pty, then for the host to read it: 10 ms polls. */
#define EXIT_POLL_NS        10000000L
#define EXIT_ARRIVE_POLLS   10
#define EXIT_READ_POLLS     200

static const char *link_path;
static int pty_fd = -1;    /* master: our end of the serial line */
static int slave_fd = -1;  /* the host's end, kept open (see board_init) */

/* glibc passes main's arguments to constructors too; board_init() has none. */
__attribute__((constructor)) static void remember_link_path(int argc, char **argv)
{
    link_path = argc > 1 ? argv[1] : NULL;
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static void link_slave(const char *slave_name)
{
    /* Replace any old link atomically: the uploader waits for it to appear. */
    char partial[4096];
    snprintf(partial, sizeof partial, "%s.%ld", link_path, (long)getpid());
    unlink(partial);
    if (symlink(slave_name, partial) != 0 || rename(partial, link_path) != 0) {
        die(link_path);
    }
}

void board_init(void)
{
    if (link_path == NULL) {
        fprintf(stderr, "usage: firmware.elf PTY_LINK_PATH\n");
        exit(2);
    }
    pty_fd = posix_openpt(O_RDWR | O_NOCTTY);
    if (pty_fd < 0 || grantpt(pty_fd) != 0 || unlockpt(pty_fd) != 0) {
        die("posix_openpt");
    }
    /* Keep the slave open ourselves: once no process has it open, reads on
     * the master fail with EIO, which would happen whenever the host closes
     * its port. Raw mode: bytes pass unchanged, no echo, no line editing. */
    const char *slave_name = ptsname(pty_fd);
    slave_fd = slave_name ? open(slave_name, O_RDWR | O_NOCTTY) : -1;
    struct termios raw;
    if (slave_fd < 0 || tcgetattr(slave_fd, &raw) != 0) {
        die("pty slave");
    }
    cfmakeraw(&raw);
    tcsetattr(slave_fd, TCSANOW, &raw);
    link_slave(slave_name);
}

int board_read_byte(void)
{
    uint8_t byte;
    ssize_t n;
    do {
        n = read(pty_fd, &byte, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
        die("read pty");
    }
    return byte;
}

void board_write(const uint8_t *buf, size_t n)
{
    while (n > 0) {
        ssize_t written = write(pty_fd, buf, n);
        if (written < 0 && errno != EINTR) {
            die("write pty");
        }
        if (written > 0) {
            buf += written;
            n -= (size_t)written;
        }
    }
}

uint64_t board_timer_now(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

const char *board_timer_unit(void)
{
    return "ns";
}

const char *board_timer_source(void)
{
    return "host-clock-monotonic";
}

const char *board_name(void)
{
    return "host";
}

uint32_t board_clock_hz(void)
{
    return 0;
}

int board_stack_region(uintptr_t *lo, uintptr_t *hi)
{
    (void)lo;
    (void)hi;
    return -1;  /* the OS grows the stack on demand: nothing to paint */
}

static int unread_by_host(void)
{
    int unread = 0;
    return ioctl(slave_fd, FIONREAD, &unread) == 0 ? unread : 0;
}

/* Bytes the host has not read are lost when the pty closes. The kernel
 * moves what we write to the host's side asynchronously, so first wait for
 * our reply to show up there, then for it to be read. */
static void wait_until_host_has_read(void)
{
    const struct timespec poll = {0, EXIT_POLL_NS};
    int polls = 0;
    while (unread_by_host() == 0 && polls++ < EXIT_ARRIVE_POLLS) {
        nanosleep(&poll, NULL);
    }
    polls = 0;
    while (unread_by_host() > 0 && polls++ < EXIT_READ_POLLS) {
        nanosleep(&poll, NULL);
    }
}

void board_exit(int code)
{
    wait_until_host_has_read();
    unlink(link_path);
    exit(code);
}
