"""Run directories as the report sees them: loaded, checked, and split into series.

A series is what one set of plots describes: one model on one board, pruned
by one method, in one run. Every problem found on the way (a directory
without results, failed points, columns an older harness did not write) is
kept as a note for the report instead of stopping it.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.chooser import AUTO, DENSE
from harness.report.quality import Quality, quality_of, task_columns
from harness.results import COLUMNS, ResultRow, read_results_csv


@dataclass(frozen=True)
class TimingKind:
    """How a board was timed, and how the report shows it."""

    name: str
    badge: str  # shown on every plot of such a board
    color: str  # badge colour
    linestyle: str  # line style of such a board in comparison plots


EMULATED = TimingKind("emulated", "EMULATED BOARD (QEMU)", "#c25e00", "--")
HOST = TimingKind("host process", "HOST PROCESS, not a microcontroller", "#555555", ":")
REAL = TimingKind("real board", "REAL BOARD", "#1b7a2e", "-")


def timing_kind(unit: str, source: str) -> TimingKind:
    """Classify by the unit the board reported: the firmware's contract ties units to kinds of board.

    >>> timing_kind("instructions", "qemu-icount-systick").name
    'emulated'
    """
    if unit == "instructions" or "qemu" in source:
        return EMULATED
    if unit == "cycles":
        return REAL
    if unit == "ns":
        return HOST
    return TimingKind("unknown", "UNKNOWN KIND OF BOARD", "#b00020", "-.")


@dataclass(eq=False)  # identity: a frame has no single truth value to compare by
class Run:
    path: Path
    frame: pd.DataFrame  # every row, failed points included
    manifest: dict

    @property
    def name(self) -> str:
        return self.manifest.get("run_id") or self.path.name

    @property
    def ok(self) -> pd.DataFrame:
        return self.frame[self.frame.status == "ok"]

    def methods(self) -> pd.Series:
        """The pruning method of each row; where a row names none (an older harness), the manifest's."""
        fallback = self.manifest.get("config", {}).get("prune", {}).get("method", "")
        return self.frame.prune_method.fillna("").astype(str).replace("", fallback)


@dataclass(eq=False)
class Series:
    run: Run
    model: str
    board: str
    method: str
    rows: pd.DataFrame  # successful rows only
    label: str = ""  # what tells it apart from the other series of the report
    slug: str = ""  # the same, for file names
    panel_slug: str = ""  # the slug without the method: plots where the methods of a run share axes

    @property
    def unit(self) -> str:
        return self.rows.latency_unit.iloc[0]

    @property
    def source(self) -> str:
        return self.rows.timing_source.iloc[0]

    @property
    def kind(self) -> TimingKind:
        return timing_kind(self.unit, self.source)

    @property
    def harness(self) -> str:
        return str(self.rows.harness_sha.iloc[0])

    @functools.cached_property
    def quality(self) -> Quality:
        return quality_of(self.rows)

    def kernels(self) -> list[str]:
        """Dense first, so it is the reference colour and the first bar of every group; auto, made of the others,
        last."""
        return sorted(self.rows.kernel.unique(), key=lambda kernel: (kernel != DENSE, kernel == AUTO, kernel))

    def sparse_kernels(self) -> list[str]:
        return [kernel for kernel in self.kernels() if kernel != "dense"]

    def kernel_rows(self, kernel: str) -> pd.DataFrame:
        return self.rows[self.rows.kernel == kernel].sort_values("target_sparsity")


@dataclass
class Loaded:
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_runs(paths: list[Path]) -> Loaded:
    loaded = Loaded()
    for path in dict.fromkeys(Path(p).resolve() for p in paths):  # a run named twice is reported once
        run = _load_run(path, loaded.notes)
        if run is not None:
            loaded.runs.append(run)
    return loaded


