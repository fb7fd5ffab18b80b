"""Plan a sweep and drive it stage by stage: prune, quantize, compile, build, run, record.

The sweep is the cross product (sparsity target x kernel x board). Each stage
caches its artifact under a content hash, so an identical re-run retrains
nothing and rebuilds no firmware. The auto kernel picks a weight format per
layer from measurements (harness/chooser.py), so it is compiled and
measured in a second phase, after every single format. A point that fails
on the board becomes a result row with its stage and reason; errors that
would fail every point (a config typo, a missing toolchain, an op the
compiler lacks) stop the sweep before any board is touched.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import threading
import time
from contextlib import ExitStack
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Callable

import numpy as np

from harness import reaper
from harness.build import PROJECT_DIR, BuildError, Firmware, build_firmware, require_platform
from harness.chooser import AUTO, DENSE, Choice, ChooserError, choose, layer_options
from harness.compiler import KERNEL_FORMATS, CompiledModel, CompileError, compile_tflite
from harness.config import SweepConfig
from harness.device.boards import Board, get_board
from harness.device.client import BoardClient, BoardReset, WrongFirmware
from harness.device.faults import FaultInjector, FaultPlan
from harness.device.link import DeviceError, Interrupted, LinkLost, SerialTimeout
from harness.device.farm import KEEPALIVE_S, LOST_CHECK_S, Farm, holder_name
from harness.device.gdb_remote import FlashError
from harness.device.session import board_session, place_session
from harness.model_source import TfliteModel, TrainableModel, resolve_model
from harness.pointstore import KEPT_FAILURES, PointStore, RunLock, mark_finished, open_run
from harness.quantize import QuantParams
from harness.results import ResultRow, ResultsWriter, record_latency_per_mac, record_layer_flash, record_scores
from harness.scoring import SCORES, headline, score
from harness.runlog import Progress as ProgressBar
from harness.runlog import RunLog
from harness.runner import BoardUnit, Job, Requeue, board_units, farm_units, run_jobs
from harness.toolchain import ensure_platformio_offline, require_tool

CACHE_DIR = PROJECT_DIR / ".cache"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ModelPoint:
    """One pruned, int8-quantized model and what the host knows about it."""
    method: str                    # pruning method, e.g. "magnitude/gradual"; "none" for a given .tflite
    target: float
    achieved_sparsity: float       # on the int8 weights: zero or removed share of the pruned layers' weights
    layer_sparsity: dict           # layer -> {"target", "achieved", "weights"}, achieved on the int8 weights
    train_epochs: int              # training spent reaching this point from the previous one on the path
    train_seconds: float           # (the first point's includes the dense training)
    tflite_path: Path
    task: str                      # harness/scoring.py: what the scores measure
    float_scores: dict             # e.g. {"accuracy": 0.98}, {"mse": 0.01, "auc": 0.9}; {} for a given .tflite
    int8_scores: dict              # TFLite Micro's interpreter on the host
    inputs_path: Path              # int8 test inputs (shared by all points)
    labels_path: Path              # targets: class numbers, or what the outputs reconstruct
    reference_path: Path           # TFLite Micro's outputs for those inputs
    anomaly_path: Path | None = None  # reconstruction: 1 per anomalous test sample


@dataclass(frozen=True)
class BenchOptions:
    """How a sweep uses the bench (none of it changes a result)."""
    parallel: int = 1              # instances of each emulated board measuring at once
    faults: FaultPlan | None = None  # for testing: a fault-injecting proxy in front of every emulated board
    fresh: bool = False            # measure again what the results cache holds
    run_dir: Path | None = None    # re-run points of this run instead of starting or resuming one
    remeasure: frozenset[int] = frozenset()  # with run_dir: point numbers (1-based) to measure again


def run_sweep(config: SweepConfig, results_root: Path, progress: Progress = print,
              bench: BenchOptions = BenchOptions()) -> Path:
    """Run a whole sweep, or resume it if an earlier run of the same sweep was cut short; return its run directory.

    A board named twice in config.boards is measured on by two instances, not twice.
    """
    boards = [get_board(name) for name in dict.fromkeys(config.boards)]
    source = resolve_model(config)
    for board in boards:
        for tool, package in board.needs:
            require_tool(tool, package)
        require_platform(board.name)
    on_farm = bool(config.farm.address)
    units = [] if on_farm else board_units([get_board(name) for name in config.boards], config.device.port,
                                           bench.parallel)
    reaper.start()  # the inputs are good: from here on processes start, and they end with this one
    ensure_platformio_offline(PROJECT_DIR)

    if bench.run_dir:
        run_dir, resumed, owner = bench.run_dir, True, RunLock(bench.run_dir)
    else:
        run_dir, resumed, owner = open_run(results_root, config.name, _sweep_key(config))
    with ExitStack() as farm_session:
        farm_session.callback(owner.release)
        if on_farm:
            farm = farm_session.enter_context(Farm(config.farm.address, holder_name(run_dir)))
            if released := farm.release_held():
                progress(f"farm: released {', '.join(released)}, left held by an earlier run of this sweep")
            units = farm_units(farm, boards, config.farm.points_per_turn)
            progress(f"farm {farm.address}: {len(units)} places to measure on, as {farm.holder}")
        return _run_sweep(config, source, boards, units, run_dir, resumed, progress, bench)


def _run_sweep(config: SweepConfig, source, boards: list[Board], units: list[BoardUnit], run_dir: Path,
               resumed: bool, progress: Progress, bench: BenchOptions) -> Path:
    run_id = run_dir.name
    versions = toolchain_versions(boards)
    sha = harness_git_sha()
    if not resumed:
        _write_manifest(run_dir, config, run_id, versions, sha)
    models = ("the given int8 model as it is (no pruning: 'targets' do not apply)" if isinstance(source, TfliteModel)
              else f"{len(config.prune.methods)} pruning methods x {len(config.targets)} sparsity targets")
    progress(f"run {run_id}{' (resumed)' if resumed else ''}: {config.model}: {models} x {len(config.kernels)} "
             f"kernels x {len(boards)} boards -> {run_dir}")

    points = prepare_models(config, source, progress)
    plan = plan_sweep(config.kernels, points, boards)
    # Compile every variant before touching a board: an op the compiler lacks fails the sweep here. (The auto
    # kernel's variants are compiled once their candidates are measured.)
    variants = {(point.tflite_path, kernel): compile_point(point, kernel)
                for point in points for kernel in dict.fromkeys(p.kernel for p in plan if p.kernel != AUTO)}
    progress(f"compiled {len(variants)} variants")
    total = sum(p.listed for p in plan)
    failures = measure_points(config, plan, variants, units, run_dir, versions, sha, bench, progress)
    writer = ResultsWriter(run_dir)
    frame = writer.finish()

    from harness.report import report_runs
    progress(f"report: {report_runs([run_dir], run_dir).html}")
    # Only now: a run killed while its table or report was written is unfinished, and running it again
    # (every point reused) writes them.
    mark_finished(run_dir)
    progress(f"results: {writer.csv_path} and {writer.parquet_path} ({len(frame)} rows)")
    if failures:
        raise SweepFailed(len(failures), total, failures[0], run_dir)
    return run_dir


class SweepFailed(RuntimeError):
    def __init__(self, failed: int, total: int, first: str, run_dir: Path):
        super().__init__(f"{failed} of {total} points failed (rows kept in {run_dir}/results.csv); first: {first}")


# --- stage: prune + quantize ---------------------------------------------------------------------

def prepare_models(config: SweepConfig, source: TrainableModel | TfliteModel, progress: Progress) -> list[ModelPoint]:
    """Per pruning method: train and prune along one path, convert each snapshot to int8; cached by content.

    Each method has its own cache entry, so adding a method to a sweep retrains only that method.
    """
    # A cache entry written for another ModelPoint record would not load: the record is part of the key.
    record = ",".join(f.name for f in fields(ModelPoint))
    if isinstance(source, TfliteModel):
        key = content_hash(source.digest, record, source_digest(["harness/quantize.py", "harness/scoring.py"]))
        return _cached_points(key, lambda out: _import_tflite(source, out, progress), progress)
    code = source_digest(["harness/prune", "harness/quantize.py", "harness/scoring.py", "models"]) + record
    prune = {k: v for k, v in config.to_dict()["prune"].items() if k != "methods"}
    points = []
    for method in config.prune.methods:
        key = content_hash(json.dumps({"model": source.digest, "seed": config.seed, "prune": prune, "method": method,
                                "targets": sorted(config.targets)}), code)
        points += _cached_points(key, lambda out, m=method: _prune_and_convert(source, config, m, out, progress),
                                 progress)
    return points


def _cached_points(key: str, make: Callable[[Path], list[ModelPoint]], progress: Progress) -> list[ModelPoint]:
    cache = CACHE_DIR / "models" / key
    index = cache / "points.json"
    if index.exists():
        progress(f"models: cached ({cache})")
        return [_point_from_json(p, cache) for p in json.loads(index.read_text())]
    tmp = cache.with_name(key + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        points = make(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed import leaves nothing behind
        raise
    (tmp / "points.json").write_text(json.dumps([_point_to_json(p) for p in points], indent=1))
    shutil.rmtree(cache, ignore_errors=True)
    tmp.rename(cache)  # atomic: a killed run never leaves a half-written cache entry
    return [_point_from_json(_point_to_json(p), cache) for p in points]


def _prune_and_convert(source: TrainableModel, config: SweepConfig, method_name: str, out: Path,
                       progress: Progress) -> list[ModelPoint]:
    progress(f"models: {method_name}: importing TensorFlow, training and pruning (the first run of a config only)")
    from harness import quantize
    from harness.prune import export_model, int8_layer_sparsity, parse_method, prune_sweep, total_sparsity

    data = source.spec.load_data()
    model = source.spec.build(config.seed)
    method = parse_method(method_name)
    points = []
    for snapshot in prune_sweep(model, data, config.targets, config.prune, method, config.seed, progress):
        exported = export_model(model, snapshot)
        tflite = quantize.to_int8_tflite(exported, data.x_train)
        layers = int8_layer_sparsity(tflite, snapshot, exported)
        points.append(ModelPoint(method=method.name, target=snapshot.target, achieved_sparsity=total_sparsity(layers),
                                 layer_sparsity=layers, train_epochs=snapshot.epochs, train_seconds=snapshot.seconds,
                                 float_scores=snapshot.float_scores,
                                 **_save_point(out, f"{method.name}-sparsity-{snapshot.target:.3f}", tflite, data)))
        progress(f"{method.name} sparsity {snapshot.target:.2f}: int8 on the host "
                 f"{headline(points[-1].int8_scores)}")
    return points


def _import_tflite(source: TfliteModel, out: Path, progress: Progress) -> list[ModelPoint]:
    from harness.compiler import read_tflite

    tflite = source.path.read_bytes()
    sparsity = read_tflite(tflite).weight_sparsity()
    progress(f"models: {source.path} taken as it is (int8, {sparsity:.1%} of its weights are zero)")
    return [ModelPoint(method="none", target=round(sparsity, 3), achieved_sparsity=sparsity, layer_sparsity={},
                       train_epochs=0, train_seconds=0.0, float_scores={},
                       **_save_point(out, f"given-sparsity-{sparsity:.3f}", tflite, source.data))]


def _save_point(out: Path, name: str, tflite: bytes, data) -> dict:
    """Write one model point's files: the .tflite, the int8 test inputs (data.x_test quantized with the model's
    input scale, or taken as they are when already int8), the targets and TFLite Micro's outputs. Returns the
    ModelPoint fields they give: the paths, the task and its scores on the host."""
    from harness import quantize

    name = name.replace("/", "-").replace(":", "of")  # a method name becomes part of a file name
    input_quant, output_quant = quantize.io_quant_params(tflite)
    inputs = data.x_test if data.x_test.dtype == np.int8 else input_quant.quantize(data.x_test)
    np.save(out / f"{name}.inputs.npy", inputs)
    np.save(out / "labels.npy", data.y_test)
    anomaly_path = None
    if data.anomaly_test is not None:
        anomaly_path = out / "anomaly.npy"
        np.save(anomaly_path, data.anomaly_test)
    reference = quantize.run_tflite_micro(tflite, inputs)
    np.save(out / f"{name}.reference.npy", reference)
    (out / f"{name}.tflite").write_bytes(tflite)
    return {"tflite_path": out / f"{name}.tflite", "inputs_path": out / f"{name}.inputs.npy",
            "labels_path": out / "labels.npy", "reference_path": out / f"{name}.reference.npy",
            "anomaly_path": anomaly_path, "task": data.task,
            "int8_scores": score(data.task, output_quant.dequantize(reference), data.y_test, data.anomaly_test)}


def _point_to_json(point: ModelPoint) -> dict:
    return {k: (v.name if isinstance(v, Path) else v) for k, v in point.__dict__.items()}


def _point_from_json(values: dict, cache: Path) -> ModelPoint:
    return ModelPoint(**{k: (cache / v if k.endswith("_path") and v is not None else v) for k, v in values.items()})


# --- plan -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlannedPoint:
    """One (model point, kernel, board) the sweep measures."""
    index: int          # position in the sweep: the rows of results.csv are in this order
    point: ModelPoint
    kernel: str         # a weight format, or AUTO
    board: Board
    listed: bool        # a row of results.csv: the config asks for this kernel, not only the auto kernel

    @property
    def label(self) -> str:
        number = f"[{self.index + 1}]" if self.listed else "[auto candidate]"
        return f"{number} {self.point.method} sparsity {self.point.target:.2f} {self.kernel} on {self.board.name}"


def plan_sweep(kernels: tuple[str, ...], points: list[ModelPoint], boards: list[Board]) -> list[PlannedPoint]:
    """The points the config asks for, in results order; then the formats only the auto kernel needs.

    The auto kernel chooses among every weight format, so with it every
    format is measured at every model point and board. Formats the config
    does not ask for are measured, kept for resuming and in the results
    cache, but are not rows of results.csv: the results hold what was asked.
    """
    asked = [(point, kernel, board) for point in points for kernel in kernels for board in boards]
    needed = [(point, fmt, board) for point in points for fmt in (KERNEL_FORMATS if AUTO in kernels else ())
              if fmt not in kernels for board in boards]
    return [PlannedPoint(index, point, kernel, board, listed=index < len(asked))
            for index, (point, kernel, board) in enumerate(asked + needed)]


# --- stage: compile ------------------------------------------------------------------------------

def compile_point(point: ModelPoint, kernel: str, layer_kernels: Mapping[int, str] | None = None) -> CompiledModel:
    """kernel: a weight format for every layer; or AUTO with layer_kernels, the format of each layer with weights."""
    tflite = point.tflite_path.read_bytes()
    choice = kernel if layer_kernels is None else f"{kernel}:{json.dumps(sorted(layer_kernels.items()))}"
    key = content_hash(tflite.hex(), choice, source_digest(["harness/compiler", "firmware/kernels"]))
    default = kernel if layer_kernels is None else DENSE  # with layer_kernels every layer with weights is named
    return compile_tflite(tflite, CACHE_DIR / "variants" / key / "model", kernel=default, model_id=key[:16],
                          layer_kernels=layer_kernels)


def _record_compiled(row: ResultRow, compiled) -> None:
    flash = compiled.flash
    row.flash_weights_dense = flash["dense_weights"]
    row.flash_sparse_values = flash["sparse_values"]
    row.flash_sparse_indices = flash["sparse_indices"]
    row.flash_sparse_pointers = flash["sparse_pointers"]
    row.flash_bias_quant = flash["biases_and_quant"]
    row.sram_arena = compiled.arena_bytes
    row.layer_formats = json.dumps({f"{layer.index}:{layer.op}": layer.format
                                    for layer in compiled.layers if layer.format})


def choose_auto(planned: PlannedPoint, candidates: dict[str, tuple[CompiledModel, ResultRow]],
                flash_budget: int) -> tuple[Choice, dict[str, str]]:
    """The auto kernel's per-layer formats for a point on a board, from its candidates: format -> (compiled
    variant, measured row); and the formats left out, with why.

    A format whose outputs differ from TFLite Micro's, or that does not fit
    the board, is no candidate and is left out. One that could not be
    measured (its build or run failed) leaves the choice open, so there is
    none: the auto point fails, and is chosen again when the sweep resumes
    and measures that format again. Dense is the reference and is never left out.
    """
    unmeasured = [f"{fmt}: {row.failed_stage}: {row.error}" for fmt, (_, row) in candidates.items()
                  if row.status != "ok" and (row.failed_stage not in KEPT_FAILURES or fmt == DENSE)]
    if unmeasured:
        raise ChooserError(f"the auto kernel chooses from every format measured on {planned.board.name}, and "
                           f"{len(unmeasured)} could not be: {'; '.join(unmeasured)}")
    left_out = {fmt: row.error for fmt, (_, row) in candidates.items() if row.status != "ok"}
    kept = {fmt: candidate for fmt, candidate in candidates.items() if fmt not in left_out}
    options = layer_options({fmt: compiled for fmt, (compiled, _) in kept.items()},
                            {fmt: json.loads(row.layer_latency) for fmt, (_, row) in kept.items()})
    return choose(options, flash_budget or None), left_out


# --- stages: build + run on the board ------------------------------------------------------------

MAX_POINT_ATTEMPTS = 5  # sessions per point: a board that reset or dropped off is flashed and measured again
FARM_RETRY_PAUSE_S = 2.0  # after a farm place was lost, before the point is queued again
# Code whose change invalidates firmware, or measured results, of earlier runs (the harness version).
FIRMWARE_CODE = ["firmware/src", "firmware/boards", "firmware/platform", "firmware/build_info.py",
                 "firmware/model_sources.py", "firmware/kernel_sources.py", "platformio.ini"]
MEASURING_CODE = FIRMWARE_CODE + ["harness/device", "harness/build.py", "harness/sweep.py", "harness/results.py"]
_RETRIED = (BoardReset, LinkLost, SerialTimeout, WrongFirmware, BuildError, FlashError)  # failures a new session may cure


def measure_points(config: SweepConfig, plan: list[PlannedPoint], variants: dict, units: list[BoardUnit],
                   run_dir: Path, versions: dict, sha: str, bench: BenchOptions, progress: Progress) -> list[str]:
    """Build and measure every planned point this run does not have yet; returns the failures.

    Two phases: every single format, then the auto kernel, whose choice per
    layer needs its candidates measured. A point measured before (by this
    run, or by any run through the results cache) is taken as it is, unless
    it is to be measured again.
    """
    store = PointStore(run_dir, CACHE_DIR / "results")
    log = RunLog(run_dir / "run.jsonl")
    keys = _PointKeys(config, run_dir, versions, sha, bench, store, log)
    stop = threading.Event()
    faults = FaultInjector(bench.faults, log.event) if bench.faults else None
    for unit in units:
        if unit.lease is not None:
            unit.lease.on_event = log.event

    def build(job: Job) -> Firmware:
        _, compiled, firmware_dir = job.work
        # Budget check: a model too big for the board's flash or RAM fails here, by how much, before building.
        from harness.compiler.budget import check_fits
        check_fits(compiled, job.board.name)
        firmware = build_firmware(job.board.name, compiled.out_dir, firmware_dir, build_id=firmware_dir.name[:16])
        log.event("built", point=job.index + 1, seconds=round(firmware.seconds, 2), rebuilt=firmware.rebuilt)
        return firmware

    def measure(job: Job, unit: BoardUnit, firmware: Firmware) -> ResultRow:
        started = time.monotonic()
        row = measure_point(job, unit, firmware, config, run_dir, log.bound(point=job.index + 1, board=unit.name),
                            stop, faults)
        log.event("measured", point=job.index + 1, board=unit.name, place=row.place,
                  seconds=round(time.monotonic() - started, 2))
        return row

    def run_phase(phase: str, jobs: list[Job], reused: int) -> None:
        named = "" if phase == "formats" else f"{phase}: "
        progress(f"{named}{len(jobs)} points to measure on {len(units)} boards ({', '.join(u.name for u in units)})"
                 + (f", {reused} measured before" if reused else ""))
        log.event("measuring", phase=phase, points=len(jobs), reused=reused, boards=[u.name for u in units])
        bar = ProgressBar(len(jobs), progress)

        def finish(job: Job, row: ResultRow) -> None:
            store.save(job.index, job.key, row, listed=job.work[0].listed)
            log.event("point_done", point=job.index + 1, key=job.key, status=row.status, error=row.error)
            bar.point_finished(f"{job.label}: {_summary(row)}")

        run_jobs(jobs, units, build, measure, finish, stop)

    try:
        jobs = [keys.job(p, variants[p.point.tflite_path, p.kernel]) for p in plan if p.kernel != AUTO]
        run_phase("formats", [job for job in jobs if job], jobs.count(None))
        autos = [p for p in plan if p.kernel == AUTO]
        if autos:
            jobs = [_auto_job(p, plan, variants, keys, config, log, progress) for p in autos]
            run_phase("auto kernel", [job for job in jobs if isinstance(job, Job)], jobs.count(None))
    finally:
        log.event("stopped" if stop.is_set() else "all_measured", counts=dict(log.counts))
        log.close()
    return [f"[{number}] {row.prune_method} sparsity {row.target_sparsity:.2f} {row.kernel} on {row.board}: "
            f"{row.failed_stage}: {row.error}" for number, row in enumerate(store.rows(), start=1) if row.status != "ok"]


def _auto_job(planned: PlannedPoint, plan: list[PlannedPoint], variants: dict, keys: _PointKeys,
              config: SweepConfig, log: RunLog, progress: Progress) -> Job | ResultRow | None:
    """The auto variant of a point as a job; None if measured before; the failed row if no choice can be made."""
    candidates = {p.kernel: p for p in plan if p.point is planned.point and p.board is planned.board
                  and p.kernel in KERNEL_FORMATS}
    measured = {fmt: (variants[p.point.tflite_path, fmt], keys.store.row(keys.key_of[p.index])) for fmt, p in
                candidates.items()}
    try:
        choice, left_out = choose_auto(planned, measured, config.flash_budget)
        compiled = compile_point(planned.point, AUTO, choice.formats)
    except (ChooserError, CompileError) as err:
        stage = "choose" if isinstance(err, ChooserError) else "compile"
        key = content_hash(AUTO, *(keys.key_of[p.index] for p in candidates.values()), str(config.flash_budget))
        row = keys.row(planned, None).fail(stage, err)
        keys.store.save(planned.index, key, row)
        log.event("point_done", point=planned.index + 1, key=key, status="error", error=str(err))
        progress(f"{planned.label}: {_summary(row)}")
        return row
    log.event("auto_chosen", point=planned.index + 1, board=planned.board.name, target=planned.point.target,
              method=planned.point.method, flash_budget=config.flash_budget, layers=choice.to_json(),
              left_out=left_out)
    notes = "; ".join(f"{fmt} left out: {error}" for fmt, error in left_out.items())
    progress(f"{planned.label}: {choice.describe()}" + (f"; {notes}" if notes else ""))
    return keys.job(planned, compiled, notes)


class _PointKeys:
    """What a point's result depends on, hashed into its key; and the job for a point not measured before."""

    def __init__(self, config: SweepConfig, run_dir: Path, versions: dict, sha: str, bench: BenchOptions,
                 store: PointStore, log: RunLog):
        self.config, self.run_id, self.versions, self.sha, self.bench = config, run_dir.name, versions, sha, bench
        self.store, self.log = store, log
        self.key_of: dict[int, str] = {}   # planned index -> key
        self.measuring = content_hash(version("sparse-mcu-bench"), source_digest(MEASURING_CODE), json.dumps(versions),
                               json.dumps({k: v for k, v in dataclasses.asdict(config.device).items()
                                           if k not in ("port", "timeout_s")}))

    def row(self, planned: PlannedPoint, compiled) -> ResultRow:
        """A point's row with its configuration and everything known before it runs on a board."""
        point, board = planned.point, planned.board
        row = ResultRow(run_id=self.run_id, model=self.config.model, target_sparsity=point.target,
                        kernel=planned.kernel, board=board.name, core=board.core, prune_method=point.method,
                        task=point.task, achieved_sparsity=point.achieved_sparsity,
                        layer_sparsity=json.dumps(point.layer_sparsity), harness_sha=self.sha,
                        versions=json.dumps(self.versions))
        record_scores(row, "float", point.float_scores)
        record_scores(row, "int8_host", point.int8_scores)
        if compiled is not None:
            _record_compiled(row, compiled)
        return row

    def job(self, planned: PlannedPoint, compiled, notes: str = "") -> Job | None:
        """The point as a job; None if it was measured before, and then its row goes straight to the store."""
        row = self.row(planned, compiled)
        row.notes = notes
        key = content_hash(self.measuring, planned.board.name, compiled.out_dir.parent.name, _file_digest(planned.point),
                    json.dumps({k: v for k, v in dataclasses.asdict(row).items() if k not in ("run_id", "harness_sha")}))
        self.key_of[planned.index] = key
        firmware_dir = _firmware_cache_dir(compiled, planned.board.name, self.versions)
        earlier = None if planned.index + 1 in self.bench.remeasure else (
            self.store.finished(key) or (None if self.bench.fresh else self.store.cached(key)))
        if earlier is None:
            return Job(planned.index, key, planned.label, planned.board, row, (planned, compiled, firmware_dir))
        self.store.save(planned.index, key, dataclasses.replace(earlier, run_id=row.run_id, harness_sha=self.sha,
                                                                firmware_rebuilt=False), listed=planned.listed)
        self.log.event("point_reused", point=planned.index + 1, key=key, label=planned.label)
        return None


