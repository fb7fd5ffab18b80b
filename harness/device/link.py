"""A byte link to a board over any pyserial URL, with a log file and one lock per port.

Works the same on a device path (/dev/ttyACM0), an emulator's TCP port
(socket://127.0.0.1:N), a pty, or a port served by another machine
(rfc2217://host:port). Reads return what arrived within a timeout and never
hang; a stop event (Ctrl-C in a sweep with several boards) ends them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import serial

_POLL_S = 0.05  # how often a blocked read looks at the stop event
# The serial speed where a board names none: the emulated boards' UART_BAUD (firmware/boards/cmsdk_uart.c) and
# the Arduino boards' monitor_speed in platformio.ini (tests/test_c_mirrors.py compares them).
DEFAULT_BAUD = 115200


class DeviceError(RuntimeError):
    """The board could not be reached, or answered something unexpected."""


class SerialTimeout(DeviceError):
    pass


class LinkLost(DeviceError):
    """The port went away: the emulator ended, the cable was pulled, the remote port closed."""


class Interrupted(DeviceError):
    """The sweep is stopping (Ctrl-C): whatever was being measured is abandoned, not recorded."""


# One lock per port, so two threads of this harness never talk to one board
# at once; `exclusive` opening keeps other processes out of device paths.
_port_locks: dict[str, threading.Lock] = {}
_port_locks_guard = threading.Lock()


def _port_lock(url: str) -> threading.Lock:
    with _port_locks_guard:
        return _port_locks.setdefault(url, threading.Lock())


class SerialLink:
    def __init__(
        self,
        url: str,
        log_path: Path,
        baudrate: int = DEFAULT_BAUD,
        open_timeout: float = 5.0,
        stop: threading.Event | None = None,
    ):
        self.url = url
        self.log_path = Path(log_path)
        self._stop = stop or threading.Event()
        self._lock = _port_lock(url)
        while not self._lock.acquire(timeout=_POLL_S):
            self._check_stop()
        try:
            self._port = self._open(url, baudrate, open_timeout)
            self._log = open(self.log_path, "a")
        except BaseException:
            self._lock.release()
            raise

    def _open(self, url: str, baudrate: int, open_timeout: float):
        deadline = time.monotonic() + open_timeout
        while True:
            try:
                exclusive = {"exclusive": True} if "://" not in url else {}
                return serial.serial_for_url(
                    url, baudrate=baudrate, timeout=_POLL_S, write_timeout=open_timeout, **exclusive
                )
            except serial.SerialException as err:
                if "lock" in str(err).lower() or "busy" in str(err).lower():
                    raise DeviceError(f"serial port {url} is in use by another process") from None
                if time.monotonic() > deadline:
                    raise DeviceError(f"cannot open serial port {url}: {err}") from None
                self._check_stop()
                time.sleep(_POLL_S)

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise Interrupted(f"stopped while talking to {self.url}")

    def write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError) as err:
            raise LinkLost(f"serial port {self.url} failed: {err} (log: {self.log_path})") from None

    def read(self, timeout: float) -> bytes:
        """What arrives within timeout seconds (returns as soon as anything does); b'' if nothing."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_stop()
            try:
                chunk = self._port.read(max(1, self._port.in_waiting))
            except (serial.SerialException, OSError) as err:
                raise LinkLost(f"serial port {self.url} failed: {err} (log: {self.log_path})") from None
            if chunk or time.monotonic() >= deadline:
                return chunk

    def log(self, line: str) -> None:
        self._log.write(line + "\n")
        self._log.flush()

    def close(self) -> None:
        try:
            self._port.close()
            self._log.close()
        finally:
            self._lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
