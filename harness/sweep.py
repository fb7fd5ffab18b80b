"""Plan a sweep and drive it stage by stage: prune, quantize, compile, build, run, record.

The sweep is the cross product (sparsity target x kernel x board). Each stage
caches its artifact under a content hash, so an identical re-run retrains
nothing and rebuilds no firmware. A point that fails on the board becomes a
result row with its stage and reason; errors that would fail every point (a
config typo, a missing toolchain, an op the compiler lacks) stop the sweep
before any board is touched.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from harness.build import PROJECT_DIR, Firmware, build_firmware
from harness.config import SweepConfig
from harness.device.boards import Board, get_board
from harness.device.link import DeviceError
from harness.device.session import board_session, check_port
from harness.model_source import TfliteModel, TrainableModel, resolve_model
from harness.results import ResultRow, ResultsWriter
from harness.toolchain import ensure_platformio_offline, require_tool

CACHE_DIR = PROJECT_DIR / ".cache"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ModelPoint:
    """One pruned, int8-quantized model and what the host knows about it."""
    target: float
    tflite_path: Path
    float_accuracy: float
    int8_accuracy: float           # TFLite Micro's interpreter on the host
    inputs_path: Path              # int8 test inputs (shared by all points)
    labels_path: Path
    reference_path: Path           # TFLite Micro's outputs for those inputs


def run_sweep(config: SweepConfig, results_root: Path, progress: Progress = print) -> Path:
    """Run a whole sweep and return its run directory."""
    boards = [get_board(name) for name in config.boards]
    source = resolve_model(config)
    for board in boards:
        for tool, package in board.needs:
            require_tool(tool, package)
        if config.device.port:
            check_port(board, config.device.port)
    ensure_platformio_offline(PROJECT_DIR)

    run_id = f"{config.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run_dir = results_root / run_id
    run_dir.mkdir(parents=True)
    versions = toolchain_versions(boards)
    sha = harness_git_sha()
    _write_manifest(run_dir, config, run_id, versions, sha)
    progress(f"run {run_id}: {len(config.targets)} sparsity targets x {len(config.kernels)} kernels x "
             f"{len(boards)} boards -> {run_dir}")

    points = prepare_models(config, source, progress)
    # Compile every variant before touching a board: an op the compiler lacks fails the sweep here.
    variants = [(point, kernel, compile_point(point, kernel)) for point in points for kernel in config.kernels]
    progress(f"compiled {len(variants)} variants")
    writer = ResultsWriter(run_dir)
    total = len(variants) * len(boards)
    failures = []
    for number, ((point, kernel, compiled), board) in enumerate(
            ((variant, board) for variant in variants for board in boards), start=1):
        label = f"[{number}/{total}] sparsity {point.target:.2f} {kernel} on {board.name}"
        row = ResultRow(run_id=run_id, model=config.model, target_sparsity=point.target, kernel=kernel,
                        board=board.name, core=board.core, harness_sha=sha, versions=json.dumps(versions),
                        accuracy_float=point.float_accuracy, accuracy_int8_host=point.int8_accuracy)
        _record_compiled(row, compiled)
        measure_point(row, point, compiled, board, config, run_dir, label, progress)
        writer.append(row)
        if row.status != "ok":
            failures.append(f"{label}: {row.failed_stage}: {row.error}")
    frame = writer.finish()

    from harness.report import write_plots
    for path in write_plots(frame, run_dir):
        progress(f"plot: {path}")
    progress(f"results: {writer.csv_path} and {writer.parquet_path} ({len(frame)} rows)")
    if failures:
        raise SweepFailed(len(failures), total, failures[0], run_dir)
    return run_dir


class SweepFailed(RuntimeError):
    def __init__(self, failed: int, total: int, first: str, run_dir: Path):
        super().__init__(f"{failed} of {total} points failed (rows kept in {run_dir}/results.csv); first: {first}")


# --- stage: prune + quantize ---------------------------------------------------------------------

def prepare_models(config: SweepConfig, source: TrainableModel | TfliteModel, progress: Progress) -> list[ModelPoint]:
    """Train and prune the model along one path, convert each snapshot to int8; cached by content."""
    if isinstance(source, TfliteModel):
        key = _hash(source.path.read_bytes().hex(), source.data.source)
        return _cached_points(key, lambda out: _import_tflite(source, out, progress), progress)
    key = _hash(json.dumps({"model": source.digest, "seed": config.seed, "prune": config.to_dict()["prune"],
                            "targets": sorted(config.targets)}),
                _source_digest(["harness/prune", "harness/quantize.py", "models"]))
    return _cached_points(key, lambda out: _prune_and_convert(source, config, out, progress), progress)


def _cached_points(key: str, make: Callable[[Path], list[ModelPoint]], progress: Progress) -> list[ModelPoint]:
    cache = CACHE_DIR / "models" / key
    index = cache / "points.json"
    if index.exists():
        progress(f"models: cached ({cache})")
        return [_point_from_json(p, cache) for p in json.loads(index.read_text())]
    tmp = cache.with_name(key + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    points = make(tmp)
    (tmp / "points.json").write_text(json.dumps([_point_to_json(p) for p in points], indent=1))
    shutil.rmtree(cache, ignore_errors=True)
    tmp.rename(cache)  # atomic: a killed run never leaves a half-written cache entry
    return [_point_from_json(_point_to_json(p), cache) for p in points]


def _prune_and_convert(source: TrainableModel, config: SweepConfig, out: Path, progress: Progress) -> list[ModelPoint]:
    progress("models: importing TensorFlow, training and pruning (the first run of a config only)")
    from harness import quantize
    from harness.prune import prune_sweep

    data = source.spec.load_data()
    model = source.spec.build(config.seed)
    snapshots = prune_sweep(model, data, config.targets, config.prune, config.seed, progress)
    points = []
    for snapshot in snapshots:
        model.set_weights(snapshot.weights)
        tflite = quantize.to_int8_tflite(model, data.x_train)
        points.append(_save_point(out, snapshot.target, tflite, data, snapshot.float_accuracy))
        progress(f"sparsity {snapshot.target:.2f}: int8 accuracy on the host {points[-1].int8_accuracy:.3f}")
    return points


def _import_tflite(source: TfliteModel, out: Path, progress: Progress) -> list[ModelPoint]:
    from harness.compiler import read_tflite

    tflite = source.path.read_bytes()
    sparsity = read_tflite(tflite).weight_sparsity()
    progress(f"models: {source.path} taken as it is (int8, {sparsity:.1%} of its weights are zero)")
    return [_save_point(out, round(sparsity, 3), tflite, source.data, float("nan"))]


def _save_point(out: Path, target: float, tflite: bytes, data, float_accuracy: float) -> ModelPoint:
    """Write one model point: the .tflite, the quantized test inputs and TFLite Micro's outputs for them."""
    from harness import quantize

    input_quant, _ = quantize.io_quant_params(tflite)
    inputs = input_quant.quantize(data.x_test)
    name = f"sparsity-{target:.3f}"
    inputs_path = out / f"{name}.inputs.npy"
    np.save(inputs_path, inputs)
    np.save(out / "labels.npy", data.y_test)
    reference = quantize.run_tflite_micro(tflite, inputs)
    np.save(out / f"{name}.reference.npy", reference)
    (out / f"{name}.tflite").write_bytes(tflite)
    return ModelPoint(target=target, tflite_path=out / f"{name}.tflite", float_accuracy=float_accuracy,
                      int8_accuracy=float(np.mean(reference.argmax(axis=1) == data.y_test)),
                      inputs_path=inputs_path, labels_path=out / "labels.npy",
                      reference_path=out / f"{name}.reference.npy")


