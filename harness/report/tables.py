"""The numbers beside the pictures: every variant in a row, the best one per quality floor, each layer of a chosen
variant and of dense, and where the runs came from.

Cells are formatted text, the same in HTML and Markdown; a number keeps its unit in its column's name. A variant is
best at a floor when it is the fastest (or smallest) of those whose score on the device meets it.
"""

from __future__ import annotations

import configparser
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from harness.chooser import DENSE
from harness.paths import project_file
from harness.report.metrics import quality_bound
from harness.report.quality import Quality
from harness.report.runs import EMULATED, Series
from harness.results import PER_MAC_COLUMNS

PLATFORMIO_INI = project_file("platformio.ini")

# Floors below the dense model's score (accuracy, AUC), and ceilings as multiples of its error (MSE).
SCORE_DROPS = (0.0, 0.01, 0.02, 0.05)
ERROR_RISES = (1.0, 1.05, 1.10, 1.25)


@dataclass(frozen=True)
class VariantTable:
    series: Series
    rows: list[dict[str, str]]  # one per variant, in kernel then sparsity order
    best: list[int]  # the rows best at some floor: highlighted
    floors: list[dict[str, str]]  # one per floor: its fastest and its smallest variant


@dataclass(frozen=True)
class LayerTables:
    series: Series
    chosen: str  # e.g. "csr 90%"
    why: str  # why that variant was chosen
    dense_name: str  # e.g. "dense 90%": the dense kernel at the chosen variant's sparsity
    dense: list[dict[str, str]]  # per layer, that dense variant
    variant: list[dict[str, str]]  # per layer, the chosen variant
    speedup: list[dict[str, str]]  # per layer, each sparse variant's speedup over dense at its sparsity


def variant_name(row: pd.Series) -> str:
    return f"{row.kernel} {row.target_sparsity:.0%}"


# --- per variant ---------------------------------------------------------------------------------


def variant_tables(series_list: list[Series], floor: float | None) -> list[VariantTable]:
    return [_variant_table(series, floor) for series in series_list]


def _variant_table(series: Series, floor: float | None) -> VariantTable:
    rows = pd.concat([series.kernel_rows(kernel) for kernel in series.kernels()])
    quality = series.quality
    bounds = floor_ladder(series, floor)
    marks: dict[int, dict[str, list[str]]] = {}
    floors = []
    for bound, how in bounds:
        within = rows[quality.meets(rows[quality.device], bound)]
        fastest = within.sort_values(["latency_median", "flash_total"]).head(1)
        smallest = within.sort_values(["flash_total", "latency_median"]).head(1)
        text = f"{quality.format(bound)} ({how})"
        for best, what in ((fastest, "fastest"), (smallest, "smallest")):
            for index in best.index:
                marks.setdefault(index, {}).setdefault(what, []).append(quality.format(bound))
        floors.append(
            {
                quality.bound_name: text,
                "fastest variant": _named(fastest),
                f"its latency ({series.unit})": _latency(fastest),
                "its speedup": _speedup(series, fastest),
                "smallest variant": _named(smallest),
                "its flash (KiB)": _kib(smallest, "flash_total"),
            }
        )
    table = [_variant_row(series, row, _best_at(quality, marks.get(index, {}))) for index, row in rows.iterrows()]
    best = [position for position, index in enumerate(rows.index) if index in marks]
    return VariantTable(series, table, best, floors)


def floor_ladder(series: Series, floor: float | None) -> list[tuple[float, str]]:
    """The bounds a variant is ranked at, strictest first, each with where it comes from: the key figures' bound
    (the user's floor or the default) and a few steps from the dense model's score."""
    quality = series.quality
    key = quality_bound(series, floor)
    dense = series.kernel_rows(DENSE)
    bounds = {}
    if not dense.empty and np.isfinite(dense[quality.device].iloc[0]):
        score = dense[quality.device].iloc[0]
        for step in SCORE_DROPS if quality.higher_is_better else ERROR_RISES:
            bound = max(score - step, 0.0) if quality.higher_is_better else score * step
            bounds.setdefault(quality.format(bound), (bound, _step_text(quality, step)))
    if np.isfinite(key):
        given = floor is not None and quality.takes_user_floor
        bounds[quality.format(key)] = (key, "given" if given else "default")
    return sorted(bounds.values(), key=lambda item: item[0], reverse=quality.higher_is_better)


