"""Build and upload for the benchmark's boards; the board JSON's build.family picks:

- "mps2": Arm MPS2 boards emulated by QEMU, compiled with arm-none-eabi-gcc
  from PATH. Upload starts QEMU with UART0 on the loopback TCP port given as
  `--upload-port socket://127.0.0.1:N`.
- "host": the firmware as a Linux process, compiled with the system gcc.
  Upload starts it with its UART on a pty linked at the `--upload-port` path.

Either way upload leaves the board running detached from PlatformIO, writes
its pid to board.pid (and its output to board.log) in $HARNESS_BOARD_DIR, the
uploading session's own folder (default: $BUILD_DIR), and returns once the
port can be opened.
It never opens the port itself: the first client to connect gets the board.
With HARNESS_QMP_SOCKET set, QEMU also serves its machine protocol (QMP) on
that Unix socket, through which the harness can reset the board.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

from SCons.Script import AlwaysBuild, Default, DefaultEnvironment

READY_TIMEOUT_S = 10.0

env = DefaultEnvironment()
board = env.BoardConfig()


def report(message):
    """Print an error the way PlatformIO does; returns the failing status for an action."""
    sys.stderr.write("Error: %s\n" % message)
    return 1


def missing_tool(name, apt_package):
    """An error message if the tool is not on PATH, else None."""
    if shutil.which(name):
        return None
    return "%s not found: install it with `apt-get install %s`" % (name, apt_package)


# ---------------------------------------------------------------- toolchains


def configure_mps2():
    cpu_flags = ["-mcpu=" + board.get("build.cpu"), "-mthumb"]
    if board.get("build.fpu", None):
        cpu_flags += ["-mfpu=" + board.get("build.fpu"), "-mfloat-abi=hard"]
    env.Replace(
        AR="arm-none-eabi-gcc-ar",
        AS="arm-none-eabi-as",
        CC="arm-none-eabi-gcc",
        OBJCOPY="arm-none-eabi-objcopy",
        RANLIB="arm-none-eabi-gcc-ranlib",
        SIZETOOL="arm-none-eabi-size",
        # Like PlatformIO's official ARM platforms: `size -A` per section,
        # summed into the Flash and RAM lines that `pio run` prints and checks
        # against upload.maximum_size and upload.maximum_ram_size.
        SIZECHECKCMD="$SIZETOOL -A -d $SOURCES",
        SIZEPROGREGEXP=r"^(?:\.vectors|\.text|\.rodata|\.ARM\.exidx|\.data)\s+(\d+).*",
        SIZEDATAREGEXP=r"^(?:\.stack|\.data|\.bss)\s+(\d+).*",
        SIZEPRINTCMD="$SIZETOOL -B -d $SOURCES",
    )
    env.Append(
        ASFLAGS=cpu_flags,
        CCFLAGS=cpu_flags + ["-ffunction-sections", "-fdata-sections"],
        CPPDEFINES=[("F_CPU", "$BOARD_F_CPU"), ("BOARD_NAME", env.StringifyMacro("$BOARD"))],
        LINKFLAGS=cpu_flags
        + [
            "--specs=nano.specs",  # small newlib: the kernels may call memcpy/memset
            "-nostartfiles",  # firmware/boards/mps2_startup.c is the startup code
            "-Wl,--gc-sections",
            "-Wl,--defsym=__flash_size=%d" % int(board.get("upload.maximum_size")),
            "-Wl,--defsym=__ram_size=%d" % int(board.get("upload.maximum_ram_size")),
        ],
        LIBS=["c", "gcc"],
    )


def configure_host():
    env.Replace(AR="ar", AS="as", CC="gcc", OBJCOPY="objcopy", RANLIB="ranlib")


# ---------------------------------------------------------------- upload


def start_board(argv, ready, what):
    """Start argv detached, record its pid, wait until ready(); returns an error or None."""
    stop_previous_board()
    log_path = build_path("board.log")
    with open(log_path, "wb") as log:
        # A new session and no inherited pipes: the board outlives `pio run`,
        # which would otherwise wait for our output pipes to close.
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    with open(build_path("board.pid"), "w") as f:
        f.write("%d\n" % proc.pid)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready():
        if proc.poll() is not None:
            return "%s exited with status %d: %s (log: %s)" % (what, proc.returncode, last_line(log_path), log_path)
        if time.monotonic() > deadline:
            proc.kill()
            return "%s not ready after %g s (log: %s)" % (what, READY_TIMEOUT_S, log_path)
        time.sleep(0.01)
    return None


def stop_previous_board():
    """Uploading replaces whatever this build dir's board is still running."""
    try:
        with open(build_path("board.pid")) as f:
            pid = int(f.read())
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            cmdline = f.read()
    except (OSError, ValueError):
        return
    if env.subst("$PROGPATH").encode() not in cmdline:  # a recycled pid
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while alive(pid) and time.monotonic() < deadline:  # until its port is free
        time.sleep(0.01)


