"""Points per minute on a loopback labgrid farm with 1, 2 and 4 places, and on local emulators for comparison.

    .venv/bin/python tests/bench_farm.py [OUT_DIR]

Starts tests/farm_lab.py's farm (two exporter hosts, two emulated boards each), builds an 18-point sweep's
firmware once, then measures the sweep again (--fresh: measured, not taken from the results cache) with 1, 2
and 4 places tagged for the board, and locally with --parallel 1, 2 and 4. The rate counts the measuring phase
only (run log: from "measuring" to "all_measured"), where builds are already cached. Prints a Markdown table.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sweeps import events, sweep, write_config  # noqa: E402
from farm_lab import BOARD, FarmLab  # noqa: E402


def measuring_minutes(run_dir: Path) -> tuple[int, float]:
    """(points measured, minutes the measuring phase took)."""
    log = events(run_dir)
    start = next(e for e in log if e["event"] == "measuring")
    end = next(e for e in log if e["event"] == "all_measured")
    seconds = (datetime.fromisoformat(end["time"]) - datetime.fromisoformat(start["time"])).total_seconds()
    return start["points"], seconds / 60


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    config = write_config(
        out / "farm-bench.toml",
        boards=[BOARD],
        kernels=["dense", "csr", "delta4"],
        samples=60,
        targets=(0.0, 0.5, 0.7, 0.8, 0.9, 0.95),
    )
    lab = FarmLab(out / "lab", {"hostA": 2, "hostB": 2}).start()
    rows = []
    try:
        sweep(config, out / "warm", "--parallel", "2")  # builds every firmware once; later runs reuse them
        places = lab.all_places()
        for count in (1, 2, 4):
            for number, place in enumerate(places):
                lab.client("-p", place, "set-tags", f"board={BOARD if number < count else 'spare'}")
            _, run_dir = sweep(config, out / f"farm-{count}", "--fresh", "--farm", lab.address)
            rows.append((f"farm, {count} place{'s' * (count > 1)}", *measuring_minutes(run_dir)))
        for count in (1, 2, 4):
            _, run_dir = sweep(config, out / f"local-{count}", "--fresh", "--parallel", str(count))
            rows.append((f"local, --parallel {count}", *measuring_minutes(run_dir)))
    finally:
        lab.stop()
    base = rows[0][1] / rows[0][2]
    print("| where | points | minutes | points per minute | vs 1 farm place |")
    print("|---|---|---|---|---|")
    for name, points, minutes in rows:
        rate = points / minutes
        print(f"| {name} | {points} | {minutes:.2f} | {rate:.1f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="bench-farm-")))