def _best_at(quality: Quality, marks: dict[str, list[str]]) -> str:
    """E.g. 'fastest and smallest at ≥ 98.3%, 97.3%'."""
    sign = "≥" if quality.higher_is_better else "≤"
    if marks.get("fastest") == marks.get("smallest"):
        marks = {"fastest and smallest": marks["fastest"]} if marks else {}
    return "; ".join(f"{what} at {sign} {', '.join(bounds)}" for what, bounds in marks.items())


def _step_text(quality: Quality, step: float) -> str:
    if step in (0.0, 1.0):
        return "dense's"
    if quality.higher_is_better:
        return f"dense − {step * 100:g} points" if quality.percent else f"dense − {step:g}"
    return f"dense × {step:g}"


def _variant_row(series: Series, row: pd.Series, best_at: str) -> dict[str, str]:
    quality = series.quality
    unit = series.unit
    per_mac = row.get(PER_MAC_COLUMNS.get(unit, ""), np.nan)
    return {
        "variant": variant_name(row),
        "sparsity": f"{row.target_sparsity:.0%}",
        "achieved": _percent(row.achieved_sparsity),
        f"latency ({unit})": f"{row.latency_median:,.0f}",
        f"{unit}/MAC": f"{per_mac:.2f}" if np.isfinite(per_mac) else "n/a",
        "speedup": _speedup(series, row.to_frame().T),
        "flash (KiB)": f"{row.flash_total / 1024:.1f}",
        "weights + indices (KiB)": f"{_weight_bytes(row) / 1024:.1f}",
        "SRAM static (KiB)": f"{(row.sram_static - row.sram_arena) / 1024:.1f}",
        "arena (KiB)": f"{row.sram_arena / 1024:.1f}",
        "stack (KiB)": f"{row.stack_used / 1024:.2f}" if row.stack_used >= 0 else "n/a",
        f"{quality.name} (device)": quality.format(row[quality.device]),
        "best at": best_at,
    }


def _weight_bytes(row: pd.Series) -> int:
    return row.flash_weights_dense + row.flash_sparse_values + row.flash_sparse_indices + row.flash_sparse_pointers


def _percent(value: float) -> str:
    return f"{value:.1%}" if np.isfinite(value) else "n/a"


def _named(rows: pd.DataFrame) -> str:
    return variant_name(rows.iloc[0]) if not rows.empty else "none meets it"


def _latency(rows: pd.DataFrame) -> str:
    return f"{rows.latency_median.iloc[0]:,.0f}" if not rows.empty else "n/a"


def _kib(rows: pd.DataFrame, column: str) -> str:
    return f"{rows[column].iloc[0] / 1024:.1f}" if not rows.empty else "n/a"


def _speedup(series: Series, rows: pd.DataFrame) -> str:
    """Dense latency at the variant's sparsity over the variant's."""
    if rows.empty:
        return "n/a"
    row = rows.iloc[0]
    dense = series.kernel_rows(DENSE)
    dense = dense[dense.target_sparsity == row.target_sparsity]
    if dense.empty or not row.latency_median:
        return "n/a"
    return f"{dense.latency_median.iloc[0] / row.latency_median:.2f}×"


# --- per layer -----------------------------------------------------------------------------------