def _load_run(path: Path, notes: list[str]) -> Run | None:
    if not path.is_dir():
        notes.append(f"{path}: no such directory")
        return None
    csv_path = path / "results.csv"
    if not csv_path.exists():
        notes.append(f"{path}: no results.csv (not a run directory, or its sweep stopped before the first point)")
        return None
    if problem := table_problem(csv_path):
        notes.append(f"{csv_path} {problem}: run its sweep again to rewrite it (measured points are reused)")
        return None
    frame = read_results_csv(csv_path)
    if frame.empty:
        notes.append(f"{path}: results.csv has no rows")
        return None
    manifest_path = path / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    run = Run(path, _with_all_columns(frame, path, notes), manifest)
    _note_failures(run, notes)
    return run


def table_problem(csv_path: Path) -> str | None:
    """Why a results.csv is no whole table (cut short by a crash or a copy, or no CSV at all), or None.

    A cut row would be read as a row whose last columns are empty: a wrong result, not a missing one.
    """
    try:
        text = csv_path.read_text()
        records = list(csv.reader(io.StringIO(text), strict=True))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        return f"cannot be read as a table ({err})"
    if not records:
        return "is empty, without even its header"
    if not text.endswith("\n"):
        return "is cut short: its last line ends without a line break"
    for number, record in enumerate(records[1:], start=1):
        if len(record) != len(records[0]):
            return f"is cut short or corrupt: row {number} has {len(record)} of the header's {len(records[0])} fields"
    return None


def _with_all_columns(frame: pd.DataFrame, path: Path, notes: list[str]) -> pd.DataFrame:
    """Fill columns an older harness did not write with their defaults, so every plot can ask for them.

    Without a task column the run is classification (the default), and the other tasks' scores are not missed.
    """
    missing = [column for column in COLUMNS if column not in frame]
    unnoted = task_columns() if "task" in missing else set()
    noted = [column for column in missing if column not in unnoted]
    if noted:
        notes.append(
            f"{path}: results.csv has no {', '.join(noted)} (an older harness?): taken as empty, and "
            "plots that need them are left out"
        )
    if missing:
        defaults = {f.name: f.default for f in dataclasses.fields(ResultRow)}
        frame = frame.assign(**{column: _no_value(defaults[column]) for column in missing})
    return frame


def _no_value(default):
    """A column's default, or an empty string for the configuration columns that have none."""
    return "" if default is dataclasses.MISSING else default


def _note_failures(run: Run, notes: list[str]) -> None:
    failed = run.frame[run.frame.status != "ok"]
    if failed.empty:
        return
    first = failed.iloc[0]
    where = (
        f"first: sparsity {first.target_sparsity:g} {first.kernel} on {first.board}: {first.failed_stage}: "
        f"{first.error}"
    )
    if len(failed) == len(run.frame):
        notes.append(f"{run.name}: none of its {len(failed)} points succeeded, nothing to draw ({where})")
    else:
        notes.append(f"{run.name}: {len(failed)} of {len(run.frame)} points failed and are left out ({where})")


def split_series(runs: list[Run]) -> list[Series]:
    series = []
    for run in runs:
        ok = run.ok.assign(prune_method=run.methods())
        for (model, board, method), rows in ok.groupby(["model", "board", "prune_method"], sort=False):
            series.append(Series(run, model, board, method, rows))
    _name_series(series)
    return series


def _name_series(series: list[Series]) -> None:
    """Label each series by what varies across the report: board, method, model, harness version, run."""
    fields = (lambda s: s.model, lambda s: s.board, lambda s: s.method, lambda s: f"harness {s.harness}")
    varying = [get for get in fields if len({get(s) for s in series}) > 1]
    parts = [[get(s) for get in varying] for s in series]
    if len({tuple(p) for p in parts}) < len(series):  # still ambiguous: two runs of the same setup
        parts = [p + [s.run.name] for p, s in zip(parts, series)]
    for s, p in zip(series, parts):
        s.label = ", ".join(p) or s.board
        # File names keep the board first, as a single-board run has always named its plots.
        others = [part for part in p if part != s.board]
        s.slug = _slug("-".join([s.board, *others]))
        s.panel_slug = _slug("-".join([s.board, *(part for part in others if part != s.method)]))


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "_." else "-" for c in text).strip("-")