def measure_point(job: Job, unit: BoardUnit, firmware: Firmware, config: SweepConfig, run_dir: Path,
                  on_event: Callable[..., None], stop: threading.Event, faults: FaultInjector | None) -> ResultRow:
    """Measure one point on one board, from a fresh session each attempt; a half-measured attempt is discarded."""
    planned, compiled, _ = job.work
    point = planned.point
    log = run_dir / "logs" / f"{job.board.name}-{job.row.kernel}-{point.tflite_path.stem}.serial.log"
    log.parent.mkdir(exist_ok=True)
    for attempt in range(1, MAX_POINT_ATTEMPTS + 1):
        row = dataclasses.replace(job.row, firmware_rebuilt=firmware.rebuilt, flash_total=firmware.flash_bytes,
                                  flash_code=firmware.flash_bytes - compiled.table_bytes,
                                  sram_static=firmware.static_ram_bytes, place=unit.name)
        record_layer_flash(row, compiled, firmware.kernel_code)
        lease = unit.lease
        try:
            if lease is None:
                session = board_session(unit.board, firmware, log, config.device.timeout_s, unit.port, on_event,
                                        stop, faults)
            else:
                session = place_session(lease, unit.board, firmware, log, config.device.timeout_s, on_event, stop)
            with session as client:
                if lease is not None:
                    row.place = lease.place
                run_on_board(row, client, point, compiled, config)
            return row
        except Interrupted:
            raise
        except (DeviceError, BuildError) as err:
            final = attempt == MAX_POINT_ATTEMPTS or not isinstance(err, _RETRIED)
            # On a farm, first ask whether the place's host went away (or the coordinator): not the point's
            # fault, and no row. Before a failure is recorded, long enough for a hung host to be noticed.
            if lease is not None and isinstance(err, DeviceError) and lease.lost(KEEPALIVE_S if final else
                                                                                  LOST_CHECK_S, stop):
                on_event("place_lost", place=lease.place, error=str(err))
                lease.give_back()
                stop.wait(FARM_RETRY_PAUSE_S)
                raise Requeue(str(err)) from None
            on_event("attempt_failed", attempt=attempt, error=str(err))
            if final:
                return row.fail("run", err)
    raise AssertionError("not reached")


