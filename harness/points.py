"""A planned point's result row, its key, and its job: the row is built here, and only here.

A point's key hashes everything its result depends on (the measuring code
and toolchain, the board, the compiled variant, the test data, the row's
configuration columns), so a point measured before, by this run or any
other through the results cache, is taken as it is instead of measured.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np

from harness import cache
from harness.build import Firmware
from harness.compiler import CompiledModel
from harness.device.measure import PointOnBoard, Samples
from harness.plan import PlannedPoint, SweepContext
from harness.pointstore import PointStore
from harness.prepare import ModelPoint
from harness.prune.predict import PREDICTION_COLUMNS, record_prediction
from harness.quantize import QuantParams
from harness.results import ResultRow, record_layer_flash, record_scores
from harness.runlog import RunLog
from harness.runner import Job
from harness.scoring import SCORES, headline

__all__ = [
    "FIRMWARE_CODE",
    "MEASURING_CODE",
    "PointKeys",
    "Variant",
    "built_row",
    "firmware_dir",
    "on_board",
    "point_row",
    "samples",
    "summary",
]

# Code whose change invalidates firmware, or measured results, of earlier runs (the harness version).
FIRMWARE_CODE = [
    "firmware/src",
    "firmware/boards",
    "firmware/platform",
    "firmware/build_info.py",
    "firmware/model_sources.py",
    "firmware/kernel_sources.py",
    "platformio.ini",
]
MEASURING_CODE = FIRMWARE_CODE + [
    "harness/device",
    "harness/build.py",
    "harness/firmware_sizes.py",
    "harness/orchestrator.py",
    "harness/points.py",
    "harness/results.py",
]


@dataclass(frozen=True)
class Variant:
    """What building and measuring one job need: its planned point, its compiled model, where its firmware builds."""

    planned: PlannedPoint
    compiled: CompiledModel
    firmware_dir: Path


def point_row(ctx: SweepContext, planned: PlannedPoint, compiled: CompiledModel | None) -> ResultRow:
    """A point's row with its configuration and everything known before it is built (compiled: None when its
    variant could not be made)."""
    point, board = planned.point, planned.board
    row = ResultRow(
        run_id=ctx.run_id,
        model=ctx.config.model,
        target_sparsity=point.target,
        kernel=planned.kernel,
        board=board.name,
        core=board.core,
        prune_method=point.method,
        task=point.task,
        achieved_sparsity=point.achieved_sparsity,
        layer_sparsity=json.dumps(point.layer_sparsity),
        harness_sha=ctx.sha,
        versions=json.dumps(ctx.versions),
    )
    record_scores(row, "float", point.float_scores)
    record_scores(row, "int8_host", point.int8_scores)
    if compiled is not None:
        _record_compiled(row, compiled)
        record_prediction(row, compiled)
    return row


def _record_compiled(row: ResultRow, compiled: CompiledModel) -> None:
    flash = compiled.flash
    row.flash_weights_dense = flash["dense_weights"]
    row.flash_sparse_values = flash["sparse_values"]
    row.flash_sparse_indices = flash["sparse_indices"]
    row.flash_sparse_pointers = flash["sparse_pointers"]
    row.flash_bias_quant = flash["biases_and_quant"]
    row.sram_arena = compiled.arena_bytes
    row.layer_formats = json.dumps(
        {f"{layer.index}:{layer.op}": layer.format for layer in compiled.layers if layer.format}
    )


def built_row(row: ResultRow, compiled: CompiledModel, firmware: Firmware) -> ResultRow:
    """A copy of a point's row with what its firmware adds: flash and static RAM, in total and per layer."""
    built = dataclasses.replace(
        row,
        firmware_rebuilt=firmware.rebuilt,
        flash_total=firmware.flash_bytes,
        flash_code=firmware.flash_bytes - compiled.table_bytes,
        sram_static=firmware.static_ram_bytes,
    )
    record_layer_flash(built, compiled, firmware.kernel_code)
    return built


