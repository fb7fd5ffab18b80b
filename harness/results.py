"""One tidy row per (model, sparsity, kernel, board): configuration, then metrics, then status.

results.csv is written whole, atomically, as soon as each point is
measured (harness/pointstore.py), so a crash loses at most the points in
flight; the parquet copy is written from the CSV at the end.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from harness.cache import write_atomically
from harness.stages import Stage

if TYPE_CHECKING:
    from harness.compiler import CompiledModel
    from harness.firmware_sizes import KernelCode


@dataclass
class ResultRow:
    # configuration
    run_id: str
    model: str
    target_sparsity: float
    kernel: str
    board: str
    core: str
    prune_method: str = ""  # "criterion/schedule[/pattern]", e.g. "magnitude/gradual"
    task: str = "classification"  # or "reconstruction" (an autoencoder: scored by mse and auc, not
    # accuracy); harness/scoring.py
    achieved_sparsity: float = float("nan")  # on the int8 weights: zero (or filter-pruned away) share of the
    # unpruned model's weights in prunable layers
    layer_sparsity: str = ""  # JSON: layer -> {"target", "achieved", "weights"}, achieved on int8
    layer_formats: str = ""  # JSON: layer -> chosen format (auto) or the single format
    # latency
    latency_median: float = float("nan")
    latency_min: float = float("nan")
    latency_max: float = float("nan")
    latency_runs: int = 0
    latency_unit: str = ""  # "instructions" on QEMU (-icount), never called cycles there
    timing_source: str = ""
    clock_hz: int = 0
    layer_latency: str = ""  # JSON list, one entry per layer, in latency_unit
    # the cost model's latency (harness/prune/predict.py), in latency_unit: NaN / empty for a board without cost
    # curves; the whole model's NaN too where a layer has no curve (its entry null)
    predicted_latency: float = float("nan")
    layer_predicted_latency: str = ""  # JSON: layer -> predicted, as layer_latency
    # work, from the compiler: multiply-accumulates of one inference
    macs: int = 0  # of the dense computation, whatever the format
    nonzero_macs: int = 0  # those with a nonzero weight: what a sparse kernel need compute
    layer_macs: str = ""  # JSON list, one entry per layer: {layer, op, inputs, output, weights
    # (shapes), macs, nonzero_macs}
    # latency_median / macs, in the column of the row's latency_unit; NaN in the others
    instructions_per_mac: float = float("nan")
    cycles_per_mac: float = float("nan")
    ns_per_mac: float = float("nan")
    # flash, bytes
    flash_total: int = 0
    flash_code: int = 0  # everything in flash that is not a model table
    flash_weights_dense: int = 0
    flash_sparse_values: int = 0
    flash_sparse_indices: int = 0
    flash_sparse_pointers: int = 0
    flash_bias_quant: int = 0
    flash_kernel_code: int = 0  # code of the kernel families the layers use, each family counted
    # once; part of flash_code
    layer_flash: str = ""  # JSON list, one entry per layer: {layer, format, kernel, family,
    # values, indices, pointers, code}. code is the layer's kernel
    # family's, shared by every layer of that family: sum it per
    # family, not per layer (flash_kernel_code does)
    # SRAM, bytes
    sram_static: int = 0  # .data + .bss, the arena included
    sram_arena: int = 0
    stack_used: int = -1  # stack an inference needs (painted before, read after; the least
    # over the inferences, so no interrupt counts); -1 where unknown
    # accuracy
    accuracy_float: float = float("nan")
    accuracy_int8_host: float = float("nan")  # TFLite Micro's interpreter on the host
    accuracy_device: float = float("nan")
    device_samples: int = 0
    # reconstruction: mean squared error of the dequantized output against the target, per value
    mse_float: float = float("nan")
    mse_int8_host: float = float("nan")
    mse_device: float = float("nan")
    # reconstruction with anomaly labels: ROC AUC of each sample's squared error as an anomaly score
    auc_float: float = float("nan")
    auc_int8_host: float = float("nan")
    auc_device: float = float("nan")
    output_mismatches: int = -1  # samples whose device output differs from the reference in any byte
    reference_interpreter: str = ""
    # provenance
    harness_sha: str = ""
    versions: str = ""  # JSON: toolchain, emulator, PlatformIO, TensorFlow, ...
    firmware_rebuilt: bool = False
    place: str = ""  # what measured it: a farm place, or a local unit ("mps2_an386#1")
    # status
    status: str = "ok"
    # "" unless the row failed; a Stage when it failed in this run, its plain string when read back from
    # results.csv or a point's JSON (a Stage is a str, and compares equal to it)
    failed_stage: Stage | str = ""
    error: str = ""
    notes: str = ""  # what a reader should know of an ok row (auto: formats left out)

    def fail(self, stage: Stage, error: Exception) -> ResultRow:
        self.status, self.failed_stage, self.error = "error", Stage(stage), str(error)
        return self


COLUMNS = [f.name for f in dataclasses.fields(ResultRow)]


def record_scores(row: ResultRow, where: str, scores: dict[str, float]) -> None:
    """Set the row's <score>_<where> columns (where: float, int8_host, device) from harness/scoring.py scores."""
    for name, value in scores.items():
        setattr(row, f"{name}_{where}", value)


