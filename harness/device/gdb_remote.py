"""Load an ELF into a board through a GDB remote-protocol server (QEMU's gdb stub), then reset and run it.

This is how a farm flashes an emulated board: the exporter host runs QEMU
with no program and its gdb stub on a TCP port (`harness farm emulate`), and
the harness writes the firmware's loadable segments into the board's memory,
resets it (QEMU's `system_reset`, through the stub's `monitor` command) and
lets it run. Every packet carries a checksum the stub verifies, so a byte the
network moved is refused, not written. Only what loading needs of the
protocol is here: memory writes, a monitor command, detach.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from harness.device.link import DeviceError

PT_LOAD = 1
_WRITE_CHUNK = 1024  # bytes per memory-write packet: 2 KiB of hex, under QEMU's 4 KiB packet limit
_ELF_HEADER = struct.Struct("<16sHHIIIIIHHHHHH")
_PROGRAM_HEADER = struct.Struct("<IIIIIIII")


class FlashError(DeviceError):
    """The image could not be loaded: the server is unreachable, refused a write, or the file is no ELF."""


@dataclass(frozen=True)
class Segment:
    address: int  # where it is loaded (the physical address: .data's initial values live in flash)
    data: bytes


def loadable_segments(elf: Path) -> list[Segment]:
    """The bytes a loader writes: each PT_LOAD program header's file contents at its physical address."""
    image = elf.read_bytes()
    if image[:4] != b"\x7fELF" or image[4] != 1 or image[5] != 1:
        raise FlashError(f"{elf}: not a 32-bit little-endian ELF file")
    header = _ELF_HEADER.unpack_from(image)
    phoff, phentsize, phnum = header[5], header[9], header[10]
    segments = []
    for index in range(phnum):
        kind, offset, _, paddr, filesz, *_ = _PROGRAM_HEADER.unpack_from(image, phoff + index * phentsize)
        if kind == PT_LOAD and filesz:
            segments.append(Segment(paddr, image[offset : offset + filesz]))
    if not segments:
        raise FlashError(f"{elf}: no loadable segments")
    return segments


class GdbRemote:
    """One connection to a gdb stub; the target stops while it is attached."""

    def __init__(self, host: str, port: int, timeout: float = 10.0):
        self.address = f"{host}:{port}"
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as err:
            raise FlashError(f"gdb server {self.address} unreachable: {err}") from None
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = b""

    def close(self) -> None:
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, payload: bytes) -> bytes:
        """Send one packet and return the reply's payload, skipping console output ('O...') packets."""
        packet = b"$" + payload + b"#" + b"%02x" % (sum(payload) & 0xFF)
        self._send(packet)
        resent = 0
        while (byte := self._read_exact(1)) != b"+":
            if byte == b"$":
                self._read_packet(started=True)  # a stop notification sent on connecting: QEMU paused the board
            elif byte == b"-":
                resent += 1
                if resent == 3:
                    raise FlashError(f"gdb server {self.address} refused a packet three times")
                self._send(packet)
        while True:
            reply = self._read_packet()
            if not (reply.startswith(b"O") and reply != b"OK"):
                return reply

    def write_memory(self, address: int, data: bytes) -> None:
        for start in range(0, len(data), _WRITE_CHUNK):
            chunk = data[start : start + _WRITE_CHUNK]
            reply = self.request(b"M%x,%x:" % (address + start, len(chunk)) + chunk.hex().encode())
            if reply != b"OK":
                raise FlashError(
                    f"gdb server {self.address}: writing {len(chunk)} bytes at "
                    f"0x{address + start:08x} failed ({reply.decode(errors='replace')})"
                )

    def monitor(self, command: str) -> None:
        reply = self.request(b"qRcmd," + command.encode().hex().encode())
        if reply.startswith(b"E") or reply == b"":
            raise FlashError(
                f"gdb server {self.address}: monitor command '{command}' failed "
                f"({reply.decode(errors='replace') or 'not supported'})"
            )

    def detach(self) -> None:
        """Let the target run (QEMU resumes it when the last debugger detaches)."""
        self.request(b"D")

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as err:
            raise FlashError(f"gdb server {self.address}: {err}") from None

    def _read_exact(self, count: int) -> bytes:
        while len(self._buffer) < count:
            try:
                data = self._sock.recv(4096)
            except OSError as err:
                raise FlashError(f"gdb server {self.address}: {err}") from None
            if not data:
                raise FlashError(f"gdb server {self.address} closed the connection")
            self._buffer += data
        head, self._buffer = self._buffer[:count], self._buffer[count:]
        return head

    def _read_packet(self, started: bool = False) -> bytes:
        while not started and self._read_exact(1) != b"$":
            pass  # acks between packets
        payload = b""
        while (byte := self._read_exact(1)) != b"#":
            payload += byte
        checksum = int(self._read_exact(2), 16)
        if checksum != sum(payload) & 0xFF:
            self._send(b"-")
            return self._read_packet()
        self._send(b"+")
        return payload


def load_and_run(host: str, port: int, elf: Path) -> int:
    """Write elf's segments into the board, reset it so it boots from them, and let it run; returns bytes written."""
    segments = loadable_segments(elf)
    with GdbRemote(host, port) as gdb:
        gdb.request(b"?")  # the stop reason: also shows the server speaks the protocol
        for segment in segments:
            gdb.write_memory(segment.address, segment.data)
        gdb.monitor("system_reset")  # the core reads its stack pointer and entry from the new vector table
        gdb.detach()
    return sum(len(segment.data) for segment in segments)
