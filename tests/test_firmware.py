"""The firmware end to end: build the fake model with PlatformIO, start a board through the upload target,
and speak protocol version 2 to it frame by frame (docs/design.md).

Needs gcc, arm-none-eabi-gcc and qemu-system-arm, and the `pio` next to the
Python running the tests.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
import serial

from harness.device.protocol import Command, Frame, FrameDecoder, FrameError, Status, encode_frame
from harness.toolchain import ensure_platformio_offline, pio_command, pio_env

PROJECT_DIR = Path(__file__).resolve().parent.parent
FAKE_MODEL = PROJECT_DIR / "tests" / "data" / "fake_model"
FAKE_INPUT_BYTES = 16
FAKE_OUTPUT_BYTES = 4
FAKE_LAYERS = 3
MAX_PAYLOAD = 512
# mps2 boards under `qemu -icount shift=0`: one SysTick tick = 40 instructions.
INSTRUCTIONS_PER_TICK = 40
MPS2_STACK_BYTES = 8192  # firmware/platform/ldscripts/mps2.ld
SESSION = 0x5E55_1011

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("gcc", "arm-none-eabi-gcc", "qemu-system-arm")),
        reason="needs gcc, arm-none-eabi-gcc and qemu-system-arm",
    ),
]


def pio(
    args: list[str], build_dir: Path, model_dir: Path | None = FAKE_MODEL, build_id: str | None = None
) -> subprocess.CompletedProcess:
    env = {**pio_env(), "PLATFORMIO_BUILD_DIR": str(build_dir)}
    env.pop("HARNESS_MODEL_DIR", None)
    env.pop("HARNESS_BUILD_ID", None)
    if model_dir is not None:
        env["HARNESS_MODEL_DIR"] = str(model_dir)
    if build_id is not None:
        env["HARNESS_BUILD_ID"] = build_id
    return subprocess.run(
        pio_command() + args + ["-d", str(PROJECT_DIR)], env=env, capture_output=True, text=True, timeout=90
    )


def check(result: subprocess.CompletedProcess) -> str:
    """The output of a PlatformIO run that must succeed."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory) -> Path:
    ensure_platformio_offline(PROJECT_DIR)
    return tmp_path_factory.mktemp("pio-build")


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(pid: int) -> bool:
    """False once pid is gone or a zombie: boards are not our children, so we cannot reap them."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not alive(pid)


class Board:
    """A board started through `pio run -t upload` (which builds first), and its serial port, spoken to frame by
    frame: this tests the firmware's side of the protocol, not the harness's client."""

    def __init__(self, env: str, build_dir: Path, port_dir: Path, **pio_options):
        self.env = env
        self.url = str(port_dir / "pty") if env == "host" else f"socket://127.0.0.1:{free_tcp_port()}"
        check(pio(["run", "-e", env, "-t", "upload", "--upload-port", self.url], build_dir, **pio_options))
        self.pid = int(pid_file(build_dir, env).read_text())
        self.port = serial.serial_for_url(self.url, timeout=0.05)
        self.decoder = FrameDecoder()
        self.seq = 0

    @property
    def in_qemu(self) -> bool:
        return self.env != "host"

    def send(self, command: int, payload: bytes = b"", session: int = SESSION, version: int = 2) -> int:
        self.seq += 1
        self.port.write(encode_frame(Frame(command, self.seq, session, payload, version)))
        return self.seq

    def receive(self, timeout: float = 10.0) -> list[Frame | FrameError]:
        """What arrives until the line is quiet (after a first event), or the timeout.

        Reads what is waiting rather than a fixed size: pyserial's socket:// drops a partial read at end of stream.
        """
        deadline, events = time.monotonic() + timeout, []
        while time.monotonic() < deadline:
            try:
                data = self.port.read(max(1, self.port.in_waiting))
            except serial.SerialException:  # the board ended (exit), closing its port
                return events
            events += self.decoder.feed(data)
            if events and not data:
                return events
        return events

    def ask(self, command: int, payload: bytes = b"", **frame_options) -> Frame:
        """Send one request; return its one reply, which must be intact and answer it."""
        seq = self.send(command, payload, **frame_options)
        events = self.receive()
        assert len(events) == 1 and isinstance(events[0], Frame), events
        assert events[0].seq == seq and events[0].version == 2, events[0]
        return events[0]

    def ok(self, command: int, payload: bytes = b"") -> bytes:
        reply = self.ask(command, payload)
        assert reply.kind == Status.OK, reply.payload
        assert reply.session == SESSION
        return reply.payload

    def error(self, command: int, payload: bytes = b"", **frame_options) -> str:
        reply = self.ask(command, payload, **frame_options)
        assert reply.kind == Status.ERROR, reply
        return reply.payload.decode()

    def hello(self) -> dict[str, str]:
        return dict(word.split("=", 1) for word in self.ok(Command.HELLO).decode().split())

    def infer(self, data: bytes) -> bytes:
        return self.ok(Command.INFER, struct.pack("<I", 0) + data)


def pid_file(build_dir: Path, env: str) -> Path:
    return build_dir / env / "board.pid"


def stop_board(pid_path: Path) -> None:
    """Stop the process an upload left running, whatever state the test left it in."""
    if not pid_path.exists():
        return
    pid = int(pid_path.read_text())
    pid_path.unlink()
    if alive(pid):
        send_signal(pid, signal.SIGTERM)
        if not gone(pid):
            send_signal(pid, signal.SIGKILL)
    assert gone(pid), f"board process {pid} was left running"


def send_signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:  # it ended meanwhile
        pass


@pytest.fixture
def board(request, build_dir, tmp_path):
    # Registered before the upload, so a failure halfway still stops the board.
    request.addfinalizer(lambda: stop_board(pid_file(build_dir, request.param)))
    started = Board(request.param, build_dir, tmp_path)
    started.hello()  # every test starts in a session
    yield started
    started.port.close()


both_kinds = pytest.mark.parametrize("board", ["host", "mps2_an386"], indirect=True)


def expected_output(data: bytes, outputs: int = FAKE_OUTPUT_BYTES) -> bytes:
    """The fake model: output[i] = (int8)(sum of the int8 inputs + i)."""
    total = sum(b - 256 if b > 127 else b for b in data)
    return bytes((total + i) & 0xFF for i in range(outputs))


def times(payload: bytes) -> list[int]:
    return [t for (t,) in struct.iter_unpack("<Q", payload)]


@both_kinds
def test_hello_describes_board_model_and_build(board):
    assert board.hello() == {
        "proto": "2",
        "model": "fake-model-1",
        "build": "unset",
        "board": board.env,
        "unit": "instructions" if board.in_qemu else "ns",
        "timer": "qemu-icount-systick" if board.in_qemu else "host-clock-monotonic",
        "clock": "25000000" if board.in_qemu else "0",
        "in": str(FAKE_INPUT_BYTES),
        "out": str(FAKE_OUTPUT_BYTES),
        "layers": str(FAKE_LAYERS),
        "arena": "24",
        "max_payload": str(MAX_PAYLOAD),
        "rx_errors": "0",
    }


@both_kinds
def test_infer_takes_binary_input_and_returns_the_output(board):
    # zero bytes, delimiters and 0xFF pass as data: the frame's encoding hides them
    for data in (
        bytes(range(FAKE_INPUT_BYTES)),
        bytes([0xFF] * FAKE_INPUT_BYTES),
        bytes(FAKE_INPUT_BYTES),
        b"\n\r\x00" * 5 + b"\x01",
    ):
        assert board.infer(data) == expected_output(data)


@both_kinds
def test_input_loads_in_pieces(board):
    data = bytes(range(100, 100 + FAKE_INPUT_BYTES))
    board.ok(Command.LOAD, struct.pack("<I", 0) + data[:10])
    assert board.ok(Command.INFER, struct.pack("<I", 10) + data[10:]) == expected_output(data)
    assert board.ok(Command.OUTPUT, struct.pack("<I", 1)) == expected_output(data)[1:]


@both_kinds
def test_bench_times_every_run(board):
    result = times(board.ok(Command.BENCH, struct.pack("<II", 2, 10)))
    assert len(result) == 10 and min(result) > 0
    if board.in_qemu:
        # Deterministic under icount, but read from a timer that ticks every
        # 40 instructions: the same work reads the same, or one tick apart.
        assert all(t % INSTRUCTIONS_PER_TICK == 0 for t in result)
        assert max(result) - min(result) <= INSTRUCTIONS_PER_TICK
    assert len(times(board.ok(Command.BENCH, struct.pack("<II", 0, MAX_PAYLOAD // 8)))) == MAX_PAYLOAD // 8


@both_kinds
def test_layers_times_each_layer(board):
    result = times(board.ok(Command.LAYERS, struct.pack("<I", 0)))
    assert len(result) == FAKE_LAYERS
    assert result[1] == max(result)  # the fake model's layer 1 spins 10000 times
    if board.in_qemu:
        assert result[1] > 10000 * 4  # a loop iteration takes more than 4 instructions
    assert times(board.ok(Command.LAYERS, struct.pack("<I", 1))) == result[1:]  # from layer 1, same run


@both_kinds
def test_stack_reports_high_water_mark(board):
    used, total = struct.unpack("<ii", board.ok(Command.STACK))
    if not board.in_qemu:
        assert (used, total) == (-1, -1)
        return
    assert total == MPS2_STACK_BYTES and 0 < used < MPS2_STACK_BYTES
    board.ok(Command.BENCH, struct.pack("<II", 0, 1))
    assert struct.unpack("<ii", board.ok(Command.STACK))[0] >= used


@both_kinds
def test_bad_requests_get_errors_and_the_board_keeps_going(board):
    u32 = lambda *values: struct.pack(f"<{len(values)}I", *values)  # noqa: E731
    assert board.error(99) == "unknown command"
    assert "version" in board.error(Command.HELLO, version=3)
    for command, payload in (
        (Command.HELLO, b"x"),
        (Command.LOAD, b"\x00"),
        (Command.LOAD, u32(FAKE_INPUT_BYTES - 1) + b"ab"),
        (Command.INFER, u32(2**32 - 1)),
        (Command.OUTPUT, u32(FAKE_OUTPUT_BYTES + 1)),
        (Command.OUTPUT, b""),
        (Command.BENCH, u32(1)),
        (Command.BENCH, u32(1, 0)),
        (Command.BENCH, u32(1, 65)),
        (Command.LAYERS, u32(FAKE_LAYERS + 1)),
        (Command.STACK, b"x"),
    ):
        assert board.error(command, payload), (command, payload)
    assert board.hello()["proto"] == "2"


@both_kinds
def test_garbage_and_broken_frames_are_dropped_and_counted(board):
    good = encode_frame(Frame(Command.STACK, 77, SESSION))
    broken = [
        good[:-3] + b"\x00",  # cut short
        good[:5] + bytes([good[5] ^ 0x40 or 0x41]) + good[6:],  # a bit flipped (not to a delimiter)
        good[:4] + good[5:],  # a byte lost
        b"\x00" + b"\x07" * 3000 + b"\x00",  # longer than any frame
        b"noise without any delimiter",
    ]
    for data in broken:
        board.port.write(data)
    assert board.receive(timeout=0.5) == []  # no reply to any of it
    assert board.ask(Command.STACK).kind == Status.OK  # and the next frame is answered
    assert int(board.hello()["rx_errors"]) == len(broken)  # the noise ends at the next frame's leading delimiter


@both_kinds
def test_replies_carry_the_session_of_the_latest_hello(board):
    assert board.ask(Command.STACK).session == SESSION
    board.ask(Command.HELLO, session=1234)
    assert board.ask(Command.STACK).session == 1234


@both_kinds
def test_exit_stops_the_board(board):
    assert board.ask(Command.EXIT).kind == Status.OK
    assert gone(board.pid), "board still running after exit"


def test_large_inputs_and_outputs_travel_in_several_frames(build_dir, tmp_path):
    model = tmp_path / "wide_model"
    shutil.copytree(FAKE_MODEL, model)
    header = model / "model.h"
    header.write_text(
        header.read_text()
        .replace("INPUT_BYTES   16", "INPUT_BYTES   1500")
        .replace("OUTPUT_BYTES  4", "OUTPUT_BYTES  700")
    )
    try:
        wide = Board("host", tmp_path / "build", tmp_path, model_dir=model)
        wide.hello()
        data = bytes(range(256)) * 5 + bytes(220)
        for offset in range(0, 1500 - 508, 508):
            wide.ok(Command.LOAD, struct.pack("<I", offset) + data[offset : offset + 508])
        output = wide.ok(Command.INFER, struct.pack("<I", 1016) + data[1016:])
        assert len(output) == MAX_PAYLOAD
        output += wide.ok(Command.OUTPUT, struct.pack("<I", len(output)))
        assert output == expected_output(data, 700)
    finally:
        stop_board(pid_file(tmp_path / "build", "host"))


@pytest.mark.parametrize("board", ["mps2_an385", "mps2_an500"], indirect=True)
def test_other_mps2_boards_boot(board):
    assert board.hello()["board"] == board.env
    assert board.infer(bytes(FAKE_INPUT_BYTES)) == expected_output(bytes(FAKE_INPUT_BYTES))
    assert board.ask(Command.EXIT).kind == Status.OK
    assert gone(board.pid)


def test_upload_replaces_the_running_board(build_dir, tmp_path):
    try:
        first = Board("mps2_an386", build_dir, tmp_path)
        second = Board("mps2_an386", build_dir, tmp_path)
        assert gone(first.pid)
        assert second.hello()["proto"] == "2"
    finally:
        stop_board(pid_file(build_dir, "mps2_an386"))


def test_the_build_id_reaches_the_handshake(tmp_path):
    try:
        board = Board("host", tmp_path / "build", tmp_path, build_id="0123abcd")
        assert board.hello()["build"] == "0123abcd"
    finally:
        stop_board(pid_file(tmp_path / "build", "host"))


def test_build_reports_memory_use_against_the_board_budget(build_dir):
    output = check(pio(["run", "-e", "mps2_an385"], build_dir))
    assert "from 65536 bytes" in output and "from 262144 bytes" in output  # RAM, Flash


def test_model_too_big_for_the_board_fails_to_link(tmp_path):
    model = tmp_path / "big_model"
    shutil.copytree(FAKE_MODEL, model)
    header = model / "model.h"
    header.write_text(
        header.read_text().replace("(MODEL_INPUT_BYTES + MODEL_OUTPUT_BYTES + 4)", "(80 * 1024)")
    )  # > 64 KiB of RAM
    result = pio(["run", "-e", "mps2_an385"], tmp_path / "build", model_dir=model)
    assert result.returncode != 0
    assert "region `RAM' overflowed" in result.stdout + result.stderr


def test_build_without_model_dir_names_the_variable(build_dir):
    result = pio(["run", "-e", "host"], build_dir, model_dir=None)
    assert result.returncode != 0
    assert "HARNESS_MODEL_DIR" in result.stderr