def on_board(job: Job, firmware: Firmware, run_dir: Path) -> PointOnBoard:
    """A built job as the board measures it, its serial log in the run's logs/."""
    variant: Variant = job.work
    point, compiled = variant.planned.point, variant.compiled
    return PointOnBoard(
        row=built_row(job.row, compiled, firmware),
        firmware=firmware,
        samples=samples(point),
        output=QuantParams(compiled.output.scale, compiled.output.zero_point),
        layer_names=tuple(compiled.layer_names),
        log=run_dir / "logs" / f"{job.board.name}-{job.row.kernel}-{point.tflite_path.stem}.serial.log",
    )


def samples(point: ModelPoint) -> Samples:
    return Samples(
        task=point.task,
        inputs=point.inputs_path,
        targets=point.labels_path,
        reference=point.reference_path,
        anomaly=point.anomaly_path,
    )


def firmware_dir(compiled: CompiledModel, env: str, versions: dict) -> Path:
    """Where a variant's firmware for one board is built: it changes with the model, the board, the firmware
    sources and the toolchain."""
    return cache.folder("firmware") / cache.content_hash(
        compiled.out_dir.parent.name, env, cache.source_digest(FIRMWARE_CODE), json.dumps(versions)
    )


class PointKeys:
    """The keys of a run's points, and the job for a point not measured before."""

    def __init__(self, ctx: SweepContext, store: PointStore, log: RunLog):
        self.ctx, self.store, self.log = ctx, store, log
        self.key_of: dict[int, str] = {}  # planned index -> key
        device = {k: v for k, v in dataclasses.asdict(ctx.config.device).items() if k not in ("port", "timeout_s")}
        self._measuring = cache.content_hash(
            version("sparse-mcu-bench"),
            cache.source_digest(MEASURING_CODE),
            json.dumps(ctx.versions),
            json.dumps(device),
        )

    def job(self, planned: PlannedPoint, compiled: CompiledModel, notes: str = "") -> Job | None:
        """The point as a job; None if it was measured before, and then its row goes straight to the store."""
        row = point_row(self.ctx, planned, compiled)
        row.notes = notes
        configuration = {
            k: v for k, v in dataclasses.asdict(row).items() if k not in ("run_id", "harness_sha", *PREDICTION_COLUMNS)
        }
        key = cache.content_hash(
            self._measuring,
            planned.board.name,
            compiled.out_dir.parent.name,
            cache.file_digest(planned.point.data_paths),
            json.dumps(configuration),
        )
        self.key_of[planned.index] = key
        bench = self.ctx.bench
        earlier = (
            None
            if planned.index + 1 in bench.remeasure
            else (self.store.finished(key) or (None if bench.fresh else self.store.cached(key)))
        )
        if earlier is None:
            work = Variant(planned, compiled, firmware_dir(compiled, planned.board.name, self.ctx.versions))
            return Job(planned.index, key, planned.label, planned.board, row, work)
        prediction = {column: getattr(row, column) for column in PREDICTION_COLUMNS}  # today's cost model
        self.store.save(
            planned.index,
            key,
            dataclasses.replace(
                earlier, run_id=row.run_id, harness_sha=self.ctx.sha, firmware_rebuilt=False, **prediction
            ),
            listed=planned.listed,
        )
        self.log.event("point_reused", point=planned.index + 1, key=key, label=planned.label)
        return None


def summary(row: ResultRow) -> str:
    """A measured row in one line of progress."""
    if row.status != "ok":
        return f"FAILED in {row.failed_stage}: {row.error}"
    scores = {name: getattr(row, f"{name}_device") for name in SCORES if np.isfinite(getattr(row, f"{name}_device"))}
    return (
        f"median {row.latency_median:.0f} {row.latency_unit}, {headline(scores)} "
        f"({row.output_mismatches} of {row.device_samples} differ from TFLite Micro), stack {row.stack_used} B"
        f"{', firmware rebuilt' if row.firmware_rebuilt else ''}"
    )
