"""Stage: plan a sweep (model point x kernel x board) and compile its variants; the context a run carries.

The plan lists the points the config asks for, in the order of
results.csv, then the formats only the auto kernel needs. Every
single-format variant is compiled before any board is touched, so an op the
compiler lacks fails the sweep at once; the auto kernel's variants are
compiled once their candidates are measured (harness/auto.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness import cache
from harness.chooser import AUTO, DENSE
from harness.compiler import KERNEL_FORMATS, CompiledModel, compile_tflite
from harness.config import SweepConfig
from harness.device.boards import Board
from harness.device.faults import FaultPlan
from harness.prepare import ModelPoint
from harness.runlog import Say

__all__ = [
    "BenchOptions",
    "PlannedPoint",
    "SweepContext",
    "Variants",
    "compile_point",
    "compile_variants",
    "plan_sweep",
    "sweep_key",
    "without_dense_copies",
]


@dataclass(frozen=True)
class BenchOptions:
    """How a sweep uses the bench (none of it changes a result)."""

    parallel: int = 1  # instances of each emulated board measuring at once
    faults: FaultPlan | None = None  # for testing: a fault-injecting proxy in front of every emulated board
    fresh: bool = False  # measure again what the results cache holds
    run_dir: Path | None = None  # re-run points of this run instead of starting or resuming one
    remeasure: frozenset[int] = frozenset()  # with run_dir: point numbers (1-based) to measure again


@dataclass(frozen=True)
class SweepContext:
    """What every stage of one run needs to know about the run, passed as one."""

    config: SweepConfig
    run_dir: Path
    versions: dict[str, str]  # cache.toolchain_versions: part of every point's key and row
    sha: str  # cache.harness_git_sha
    bench: BenchOptions
    progress: Say

    @property
    def run_id(self) -> str:
        return self.run_dir.name


@dataclass(frozen=True)
class PlannedPoint:
    """One (model point, kernel, board) the sweep measures."""

    index: int  # position in the sweep: the rows of results.csv are in this order
    point: ModelPoint
    kernel: str  # a weight format, or AUTO
    board: Board
    listed: bool  # a row of results.csv: the config asks for this kernel, not only the auto kernel

    @property
    def label(self) -> str:
        number = f"[{self.index + 1}]" if self.listed else "[auto candidate]"
        return f"{number} {self.point.method} sparsity {self.point.target:.2f} {self.kernel} on {self.board.name}"


Variants = dict[tuple[Path, str], CompiledModel]  # (model point's .tflite, weight format) -> compiled variant


def plan_sweep(kernels: tuple[str, ...], points: list[ModelPoint], boards: list[Board]) -> list[PlannedPoint]:
    """The points the config asks for, in results order; then the formats only the auto kernel needs.

    The auto kernel chooses among every weight format, so with it every
    format is measured at every model point and board. Formats the config
    does not ask for are measured, kept for resuming and in the results
    cache, but are not rows of results.csv: the results hold what was asked.
    """
    asked = [(point, kernel, board) for point in points for kernel in kernels for board in boards]
    needed = [
        (point, fmt, board)
        for point in points
        for fmt in (KERNEL_FORMATS if AUTO in kernels else ())
        if fmt not in kernels
        for board in boards
    ]
    return [
        PlannedPoint(index, point, kernel, board, listed=index < len(asked))
        for index, (point, kernel, board) in enumerate(asked + needed)
    ]


def compile_point(point: ModelPoint, kernel: str, layer_kernels: Mapping[int, str] | None = None) -> CompiledModel:
    """kernel: a weight format for every layer; or AUTO with layer_kernels, the format of each layer with weights."""
    tflite = point.tflite_path.read_bytes()
    choice = kernel if layer_kernels is None else f"{kernel}:{json.dumps(sorted(layer_kernels.items()))}"
    key = cache.content_hash(tflite.hex(), choice, cache.source_digest(["harness/compiler", "firmware/kernels"]))
    default = kernel if layer_kernels is None else DENSE  # with layer_kernels every layer with weights is named
    return compile_tflite(
        tflite, cache.folder("variants") / key / "model", kernel=default, model_id=key[:16], layer_kernels=layer_kernels
    )


def compile_variants(plan: list[PlannedPoint]) -> Variants:
    """Every single-format variant the plan measures, each compiled once for all boards."""
    wanted = {(p.point.tflite_path, p.kernel): p.point for p in plan if p.kernel != AUTO}
    return {(tflite, kernel): compile_point(point, kernel) for (tflite, kernel), point in wanted.items()}


def without_dense_copies(plan: list[PlannedPoint], variants: Variants) -> list[PlannedPoint]:
    """The plan less the formats only auto needs that took no layer of a point (nm on an unstructured model runs
    every layer dense): their firmware would be the dense variant's, measured again, and auto would have one more
    candidate equal to dense."""
    return [
        p
        for p in plan
        if p.listed or p.kernel in (AUTO, DENSE) or variants[p.point.tflite_path, p.kernel].runs_format(p.kernel)
    ]


def sweep_key(config: SweepConfig) -> str:
    """What makes two runs the same sweep: the whole configuration but the port."""
    values = config.to_dict()
    values["device"].pop("port")
    values.pop("farm")  # where it is measured, like the port
    return cache.content_hash(json.dumps(values, sort_keys=True, default=str))
