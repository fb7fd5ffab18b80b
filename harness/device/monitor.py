"""Show what a board sends: protocol frames decoded, anything else (boot messages, prints) as text."""

from __future__ import annotations

import time
from collections.abc import Callable

from harness.device.link import SerialLink
from harness.device.protocol import PROTOCOL_VERSION, Command, Frame, FrameError, decode_body, encode_frame

_HELLO = Frame(Command.HELLO, seq=0, session=0)
_READ_S = 0.1


def monitor(link: SerialLink, seconds: float = 0, say_hello: bool = False, say: Callable[[str], None] = print) -> None:
    """Print what arrives, for `seconds` (0: until Ctrl-C). Text is printed as soon as a line of it is complete."""
    if say_hello:
        link.write(encode_frame(_HELLO))
    deadline = time.monotonic() + seconds if seconds else float("inf")
    pending = b""
    while time.monotonic() < deadline:
        data = link.read(min(_READ_S, max(0.0, deadline - time.monotonic())))
        if data:
            link.log(f"<< {data.hex()}")
        *pieces, pending = (pending + data).split(b"\x00")
        for piece in filter(None, pieces):
            say(describe_piece(piece))
        if b"\n" in pending and not _framed(pending):
            lines, _, pending = pending.rpartition(b"\n")
            say(_text(lines))
    if pending:
        say(describe_piece(pending))


def describe_piece(piece: bytes) -> str:
    """One delimited piece of the stream: a frame, or whatever else it was, as text."""
    try:
        frame = decode_body(piece)
    except FrameError:
        return _text(piece)
    version = "" if frame.version == PROTOCOL_VERSION else f" (protocol {frame.version})"
    payload = frame.payload
    shown = payload.decode() if payload and all(32 <= b < 127 for b in payload) else f"{len(payload)} B {payload.hex()}"
    return f"[frame #{frame.seq} kind {frame.kind} session {frame.session:08x}{version}] {shown}"


def _framed(data: bytes) -> bool:
    """Whether bytes since the last delimiter may be the start of a frame (COBS bytes are mostly not text)."""
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in data)
    return printable < len(data) * 0.9


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="backslashreplace").rstrip("\r\n")
