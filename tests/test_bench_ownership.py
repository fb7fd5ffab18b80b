"""One owner per run, nothing left running, and a run is finished only with its report: sweeps started twice,
killed during an upload, and killed while writing the report."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from bench_sweeps import count, results, start_sweep, sweep, wait_for_points, write_config
from conftest import session_processes

pytestmark = [pytest.mark.usefixtures("no_leftover_boards"), pytest.mark.timeout(600)]
POINTS = 4


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    # 4 points; the quick sweep's pruning and targets (tests/test_sweep.py), so the trained model is cached.
    return write_config(
        tmp_path_factory.mktemp("owner") / "owner.toml", boards=["mps2_an386"], kernels=["dense", "csr"], samples=30
    )


def started_since(before: set[int]) -> dict[int, bytes]:
    """The test session's live processes that were not running before, with their command lines."""
    return {pid: line for pid, line in session_processes().items() if pid not in before}


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
    before = set(session_processes())
    proc = start_sweep(config, tmp_path, "--fresh")
    try:
        deadline = time.monotonic() + 300
        while not any(moment in line for line in started_since(before).values()):
            assert proc.poll() is None and time.monotonic() < deadline, f"never saw {moment}"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    deadline = time.monotonic() + 15
    while started_since(before) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = {pid: line[:100] for pid, line in started_since(before).items()}
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
