"""Sweeps on a labgrid farm: a real coordinator and two exporter hosts with two emulated boards each, as separate
processes on 127.0.0.1 (tests/farm_lab.py), driven through the real command line."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import pytest

from bench_sweeps import count, events, results, same_results, start_sweep, sweep, wait_for_points, write_config
from conftest import board_processes, run_harness
from farm_lab import BIN, FarmLab
from harness.device.boards import get_board
from harness.device.farm import Farm, FarmError, PlaceLease, holder_name
from harness.device.farm_flash import flash, flash_script
from harness.device.gdb_remote import FlashError, loadable_segments

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    before = board_processes()
    farm = FarmLab(tmp_path_factory.mktemp("farm"), {"hostA": 2, "hostB": 2}).start()
    yield farm
    farm.stop()
    assert not board_processes() - before, "the farm's emulators outlived it"


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    # 9 points: enough that all four places measure, and that some are left when a host dies.
    path = write_config(
        tmp_path_factory.mktemp("farm-config") / "farm.toml",
        boards=["mps2_an386"],
        kernels=["dense", "csr", "delta4"],
        samples=60,
        targets=(0.0, 0.5, 0.9),
    )
    path.write_text(path.read_text() + "\n[farm]\npoints_per_turn = 2\n")
    return path


@pytest.fixture(scope="module")
def local(config, tmp_path_factory):
    """The same sweep on local emulators: what the farm must reproduce."""
    _, run_dir = sweep(config, tmp_path_factory.mktemp("local"), "--fresh", "--parallel", "2")
    return results(run_dir)


def held_spans(run_dir: Path) -> list[tuple[str, float, float]]:
    """(place, from, to) for every turn this run held a place, from its run log."""
    spans, since = [], {}
    for event in events(run_dir):
        at = datetime.fromisoformat(event["time"]).timestamp()
        if event["event"] == "place_acquired":
            since[event["place"]] = at
        elif event["event"] in ("place_released", "place_lost") and event["place"] in since:
            spans.append((event["place"], since.pop(event["place"]), at))
    return spans


def test_a_farm_sweep_measures_on_both_hosts_and_equals_a_local_run(lab, config, local, tmp_path):
    proc, run_dir = sweep(config, tmp_path, "--fresh", "--farm", lab.address)
    assert f"farm {lab.address}: 4 places to measure on" in proc.stdout
    rows = results(run_dir)
    same_results(local, rows)
    assert (rows.status == "ok").all()
    assert {place.split("-")[0] for place in rows.place} == {"hostA", "hostB"}
    assert set(rows.place) <= set(lab.all_places())
    assert not any(lab.holders().values()), "a place stayed held after the sweep"


@pytest.mark.parametrize("fault", ["kill", "freeze"])
def test_a_host_that_dies_or_hangs_mid_sweep_costs_time_not_rows(lab, config, local, tmp_path, fault):
    """kill: the host's processes die (SIGKILL), and the coordinator sees its exporter go at once. freeze: the
    host hangs, or the network to it is cut (SIGSTOP): its ports still accept connections and answer nothing,
    and the coordinator notices only when its keepalive runs out; until then the place looks up."""
    proc = start_sweep(config, tmp_path, "--fresh", "--farm", lab.address)
    try:
        run_dir = wait_for_points(tmp_path, 2, proc)
        # Strike hostB only while it holds a place: then the loss happens mid-point.
        while not any(holder for place, holder in lab.holders().items() if place.startswith("hostB")):
            assert proc.poll() is None
            time.sleep(0.05)
        (lab.kill_host if fault == "kill" else lab.freeze_host)("hostB")
        out, _ = proc.communicate(timeout=600)
    finally:
        proc.kill()
        revive(lab, "hostB")
    assert proc.returncode == 0, out[-3000:]
    rows = results(run_dir)
    same_results(local, rows)  # every point, each once, none an error, none half measured
    assert (rows.status == "ok").all()
    lost = [e for e in events(run_dir) if e["event"] == "place_lost"]
    assert lost and all(e["place"].startswith("hostB") for e in lost)
    assert count(run_dir, "point_done") == len(local)


def revive(lab: FarmLab, host: str) -> None:
    """The host back up (killed first, whatever state a test left it in), so the next test has the whole farm."""
    lab.kill_host(host)
    lab.start_host(host)
    lab.wait_until_live(lab.all_places())


def test_a_dead_place_handed_out_is_set_aside_and_a_live_one_freed_later_is_taken(lab):
    """labgrid's coordinator hands out free places whatever their exporters' state. While another user holds
    hostA's places, the only free ones are hostB's, dead: each may be handed to the lease once, never again,
    and the lease then waits; when hostA-2 is freed it gets that."""
    seen = []
    lab.kill_host("hostB")
    try:
        lab.wait_until_dead(["hostB-1", "hostB-2"])
        with Farm(lab.address, "lab/other") as other, Farm(lab.address, "lab/lease") as farm:
            for place in ("hostA-1", "hostA-2"):
                other.acquire(place)
            lease = PlaceLease(farm, "mps2_an386", 1, lambda kind, **fields: seen.append((kind, fields["place"])))
            stop, ready = threading.Event(), []
            worker = threading.Thread(target=lambda: ready.append(lease.ready(stop)))
            worker.start()
            time.sleep(8)  # long enough for the dead places to come back several times if they could
            assert not ready
            other.release("hostA-2")
            worker.join(15)
            stop.set()
            other.release("hostA-1")
            assert ready == [True] and lease.place == "hostA-2", seen
            lease.give_back()
        unusable = [place for kind, place in seen if kind == "place_unusable"]
        assert sorted(unusable) == sorted(set(unusable)) and set(unusable) <= {"hostB-1", "hostB-2"}, seen
        assert not any(lab.holders().values())
    finally:
        revive(lab, "hostB")


def test_a_resource_deleted_before_the_client_knew_it_counts_as_no_resource():
    """labgrid's client session, fed what the coordinator sends when an exporter goes away: a deletion (empty data)
    of a resource it knew and of one it never heard of. Both leave the place without resources, not live."""
    from labgrid.remote.client import ClientSession
    from labgrid.remote.common import Place, ResourceMatch

    from harness.device.farm import resources_of

    serial = {"cls": "NetworkSerialPort", "params": {"host": "hostB", "port": 4000}, "avail": True}
    known, unknown = (
        Place(f"hostB-{i}", matches=[ResourceMatch("hostB", f"board-{i}", "NetworkSerialPort")]) for i in (1, 2)
    )
    loop = asyncio.new_event_loop()
    try:
        session = ClientSession("127.0.0.1:1", loop)
        session.resources = {}  # as start() leaves it, with no coordinator to sync with
        loop.run_until_complete(session.on_resource_changed("hostB", "board-1", "NetworkSerialPort", serial))
        assert list(resources_of(known, session.resources)) == [
            ("hostB/board-1/NetworkSerialPort", "NetworkSerialPort", True)
        ]
        loop.run_until_complete(session.on_resource_changed("hostB", "board-1", "NetworkSerialPort", {}))
        loop.run_until_complete(session.on_resource_changed("hostB", "board-2", "NetworkSerialPort", {}))
        assert list(resources_of(known, session.resources)) == list(resources_of(unknown, session.resources)) == []
    finally:
        loop.close()


def test_two_clients_take_turns_and_never_hold_one_place_together(lab, config, local, tmp_path):
    procs = [start_sweep(config, tmp_path / name, "--fresh", "--farm", lab.address) for name in ("ann", "bob")]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    runs = [next((tmp_path / name).glob("*/")) for name in ("ann", "bob")]
    for run_dir in runs:
        same_results(local, results(run_dir))
    ann, bob = (held_spans(run_dir) for run_dir in runs)
    assert ann and bob
    for place, start, end in ann:
        for other, other_start, other_end in bob:
            assert place != other or end <= other_start or other_end <= start, (place, start, end, other_start)
    # Each measured point lies inside a turn its client held that place for.
    for run_dir, spans in zip(runs, (ann, bob)):
        for e in events(run_dir):
            if e["event"] == "measured":
                done = datetime.fromisoformat(e["time"]).timestamp()
                began = done - e["seconds"] + 0.01  # the log rounds seconds to 0.01 and times to 0.001
                assert any(place == e["place"] and start <= began and done <= end for place, start, end in spans), e
    # points_per_turn = 2: each client gave places back and queued again, so the other had turns too.
    assert max(len(ann), len(bob)) > 4


def test_a_killed_harness_releases_its_places_on_the_next_run_and_resumes(lab, config, local, tmp_path):
    proc = start_sweep(config, tmp_path, "--fresh", "--farm", lab.address)
    run_dir = wait_for_points(tmp_path, 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    holder = holder_name(run_dir)
    left = [place for place, who in lab.holders().items() if who == holder]
    assert left, "a killed harness leaves its places acquired: the coordinator cannot know it died"

    again, same_run = sweep(config, tmp_path, "--fresh", "--farm", lab.address)
    assert same_run == run_dir and "(resumed)" in again.stdout
    released = next(line for line in again.stdout.splitlines() if line.startswith("farm: released"))
    assert all(place in released for place in left), (left, released)
    same_results(local, results(run_dir))
    assert not any(lab.holders().values())


def test_farm_list_shows_tags_holders_and_exporters(lab):
    with Farm(lab.address, "lab/someone") as farm:
        farm.acquire("hostA-1")
        try:
            listing = run_harness("farm", "list", "--farm", lab.address)
        finally:
            farm.release("hostA-1")
    assert listing.returncode == 0, listing.stderr
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()}
    assert set(lines) == set(lab.all_places())
    assert "held by lab/someone" in lines["hostA-1"] and "board=mps2_an386" in lines["hostA-1"]
    assert "free" in lines["hostB-2"] and lines["hostB-2"].rstrip().endswith("hostB")


def test_a_board_kind_the_farm_lacks_and_an_unreachable_coordinator_are_one_line_each(lab, config, tmp_path):
    missing = run_harness(
        "sweep", "--config", config, "--boards", "mps2_an385", "--results", tmp_path, "--farm", lab.address
    )
    assert missing.returncode == 2
    assert f"farm {lab.address} has no place tagged board=mps2_an385" in missing.stderr
    down = run_harness("farm", "list", "--farm", "127.0.0.1:1")
    assert down.returncode == 2 and "farm coordinator 127.0.0.1:1 unreachable" in down.stderr


@pytest.mark.parametrize(
    "board, driver, resource",
    [("nucleo_f446re", "OpenOCDDriver", "USBDebugger"), ("esp32s3", "FlashScriptDriver", "USBFlashableDevice")],
)
def test_a_real_board_is_flashed_by_a_labgrid_driver_bound_to_the_places_device(lab, tmp_path, board, driver, resource):
    """Here no probe or USB device exists, so this shows the harness's labgrid environment is accepted up to
    binding the board's driver to the place's resource, and that its absence is reported as such."""
    place = f"{board}-1"
    (tmp_path / "hostC.yaml").write_text(f"{place}:\n  NetworkSerialPort:\n    host: 127.0.0.1\n    port: 1\n")
    exporter = subprocess.Popen(
        [
            BIN / "labgrid-exporter",
            "-c",
            lab.address,
            "--name",
            "hostC",
            "--hostname",
            "127.0.0.1",
            tmp_path / "hostC.yaml",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (tmp_path / "firmware.elf").write_bytes(b"elf")
    (tmp_path / "firmware.bin").write_bytes(b"bin")
    try:
        lab.client("-p", place, "create")
        lab.client("-p", place, "add-match", f"hostC/{place}/*")
        lab.client("-p", place, "set-tags", f"board={board}")
        lab.wait_until_live([place])
        with Farm(lab.address, "lab/flasher") as farm:
            token, held = farm.reserve({"board": board}, threading.Event())
            farm.acquire(held)
            try:
                with pytest.raises(
                    FarmError, match=f"place '{place}' with {driver} failed: the place has no {resource}"
                ):
                    flash(farm, farm.access(held), get_board(board), tmp_path / "firmware.elf", tmp_path / "log")
            finally:
                farm.release(held)
                farm.cancel(token)
        assert driver in (tmp_path / "log").read_text()
    finally:
        lab.client("-p", place, "delete")
        exporter.terminate()
        exporter.wait(10)


def test_a_flash_script_carries_its_image_and_gets_the_port_as_its_argument(tmp_path):
    image = tmp_path / "firmware.bin"
    image.write_bytes(bytes(range(256)) * 40)
    (tmp_path / "firmware.elf").write_bytes(b"not this one")
    script = tmp_path / "flash.sh"
    script.write_text(
        flash_script(f"cp {{bin}} {tmp_path}/flashed && echo {{port}} > {tmp_path}/port", tmp_path / "firmware.elf")
    )
    subprocess.run(["sh", script, "/dev/ttyUSB7"], check=True)
    assert (tmp_path / "flashed").read_bytes() == image.read_bytes()
    assert (tmp_path / "port").read_text() == "/dev/ttyUSB7\n"
    with pytest.raises(FarmError, match="firmware.bin: no such image"):
        flash_script("esptool.py write_flash 0x10000 {bin}", tmp_path / "other" / "firmware.elf")


def test_the_serial_module_is_labgrids_fork_not_pyserial():
    """PlatformIO requires pyserial, labgrid pyserial-labgrid, and both install serial/ (the Makefile puts the
    fork last): its RFC 2217 fixes are what a farm's ser2net ports need."""
    import serial

    assert serial.__version__ == version("pyserial-labgrid")