def _point_to_json(point: ModelPoint) -> dict:
    return {k: (v.name if isinstance(v, Path) else v) for k, v in point.__dict__.items()}


def _point_from_json(values: dict, cache: Path) -> ModelPoint:
    return ModelPoint(**{k: (cache / v if k.endswith("_path") else v) for k, v in values.items()})


# --- stage: compile ------------------------------------------------------------------------------

def compile_point(point: ModelPoint, kernel: str):
    from harness.compiler import compile_tflite

    tflite = point.tflite_path.read_bytes()
    key = _hash(tflite.hex(), kernel, _source_digest(["harness/compiler", "firmware/kernels"]))
    out_dir = CACHE_DIR / "variants" / key / "model"
    return compile_tflite(tflite, out_dir, kernel=kernel, model_id=key[:16])


def _record_compiled(row: ResultRow, compiled) -> None:
    flash = compiled.flash
    row.achieved_sparsity = compiled.weight_sparsity
    row.flash_weights_dense = flash["dense_weights"]
    row.flash_sparse_values = flash["sparse_values"]
    row.flash_sparse_indices = flash["sparse_indices"]
    row.flash_sparse_pointers = flash["sparse_pointers"]
    row.flash_bias_quant = flash["biases_and_quant"]
    row.sram_arena = compiled.arena_bytes


# --- stages: build + run on the board ------------------------------------------------------------