def run_on_board(row: ResultRow, client: BoardClient, point: ModelPoint, compiled, config: SweepConfig) -> None:
    """Fill the row's measured columns from a board whose handshake showed the right firmware."""
    hello = client.info
    row.latency_unit, row.timing_source, row.clock_hz = hello.timer_unit, hello.timer_source, hello.clock_hz

    inputs = np.load(point.inputs_path)
    targets = np.load(point.labels_path)
    anomaly = np.load(point.anomaly_path) if point.anomaly_path is not None else None
    reference = np.load(point.reference_path)
    count = len(inputs) if config.device.accuracy_samples == 0 else min(config.device.accuracy_samples, len(inputs))
    outputs = np.stack([np.frombuffer(client.infer(inputs[i].tobytes()), dtype=np.int8) for i in range(count)])
    row.device_samples = count
    output = QuantParams(compiled.output.scale, compiled.output.zero_point)
    record_scores(row, "device", score(point.task, output.dequantize(outputs), targets, anomaly))
    row.output_mismatches = int(np.sum(np.any(outputs != reference[:count], axis=1)))
    row.reference_interpreter = "tflite-micro (host)"

    times = np.array(client.bench(config.device.warmup, config.device.runs), dtype=np.int64)
    row.latency_median, row.latency_min, row.latency_max = float(np.median(times)), int(times.min()), int(times.max())
    row.latency_runs = len(times)
    record_latency_per_mac(row)
    row.layer_latency = json.dumps(dict(zip(compiled.layer_names, client.layers())))
    row.stack_used = client.stack()[0]
    if row.output_mismatches:
        row.fail("verify", RuntimeError(f"{row.output_mismatches} of {count} outputs differ from TFLite Micro"))


