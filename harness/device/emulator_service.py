"""An emulated board as a farm's exporter host serves it: QEMU, always up, flashed over its gdb stub.

`harness farm emulate mps2_an386 --uart 127.0.0.1:5001 --gdb 127.0.0.1:6001`
keeps one QEMU running with no program, paused, its UART on one TCP port and
its gdb stub on another. The exporter serves both (a NetworkSerialPort with
protocol raw, and a NetworkGDBServer) and a harness that acquired the place
loads its firmware through the stub (harness/device/gdb_remote.py). When
QEMU ends (the firmware exited, or it crashed) it is started again, empty,
so the place is ready for the next flash; SIGTERM or Ctrl-C stops both.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from pathlib import Path

from harness import reaper
from harness.device.boards import Board
from harness.paths import project_file

PLATFORM_BOARDS = project_file("firmware/platform/boards")
RESTART_PAUSE_S = 0.5  # so a QEMU that cannot start does not spin


def qemu_machine(board: Board) -> str:
    """QEMU's machine for an emulated board, from its PlatformIO board file."""
    path = PLATFORM_BOARDS / f"{board.name}.json"
    machine = json.loads(path.read_text())["build"].get("qemu_machine") if path.exists() else None
    if board.transport != "qemu-tcp" or not machine:
        raise ValueError(f"board '{board.name}' is not emulated by QEMU; a farm serves it as a real board")
    return machine


def qemu_command(board: Board, uart: str, gdb: str) -> list[str]:
    """QEMU with no program, paused until a debugger loads one (-S), timed as the local boards are."""
    return [
        "qemu-system-arm",
        "-M",
        qemu_machine(board),
        "-nographic",
        "-monitor",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
        # wait=off: QEMU must not block on the UART; the board is paused anyway until it is flashed.
        "-serial",
        f"tcp:{uart},server=on,wait=off,nodelay=on",
        "-gdb",
        f"tcp:{gdb}",
        "-S",
        "-icount",
        "shift=0",
    ]


def serve(
    board: Board, uart: str, gdb: str, log_path: Path, stop: threading.Event | None = None, on_start=print
) -> None:
    """Run the board's QEMU until stop is set (or SIGTERM/SIGINT in the main thread), restarting it when it ends."""
    stop = stop or threading.Event()
    reaper.start()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    command = qemu_command(board, uart, gdb)
    with open(log_path, "ab") as log:
        while not stop.is_set():
            qemu = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=reaper.die_with_parent,
            )
            on_start(f"{board.name}: QEMU {qemu.pid} serves its UART on {uart}, its gdb stub on {gdb}")
            try:
                while qemu.poll() is None and not stop.wait(0.2):
                    pass
            finally:
                if qemu.poll() is None:
                    qemu.terminate()
                    try:
                        qemu.wait(5)
                    except subprocess.TimeoutExpired:
                        qemu.kill()
                        qemu.wait()
            stop.wait(RESTART_PAUSE_S)