def test_an_image_that_is_no_elf_is_refused_before_the_board_is_touched(tmp_path):
    (tmp_path / "firmware.bin").write_bytes(b"\x00" * 64)
    with pytest.raises(FlashError, match="firmware.bin: not a 32-bit little-endian ELF file"):
        loadable_segments(tmp_path / "firmware.bin")


def test_a_coordinator_that_goes_away_stops_the_sweep_in_one_line_and_it_resumes_later(config, local, tmp_path):
    """Without the coordinator no place can be held, so no result could be trusted to be this run's alone."""
    small = FarmLab(tmp_path / "lab", {"hostD": 1}).start()
    try:
        proc = start_sweep(config, tmp_path / "results", "--fresh", "--farm", small.address)
        run_dir = wait_for_points(tmp_path / "results", 2, proc)
        small.coordinator.kill()
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 2, out[-3000:]
        assert out.strip().splitlines()[-1].startswith(f"error: farm coordinator {small.address}")
        assert "Traceback" not in out
        assert 2 <= count(run_dir, "point_done") < len(local)
    finally:
        small.stop()
    again = FarmLab(tmp_path / "lab-again", {"hostD": 1}).start()
    try:
        _, same_run = sweep(config, tmp_path / "results", "--fresh", "--farm", again.address)
    finally:
        again.stop()
    assert same_run == run_dir
    same_results(local, results(run_dir))