def layer_tables(series_list: list[Series], floor: float | None, notes: list[str]) -> list[LayerTables]:
    tables = []
    for series in series_list:
        chosen, why = chosen_variant(series, floor)
        if chosen is None:
            continue
        dense = series.kernel_rows(DENSE)
        dense = dense[dense.target_sparsity == chosen.target_sparsity]
        if dense.empty or not _layers(dense.iloc[0]):
            notes.append(
                f"{series.label}: no per-layer latencies of the dense kernel at "
                f"{chosen.target_sparsity:.0%}: no per-layer tables"
            )
            continue
        tables.append(
            LayerTables(
                series,
                variant_name(chosen),
                why,
                variant_name(dense.iloc[0]),
                _layer_rows(series, dense.iloc[0]),
                _layer_rows(series, chosen),
                _layer_speedups(series),
            )
        )
    return tables


def chosen_variant(series: Series, floor: float | None) -> tuple[pd.Series | None, str]:
    """The sparse variant a reader would look at first: the fastest one within the key figures' bound, else the
    fastest one."""
    quality = series.quality
    sparse = series.rows[(series.rows.kernel != DENSE) & series.rows.layer_latency.astype(bool)]
    if sparse.empty:
        return None, ""
    bound = quality_bound(series, floor)
    named = f"{quality.bound_name} {quality.format(bound)}"
    within = sparse[quality.meets(sparse[quality.device], bound)]
    if not within.empty:
        return within.loc[within.latency_median.idxmin()], f"the fastest sparse variant within the {named}"
    return sparse.loc[sparse.latency_median.idxmin()], f"the fastest sparse variant; none meets the {named}"


def _layers(row: pd.Series) -> dict[str, float]:
    text = row.layer_latency
    return json.loads(text) if isinstance(text, str) and text.startswith("{") else {}


def _by_layer(text: str) -> dict[str, dict]:
    return {entry["layer"]: entry for entry in json.loads(text)} if isinstance(text, str) and text else {}


def _layer_rows(series: Series, row: pd.Series) -> list[dict[str, str]]:
    latencies = _layers(row)
    if not latencies:
        return []
    total = sum(latencies.values())
    shapes, flash = _by_layer(row.layer_macs), _by_layer(row.layer_flash)
    unit = series.unit
    rows = []
    for name, latency in latencies.items():
        work, stored = shapes.get(name, {}), flash.get(name, {})
        macs = work.get("macs")
        rows.append(
            {
                "layer": name,
                "op": work.get("op", name.split(":")[-1]),
                "input": " + ".join(_shape(s) for s in work.get("inputs", [])) or "n/a",
                "output": _shape(work["output"]) if "output" in work else "n/a",
                "weights": _shape(work.get("weights", [])) or "–",
                "MACs": f"{macs:,}" if macs is not None else "n/a",
                "nonzero MACs": f"{work['nonzero_macs']:,}" if "nonzero_macs" in work else "n/a",
                "format": stored.get("format") or "–",
                "values (B)": f"{stored.get('values', 0):,}",
                "indices (B)": f"{stored.get('indices', 0):,}",
                "pointers (B)": f"{stored.get('pointers', 0):,}",
                f"latency ({unit})": f"{latency:,.0f}",
                "share": f"{latency / total:.1%}" if total else "n/a",
                f"{unit}/MAC": f"{latency / macs:.2f}" if macs else "–",
            }
        )
    macs = sum(entry.get("macs", 0) for entry in shapes.values())
    rows.append(
        {column: "" for column in rows[0]}
        | {
            "layer": "all layers",
            "MACs": f"{macs:,}" if shapes else "n/a",
            "nonzero MACs": f"{sum(e.get('nonzero_macs', 0) for e in shapes.values()):,}" if shapes else "n/a",
            f"latency ({unit})": f"{total:,.0f}",
            "share": "100.0%",
            f"{unit}/MAC": f"{total / macs:.2f}" if macs else "n/a",
        }
    )
    return rows


def _shape(shape: list[int]) -> str:
    return "×".join(map(str, shape))


