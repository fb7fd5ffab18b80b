"""The host's frame codec (harness/device/protocol.py), fuzzed: it never crashes or hangs, rejects every
corrupted frame, and finds its way back to valid frames after any garbage."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.device.protocol import (
    MAX_PAYLOAD,
    Frame,
    FrameDecoder,
    FrameError,
    cobs_decode,
    cobs_encode,
    decode_body,
    encode_frame,
    max_encoded,
)

frames = st.builds(
    Frame,
    kind=st.integers(0, 255),
    seq=st.integers(0, 0xFFFF),
    session=st.integers(0, 2**32 - 1),
    payload=st.binary(max_size=MAX_PAYLOAD),
    version=st.integers(0, 255),
)
chunk_sizes = st.lists(st.integers(1, 600), min_size=1, max_size=20)


def decode_stream(data: bytes, sizes: list[int] | None = None) -> list:
    """Feed data to a fresh decoder, in pieces of the given sizes (cycled), and collect what it reports."""
    decoder, events, at, sizes = FrameDecoder(), [], 0, sizes or [len(data) or 1]
    while at < len(data):
        size = sizes[len(events) % len(sizes)]
        events += decoder.feed(data[at : at + size])
        at += size
    return events


@given(st.binary(max_size=2000))
def test_cobs_round_trip_leaves_no_zero(data):
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert cobs_decode(encoded) == data
    assert len(encoded) <= len(data) + len(data) // 254 + 1


@given(frames, chunk_sizes)
def test_every_frame_comes_back_whole_however_the_stream_is_cut(frame, sizes):
    assert decode_stream(encode_frame(frame), sizes) == [frame]


@given(st.binary(max_size=3000), chunk_sizes)
@settings(max_examples=300)
def test_random_bytes_give_only_frames_or_frame_errors(data, sizes):
    for event in decode_stream(data, sizes):
        assert isinstance(event, (Frame, FrameError))


@given(frames, st.data())
@settings(max_examples=500)
def test_a_corrupted_frame_is_rejected(frame, data):
    encoded = encode_frame(frame)[1:-1]  # without its delimiters
    mutated = data.draw(_mutations(encoded))
    if mutated == encoded:
        return
    for piece in mutated.split(b"\x00"):
        if piece and piece != encoded:  # a delimiter inserted before or after the frame leaves it whole
            with pytest.raises(FrameError):
                decode_body(piece)


def _mutations(encoded: bytes):
    at = st.integers(0, len(encoded) - 1)
    return st.one_of(
        st.builds(lambda i, flip: encoded[:i] + bytes([encoded[i] ^ flip]) + encoded[i + 1 :], at, st.integers(1, 255)),
        st.builds(lambda i: encoded[:i] + encoded[i + 1 :], at),
        st.builds(lambda i: encoded[: i + 1] + encoded[i:], at),
        st.builds(lambda i, b: encoded[:i] + bytes([b]) + encoded[i:], at, st.integers(0, 255)),
        st.builds(lambda i: encoded[:i], at),
    )


@given(st.binary(max_size=2000), frames)
def test_the_decoder_resynchronizes_after_garbage(garbage, frame):
    events = decode_stream(garbage + encode_frame(frame))
    assert events[-1] == frame
    assert all(isinstance(event, FrameError) for event in events[:-1])


@given(st.binary(min_size=1, max_size=20000).filter(lambda d: 0 not in d))
def test_a_stream_without_delimiters_is_never_held_beyond_one_frame(data):
    decoder = FrameDecoder()
    assert decoder.feed(data) == []
    assert len(decoder.pending) <= max_encoded()
    events = decoder.feed(b"\x00")
    assert len(events) == 1 and isinstance(events[0], FrameError)
    assert decoder.pending == b""


def test_known_encodings():
    assert cobs_encode(b"") == b"\x01"
    assert cobs_encode(b"\x00") == b"\x01\x01"
    assert cobs_encode(bytes(range(1, 255))) == b"\xff" + bytes(range(1, 255)) + b"\x01"
    assert encode_frame(Frame(kind=1, seq=2, session=3)).hex() == "0004020102020301010545dd0dde00"