def _summary(row: ResultRow) -> str:
    if row.status != "ok":
        return f"FAILED in {row.failed_stage}: {row.error}"
    scores = {name: getattr(row, f"{name}_device") for name in SCORES if np.isfinite(getattr(row, f"{name}_device"))}
    return (f"median {row.latency_median:.0f} {row.latency_unit}, {headline(scores)} "
            f"({row.output_mismatches} of {row.device_samples} differ from TFLite Micro), stack {row.stack_used} B"
            f"{', firmware rebuilt' if row.firmware_rebuilt else ''}")


def _sweep_key(config: SweepConfig) -> str:
    """What makes two runs the same sweep: the whole configuration but the port."""
    values = config.to_dict()
    values["device"].pop("port")
    values.pop("farm")  # where it is measured, like the port
    return content_hash(json.dumps(values, sort_keys=True, default=str))


def _file_digest(point: ModelPoint) -> str:
    """The test data a point is measured with."""
    return content_hash(*(hashlib.sha256(path.read_bytes()).hexdigest()
                   for path in (point.inputs_path, point.labels_path, point.reference_path, point.anomaly_path)
                   if path is not None))


# --- provenance and hashing ----------------------------------------------------------------------

def toolchain_versions(boards: list[Board]) -> dict[str, str]:
    from importlib.metadata import version

    versions = {name: version(name) for name in ("platformio", "tensorflow-cpu", "tflite-micro", "numpy")}
    for board in boards:
        for tool, _ in board.needs:
            if tool not in versions:
                out = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
                versions[tool] = out.splitlines()[0].strip() if out else "unknown"
    # Flags such as -DNN_REFERENCE_KERNELS make other firmware: recorded, and part of every cache key.
    if flags := os.environ.get("PLATFORMIO_BUILD_FLAGS"):
        versions["PLATFORMIO_BUILD_FLAGS"] = flags
    return versions


