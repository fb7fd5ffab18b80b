"""One owner per run, nothing left running, and a run is finished only with its report: sweeps started twice,
killed during an upload, and killed while writing the report."""
from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from bench_sweeps import count, results, start_sweep, sweep, wait_for_points, write_config
from conftest import SESSION_MARK

pytestmark = [pytest.mark.usefixtures("no_leftover_boards"), pytest.mark.timeout(600)]
POINTS = 4


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    # 4 points; the quick sweep's pruning and targets (tests/test_sweep.py), so the trained model is cached.
    return write_config(tmp_path_factory.mktemp("owner") / "owner.toml", boards=["mps2_an386"],
                        kernels=["dense", "csr"], samples=30)


def session_processes() -> set[int]:
    """Every live process this test session started, whatever it is (tests/conftest.py marks them)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and SESSION_MARK in (entry / "environ").read_bytes().split(b"\0"):
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    found.add(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:100].decode(errors="replace")
    except OSError:
        return "(ended)"


def running(pids: set[int], program: bytes) -> bool:
    for pid in pids:
        try:
            if program in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def test_a_second_sweep_of_a_run_in_progress_is_refused_naming_its_owner(config, tmp_path):
    first = start_sweep(config, tmp_path, "--fresh")
    try:
        deadline = time.monotonic() + 300
        while not list(tmp_path.glob("*/manifest.json")):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        second = start_sweep(config, tmp_path, "--fresh")
        out, _ = second.communicate(timeout=120)
        assert second.returncode == 2, out
        lines = out.strip().splitlines()
        assert lines[-1].startswith("error: run ") and f"is being measured by pid {first.pid} on " in lines[-1]
        assert "Traceback" not in out
        first_out, _ = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, first_out[-3000:]
    (run_dir,) = [path.parent for path in tmp_path.glob("*/manifest.json")]
    assert (results(run_dir).status == "ok").all() and count(run_dir, "point_done") == POINTS


def test_two_sweeps_started_at_once_never_share_a_run(config, tmp_path):
    procs = [start_sweep(config, tmp_path, "--fresh") for _ in range(2)]
    outputs = [proc.communicate(timeout=300)[0] for proc in procs]
    assert "Traceback" not in "".join(outputs)
    codes = sorted(proc.returncode for proc in procs)
    # Either the second found the first's run and was refused, or both began in their own folders.
    assert codes in ([0, 0], [0, 2]), outputs
    runs = [path.parent for path in tmp_path.glob("*/manifest.json")]
    assert len(runs) == codes.count(0)
    for run_dir in runs:
        rows = results(run_dir)
        assert (rows.status == "ok").all() and len(rows) == POINTS
        assert json.loads((run_dir / "manifest.json").read_text())["finished"]


@pytest.mark.parametrize("moment", [b"--upload-port", b"-kernel"], ids=["uploading", "measuring"])
def test_a_harness_killed_leaves_nothing_running(config, tmp_path, moment):
    before = session_processes()
    proc = start_sweep(config, tmp_path, "--fresh")
    try:
        deadline = time.monotonic() + 300
        while not running(session_processes() - before, moment):
            assert proc.poll() is None and time.monotonic() < deadline, f"never saw {moment}"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    deadline = time.monotonic() + 15
    while session_processes() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {pid: cmdline(pid) for pid in session_processes() - before}
    assert not left, f"outlived the harness: {left}"


def test_a_run_killed_while_writing_its_report_is_unfinished_and_the_next_run_writes_it(config, tmp_path):
    proc = start_sweep(config, tmp_path, "--fresh")
    try:
        run_dir = wait_for_points(tmp_path, POINTS, proc)
        while count(run_dir, "all_measured") == 0:
            assert proc.poll() is None
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)  # the table and the report take a few seconds more
        proc.wait(30)
    finally:
        proc.kill()
    assert "finished" not in json.loads((run_dir / "manifest.json").read_text())
    again, same_run = sweep(config, tmp_path)
    assert same_run == run_dir and "(resumed)" in again.stdout and f"{POINTS} measured before" in again.stdout
    assert (run_dir / "report.html").exists() and (run_dir / "results.parquet").exists()
    assert json.loads((run_dir / "manifest.json").read_text())["finished"]