def alive(pid):
    """True unless pid is gone or a zombie (no longer our child, so not ours to reap)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def build_path(name):
    """A file of the running board's: in the session's folder, so that two sessions uploading the same build
    (two sweeps) never stop each other's board."""
    directory = os.environ.get("HARNESS_BOARD_DIR") or env.subst("$BUILD_DIR")
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, name)


def last_line(path):
    with open(path, errors="replace") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines[-1] if lines else "no output"


def upload_qemu(target, source, env):
    port = env.subst("$UPLOAD_PORT")
    match = re.fullmatch(r"socket://127\.0\.0\.1:(\d+)", port)
    if not match:
        return report("upload port for %s must be socket://127.0.0.1:PORT, not '%s'" % (env.subst("$BOARD"), port))
    problem = missing_tool("qemu-system-arm", "qemu-system-arm")
    if problem:
        return report(problem)
    address = "127.0.0.1:" + match.group(1)
    argv = [
        "qemu-system-arm",
        "-M",
        board.get("build.qemu_machine"),
        "-nographic",
        "-monitor",
        "none",
        "-semihosting-config",
        "enable=on,target=native",  # lets firmware exit QEMU
        # wait=on: the guest starts when the host connects, so no output is
        # lost; nodelay=on: without it each round trip costs ~45 ms (Nagle).
        "-serial",
        "tcp:%s,server=on,wait=on,nodelay=on" % address,
        # One instruction = 1 ns of virtual time: timings count instructions.
        "-icount",
        "shift=0",
        "-kernel",
        env.subst("$PROGPATH"),
    ]
    qmp_socket = os.environ.get("HARNESS_QMP_SOCKET")
    if qmp_socket:
        argv += ["-qmp", "unix:%s,server=on,wait=off" % qmp_socket]
    log_path = build_path("board.log")

    def log_says(text):
        with open(log_path, errors="replace") as f:
            return text in f.read()

    error = start_board(argv, lambda: log_says("waiting for connection"), "QEMU")
    if error and log_says("Address already in use"):
        error = "port %s is in use (log: %s)" % (address, log_path)
    return report(error) if error else 0


def upload_process(target, source, env):
    link = env.subst("$UPLOAD_PORT")
    if not link:
        return report("pass --upload-port PATH: the firmware links its pty there")
    if os.path.islink(link):  # left by an earlier run
        os.remove(link)
    elif os.path.exists(link):
        return report("%s exists and is not a symlink; the firmware would replace it" % link)
    error = start_board([env.subst("$PROGPATH"), link], lambda: os.path.islink(link), "the host firmware")
    return report(error) if error else 0


# ---------------------------------------------------------------- targets

FAMILIES = {  # build.family -> (configure, upload, compiler, its Debian package)
    "mps2": (configure_mps2, upload_qemu, "arm-none-eabi-gcc", "gcc-arm-none-eabi"),
    "host": (configure_host, upload_process, "gcc", "gcc"),
}
family = board.get("build.family")
if family not in FAMILIES:
    env.Exit(report("board %s: unknown build.family '%s'" % (env.subst("$BOARD"), family)))
configure, upload, compiler, compiler_package = FAMILIES[family]
problem = missing_tool(compiler, compiler_package)
if problem:
    env.Exit(report(problem))
configure()

env.Replace(PROGNAME="firmware", PROGSUFFIX=".elf")

program = env.BuildProgram()
Default(program)
AlwaysBuild(env.Alias("upload", program, env.VerboseAction(upload, "Starting $BOARD on $UPLOAD_PORT")))
