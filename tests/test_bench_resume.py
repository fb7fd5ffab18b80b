"""A sweep killed mid-way (Ctrl-C, or SIGKILL which leaves no chance to clean up) and run again with the same
command picks up where it stopped and ends with the results of an uninterrupted run; and two emulated boards
measure at the same time."""

import signal
from datetime import datetime

import pytest

from bench_sweeps import count, events, results, same_results, start_sweep, sweep, wait_for_points, write_config

pytestmark = [pytest.mark.usefixtures("no_leftover_boards"), pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    # 6 points: when 2 are done and 2 in flight, 2 are still waiting, however fast the kernels are.
    return write_config(
        tmp_path_factory.mktemp("resume") / "resume.toml",
        boards=["mps2_an386"],
        kernels=["dense", "csr"],
        samples=60,
        targets=(0.0, 0.5, 0.9),
    )


@pytest.fixture(scope="module")
def uninterrupted(config, tmp_path_factory):
    _, run_dir = sweep(config, tmp_path_factory.mktemp("whole"), "--fresh", "--parallel", "2")
    return run_dir


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_a_killed_sweep_resumes_and_loses_nothing(config, uninterrupted, tmp_path, sig):
    proc = start_sweep(config, tmp_path, "--fresh", "--parallel", "2")
    run_dir = wait_for_points(tmp_path, 2, proc)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    finished = count(run_dir, "point_done")
    assert 2 <= finished < 6
    assert len(results(run_dir)) == finished  # whole rows only, however the sweep died

    again, same_run = sweep(config, tmp_path, "--fresh", "--parallel", "2")
    assert same_run == run_dir and "(resumed)" in again.stdout
    assert f"{finished} measured before" in again.stdout
    same_results(results(uninterrupted), results(run_dir))


def test_two_emulated_boards_measure_at_the_same_time(uninterrupted):
    spans = [
        (
            e["board"],
            datetime.fromisoformat(e["time"]).timestamp() - e["seconds"],
            datetime.fromisoformat(e["time"]).timestamp(),
        )
        for e in events(uninterrupted)
        if e["event"] == "measured"
    ]
    assert {board for board, _, _ in spans} == {"mps2_an386#1", "mps2_an386#2"}
    assert any(
        a_board != b_board and a_start < b_end and b_start < a_end
        for a_board, a_start, a_end in spans
        for b_board, b_start, b_end in spans
    )
