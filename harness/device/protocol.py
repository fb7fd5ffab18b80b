"""Frames of protocol version 2 (docs/design.md): COBS, a fixed header, a CRC-32.

On the wire a frame is ``0x00 COBS(body) 0x00``, with

    body = version u8 | kind u8 | seq u16 | session u32 | payload | crc32 u32

(little-endian; ``kind`` is the command in a request and the status in a
reply). COBS leaves no zero byte inside a frame, so a reader that starts in
the middle of one, or in garbage, is back in step at the next zero; the CRC
rejects whatever a noisy link changed. Pure functions, no I/O: the decoder is
fuzzed on its own (tests/test_protocol.py).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

PROTOCOL_VERSION = 2
MAX_PAYLOAD = 512  # the firmware's FRAME_MAX_PAYLOAD; the board reports its own in hello
DELIMITER = b"\x00"
_HEADER = struct.Struct("<BBHI")
_CRC = struct.Struct("<I")
_FULL_BLOCK = 0xFF  # a COBS block of 254 data bytes and no implied zero
MIN_BODY = _HEADER.size + _CRC.size


def max_encoded(payload: int = MAX_PAYLOAD) -> int:
    body = _HEADER.size + payload + _CRC.size
    return body + body // 254 + 1


class Command(IntEnum):
    HELLO = 1
    LOAD = 2
    INFER = 3
    OUTPUT = 4
    BENCH = 5
    LAYERS = 6
    STACK = 7
    EXIT = 8


class Status(IntEnum):
    OK = 0
    ERROR = 1


class FrameError(ValueError):
    """Bytes between two delimiters that are no valid frame; ``reason`` says why."""

    def __init__(self, reason: str, data: bytes):
        super().__init__(f"{reason} ({len(data)} bytes)")
        self.reason = reason
        self.data = data


@dataclass(frozen=True)
class Frame:
    kind: int
    seq: int
    session: int
    payload: bytes = b""
    version: int = PROTOCOL_VERSION


def cobs_encode(data: bytes) -> bytes:
    """
    >>> cobs_encode(bytes([0x11, 0x00, 0x22])).hex()
    '02110222'
    """
    out = bytearray()
    i = 0
    while True:
        run = 0
        while i + run < len(data) and data[i + run] != 0 and run < _FULL_BLOCK - 1:
            run += 1
        out.append(run + 1)
        out += data[i : i + run]
        i += run
        if run + 1 != _FULL_BLOCK:
            if i >= len(data):
                return bytes(out)
            i += 1  # the zero this block stands for


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        code = data[i]
        block = data[i + 1 : i + code]
        if code == 0 or len(block) != code - 1 or 0 in block:
            raise FrameError("bad COBS encoding", data)
        out += block
        i += code
        if code != _FULL_BLOCK and i < len(data):
            out.append(0)
    return bytes(out)


def encode_frame(frame: Frame) -> bytes:
    """The frame as sent: delimiter, COBS body, delimiter."""
    body = _HEADER.pack(frame.version, frame.kind, frame.seq, frame.session) + frame.payload
    return DELIMITER + cobs_encode(body + _CRC.pack(zlib.crc32(body))) + DELIMITER


def decode_body(encoded: bytes) -> Frame:
    """One frame from the bytes between two delimiters; FrameError if they are none."""
    body = cobs_decode(encoded)
    if len(body) < MIN_BODY:
        raise FrameError("too short for a frame", encoded)
    (crc,) = _CRC.unpack_from(body, len(body) - _CRC.size)
    if zlib.crc32(body[: -_CRC.size]) != crc:
        raise FrameError("CRC mismatch", encoded)
    version, kind, seq, session = _HEADER.unpack_from(body)
    return Frame(kind, seq, session, body[_HEADER.size : -_CRC.size], version)


class FrameDecoder:
    """Turns a byte stream into frames and errors, in order; keeps any partial frame for the next feed.

    Never holds more than one maximal encoded frame: a longer run without a
    delimiter is reported as an error and skipped up to the next delimiter.
    """

    def __init__(self, max_payload: int = MAX_PAYLOAD):
        self._limit = max_encoded(max_payload)
        self._pending = bytearray()
        self._overlong = False

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        events: list[Frame | FrameError] = []
        *complete, rest = bytes(data).split(DELIMITER)
        for piece in complete:
            events += self._finish(piece)
        self._take(rest)
        return events

    def _finish(self, piece: bytes) -> list[Frame | FrameError]:
        self._take(piece)
        encoded, overlong = bytes(self._pending), self._overlong
        self._pending.clear()
        self._overlong = False
        if overlong:
            return [FrameError("overlong frame", encoded)]
        if not encoded:
            return []  # two delimiters in a row: every frame starts with one
        try:
            return [decode_body(encoded)]
        except FrameError as err:
            return [err]

    @property
    def pending(self) -> bytes:
        """Bytes received since the last delimiter (for error messages: a wrong baud rate shows here)."""
        return bytes(self._pending)

    def _take(self, piece: bytes) -> None:
        room = self._limit - len(self._pending)
        if len(piece) > room:
            self._overlong = True
            piece = piece[:room]  # keep a sample for the error message
        self._pending += piece
