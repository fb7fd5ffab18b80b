"""The host side of the benchmark protocol (docs/design.md, version 2).

Every request is retried until its reply arrives intact, at most
MAX_ATTEMPTS times; the board may therefore run a command twice, which is
harmless because every command is idempotent (exit aside). Replies are
matched by sequence number and session: a stale reply (to an earlier
attempt) is skipped, and a reply in session 0 means the board reset since
the handshake, which raises BoardReset, so a half-measured point is never
recorded. Everything unusual is reported through ``on_event`` (the run log
counts it) and every frame is written to the link's log.
"""

from __future__ import annotations

import secrets
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.device.link import DeviceError, SerialLink, SerialTimeout
from harness.device.protocol import (
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    Command,
    Frame,
    FrameDecoder,
    FrameError,
    Status,
    encode_frame,
)

MAX_ATTEMPTS = 5
QUICK_REPLY_S = 0.5  # how long a command that runs no inference may take, transfer included
SLACK = 4.0  # margin on the learned inference time before a reply counts as lost
_OFFSET = struct.Struct("<I")
TIME = struct.Struct("<Q")  # a timed run or layer, as the firmware sends it (reply_u64)

OnEvent = Callable[..., None]


class BoardReset(DeviceError):
    """The board restarted since the handshake: what it was measuring is lost."""


class WrongFirmware(DeviceError):
    """The board runs other firmware than the harness built for this point."""


@dataclass(frozen=True)
class Hello:
    protocol: int
    model_id: str
    build_id: str
    board: str
    timer_unit: str  # "instructions" | "cycles" | "ns"
    timer_source: str
    clock_hz: int
    input_bytes: int
    output_bytes: int
    layers: int
    arena_bytes: int
    max_payload: int
    rx_errors: int  # frames the board dropped since boot