def harness_git_sha() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=PROJECT_DIR, capture_output=True, text=True).stdout.strip()
    sha = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return sha + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def _write_manifest(run_dir: Path, config: SweepConfig, run_id: str, versions: dict, sha: str) -> None:
    manifest = {"run_id": run_id, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "harness_sha": sha, "versions": versions, "config": config.to_dict(), "sweep_key": _sweep_key(config)}
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _firmware_cache_dir(compiled: CompiledModel, env: str, versions: dict) -> Path:
    """Where a variant's firmware for one board is built: it changes with the model, the board, the firmware
    sources and the toolchain."""
    return CACHE_DIR / "firmware" / content_hash(compiled.out_dir.parent.name, env, source_digest(FIRMWARE_CODE),
                                                 json.dumps(versions))


def content_hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:24]


_SOURCE_SUFFIXES = (".py", ".c", ".h", ".cpp", ".ld", ".ini", ".json", ".toml")


def source_digest(paths: list[str]) -> str:
    """A digest of source files, so a cached artifact is invalidated when the code that made it changes."""
    digest = hashlib.sha256()
    for rel in paths:
        root = PROJECT_DIR / rel
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for path in files:
            if path.is_file() and path.suffix in _SOURCE_SUFFIXES and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(PROJECT_DIR)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()
