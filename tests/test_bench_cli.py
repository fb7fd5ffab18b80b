"""The bench commands (ports, measure, rerun, monitor), the boards a sweep measures on, and what the harness says
about a board it cannot use: not attached, its platform missing, other firmware on it, no benchmark at all."""

import dataclasses
import socket
import threading
import time

import pytest
from serial.tools.list_ports_common import ListPortInfo

from bench_sweeps import count, results, sweep, write_config
from conftest import run_harness
from harness.build import build_firmware
from harness.device.boards import get_board
from harness.device.client import BoardClient, WrongFirmware
from harness.device.link import DeviceError, SerialLink
from harness.device.ports import find_ports, matching_boards
from harness.device.session import expect_firmware
from harness.runner import board_units
from test_firmware import FAKE_MODEL, Board, pid_file, stop_board

pytestmark = [pytest.mark.usefixtures("no_leftover_boards"), pytest.mark.timeout(300)]


def usb_port(vid: int, pid: int) -> ListPortInfo:
    port = ListPortInfo("/dev/ttyACM7")
    port.vid, port.pid = vid, pid
    return port


def test_attached_ports_are_matched_to_boards_by_usb_ids():
    assert [b.name for b in matching_boards(usb_port(0x0483, 0x374B))] == ["nucleo_f446re"]
    assert [b.name for b in matching_boards(usb_port(0x2341, 0x805A))] == ["nano33ble"]
    assert [b.name for b in matching_boards(usb_port(0x2E8A, 0x00C0))] == ["pico"]
    assert [b.name for b in matching_boards(usb_port(0x10C4, 0xEA60))] == ["esp32s3"]
    assert matching_boards(usb_port(0x1234, 0x5678)) == []
    assert matching_boards(ListPortInfo("/dev/ttyS0")) == []  # no USB IDs at all


def test_ports_lists_what_is_attached():
    proc = run_harness("ports")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()  # the ports, or "no serial ports found"


def test_boards_lists_real_and_emulated_boards():
    proc = run_harness("boards")
    for name in ("mps2_an386", "host", "nucleo_f446re", "nano33ble", "pico", "esp32s3"):
        assert name in proc.stdout


def registry_reachable() -> bool:
    try:
        socket.create_connection(("api.registry.platformio.org", 443), timeout=3).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(registry_reachable(), reason="PlatformIO's registry is reachable: the platform would download")
def test_a_missing_platform_is_named_with_the_command_that_installs_it():
    proc = run_harness("sweep", "--boards", "nucleo_f446re", "--port", "/dev/null")
    assert proc.returncode == 2
    assert (
        "error: PlatformIO platform 'ststm32' is not installed and cannot be downloaded here: "
        "run `pio pkg install -p ststm32`"
    ) in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def host_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("host")
    config = write_config(tmp / "host.toml", boards=["host"], kernels=["dense", "csr"], samples=30)
    # --fresh: measured now, not taken from an earlier session's results cache, so the sweep logs point_done.
    return sweep(config, tmp / "results", "--parallel", "2", "--fresh")[1]


def test_rerun_measures_one_point_again_in_place(host_run):
    before = results(host_run)
    proc = run_harness("rerun", host_run, "--point", "2")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "1 points to measure" in proc.stdout and "3 measured before" in proc.stdout
    after = results(host_run)
    assert len(after) == len(before) and (after.status == "ok").all()
    assert count(host_run, "point_done", point=2) == 2  # measured twice: by the sweep and again
    assert count(host_run, "point_done", point=1) == 1


def test_measure_one_model_on_one_board(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text("[prune]\ndense_epochs = 2\nfinetune_epochs = 1\n[device]\naccuracy_samples = 20\n")
    proc = run_harness(
        "measure", "--board", "host", "--kernel", "csr", "--config", config, "--results", tmp_path / "results"
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith("host: csr at sparsity") and "ns (host-clock-monotonic)" in summary


def test_monitor_shows_the_frames_a_board_sends(tmp_path):
    build = tmp_path / "build"
    try:
        board = Board("host", build, tmp_path)
        board.port.close()
        proc = run_harness("monitor", "--port", board.url, "--hello", "--seconds", "1", "--log", tmp_path / "log")
    finally:
        stop_board(pid_file(build, "host"))
    assert proc.returncode == 0, proc.stderr
    assert "[frame #0 kind 0 session 00000000] proto=2 model=fake-model-1" in proc.stdout


def test_a_board_not_running_the_benchmark_is_a_clear_timeout(tmp_path):
    with socket.socket() as chatty:
        chatty.bind(("127.0.0.1", 0))
        chatty.listen()
        port = chatty.getsockname()[1]
        connections = []  # kept open: the "board" stays attached

        def talk():
            connections.append(chatty.accept()[0])
            time.sleep(0.3)  # after the harness opened the port (opening discards what came before)
            connections[0].sendall(b"rst:0x1 (POWERON_RESET),boot:0x8 (SPI_FAST_FLASH_BOOT)\r\n" * 3)

        threading.Thread(target=talk, daemon=True).start()
        proc = run_harness(
            "hello", "--port", f"socket://127.0.0.1:{port}", "--timeout", "0.2", "--log", tmp_path / "log"
        )
    assert proc.returncode == 2
    assert "no valid reply" in proc.stderr and "SPI_FAST_FLASH_BOOT" in proc.stderr


def test_boards_to_measure_on():
    emulated, real = get_board("mps2_an386"), get_board("nucleo_f446re")
    assert [u.name for u in board_units([emulated, emulated], "", 1)] == ["mps2_an386#1", "mps2_an386#2"]
    assert [u.name for u in board_units([emulated], "", 3)] == ["mps2_an386#1", "mps2_an386#2", "mps2_an386#3"]
    two = board_units([real], "nucleo_f446re=/dev/ttyACM0,nucleo_f446re=rfc2217://bench-pi:4000", 1)
    assert [(u.name, u.port) for u in two] == [
        ("nucleo_f446re#1", "/dev/ttyACM0"),
        ("nucleo_f446re#2", "rfc2217://bench-pi:4000"),
    ]
    with pytest.raises(DeviceError, match="several instances need ports the harness picks"):
        board_units([emulated], "4444", 2)


def test_a_real_board_that_is_not_attached_is_named():
    if any(get_board("nano33ble") in boards for _, boards in find_ports()):
        pytest.skip("a Nano 33 BLE is attached")
    with pytest.raises(DeviceError, match="no attached serial port looks like a 'nano33ble' .*2341:805a"):
        board_units([get_board("nano33ble")], "", 1)


def test_a_board_running_other_firmware_is_told_apart(tmp_path):
    build = tmp_path / "build"
    # Built the harness's way first: its link flags differ from a bare `pio run`, so building it after the
    # upload would rebuild into the board's build directory and delete the pid file that stops the board.
    expected = build_firmware("host", FAKE_MODEL, build, build_id="aaaa")
    try:
        board = Board("host", build, tmp_path, build_id="aaaa")
        board.port.close()
        with SerialLink(board.url, tmp_path / "log") as link:
            hello = BoardClient(link, reply_timeout=5).hello()
        expect_firmware(hello, expected)
        with pytest.raises(WrongFirmware, match="board runs build aaaa .* expected build bbbb"):
            expect_firmware(hello, dataclasses.replace(expected, build_id="bbbb"))
    finally:
        stop_board(pid_file(build, "host"))
