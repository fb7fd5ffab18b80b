import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent


def run_harness(*args, env=None, timeout=900):
    """Run the real `harness` command line, as a user would."""
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=PROJECT_DIR, env=env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def board_processes() -> set[int]:
    """Emulators and host firmware currently running (to check that none is left behind)."""
    out = subprocess.run(["pgrep", "-f", "qemu-system-arm|/host/firmware.elf"], capture_output=True, text=True).stdout
    return {int(pid) for pid in out.split()}


@pytest.fixture
def no_leftover_boards():
    before = board_processes()
    yield
    leftover = board_processes() - before
    assert not leftover, f"board processes left running: {leftover}"
