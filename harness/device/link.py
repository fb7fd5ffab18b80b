"""A line-oriented serial link over any pyserial URL, with every byte logged.

Works the same on a device path (/dev/ttyACM0), an emulator's TCP port
(socket://127.0.0.1:N), a pty, or a remote port (rfc2217://host:port).
Timeouts raise errors that name the port and the log file instead of hanging.
"""
from __future__ import annotations

import time
from pathlib import Path

import serial


class DeviceError(RuntimeError):
    """The board could not be reached, or answered something unexpected."""


class SerialTimeout(DeviceError):
    pass


class SerialLink:
    def __init__(self, url: str, log_path: Path, baudrate: int = 115200, open_timeout: float = 5.0):
        self.url = url
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "ab")
        self._buffer = bytearray()
        self._port = self._open(url, baudrate, open_timeout)

    def _open(self, url: str, baudrate: int, open_timeout: float):
        deadline = time.monotonic() + open_timeout
        while True:
            try:
                # exclusive: a second harness (or a terminal) on the same board is an error, not a race.
                exclusive = {"exclusive": True} if "://" not in url else {}
                return serial.serial_for_url(url, baudrate=baudrate, timeout=0.05, **exclusive)
            except serial.SerialException as err:
                if "lock" in str(err).lower() or "busy" in str(err).lower():
                    raise DeviceError(f"serial port {url} is in use by another process") from None
                if time.monotonic() > deadline:
                    raise DeviceError(f"cannot open serial port {url}: {err}") from None
                time.sleep(0.05)

    def write(self, data: bytes) -> None:
        self._log.write(b">> " + data + (b"" if data.endswith(b"\n") else b"\n"))
        self._port.write(data)
        self._port.flush()

    def read_line(self, timeout: float) -> str:
        """The next line from the board, without its line ending."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            if time.monotonic() > deadline:
                raise SerialTimeout(
                    f"serial timeout: no complete line from {self.url} within {timeout:g} s (log: {self.log_path})")
            try:
                chunk = self._port.read(max(1, self._port.in_waiting))
            except (serial.SerialException, OSError) as err:
                raise DeviceError(f"serial port {self.url} failed: {err} (log: {self.log_path})") from None
            self._buffer += chunk
        line, _, rest = self._buffer.partition(b"\n")
        self._buffer = bytearray(rest)
        self._log.write(b"<< " + line + b"\n")
        return line.decode("ascii", errors="replace").rstrip("\r")

    def discard_input(self) -> None:
        self._buffer.clear()
        self._port.reset_input_buffer()

    def close(self) -> None:
        try:
            self._port.close()
        finally:
            self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
