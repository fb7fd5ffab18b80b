"""One board session: upload through PlatformIO, connect, talk, and always clean up.

Emulated boards are processes the upload started; whatever happens in the
session (an error, Ctrl-C), the process is stopped on the way out so no QEMU
or host firmware is left behind.
"""
from __future__ import annotations

import os
import signal
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from harness.build import Firmware, upload_firmware
from harness.device.boards import Board
from harness.device.client import BoardClient
from harness.device.link import DeviceError, SerialLink


def check_port(board: Board, port: str) -> None:
    """Fail early on a port the user gave that cannot work for this board."""
    if board.transport == "qemu-tcp":
        if not port.isdigit():
            raise DeviceError(f"board '{board.name}' is emulated: --port takes a TCP port number, not '{port}'")
        _check_tcp_port_free(int(port))


def default_port(board: Board, firmware: Firmware, port: str = "") -> str:
    """The serial URL for a board: the user's port, or one the harness picks for emulated boards."""
    if board.transport == "qemu-tcp":
        if port:
            check_port(board, port)
        return f"socket://127.0.0.1:{int(port) if port else _free_tcp_port()}"
    if board.transport == "host-pty":
        return port or str(firmware.build_dir / firmware.env / "tty")
    if not port:
        raise DeviceError(f"board '{board.name}' needs a serial port (--port /dev/ttyACM0, or a pyserial URL)")
    return port


def _free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_tcp_port_free(number: int) -> None:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", number))
        except OSError:
            raise DeviceError(f"port 127.0.0.1:{number} is in use") from None


@contextmanager
def board_session(board: Board, firmware: Firmware, log_path: Path, timeout: float, port: str = ""):
    url = default_port(board, firmware, port)
    pid_file = firmware.build_dir / firmware.env / "board.pid"
    pid_file.unlink(missing_ok=True)
    link = None
    try:
        upload_firmware(firmware, url)
        link = SerialLink(url, log_path)
        yield BoardClient(link, timeout)
    finally:
        if link is not None:
            link.close()
        if board.emulated:
            stop_board_process(pid_file)


def stop_board_process(pid_file: Path, grace: float = 2.0) -> None:
    """Stop the emulator or host firmware whose pid the upload wrote, if it still runs."""
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.02)
        if not _alive(pid):
            break
    pid_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reaps it if it is our child
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie that is not our child still answers kill(0): ask /proc.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return False
