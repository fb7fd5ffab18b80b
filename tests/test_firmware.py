"""The firmware end to end: build the fake model with PlatformIO, start a board
through the upload target, and speak protocol version 1 to it (docs/design.md).

Needs gcc, arm-none-eabi-gcc and qemu-system-arm, and the `pio` next to the
Python running the tests.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import serial

from harness.toolchain import ensure_platformio_offline, pio_command, pio_env

PROJECT_DIR = Path(__file__).resolve().parent.parent
FAKE_MODEL = PROJECT_DIR / "tests" / "data" / "fake_model"
FAKE_INPUT_BYTES = 16
FAKE_OUTPUT_BYTES = 4
FAKE_LAYERS = 3
# mps2 boards under `qemu -icount shift=0`: one SysTick tick = 40 instructions.
INSTRUCTIONS_PER_TICK = 40
MPS2_STACK_BYTES = 8192  # firmware/platform/ldscripts/mps2.ld

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("gcc", "arm-none-eabi-gcc", "qemu-system-arm")),
        reason="needs gcc, arm-none-eabi-gcc and qemu-system-arm"),
]


def pio(args: list[str], build_dir: Path, model_dir: Path | None = FAKE_MODEL) -> subprocess.CompletedProcess:
    env = {**pio_env(), "PLATFORMIO_BUILD_DIR": str(build_dir)}
    env.pop("HARNESS_MODEL_DIR", None)
    if model_dir is not None:
        env["HARNESS_MODEL_DIR"] = str(model_dir)
    return subprocess.run(pio_command() + args + ["-d", str(PROJECT_DIR)], env=env,
                          capture_output=True, text=True, timeout=90)


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
    """A board started through `pio run -t upload` (which builds first), and its serial port."""

    def __init__(self, env: str, build_dir: Path, port_dir: Path):
        self.env = env
        self.url = str(port_dir / "pty") if env == "host" else f"socket://127.0.0.1:{free_tcp_port()}"
        check(pio(["run", "-e", env, "-t", "upload", "--upload-port", self.url], build_dir))
        self.pid = int(pid_file(build_dir, env).read_text())
        self.port = serial.serial_for_url(self.url, timeout=10)

    @property
    def in_qemu(self) -> bool:
        return self.env != "host"

    def ask(self, line: str, payload: bytes = b"") -> str:
        self.port.write(line.encode() + b"\n" + payload)
        reply = self.port.readline().decode()
        assert reply.endswith("\n"), f"no complete reply to {line!r}: {reply!r}"
        return reply.rstrip("\n")


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
    yield started
    started.port.close()


both_kinds = pytest.mark.parametrize("board", ["host", "mps2_an386"], indirect=True)


def fields(reply: str) -> dict[str, str]:
    return dict(word.split("=", 1) for word in reply.split() if "=" in word)


def expected_output(data: bytes) -> str:
    """The fake model: output[i] = (int8)(sum of the int8 inputs + i)."""
    total = sum(b - 256 if b > 127 else b for b in data)
    return bytes((total + i) & 0xFF for i in range(FAKE_OUTPUT_BYTES)).hex()


def numbers(reply: str, command: str) -> list[int]:
    words = reply.split()
    assert words[:2] == ["ok", command], reply
    return [int(word) for word in words[2:]]


@both_kinds
def test_hello_describes_board_and_model(board):
    reply = board.ask("hello")
    assert reply.startswith("ok hello ")
    assert fields(reply) == {
        "proto": "1", "model": "fake-model-1", "board": board.env,
        "unit": "instructions" if board.in_qemu else "ns",
        "timer": "qemu-icount-systick" if board.in_qemu else "host-clock-monotonic",
        "clock": "25000000" if board.in_qemu else "0",
        "in": str(FAKE_INPUT_BYTES), "out": str(FAKE_OUTPUT_BYTES), "layers": str(FAKE_LAYERS), "arena": "24",
    }


@both_kinds
def test_infer_returns_model_output(board):
    for data in (bytes(range(FAKE_INPUT_BYTES)), bytes([0xFF] * FAKE_INPUT_BYTES), b"\n\r" * 8):
        assert board.ask("infer", data) == "ok infer " + expected_output(data)


@both_kinds
def test_bench_times_every_run(board):
    times = numbers(board.ask("bench 2 10"), "bench")
    assert len(times) == 10 and min(times) > 0
    if board.in_qemu:
        # Deterministic under icount, but read from a timer that ticks every
        # 40 instructions: the same work reads the same, or one tick apart.
        assert all(t % INSTRUCTIONS_PER_TICK == 0 for t in times)
        assert max(times) - min(times) <= INSTRUCTIONS_PER_TICK


@both_kinds
def test_layers_times_each_layer(board):
    times = numbers(board.ask("layers"), "layers")
    assert len(times) == FAKE_LAYERS
    assert times[1] == max(times)  # the fake model's layer 1 spins 10000 times
    if board.in_qemu:
        assert times[1] > 10000 * 4  # a loop iteration takes more than 4 instructions


@both_kinds
def test_stack_reports_high_water_mark(board):
    reply = board.ask("stack")
    if not board.in_qemu:
        assert reply == "ok stack used=-1 total=-1"
        return
    before = fields(reply)
    assert int(before["total"]) == MPS2_STACK_BYTES and 0 < int(before["used"]) < MPS2_STACK_BYTES
    board.ask("bench 0 1")
    assert int(fields(board.ask("stack"))["used"]) >= int(before["used"])


@both_kinds
def test_bad_lines_get_errors_and_the_board_keeps_going(board):
    for line in ("bogus", "hello there", "bench", "bench 1", "bench 1 0", "bench 1 101",
                 "bench x 2", "bench 1 2 3", "bench 1234567890 1", "x" * 200):
        assert board.ask(line).startswith("err "), line
    # An empty line is the host's resynchronization: no answer, so the next reply is hello's.
    board.port.write(b"\n")
    assert board.ask("hello").startswith("ok hello ")


@both_kinds
def test_exit_stops_the_board(board):
    assert board.ask("exit") == "ok exit"
    assert gone(board.pid), "board still running after exit"


@pytest.mark.parametrize("board", ["mps2_an385", "mps2_an500"], indirect=True)
def test_other_mps2_boards_boot(board):
    assert fields(board.ask("hello"))["board"] == board.env
    assert board.ask("infer", bytes(FAKE_INPUT_BYTES)) == "ok infer " + expected_output(bytes(FAKE_INPUT_BYTES))
    assert board.ask("exit") == "ok exit"
    assert gone(board.pid)


def test_upload_replaces_the_running_board(build_dir, tmp_path):
    try:
        first = Board("mps2_an386", build_dir, tmp_path)
        second = Board("mps2_an386", build_dir, tmp_path)
        assert gone(first.pid)
        assert second.ask("hello").startswith("ok hello ")
    finally:
        stop_board(pid_file(build_dir, "mps2_an386"))


def test_build_reports_memory_use_against_the_board_budget(build_dir):
    output = check(pio(["run", "-e", "mps2_an385"], build_dir))
    assert "from 65536 bytes" in output and "from 262144 bytes" in output  # RAM, Flash


def test_model_too_big_for_the_board_fails_to_link(tmp_path):
    model = tmp_path / "big_model"
    shutil.copytree(FAKE_MODEL, model)
    header = model / "model.h"
    header.write_text(header.read_text().replace(
        "(MODEL_INPUT_BYTES + MODEL_OUTPUT_BYTES + 4)", "(80 * 1024)"))  # > 64 KiB of RAM
    result = pio(["run", "-e", "mps2_an385"], tmp_path / "build", model_dir=model)
    assert result.returncode != 0
    assert "region `RAM' overflowed" in result.stdout + result.stderr


def test_build_without_model_dir_names_the_variable(build_dir):
    result = pio(["run", "-e", "host"], build_dir, model_dir=None)
    assert result.returncode != 0
    assert "HARNESS_MODEL_DIR" in result.stderr
