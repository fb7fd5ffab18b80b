"""One board session: upload through PlatformIO, connect, check the firmware, talk, and always clean up.

Emulated boards are processes the upload started; whatever happens in the
session (an error, Ctrl-C), the process is stopped on the way out so no QEMU
or host firmware is left behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from harness.build import Firmware, env_option, upload_firmware
from harness.device import farm_flash
from harness.device.boards import Board
from harness.device.client import BoardClient, Hello, OnEvent, WrongFirmware
from harness.device.faults import FaultInjector
from harness.device.link import DEFAULT_BAUD, DeviceError, SerialLink


def check_port(board: Board, port: str) -> None:
    """Fail early on a port the user gave that cannot work for this board."""
    if board.transport == "qemu-tcp":
        if not port.isdigit():
            raise DeviceError(f"board '{board.name}' is emulated: --port takes a TCP port number, not '{port}'")
        _check_tcp_port_free(int(port))


def default_port(board: Board, board_dir: Path, port: str = "") -> str:
    """The serial URL for a board: the user's port, or one the harness picks for emulated boards."""
    if board.transport == "qemu-tcp":
        if port:
            check_port(board, port)
        return f"socket://127.0.0.1:{int(port) if port else _free_tcp_port()}"
    if board.transport == "host-pty":
        return port or str(board_dir / "tty")
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


def baud_rate(board: Board) -> int:
    """The board's serial speed: its environment's monitor_speed, which its firmware is built with."""
    return int(env_option(board.name, "monitor_speed", DEFAULT_BAUD))


# More than six parameters: past reply_timeout each is optional and a separate concern of one caller (a fixed
# port, the run's event log, Ctrl-C, the fault proxy); a plain session (tests/test_bench_link.py) needs none.
@contextmanager
def board_session(  # noqa: PLR0913 (what a session needs from the sweep (board, firmware, log, timeout) and its optional hooks)
    board: Board,
    firmware: Firmware,
    log_path: Path,
    reply_timeout: float,
    port: str = "",
    on_event: OnEvent | None = None,
    stop: threading.Event | None = None,
    faults: FaultInjector | None = None,
):
    """Flash firmware, connect, and yield a client whose handshake showed that firmware running.

    The session's board files (an emulator's pid file, its output, a pty's link) go beside log_path.
    """
    board_dir = log_path.with_name(log_path.name.removesuffix(".serial.log") + ".board")
    url = default_port(board, board_dir, port)
    with ExitStack() as cleanup:
        if board.emulated:
            # Also stops a board that a killed harness left running in this folder: its pid is in the file.
            cleanup.callback(stop_board_process, board_dir / "board.pid", firmware.elf)
        qmp = None
        if faults is not None:
            qmp = _fault_ready(board, cleanup)
        upload_firmware(firmware, url, board_dir, {"HARNESS_QMP_SOCKET": str(qmp)} if qmp else None)
        if faults is not None:
            proxy = faults.proxy(_tcp_address(url), reset=lambda: qmp_command(qmp, "system_reset"))
            cleanup.callback(proxy.close)
            url = proxy.url
        link = cleanup.enter_context(SerialLink(url, log_path, baud_rate(board), stop=stop))
        client = BoardClient(link, reply_timeout, on_event)
        expect_firmware(client.hello(), firmware)
        yield client


@contextmanager  # parameters: as board_session's, with the lease on a farm place in place of a local port
def place_session(  # noqa: PLR0913 (as board_session's)
    lease,
    board: Board,
    firmware: Firmware,
    log_path: Path,
    reply_timeout: float,
    on_event: OnEvent | None = None,
    stop: threading.Event | None = None,
):
    """On a farm: flash the held place's board through the place, connect to its serial port."""
    access = lease.access
    farm_flash.flash(lease.farm, access, board, firmware.elf, log_path.with_name(log_path.stem + ".flash.log"))
    with SerialLink(access.serial_url, log_path, access.baudrate, stop=stop) as link:
        client = BoardClient(link, reply_timeout, on_event)
        expect_firmware(client.hello(), firmware)
        yield client


def expect_firmware(hello: Hello, firmware: Firmware) -> None:
    if hello.build_id != firmware.build_id:
        raise WrongFirmware(
            f"board runs build {hello.build_id} (model {hello.model_id}), expected build "
            f"{firmware.build_id}: wrong firmware"
        )


def _fault_ready(board: Board, cleanup: ExitStack) -> Path:
    """A path for QEMU's monitor socket (so the fault proxy can reset the board), short enough for a Unix socket."""
    if board.transport != "qemu-tcp":
        raise DeviceError(f"--inject-faults works on emulated boards on a TCP port, not on '{board.name}'")
    directory = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="qmp-")))
    return directory / "qmp.sock"


def _tcp_address(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("socket://").rpartition(":")
    return host, int(port)


def qmp_command(socket_path: Path, command: str) -> dict:
    """Run one command through QEMU's machine protocol (QMP) and return its reply."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        sock.connect(str(socket_path))
        stream = sock.makefile("rwb")
        stream.readline()  # the greeting
        for execute in ("qmp_capabilities", command):
            stream.write(json.dumps({"execute": execute}).encode() + b"\n")
            stream.flush()
            while "event" in (reply := json.loads(stream.readline())):
                pass  # asynchronous events (e.g. RESET) may come first
        return reply


def stop_board_process(pid_file: Path, program: Path, grace: float = 2.0) -> None:
    """Stop the emulator or host firmware whose pid the upload wrote, if it still runs that program."""
    try:
        pid = int(pid_file.read_text().strip())
        if str(program).encode() not in Path(f"/proc/{pid}/cmdline").read_bytes():
            return  # ended long ago, and the pid now belongs to someone else
    except (OSError, ValueError):
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