def _layer_speedups(series: Series) -> list[dict[str, str]]:
    """Rows: layers, then the whole inference; columns: each sparse variant, dense's latency over its own."""
    dense = {row.target_sparsity: row for _, row in series.kernel_rows(DENSE).iterrows()}
    columns: dict[str, dict[str, str]] = {}
    names: dict[str, None] = {}
    for kernel in series.sparse_kernels():
        for _, row in series.kernel_rows(kernel).iterrows():
            reference = dense.get(row.target_sparsity)
            if reference is None:
                continue
            mine, theirs = _layers(row), _layers(reference)
            names.update(dict.fromkeys(theirs))
            cells = {name: _ratio(theirs[name], mine.get(name)) for name in theirs}
            cells[WHOLE] = _ratio(reference.latency_median, row.latency_median)
            columns[variant_name(row)] = cells
    return (
        [
            {"layer": name} | {column: cells.get(name, "n/a") for column, cells in columns.items()}
            for name in [*names, WHOLE]
        ]
        if columns
        else []
    )


WHOLE = "whole inference (median)"


def _ratio(dense: float, other: float | None) -> str:
    return f"{dense / other:.2f}×" if other else "n/a"


# --- provenance ----------------------------------------------------------------------------------


def provenance(series_list: list[Series]) -> list[dict[str, str]]:
    """One row per series: what measured it, built with what, timed how."""
    rows = []
    for series in series_list:
        versions = _versions(series)
        arm = series.rows.core.iloc[0].startswith("cortex")
        compiler = versions.get("arm-none-eabi-gcc" if arm else "gcc", "?")
        rows.append(
            {
                "series": series.label,
                "run": series.run.name,
                "harness (git)": ", ".join(sorted(set(series.rows.harness_sha.astype(str)))),
                "compiler": compiler,
                "build flags (platformio.ini)": build_flags(series.board),
                "PlatformIO": versions.get("platformio", "?"),
                "TensorFlow / TFLite Micro": f"{versions.get('tensorflow-cpu', versions.get('tensorflow', '?'))}"
                f" / {versions.get('tflite-micro', '?')}",
                "emulator": _emulator(series, versions),
                "board": series.board,
                "core": str(series.rows.core.iloc[0]),
                "clock": _clock(series.rows.clock_hz.iloc[0]),
                "timing source": series.source,
                "latency unit": series.unit,
                "started": str(series.run.manifest.get("started", "?")),
            }
        )
    return rows


def _versions(series: Series) -> dict[str, str]:
    texts = series.rows.versions.dropna().astype(str)
    texts = texts[texts.str.startswith("{")]
    if not texts.empty:
        return json.loads(texts.iloc[0])
    return series.run.manifest.get("versions", {})


def _emulator(series: Series, versions: dict[str, str]) -> str:
    if series.kind is not EMULATED:
        return f"none: {series.kind.name}"
    qemu = versions.get("qemu-system-arm", "QEMU")
    return f"{qemu}; -icount shift=0: latency counts instructions" if "icount" in series.source else qemu


def _clock(hz) -> str:
    hz = int(hz) if pd.notna(hz) else 0
    return f"{hz / 1e6:g} MHz" if hz else "n/a"


def build_flags(board: str, ini: Path = PLATFORMIO_INI) -> str:
    """The board's build_flags in platformio.ini (this checkout's), its include paths left out.

    >>> build_flags("mps2_an386")
    '-O2 -Wall -Wextra -std=c99'
    """
    parser = configparser.ConfigParser(interpolation=None)
    if not parser.read(ini):
        return "?"
    env = f"env:{board}"
    flags = _option(parser, env, "build_flags") or "?"
    flags = re.sub(r"\$\{this\.(\w+)\}", lambda m: _option(parser, env, m.group(1)) or m.group(0), flags)
    flags = re.sub(r"\$\{[^}]*includes\}|-I\s*\S+", "", flags)
    return " ".join(flags.split()) or "?"


def _option(parser: configparser.ConfigParser, section: str, key: str) -> str | None:
    """An option of a PlatformIO environment: its own, else its `extends` section's, else [env]'s."""
    while parser.has_section(section):
        if parser.has_option(section, key):
            return parser.get(section, key)
        section = parser.get(section, "extends", fallback="env").strip() if section != "env" else ""
    return None