class BoardClient:
    def __init__(self, link: SerialLink, reply_timeout: float, on_event: OnEvent | None = None):
        """reply_timeout: the longest one inference (or the board's boot) may take while unmeasured."""
        self.link = link
        self.reply_timeout = reply_timeout
        self.on_event = on_event or (lambda kind, **fields: None)
        self.max_payload = MAX_PAYLOAD
        self._decoder = FrameDecoder()
        self._session = 0
        self._seq = 0
        self._invoke_s: float | None = None  # shortest wall time per inference seen so far
        self.info: Hello | None = None  # what the board said in the handshake

    # --- commands ---------------------------------------------------------------------------------

    def hello(self) -> Hello:
        """Start a new session; the board reports itself and its model."""
        # Not the `random` module: training seeds it, and every run would reuse the same sessions.
        self._session = secrets.randbelow(2**32 - 1) + 1
        text = self._request(Command.HELLO).decode("ascii", errors="replace")
        fields = dict(item.split("=", 1) for item in text.split() if "=" in item)
        try:
            hello = Hello(
                protocol=int(fields["proto"]),
                model_id=fields["model"],
                build_id=fields["build"],
                board=fields["board"],
                timer_unit=fields["unit"],
                timer_source=fields["timer"],
                clock_hz=int(fields["clock"]),
                input_bytes=int(fields["in"]),
                output_bytes=int(fields["out"]),
                layers=int(fields["layers"]),
                arena_bytes=int(fields["arena"]),
                max_payload=int(fields["max_payload"]),
                rx_errors=int(fields["rx_errors"]),
            )
        except (KeyError, ValueError) as err:
            raise DeviceError(f"board {self.link.url} sent a malformed hello ({err}): {text!r}") from None
        self.max_payload = min(MAX_PAYLOAD, hello.max_payload)
        self.info = hello
        return hello

    def infer(self, sample: bytes) -> bytes:
        """Stream one input (as bytes, in as many frames as it takes), run the model once, return its output."""
        chunk = self.max_payload - _OFFSET.size
        offsets = range(0, max(len(sample), 1), chunk)
        for offset in offsets[:-1]:
            self._request(Command.LOAD, _OFFSET.pack(offset) + sample[offset : offset + chunk])
        last = offsets[-1]
        output = self._request(Command.INFER, _OFFSET.pack(last) + sample[last:], work=1)
        while len(output) < self.info.output_bytes:
            output += self._request(Command.OUTPUT, _OFFSET.pack(len(output)))
        return output

    def bench(self, warmup: int, runs: int) -> list[int]:
        """Time `runs` inferences of the latest input, after `warmup` untimed ones; in the board's timer unit."""
        per_reply = self.max_payload // TIME.size
        times: list[int] = []
        while len(times) < runs:
            batch = min(per_reply, runs - len(times))
            reply = self._request(Command.BENCH, struct.pack("<II", warmup, batch), work=warmup + batch)
            times += _times(reply)
            warmup = 0
        return times

    def layers(self) -> list[int]:
        """Time each layer of one inference."""
        times = _times(self._request(Command.LAYERS, _OFFSET.pack(0), work=1))
        while len(times) < self.info.layers:
            times += _times(self._request(Command.LAYERS, _OFFSET.pack(len(times))))
        return times

    def stack(self) -> tuple[int, int]:
        """Stack high-water mark since boot and the stack's size, in bytes; (-1, -1) where unknown."""
        used, total = struct.unpack("<ii", self._request(Command.STACK))
        return used, total

    def exit(self) -> None:
        self._request(Command.EXIT)

    # --- one request, retried ---------------------------------------------------------------------

    def _request(self, command: Command, payload: bytes = b"", work: int = 0) -> bytes:
        if self.info is None and command != Command.HELLO:
            raise RuntimeError("BoardClient: call hello() first, it opens the session")
        self._seq = (self._seq + 1) & 0xFFFF
        frame = Frame(command, self._seq, self._session, payload)
        name = command.name.lower()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self.link.log(f">> {name} #{self._seq} {_describe(payload)}")
            started = time.monotonic()
            self.link.write(encode_frame(frame))
            reply = self._await_reply(command, started + self._attempt_timeout(command, work))
            if reply is not None:
                break
            self.on_event("retry", command=name, attempt=attempt)
        else:
            noise = self._decoder.pending
            raise SerialTimeout(
                f"serial timeout: no valid reply from {self.link.url} to {name} after {MAX_ATTEMPTS} attempts; "
                f"is the benchmark firmware (protocol {PROTOCOL_VERSION}) running there"
                f"{f', at the right baud rate? It sent {noise[-40:]!r}' if noise else '?'} (log: {self.link.log_path})"
            )
        if work:
            per_inference = (time.monotonic() - started) / work
            self._invoke_s = min(self._invoke_s or per_inference, per_inference)
        if reply.kind != Status.OK:
            raise DeviceError(
                f"board {self.link.url} refused {name}: {reply.payload.decode(errors='replace')} "
                f"(log: {self.link.log_path})"
            )
        return reply.payload

    def _attempt_timeout(self, command: Command, work: int) -> float:
        if command == Command.HELLO:
            return self.reply_timeout  # the board may still be booting
        if not work:
            return QUICK_REPLY_S
        if self._invoke_s is None:
            return self.reply_timeout * work
        return QUICK_REPLY_S + work * self._invoke_s * SLACK

    def _await_reply(self, command: Command, deadline: float) -> Frame | None:
        """The reply to the current request, or None if none arrives intact before the deadline."""
        while (left := deadline - time.monotonic()) > 0:
            for event in self._decoder.feed(self.link.read(left)):
                if isinstance(event, FrameError):
                    self.link.log(f"<< bad frame: {event.reason}: {event.data[:64].hex()}")
                    self.on_event("bad_frame", reason=event.reason)
                    continue
                self.link.log(
                    f"<< #{event.seq} session {event.session:08x} status {event.kind} {_describe(event.payload)}"
                )
                if event.version != PROTOCOL_VERSION:
                    raise DeviceError(
                        f"board {self.link.url} speaks protocol {event.version}, the harness "
                        f"{PROTOCOL_VERSION}: re-flash it (log: {self.link.log_path})"
                    )
                if event.session == 0 and command != Command.HELLO:
                    self.on_event("board_reset")
                    raise BoardReset(f"board {self.link.url} reset during the session (log: {self.link.log_path})")
                if event.seq == self._seq and event.session == self._session:
                    return event
                self.on_event("stale_reply", seq=event.seq)
        return None


def _times(payload: bytes) -> list[int]:
    return [t for (t,) in TIME.iter_unpack(payload)]


def _describe(payload: bytes) -> str:
    """A payload for the log: text as text, anything else as hex."""
    if payload and all(32 <= b < 127 for b in payload):
        return payload.decode("ascii")
    return f"{len(payload)} B {payload.hex()}"