def measure_point(row: ResultRow, point: ModelPoint, compiled, board: Board, config: SweepConfig,
                  run_dir: Path, label: str, progress: Progress) -> None:
    stage = "build"
    try:
        firmware = build_firmware(board.name, compiled.out_dir, compiled.out_dir.parent / "pio")
        row.firmware_rebuilt = firmware.rebuilt
        row.flash_total = firmware.flash_bytes
        row.flash_code = firmware.flash_bytes - compiled.table_bytes
        row.sram_static = firmware.static_ram_bytes
        progress(f"{label}: firmware {'built' if firmware.rebuilt else 'unchanged'} in {firmware.seconds:.1f} s, "
                 f"{firmware.flash_bytes} B flash")
        stage = "run"
        log = run_dir / "logs" / f"{board.name}-{row.kernel}-{point.target:.3f}.serial.log"
        log.parent.mkdir(exist_ok=True)
        with board_session(board, firmware, log, config.device.timeout_s, config.device.port) as client:
            run_on_board(row, client, point, compiled, config, progress, label)
    except (DeviceError, RuntimeError, OSError) as err:
        row.fail(stage, err)
        progress(f"{label}: FAILED in {stage}: {err}")


def run_on_board(row: ResultRow, client, point: ModelPoint, compiled, config: SweepConfig,
                 progress: Progress, label: str) -> None:
    hello = client.hello()
    if hello.model_id != compiled.model_id:
        raise DeviceError(f"board runs model {hello.model_id}, expected {compiled.model_id}: wrong firmware")
    row.latency_unit, row.timing_source, row.clock_hz = hello.timer_unit, hello.timer_source, hello.clock_hz

    inputs = np.load(point.inputs_path)
    labels = np.load(point.labels_path)
    reference = np.load(point.reference_path)
    count = len(inputs) if config.device.accuracy_samples == 0 else min(config.device.accuracy_samples, len(inputs))
    started = time.perf_counter()
    outputs = np.stack([np.frombuffer(client.infer(inputs[i].tobytes()), dtype=np.int8) for i in range(count)])
    row.device_samples = count
    row.accuracy_device = float(np.mean(outputs.argmax(axis=1) == labels[:count]))
    row.output_mismatches = int(np.sum(np.any(outputs != reference[:count], axis=1)))
    row.reference_interpreter = "tflite-micro (host)"
    progress(f"{label}: {count} test samples on the board in {time.perf_counter() - started:.1f} s, "
             f"accuracy {row.accuracy_device:.3f}, {row.output_mismatches} differ from TFLite Micro")

    times = np.array(client.bench(config.device.warmup, config.device.runs), dtype=np.int64)
    row.latency_median, row.latency_min, row.latency_max = float(np.median(times)), int(times.min()), int(times.max())
    row.latency_runs = len(times)
    row.layer_latency = json.dumps(dict(zip(compiled.layer_names, client.layers())))
    row.stack_used = client.stack()[0]
    client.exit()
    progress(f"{label}: median {row.latency_median:.0f} {row.latency_unit} ({row.timing_source}), "
             f"stack {row.stack_used} B")
    if row.output_mismatches:
        row.fail("verify", RuntimeError(f"{row.output_mismatches} of {count} outputs differ from TFLite Micro"))


# --- provenance and hashing ----------------------------------------------------------------------

def toolchain_versions(boards: list[Board]) -> dict[str, str]:
    from importlib.metadata import version

    versions = {name: version(name) for name in ("platformio", "tensorflow-cpu", "tflite-micro", "numpy")}
    for board in boards:
        for tool, _ in board.needs:
            if tool not in versions:
                out = subprocess.run([tool, "--version"], capture_output=True, text=True).stdout
                versions[tool] = out.splitlines()[0].strip() if out else "unknown"
    return versions


def harness_git_sha() -> str:
    def git(*args):
        return subprocess.run(["git", *args], cwd=PROJECT_DIR, capture_output=True, text=True).stdout.strip()
    sha = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return sha + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def _write_manifest(run_dir: Path, config: SweepConfig, run_id: str, versions: dict, sha: str) -> None:
    manifest = {"run_id": run_id, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "harness_sha": sha, "versions": versions, "config": config.to_dict()}
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def _source_digest(paths: list[str]) -> str:
    """A digest of source files, so a cached artifact is invalidated when the code that made it changes."""
    digest = hashlib.sha256()
    for rel in paths:
        root = PROJECT_DIR / rel
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for path in files:
            if path.is_file() and path.suffix in (".py", ".c", ".h") and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(PROJECT_DIR)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()
