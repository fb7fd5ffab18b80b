"""Run a sweep: its stages in order, each in its own module (docs/design.md draws them).

The sweep is the cross product (model point x kernel x board). Each stage
caches its artifact under a content hash (harness/cache.py), so an
identical re-run retrains nothing and rebuilds no firmware. The auto kernel
picks a weight format per layer from measurements (harness/auto.py), so it
is compiled and measured in a second phase, after every single format. A
point that fails on the board becomes a result row with its stage
(harness/stages.py) and reason; errors that would fail every point (a
config typo, a missing toolchain, an op the compiler lacks) stop the sweep
before any board is touched.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

from harness import cache, reaper
from harness.auto import auto_job
from harness.build import Firmware, build_firmware, require_board_tools
from harness.chooser import AUTO
from harness.compiler.budget import check_fits
from harness.config import SweepConfig
from harness.device.boards import Board, get_board
from harness.device.farm import Farm, holder_name
from harness.device.faults import FaultInjector
from harness.device.measure import Bench, measure_point
from harness.model_source import TfliteModel, TrainableModel, resolve_model
from harness.plan import (
    BenchOptions,
    PlannedPoint,
    SweepContext,
    Variants,
    compile_variants,
    plan_sweep,
    sweep_key,
    without_dense_copies,
)
from harness.points import PointKeys, Variant, on_board, summary
from harness.pointstore import PointStore, RunLock, mark_finished, open_run
from harness.prepare import prepare_models
from harness.results import ResultRow, ResultsWriter
from harness.runlog import Progress, RunLog, Say
from harness.runner import BoardUnit, Job, board_units, farm_units, run_jobs
from harness.toolchain import ensure_platformio_offline

__all__ = ["BenchOptions", "SweepFailed", "measure_points", "run_sweep"]


class SweepFailed(RuntimeError):
    def __init__(self, failed: int, total: int, first: str, run_dir: Path):
        super().__init__(f"{failed} of {total} points failed (rows kept in {run_dir}/results.csv); first: {first}")
        self.run_dir = run_dir


def run_sweep(
    config: SweepConfig, results_root: Path, progress: Say = print, bench: BenchOptions = BenchOptions()
) -> Path:
    """Run a whole sweep, or resume it if an earlier run of the same sweep was cut short; return its run directory.

    A board named twice in config.boards is measured on by two instances, not twice.
    """
    boards = [get_board(name) for name in dict.fromkeys(config.boards)]
    source = resolve_model(config)
    require_board_tools(boards)
    on_farm = bool(config.farm.address)
    units = (
        [] if on_farm else board_units([get_board(name) for name in config.boards], config.device.port, bench.parallel)
    )
    reaper.start()  # the inputs are good: from here on processes start, and they end with this one
    ensure_platformio_offline()

    if bench.run_dir:
        run_dir, resumed, owner = bench.run_dir, True, RunLock(bench.run_dir)
    else:
        run_dir, resumed, owner = open_run(results_root, config.name, sweep_key(config))
    with ExitStack() as farm_session:
        farm_session.callback(owner.release)
        if on_farm:
            farm = farm_session.enter_context(Farm(config.farm.address, holder_name(run_dir)))
            if released := farm.release_held():
                progress(f"farm: released {', '.join(released)}, left held by an earlier run of this sweep")
            units = farm_units(farm, boards, config.farm.points_per_turn)
            progress(f"farm {farm.address}: {len(units)} places to measure on, as {farm.holder}")
        ctx = SweepContext(config, run_dir, cache.toolchain_versions(boards), cache.harness_git_sha(), bench, progress)
        if not resumed:
            _write_manifest(ctx)
        return _run_stages(ctx, source, boards, units, resumed)


def _run_stages(
    ctx: SweepContext, source: TrainableModel | TfliteModel, boards: list[Board], units: list[BoardUnit], resumed: bool
) -> Path:
    models = (
        "the given int8 model as it is (no pruning: 'targets' do not apply)"
        if isinstance(source, TfliteModel)
        else f"{len(ctx.config.prune.methods)} pruning methods x {len(ctx.config.targets)} sparsity targets"
    )
    ctx.progress(
        f"run {ctx.run_id}{' (resumed)' if resumed else ''}: {ctx.config.model}: {models} x "
        f"{len(ctx.config.kernels)} kernels x {len(boards)} boards -> {ctx.run_dir}"
    )

    points = prepare_models(ctx.config, source, ctx.progress)
    plan = plan_sweep(ctx.config.kernels, points, boards)
    variants = compile_variants(plan)  # an op the compiler lacks fails the sweep here, before any board
    plan = without_dense_copies(plan, variants)
    ctx.progress(f"compiled {len(variants)} variants")
    failures = measure_points(ctx, plan, variants, units)
    writer = ResultsWriter(ctx.run_dir)
    frame = writer.finish()

    from harness.report import report_runs

    ctx.progress(f"report: {report_runs([ctx.run_dir], ctx.run_dir).html}")
    # Only now: a run killed while its table or report was written is unfinished, and running it again
    # (every point reused) writes them.
    mark_finished(ctx.run_dir)
    ctx.progress(f"results: {writer.csv_path} and {writer.parquet_path} ({len(frame)} rows)")
    if failures:
        raise SweepFailed(len(failures), sum(p.listed for p in plan), failures[0], ctx.run_dir)
    return ctx.run_dir


def _write_manifest(ctx: SweepContext) -> None:
    manifest = {
        "run_id": ctx.run_id,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "harness_sha": ctx.sha,
        "versions": ctx.versions,
        "config": ctx.config.to_dict(),
        "sweep_key": sweep_key(ctx.config),
    }
    cache.write_atomically(ctx.run_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")


def measure_points(
    ctx: SweepContext, plan: list[PlannedPoint], variants: Variants, units: list[BoardUnit]
) -> list[str]:
    """Build and measure every planned point this run does not have yet; returns the failures.

    Two phases: every single format, then the auto kernel, whose choice per
    layer needs its candidates measured. A point measured before (by this
    run, or by any run through the results cache) is taken as it is, unless
    it is to be measured again.
    """
    store = PointStore(ctx.run_dir, cache.folder("results"))
    log = RunLog(ctx.run_dir / "run.jsonl")
    keys = PointKeys(ctx, store, log)
    measuring = _Measuring(ctx, log, store, units)
    try:
        jobs = [keys.job(p, variants[p.point.tflite_path, p.kernel]) for p in plan if p.kernel != AUTO]
        measuring.phase("formats", jobs)
        autos = [p for p in plan if p.kernel == AUTO]
        if autos:
            measuring.phase("auto kernel", [auto_job(p, plan, variants, keys) for p in autos])
    finally:
        log.event("stopped" if measuring.stop.is_set() else "all_measured", counts=dict(log.counts))
        log.close()
    return [
        f"[{number}] {row.prune_method} sparsity {row.target_sparsity:.2f} {row.kernel} on {row.board}: "
        f"{row.failed_stage}: {row.error}"
        for number, row in enumerate(store.rows(), start=1)
        if row.status != "ok"
    ]


class _Measuring:
    """One run's build, measure and finish steps (runner.Steps), as harness/runner.py calls them from its
    threads; one phase at a time."""

    def __init__(self, ctx: SweepContext, log: RunLog, store: PointStore, units: list[BoardUnit]):
        self.ctx, self.log, self.store, self.units = ctx, log, store, units
        self.stop = threading.Event()
        self._bar = Progress(0, ctx.progress)  # each phase its own
        self.faults = FaultInjector(ctx.bench.faults, log.event) if ctx.bench.faults else None
        for unit in units:
            if unit.lease is not None:
                unit.lease.on_event = log.event

    def phase(self, name: str, jobs: list[Job | ResultRow | None]) -> None:
        """Measure the jobs; None stands for a point measured before, a row for one failed before a job."""
        todo = [job for job in jobs if isinstance(job, Job)]
        reused = jobs.count(None)
        named = "" if name == "formats" else f"{name}: "
        boards = ", ".join(unit.name for unit in self.units)
        self.ctx.progress(
            f"{named}{len(todo)} points to measure on {len(self.units)} boards ({boards})"
            + (f", {reused} measured before" if reused else "")
        )
        self.log.event("measuring", phase=name, points=len(todo), reused=reused, boards=[u.name for u in self.units])
        self._bar = Progress(len(todo), self.ctx.progress)
        run_jobs(todo, self.units, self, self.stop)

    def build(self, job: Job) -> Firmware:
        variant: Variant = job.work
        check_fits(variant.compiled, job.board.name)  # too big for the board: fails by how much, before building
        firmware = build_firmware(
            job.board.name, variant.compiled.out_dir, variant.firmware_dir, build_id=variant.firmware_dir.name[:16]
        )
        self.log.event("built", point=job.index + 1, seconds=round(firmware.seconds, 2), rebuilt=firmware.rebuilt)
        return firmware

    def measure(self, job: Job, unit: BoardUnit, firmware: Firmware) -> ResultRow:
        started = time.monotonic()
        bench = Bench(
            self.ctx.config.device, self.log.bound(point=job.index + 1, board=unit.name), self.stop, self.faults
        )
        row = measure_point(on_board(job, firmware, self.ctx.run_dir), unit, bench)
        self.log.event(
            "measured",
            point=job.index + 1,
            board=unit.name,
            place=row.place,
            seconds=round(time.monotonic() - started, 2),
        )
        return row

    def finish(self, job: Job, row: ResultRow) -> None:
        self.store.save(job.index, job.key, row, listed=job.work.planned.listed)
        self.log.event("point_done", point=job.index + 1, key=job.key, status=row.status, error=row.error)
        self._bar.point_finished(f"{job.label}: {summary(row)}")
