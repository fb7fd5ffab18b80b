"""A fault-injecting proxy between the harness and a board on a TCP serial port (an emulator).

`harness sweep --inject-faults rate=0.05,reset=0.005` puts one between the
harness and every emulated board, to show that a bad link costs time but
never a wrong result. The proxy reads the host's stream frame by frame and,
for each request, draws at most one fault for that exchange: a byte dropped,
duplicated or corrupted in the request or in its reply, the reply held back
longer than the host waits, or a board reset (through QEMU's monitor) that
also loses the request. A delayed reply is sent later, out of order, as a
reply that went a long way round would arrive. After a fault it stays clean for two exchanges, so
every fault costs the host exactly one retry; each is reported as a
"fault_injected" event, next to what the host noticed.
"""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields

from harness.config import ConfigError
from harness.device.protocol import Command, FrameError, decode_body

LINK_FAULTS = (
    "drop_request",
    "duplicate_request",
    "corrupt_request",
    "drop_reply",
    "duplicate_reply",
    "corrupt_reply",
    "delay_reply",
)
CLEAN_EXCHANGES_AFTER_FAULT = 2
_CHUNK = 4096


@dataclass(frozen=True)
class FaultPlan:
    rate: float = 0.05  # chance per exchange of one link fault
    reset: float = 0.0  # chance per exchange of a board reset
    delay: float = 5.0  # seconds a delayed reply is held back; longer than the host waits for one
    seed: int = 0

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """'rate=0.05,reset=0.005,delay=2,seed=1'; keys may be left out."""
        known = [f.name for f in fields(cls)]
        values = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, _, value = item.partition("=")
            if key not in known:
                raise ConfigError(f"--inject-faults: unknown key '{key}'; known: {', '.join(known)}")
            try:
                values[key] = int(value) if key == "seed" else float(value)
            except ValueError:
                raise ConfigError(f"--inject-faults: {key} must be a number, not '{value}'") from None
        return cls(**values)


class FaultInjector:
    """Draws faults for every proxy of a sweep from one seeded generator, so a re-run point meets new ones."""

    def __init__(self, plan: FaultPlan, on_event: Callable[..., None]):
        self.plan = plan
        self.on_event = on_event
        self._random = random.Random(plan.seed)
        self._lock = threading.Lock()

    def draw(self, command: int) -> str | None:
        with self._lock:
            roll = self._random.random()
            if roll < self.plan.reset and command != Command.HELLO:  # a reset before the session is no fault
                return "reset"
            roll -= self.plan.reset
            if roll < self.plan.rate:
                return self._random.choice(LINK_FAULTS)
            return None

    def mutate(self, encoded: bytes, fault: str) -> bytes:
        """One byte of an encoded frame dropped, duplicated or corrupted."""
        with self._lock:
            at = self._random.randrange(len(encoded))
            flip = self._random.randrange(1, 256)
        if fault.startswith("drop"):
            return encoded[:at] + encoded[at + 1 :]
        if fault.startswith("duplicate"):
            return encoded[: at + 1] + encoded[at:]
        return encoded[:at] + bytes([encoded[at] ^ flip]) + encoded[at + 1 :]

    def proxy(self, board_address: tuple[str, int], reset: Callable[[], None]) -> FaultProxy:
        return FaultProxy(self, board_address, reset)


class FaultProxy:
    """Listens on a free loopback port (``url``), relays one connection to the board with faults."""

    def __init__(self, injector: FaultInjector, board_address: tuple[str, int], reset: Callable[[], None]):
        self._injector = injector
        self._board_address = board_address
        self._reset = reset
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self._listener.getsockname()[1]}"
        self._reply_fault: str | None = None
        self._clean_left = 0
        self._sockets: list[socket.socket] = [self._listener]
        self._to_host: socket.socket | None = None
        self._to_host_lock = threading.Lock()  # the relay and late replies both write to the host
        threading.Thread(target=self._serve, daemon=True, name="fault-proxy").start()

    def close(self) -> None:
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _serve(self) -> None:
        try:
            host, _ = self._listener.accept()
            board = socket.create_connection(self._board_address)
        except OSError:
            return  # closed before the harness connected
        self._sockets += [host, board]
        self._to_host = host
        for sock in (host, board):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=self._relay, args=(board, host, self._on_reply), daemon=True).start()
        self._relay(host, board, self._on_request)

    def _relay(self, source: socket.socket, sink: socket.socket, on_frame: Callable[[bytes], bytes]) -> None:
        """Forward source to sink frame by frame (delimited by zero bytes), through on_frame."""
        pending = b""
        try:
            while data := source.recv(_CHUNK):
                *frames, pending = (pending + data).split(b"\x00")
                out = b"".join(b"\x00" + on_frame(frame) + b"\x00" for frame in frames if frame)
                if out:
                    self._send(sink, out)
        except OSError:
            pass  # either side closed: the session is over
        finally:
            self.close()

    def _send(self, sink: socket.socket, data: bytes) -> None:
        with self._to_host_lock:
            sink.sendall(data)

    def _send_late(self, encoded: bytes) -> None:
        try:
            self._send(self._to_host, b"\x00" + encoded + b"\x00")
        except OSError:
            pass  # the session ended first

    def _on_request(self, encoded: bytes) -> bytes:
        try:
            command = decode_body(encoded).kind
        except FrameError:
            return encoded  # not a frame the board would take anyway
        fault = None
        if self._clean_left > 0:
            self._clean_left -= 1
        else:
            fault = self._injector.draw(command)
        if fault is None:
            return encoded
        self._clean_left = CLEAN_EXCHANGES_AFTER_FAULT
        self._injector.on_event("fault_injected", fault=fault)
        if fault == "reset":
            self._reset()
            return b""  # lost with the reset
        if fault.endswith("_request"):
            return self._injector.mutate(encoded, fault)
        self._reply_fault = fault
        return encoded

    def _on_reply(self, encoded: bytes) -> bytes:
        fault, self._reply_fault = self._reply_fault, None
        if fault == "delay_reply":
            late = threading.Timer(self._injector.plan.delay, self._send_late, args=(encoded,))
            late.daemon = True
            late.start()
            return b""
        return encoded if fault is None else self._injector.mutate(encoded, fault)
