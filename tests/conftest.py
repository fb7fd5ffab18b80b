import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
# Every process this test session starts inherits the mark, so boards left behind are told apart from other
# sessions' (another developer's sweep, a second test run) even after they were orphaned.
SESSION_MARK = f"HARNESS_TEST_SESSION={os.getpid()}".encode()
os.environ["HARNESS_TEST_SESSION"] = str(os.getpid())


def run_harness(*args, env=None, timeout=900):
    """Run the real `harness` command line, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *map(str, args)],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def run_kernel_bench(out, shapes, sparsities, formats, timeout=1700):
    """`harness kernels` on the emulated M4, every variant measured anew; its process, for what it printed."""
    proc = run_harness(
        "kernels",
        "--shapes",
        ",".join(shapes),
        "--sparsities",
        ",".join(sparsities),
        "--formats",
        ",".join(formats),
        "--board",
        "mps2_an386",
        "--out",
        out,
        "--fresh",
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def session_processes() -> dict[int, bytes]:
    """Every live process this test session started, whatever it is, with its command line.

    Zombies do not count: an exited QEMU waits for init to reap it, and pgrep would match its name.
    """
    running = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
            ours = SESSION_MARK in (proc / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if ours and state != "Z":
            running[int(proc.name)] = cmdline
    return running


def board_processes() -> set[int]:
    """Emulators and host firmware this test session started that are still running (none may be left behind)."""
    return {
        pid
        for pid, cmdline in session_processes().items()
        if b"qemu-system-arm" in cmdline or b"/host/firmware.elf" in cmdline
    }


@pytest.fixture
def no_leftover_boards():
    before = board_processes()
    yield
    leftover = board_processes() - before
    assert not leftover, f"board processes left running: {leftover}"