def layer_flash(compiled: CompiledModel, code: KernelCode) -> list[dict]:
    """Flash per layer: its weights by part (LayerInfo.weight_bytes) and its kernel family's code."""
    return [
        {
            "layer": name,
            "format": layer.format,
            "kernel": layer.kernel,
            "family": code.family(layer.kernel) or "",
            "values": layer.weight_bytes.values,
            "indices": layer.weight_bytes.indices,
            "pointers": layer.weight_bytes.pointers,
            "code": code.bytes_of(layer.kernel),
        }
        for name, layer in zip(compiled.layer_names, compiled.layers)
    ]


def record_layer_flash(row: ResultRow, compiled: CompiledModel, code: KernelCode) -> None:
    """Fill layer_flash and flash_kernel_code, counting each kernel family's code once; and the MACs, whole model
    and per layer, which the row takes from the same compiled model."""
    layers = layer_flash(compiled, code)
    row.layer_flash = json.dumps(layers)
    row.flash_kernel_code = sum({layer["family"]: layer["code"] for layer in layers if layer["family"]}.values())
    row.layer_macs = json.dumps(layer_macs(compiled))
    row.macs = sum(layer.macs for layer in compiled.layers)
    row.nonzero_macs = sum(layer.nonzero_macs for layer in compiled.layers)


def layer_macs(compiled: CompiledModel) -> list[dict]:
    """Per layer: its shapes and the multiply-accumulates they make, all of them and those with a nonzero weight."""
    return [
        {
            "layer": name,
            "op": layer.op,
            "inputs": [list(shape) for shape in layer.input_shapes],
            "output": list(layer.output_shape),
            "weights": list(layer.weight_shape),
            "macs": layer.macs,
            "nonzero_macs": layer.nonzero_macs,
        }
        for name, layer in zip(compiled.layer_names, compiled.layers)
    ]


PER_MAC_COLUMNS = {"instructions": "instructions_per_mac", "cycles": "cycles_per_mac", "ns": "ns_per_mac"}


def record_latency_per_mac(row: ResultRow) -> None:
    """Median latency over the model's MACs, in the column named by how the board counted (an emulator's
    instructions are never put in cycles_per_mac)."""
    column = PER_MAC_COLUMNS.get(row.latency_unit)
    if column and row.macs:
        setattr(row, column, row.latency_median / row.macs)


class ResultsWriter:
    def __init__(self, run_dir: Path):
        self.csv_path = run_dir / "results.csv"
        self.parquet_path = run_dir / "results.parquet"
        if not self.csv_path.exists():
            write_results(self.csv_path, [])  # a run with no listed row still has its table

    def finish(self) -> pd.DataFrame:
        frame = read_results_csv(self.csv_path)
        frame.to_parquet(self.parquet_path, index=False)
        return frame


def write_results(path: Path, rows: Iterable[ResultRow]) -> None:
    """Write results.csv whole, atomically: a reader never sees half a table."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(COLUMNS)
    for row in rows:
        values = dataclasses.asdict(row)
        writer.writerow([values[c] for c in COLUMNS])
    write_atomically(path, text.getvalue())


def read_results_csv(path: Path) -> pd.DataFrame:
    """results.csv as stored: empty cells "", "nan" NaN, JSON columns text (harness.load_results types them)."""
    return pd.read_csv(path, keep_default_na=False, na_values=["nan"])
