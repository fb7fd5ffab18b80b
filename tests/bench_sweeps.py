"""Small sweeps for the bench tests, run through the real command line, and readers for what they leave."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from conftest import PROJECT_DIR, run_harness

# The pruning settings of test_sweep.py's quick sweep, so all of them share one trained model in .cache/.
QUICK_PRUNING = """
[prune]
dense_epochs = 12
finetune_epochs = 4
"""
# Columns that must come out the same however a run went (latencies: see same_results).
MEASURED = [
    "target_sparsity",
    "kernel",
    "board",
    "status",
    "accuracy_device",
    "device_samples",
    "output_mismatches",
    "stack_used",
    "flash_total",
    "sram_static",
    "latency_unit",
    "timing_source",
]
TICK = 40  # emulated boards time in SysTick ticks of 40 instructions: repeat runs agree to one tick


def write_config(
    path: Path,
    boards: list[str],
    kernels: list[str],
    samples: int,
    timeout_s: float = 20.0,
    targets: tuple[float, ...] = (0.0, 0.9),
) -> Path:
    path.write_text(f"""
[sweep]
name = "bench"
targets = {json.dumps(list(targets))}
kernels = {json.dumps(kernels)}
boards = {json.dumps(boards)}
{QUICK_PRUNING}
[device]
runs = 3
accuracy_samples = {samples}
timeout_s = {timeout_s}
""")
    return path


def sweep(config: Path, results: Path, *extra) -> tuple[subprocess.CompletedProcess, Path]:
    """Run a sweep to the end; returns the process and its run folder."""
    proc = run_harness("sweep", "--config", config, "--results", results, *extra)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, run_dir_of(proc.stdout)


def start_sweep(config: Path, results: Path, *extra) -> subprocess.Popen:
    # Ctrl-C must reach the sweep even when the tests run in the background (`make test &`), where the shell
    # starts them with SIGINT ignored and every child would inherit that.
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "sweep",
            "--config",
            str(config),
            "--results",
            str(results),
            *map(str, extra),
        ],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def run_dir_of(stdout: str) -> Path:
    return Path(next(line.split("results in ")[1] for line in stdout.splitlines() if "results in " in line))


def events(run_dir: Path) -> list[dict]:
    path = run_dir / "run.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def count(run_dir: Path, kind: str, **match) -> int:
    return sum(1 for e in events(run_dir) if e["event"] == kind and all(e.get(k) == v for k, v in match.items()))


def wait_for_points(results: Path, points: int, proc: subprocess.Popen, timeout: float = 300) -> Path:
    """Wait until the sweep writing under results has finished `points` points; returns its run folder."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the sweep ended early: {proc.stdout.read()[-3000:]}"
        for run_dir in results.glob("*/"):
            if count(run_dir, "point_done") >= points:
                return run_dir
        time.sleep(0.1)
    raise TimeoutError(f"no {points} points finished within {timeout} s")


def results(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "results.csv")


# Columns that say when, by which run or from which build a row was made, not what was measured.
PROVENANCE = ["run_id", "firmware_rebuilt"]


def every_column_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Two runs' rows agree in every column but the run's own (latencies to within one timer tick)."""
    same_results(a, b)
    per_mac = ["instructions_per_mac", "cycles_per_mac", "ns_per_mac"]  # the median latency over the MACs
    for column in per_mac:
        unknown = a[column].isna() & b[column].isna()
        # a float quotient: exactly one tick apart comes back as 40.0000001 (seen in CI)
        one_tick = ((a[column] - b[column]) * a.macs).abs() <= TICK * (1 + 1e-9)
        assert (unknown | one_tick).all(), (a[column], b[column])
    timed = ["latency_median", "latency_min", "latency_max", "layer_latency", *per_mac]
    rest = [column for column in a.columns if column not in PROVENANCE + timed]
    pd.testing.assert_frame_equal(a[rest], b[rest])


def same_results(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Two runs' rows agree in every measured column (latencies to within one timer tick)."""
    assert len(a) == len(b)
    pd.testing.assert_frame_equal(a[MEASURED], b[MEASURED])
    for column in ("latency_median", "latency_min", "latency_max"):
        assert ((a[column] - b[column]).abs() <= TICK).all(), (a[column], b[column])
    for layers_a, layers_b in zip(a.layer_latency, b.layer_latency):
        first, second = json.loads(layers_a), json.loads(layers_b)
        assert first.keys() == second.keys()
        assert all(abs(first[k] - second[k]) <= TICK for k in first)
