"""A sweep through a fault-injecting proxy (harness/device/faults.py) between the harness and emulated boards:
bytes dropped, duplicated and corrupted both ways, replies delayed past the host's patience, boards reset
through QEMU's monitor. The sweep must finish with the same results as over a clean link, record no wrong row,
and count every fault in its run log."""

import pytest

from bench_sweeps import count, events, every_column_equal, results, sweep, write_config

pytestmark = [pytest.mark.usefixtures("no_leftover_boards"), pytest.mark.timeout(600)]

# Replies to the first inference may take timeout_s (then the client has learned the real time); a delayed reply
# is held longer than that, so each fault costs the host a retry. The seed decides which faults fall where: this
# one brings every kind, resets included, into this sweep.
FAULTS = "rate=0.12,reset=0.02,delay=2.5,seed=4"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("faults")
    config = write_config(tmp / "faults.toml", boards=["mps2_an386"], kernels=["csr"], samples=60, timeout_s=1.0)
    _, clean = sweep(config, tmp / "clean", "--fresh")
    _, faulty = sweep(config, tmp / "faulty", "--fresh", "--inject-faults", FAULTS)
    return clean, faulty


def test_results_over_a_faulty_link_equal_those_over_a_clean_one(runs):
    clean, faulty = runs
    assert (results(faulty).status == "ok").all()
    every_column_equal(results(clean), results(faulty))  # stack_used, flash, scores: all of it


def test_every_kind_of_fault_happened(runs):
    _, faulty = runs
    kinds = {e["fault"] for e in events(faulty) if e["event"] == "fault_injected"}
    assert kinds == {
        "drop_request",
        "duplicate_request",
        "corrupt_request",
        "drop_reply",
        "duplicate_reply",
        "corrupt_reply",
        "delay_reply",
        "reset",
    }


def test_every_fault_is_counted_in_the_run_log(runs):
    clean, faulty = runs
    injected = [e["fault"] for e in events(faulty) if e["event"] == "fault_injected"]
    # each fault cost a retried request (exactly one on a quiet machine; a loaded one adds late replies)...
    assert count(faulty, "retry") >= len(injected)
    # ...a reset also ended the session, and the point was measured again from the start...
    assert count(faulty, "board_reset") == injected.count("reset")
    assert count(faulty, "attempt_failed") == injected.count("reset")
    # ...every damaged reply was rejected (a corrupted byte that became a delimiter makes two pieces)...
    damaged = sum(injected.count(f"{kind}_reply") for kind in ("drop", "duplicate", "corrupt"))
    assert damaged <= count(faulty, "bad_frame") <= damaged + injected.count("corrupt_reply")
    # ...and a clean link has none of it
    assert not any(count(clean, kind) for kind in ("retry", "board_reset", "bad_frame", "stale_reply"))
