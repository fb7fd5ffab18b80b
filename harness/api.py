"""The harness from Python (a notebook, a script): run a sweep or measure one model, and read runs as DataFrames.

    import harness

    rows = harness.sweep("configs/digits.toml", boards=["host"], targets=[0.0, 0.9])
    layers = harness.load_layers(rows.attrs["run_dir"])

A run's results are read in three typed frames. `load_results`: one row per
point, as results.csv (the file is not changed: the report reads it), with
nullable dtypes (Int64, Float64, string, boolean), pd.NA wherever a figure
is unknown, and the toolchain versions as version_<tool> columns.
`load_layers`: one row per point and layer of its compiled model (format,
latency, MACs and shapes, flash by part). `load_pruned_layers`: one row per
point and pruned Keras layer (its target and achieved sparsity). In both,
`row` is the point's index in `load_results`' frame, and the point's
configuration columns are repeated so each frame reads on its own.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, get_type_hints

import pandas as pd

from harness.config import SweepConfig, config_from_dict, load_config
from harness.paths import project_file, results_dir
from harness.results import COLUMNS, ResultRow, read_results_csv
from harness.stages import Stage

Config = SweepConfig | str | Path | Mapping[str, Any] | None

_DTYPES = {str: "string", Stage | str: "string", float: "Float64", int: "Int64", bool: "boolean"}
_ROW_TYPES = {name: _DTYPES[kind] for name, kind in get_type_hints(ResultRow).items()}
# JSON columns of results.csv, read into load_layers' and load_pruned_layers' frames, and the version columns.
_LAYER_COLUMNS = ("layer_sparsity", "layer_formats", "layer_latency", "layer_macs", "layer_flash")
_VERSIONS = "versions"
# What a stored row holds where a figure is unknown, besides NaN and "" (harness/results.py, ResultRow's
# defaults): the host board reports no clock, a board without painted stack no stack, ...
_UNKNOWN = {"stack_used": -1, "output_mismatches": -1, "clock_hz": 0, "latency_runs": 0, "device_samples": 0}
# Columns one stage fills together, left at 0 in a row that failed before it, by the column that is then
# empty or 0: the compiled variant's tables; the firmware's sizes and the MACs recorded with them.
_STAGES = {
    "layer_formats": (
        "flash_weights_dense",
        "flash_sparse_values",
        "flash_sparse_indices",
        "flash_sparse_pointers",
        "flash_bias_quant",
        "sram_arena",
    ),
    "flash_total": ("flash_total", "flash_code", "flash_kernel_code", "sram_static", "macs", "nonzero_macs"),
}
_KEYS = ("model", "prune_method", "target_sparsity", "kernel", "board")  # a point, in the per-layer frames


def sweep(
    config: Config = None,
    *,
    results: str | Path | None = None,
    progress: Callable[[str], None] = print,
    **overrides: Any,
) -> pd.DataFrame:
    """Run a sweep, as `harness sweep --config` does (resuming an unfinished run of it); return its rows.

    config: a TOML file, a SweepConfig, or a dict shaped as SweepConfig.to_dict() (None: configs/digits.toml).
    overrides: [sweep] keys (targets=[0, 0.9], boards=["host"]) or tables as dicts (device={"runs": 3}).
    results: where the run folder goes (default: harness/paths.py, results_dir). The run folder is in the
    frame's attrs["run_dir"]. Points that failed are rows with status "error", and a warning says how many.
    """
    from harness.orchestrator import SweepFailed, run_sweep

    root = Path(results) if results is not None else results_dir()
    try:
        run_dir = run_sweep(_config(config, overrides), root, progress=progress)
    except SweepFailed as err:
        warnings.warn(str(err), stacklevel=2)
        run_dir = err.run_dir
    frame = load_results(run_dir)
    frame.attrs["run_dir"] = str(run_dir)
    return frame


def measure(
    model: str | Path,
    board: str = "mps2_an386",
    kernel: str = "csr",
    data: str | Path | None = None,
    target: float = 0.0,
    **settings: Any,
) -> pd.DataFrame:
    """Measure one model on one board with one kernel, as `harness measure` does; return its one row.

    model: a reference model's name, a Keras file, or an int8 .tflite (measured as it is: target does not
    apply). data: its .npz (README: Your own model and data). settings: sweep()'s keywords and overrides.
    """
    return sweep(
        **{"name": f"measure-{board}", **settings},
        model=str(model),
        data=None if data is None else str(data),
        targets=(target,),
        kernels=(kernel,),
        boards=(board,),
    )


def load_results(run_dir: str | Path) -> pd.DataFrame:
    """A run's results: one row per point, typed, with pd.NA for unknown figures (see the module's doc)."""
    raw = _raw(run_dir)
    columns: dict[str, pd.Series] = {}
    for name, dtype in _ROW_TYPES.items():
        if name == _VERSIONS:
            columns.update(_versions(raw[name]))
        elif name not in _LAYER_COLUMNS:
            columns[name] = _typed(raw[name], dtype)
    frame = pd.DataFrame(columns, index=raw.index)
    for marker, filled in _STAGES.items():
        frame.loc[raw[marker].isin(("", 0)), list(filled)] = pd.NA
    for name, unknown in _UNKNOWN.items():
        frame[name] = frame[name].mask(frame[name] == unknown)
    return frame


def load_layers(run_dir: str | Path) -> pd.DataFrame:
    """One row per point and layer of its compiled model, in layer order.

    layer ("0:CONV_2D"), index, op; format (its weight format; NA without weights); latency (in the point's
    latency_unit); macs, nonzero_macs; input_shapes, output_shape, weight_shape ("1x8x8x1"); the kernel
    function and its family (its C file; NA for an op that runs none); weight bytes by part (values, indices,
    pointers) and the family's code bytes, shared by every layer of that family. A figure not measured is NA.
    """
    raw = _raw(run_dir)
    records = []
    for row, point in raw.iterrows():
        layers: dict[str, dict] = {}
        for entry in _json(point.layer_macs, []):
            layers.setdefault(entry["layer"], {}).update(
                macs=entry["macs"],
                nonzero_macs=entry["nonzero_macs"],
                output_shape=_shape(entry["output"]),
                input_shapes=", ".join(map(_shape, entry["inputs"])),
                weight_shape=_shape(entry["weights"]),
            )
        for entry in _json(point.layer_flash, []):
            layers.setdefault(entry["layer"], {}).update(
                function=entry["kernel"],
                family=entry["family"],
                weight_values=entry["values"],
                weight_indices=entry["indices"],
                weight_pointers=entry["pointers"],
                code_bytes=entry["code"],
            )
        for name, latency in _json(point.layer_latency, {}).items():
            layers.setdefault(name, {})["latency"] = latency
        for name, fmt in _json(point.layer_formats, {}).items():
            layers.setdefault(name, {})["format"] = fmt
        for name, values in layers.items():
            index, _, op = name.partition(":")
            records.append({"row": row, "layer": name, "index": int(index), "op": op, **values})
    return _per_point(raw, records, ["row", "index"], _LAYER_DTYPES)


_LAYER_DTYPES = {
    "layer": "string",
    "index": "Int64",
    "op": "string",
    "format": "string",
    "latency": "Int64",
    "macs": "Int64",
    "nonzero_macs": "Int64",
    "input_shapes": "string",
    "output_shape": "string",
    "weight_shape": "string",
    "function": "string",
    "family": "string",
    "weight_values": "Int64",
    "weight_indices": "Int64",
    "weight_pointers": "Int64",
    "code_bytes": "Int64",
}


def load_pruned_layers(run_dir: str | Path) -> pd.DataFrame:
    """One row per point and pruned Keras layer: layer, target, achieved (sparsity of its int8 weights) and
    weights (their count). None for a model measured as it was given."""
    raw = _raw(run_dir)
    records = [
        {"row": row, "layer": layer, **values}
        for row, text in raw.layer_sparsity.items()
        for layer, values in _json(text, {}).items()
    ]
    return _per_point(
        raw, records, ["row"], {"layer": "string", "target": "Float64", "achieved": "Float64", "weights": "Int64"}
    )


def _config(config: Config, overrides: dict[str, Any]) -> SweepConfig:
    """The sweep's config with the keywords over it, through the config's schema: an error names the keyword."""
    names = {}
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            names.update({f"{key}.{sub}": f"{key}={{'{sub}': ...}}" for sub in value})
        else:
            names[key] = f"{key}=..."
    if config is None or isinstance(config, (str, Path)):
        return load_config(config or project_file("configs/digits.toml"), names, **overrides)
    values = config.to_dict() if isinstance(config, SweepConfig) else config
    return config_from_dict(values, f"the {type(config).__name__} config", names, **overrides)


def _raw(run_dir: str | Path) -> pd.DataFrame:
    """results.csv as stored, with the columns an older harness did not write added empty."""
    path = Path(run_dir) / "results.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no results.csv (is it a run folder?)")
    return read_results_csv(path).reindex(columns=COLUMNS)


def _typed(column: pd.Series, dtype: str) -> pd.Series:
    if dtype == "string":
        return column.astype("string").replace("", pd.NA)
    return column.astype(dtype)


def _versions(column: pd.Series) -> dict[str, pd.Series]:
    """The versions JSON as one string column per tool: version_platformio, version_qemu_system_arm, ..."""
    table = pd.DataFrame([_json(text, {}) for text in column], index=column.index)
    return {f"version_{tool.replace('-', '_')}": values.astype("string") for tool, values in table.items()}


def _json(text: Any, empty: Any) -> Any:
    return json.loads(text) if isinstance(text, str) and text else empty


def _shape(dims: list[int]) -> str:
    return "x".join(map(str, dims))


def _per_point(raw: pd.DataFrame, records: list[dict], order: list[str], dtypes: dict[str, str]) -> pd.DataFrame:
    """Per-layer records as a typed frame, each led by its point's row number and configuration."""
    frame = pd.DataFrame(records, columns=["row", *dtypes])
    layers = pd.DataFrame({name: _typed(frame[name], dtype) for name, dtype in {"row": "Int64", **dtypes}.items()})
    keys = pd.DataFrame({name: _typed(raw[name], _ROW_TYPES[name]) for name in _KEYS}, index=raw.index)
    points = keys.loc[layers.row.astype(int)].reset_index(drop=True)
    return pd.concat([layers[["row"]], points, layers.drop(columns="row")], axis=1).sort_values(
        order, ignore_index=True
    )
