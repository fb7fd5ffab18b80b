"""Drive the micro-benchmark: make the single-layer models, compile every format, measure through the sweep.

Measuring goes through the sweep's own path (`orchestrator.measure_points`:
PlatformIO build and upload, the protocol client, TFLite Micro's outputs as
the reference, results cached by content hash, several emulator instances),
into <out>/board/. The tidy table, the break-even table and the plot are
made from those rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness import cache, reaper
from harness.build import require_board_tools
from harness.config import DeviceConfig, SweepConfig
from harness.device.boards import get_board
from harness.kernel_bench.models import TEST_INPUTS, bench_point
from harness.kernel_bench.plot import plot_kernel_bench
from harness.kernel_bench.shapes import LayerShape, Pruning, ShapeError, parse_pruning, parse_shape
from harness.kernel_bench.table import break_even_table, markdown_summary, variant_row, with_ratios
from harness.orchestrator import measure_points
from harness.plan import BenchOptions, SweepContext, compile_variants, plan_sweep
from harness.results import ResultRow, read_results_csv
from harness.runlog import Say
from harness.runner import board_units
from harness.toolchain import ensure_platformio_offline

KERNEL_SOURCES = ["firmware/kernels"]
# Under -icount an inference's count repeats to within a timer tick: three runs show that spread, cheaply.
DEVICE = DeviceConfig(warmup=1, runs=3, accuracy_samples=TEST_INPUTS, timeout_s=30.0)


@dataclass(frozen=True)
class BenchPlan:
    shapes: tuple[LayerShape, ...]
    prunings: tuple[Pruning, ...]
    formats: tuple[str, ...]
    board: str
    parallel: int = 2
    fresh: bool = False  # measure again what the sweep's results cache holds
    seed: int = 0


@dataclass(frozen=True)
class BenchFiles:
    csv: Path  # the tidy table
    break_even: Path  # break-even sparsities per shape and format
    summary: Path  # the figures as Markdown tables
    plots: tuple[Path, ...]
    failures: list[str]
    kernels_changed: bool  # firmware/kernels changed while the run built firmware: run it again


def make_plan(
    shapes: list[str],
    prunings: list[str],
    formats: list[str] | None,
    board: str,
    parallel: int = 2,
    fresh: bool = False,
) -> BenchPlan:
    """A plan from names as the command line gives them; dense, the reference, is always measured."""
    from harness.compiler import KERNEL_FORMATS

    formats = list(formats or KERNEL_FORMATS)
    unknown = [fmt for fmt in formats if fmt not in KERNEL_FORMATS]
    if unknown:
        raise ShapeError(f"unknown format {', '.join(unknown)}; the compiler has {', '.join(KERNEL_FORMATS)}")
    get_board(board)
    return BenchPlan(
        tuple(parse_shape(s) for s in dict.fromkeys(shapes)),
        tuple(parse_pruning(p) for p in dict.fromkeys(prunings)),
        tuple(dict.fromkeys(["dense", *formats])),
        board,
        parallel,
        fresh,
    )


def _served(cases: list, formats: tuple[str, ...], variants: dict) -> set:
    """The (model, format) variants to measure. A format that takes a shape's layer at some prunings and refuses it
    at others (nm takes N:M layers only: elsewhere the layer would run dense) is measured where it takes it; a
    format with no kernel for the op at all is measured as it runs (dense), as the tables show it."""

    def takes(point, fmt) -> bool:
        return variants[point.tflite_path, fmt].runs_format(fmt)

    served = set()
    for shape in dict.fromkeys(shape for shape, _, _ in cases):
        points = [point for s, _, point in cases if s is shape]
        for fmt in formats:
            sometimes = any(takes(point, fmt) for point in points)
            served |= {(point.tflite_path, fmt) for point in points if takes(point, fmt) or not sometimes}
    return served


def run_kernel_bench(plan: BenchPlan, out: Path, progress: Say = print) -> BenchFiles:
    board = get_board(plan.board)
    require_board_tools([board])
    ensure_platformio_offline()
    units = board_units([board], "", plan.parallel)
    reaper.start()  # what starts from here ends with this process

    kernels_before = cache.source_digest(KERNEL_SOURCES)
    cases = [
        (shape, pruning, bench_point(shape, pruning, plan.seed, progress))
        for shape in plan.shapes
        for pruning in plan.prunings
    ]
    points = [point for _, _, point in cases]
    planned = plan_sweep(plan.formats, points, [board])
    variants = compile_variants(planned)
    served = _served(cases, plan.formats, variants)
    planned = [p for p in planned if (p.point.tflite_path, p.kernel) in served]
    progress(
        f"kernels: {len(plan.shapes)} shapes x {len(plan.prunings)} prunings x {len(plan.formats)} formats "
        f"= {len(planned)} variants on {board.name} -> {out}"
    )

    run_dir = out / "board"
    run_dir.mkdir(parents=True, exist_ok=True)
    config = SweepConfig(
        name="kernel-bench",
        model="kernel-bench",
        kernels=plan.formats,
        boards=(board.name,),
        seed=plan.seed,
        device=DEVICE,
    )
    ctx = SweepContext(
        config,
        run_dir,
        cache.toolchain_versions([board]),
        cache.harness_git_sha(),
        BenchOptions(parallel=plan.parallel, fresh=plan.fresh),
        progress,
    )
    failures = measure_points(ctx, planned, variants, units)
    rows = [ResultRow(**values) for values in read_results_csv(run_dir / "results.csv").to_dict("records")]
    # PlatformIO compiles the kernels when it builds each firmware: an edit during the run mixes versions.
    kernels_changed = cache.source_digest(KERNEL_SOURCES) != kernels_before

    tidy = []
    for variant, row in zip(planned, rows, strict=True):
        shape, pruning = next((s, p) for s, p, point in cases if point is variant.point)
        tidy.append(
            variant_row(shape, pruning, variant.point, variants[variant.point.tflite_path, variant.kernel], row)
        )
    return _write_tables(with_ratios(tidy), out, plan, ctx.versions, failures, kernels_changed)


def _write_tables(
    table, out: Path, plan: BenchPlan, versions: dict, failures: list[str], kernels_changed: bool
) -> BenchFiles:
    """The tidy table, its break-even table, plots, a Markdown summary and the plan, into out."""
    csv = out / "kernels.csv"
    table.to_csv(csv, index=False)
    crossings = break_even_table(table)
    break_even = out / "break_even.csv"
    crossings.to_csv(break_even, index=False)
    plots = plot_kernel_bench(table, crossings, out / "kernels")
    summary = out / "summary.md"
    summary.write_text(markdown_summary(table, crossings))
    (out / "plan.json").write_text(
        json.dumps(
            {
                "shapes": [s.name for s in plan.shapes],
                "prunings": [p.label for p in plan.prunings],
                "formats": list(plan.formats),
                "board": plan.board,
                "seed": plan.seed,
                "versions": versions,
                "kernels_changed_during_run": kernels_changed,
            },
            indent=1,
        )
        + "\n"
    )
    return BenchFiles(csv, break_even, summary, plots, failures, kernels_changed)
