"""Finished points, kept so that no measurement is lost or repeated.

Each point is written as soon as it is measured, atomically (a temporary file
renamed over the target), to <run>/points/<key>.json, and results.csv is
rewritten from those files in sweep order, atomically too. A sweep killed at
any moment therefore leaves whole rows only; re-running the same command
reopens that run (its manifest holds the sweep's key and no "finished") and
measures only what is missing. A point's key hashes everything its result
depends on (model, pruning, kernel, board environment, toolchain, harness
version), so measured rows are also kept in a results cache shared by runs.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import socket
import threading
from datetime import datetime
from pathlib import Path

from harness.cache import write_atomically
from harness.results import ResultRow, write_results
from harness.stages import KEPT_FAILURES


class RunBusy(RuntimeError):
    """Another live process owns the run folder."""


class RunLock:
    """One owner per run folder, for the run's life: an exclusive lock on <run>/owner.lock.

    The kernel drops the lock when its process ends, however it ends, so a run
    whose owner died is taken over by the next sweep without any clean-up. The
    file says who holds it (pid, host, start), for the refusal's message.
    (A lock on a network file system may not be seen from other hosts.)
    """

    def __init__(self, run_dir: Path):
        self.path = run_dir / "owner.lock"
        self._file = open(self.path, "a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            owner = self._file.read().strip() or "another process"
            self._file.close()
            raise RunBusy(f"run {run_dir} is being measured by {owner}: wait for it to end, or stop it") from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(
            f"pid {os.getpid()} on {socket.gethostname()} since "
            f"{datetime.now().astimezone().isoformat(timespec='seconds')}\n"
        )
        self._file.flush()

    def release(self) -> None:
        self._file.close()  # closing drops the lock


def open_run(results_root: Path, name: str, sweep_key: str) -> tuple[Path, bool, RunLock]:
    """The unfinished run of this sweep to resume, if there is one, else a new run folder; whether resumed; and
    the lock that makes this process its one owner. A run another live process owns is refused (RunBusy)."""
    for manifest in sorted(results_root.glob("*/manifest.json"), reverse=True):
        try:
            values = json.loads(manifest.read_text())
        except (OSError, ValueError):
            continue
        if values.get("sweep_key") == sweep_key and not values.get("finished"):
            return manifest.parent, True, RunLock(manifest.parent)
    stamp = f"{name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    for number in range(1, 1000):
        run_dir = results_root / (stamp if number == 1 else f"{stamp}-{number}")
        try:
            run_dir.mkdir(parents=True)  # fails if another sweep made it first, in the same second
        except FileExistsError:
            continue
        return run_dir, False, RunLock(run_dir)
    raise RunBusy(f"{results_root}: no free run folder name for {stamp}")


def mark_finished(run_dir: Path) -> None:
    manifest = run_dir / "manifest.json"
    values = json.loads(manifest.read_text())
    values["finished"] = datetime.now().astimezone().isoformat(timespec="seconds")
    write_atomically(manifest, json.dumps(values, indent=2) + "\n")


class PointStore:
    def __init__(self, run_dir: Path, cache_dir: Path):
        self.csv_path = run_dir / "results.csv"
        self._points = run_dir / "points"
        self._cache = cache_dir
        self._points.mkdir(exist_ok=True)
        self._cache.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._rows: dict[str, tuple[int, ResultRow]] = {}
        self._unlisted: dict[str, ResultRow] = {}

    def finished(self, key: str) -> ResultRow | None:
        """This run's row for the point, if an earlier attempt at the run measured it."""
        values = _read_json(self._points / f"{key}.json")
        return _row(values["row"]) if values else None

    def cached(self, key: str) -> ResultRow | None:
        """A row measured for the same key by any run."""
        return _row(_read_json(self._cache / f"{key}.json"))

    def save(self, index: int, key: str, row: ResultRow, listed: bool = True) -> None:
        """Record a finished point (position `index` in the sweep) and rewrite results.csv.

        A point that is not listed (measured only because the auto kernel
        chooses among it and others) is kept like any other, but is no row of
        results.csv.
        """
        values = dataclasses.asdict(row)
        keep = row.status == "ok" or row.failed_stage in KEPT_FAILURES
        with self._lock:
            if listed:
                self._rows[key] = (index, row)
            else:
                self._unlisted[key] = row
            if keep:
                write_atomically(self._points / f"{key}.json", json.dumps({"index": index, "row": values}))
                write_atomically(self._cache / f"{key}.json", json.dumps(values))
            if listed:
                self._write_csv()

    def row(self, key: str) -> ResultRow | None:
        """The row this run recorded for the point, listed or not."""
        with self._lock:
            return self._rows[key][1] if key in self._rows else self._unlisted.get(key)

    def rows(self) -> list[ResultRow]:
        """Every row of the run so far, in sweep order."""
        with self._lock:
            return [row for _, row in sorted(self._rows.values(), key=lambda item: item[0])]

    def _write_csv(self) -> None:
        write_results(self.csv_path, (row for _, row in sorted(self._rows.values(), key=lambda item: item[0])))


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _row(values: dict | None) -> ResultRow | None:
    """A row from JSON; None if it was written with other columns (an older harness)."""
    try:
        return ResultRow(**values) if values else None
    except TypeError:
        return None
