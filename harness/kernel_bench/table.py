"""The micro-benchmark's tidy table: one row per (shape, pruning, format), ratios over dense, break-even points.

Every ratio is computed here from measured columns of the same table, so it
can be checked against them: speedup is the dense variant's layer
instructions over the variant's, at the same shape and pruning; bytes over
dense is the variant's weight bytes (values + indices + pointers) over the
dense variant's, and flash over dense adds each one's kernel code.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from harness.prune.export import WEIGHTED_OPS
from harness.report.metrics import break_even
from harness.results import ResultRow

if TYPE_CHECKING:
    from harness.compiler import CompiledModel
    from harness.kernel_bench.shapes import LayerShape, Pruning
    from harness.prepare import ModelPoint


def variant_row(
    shape: LayerShape, pruning: Pruning, point: ModelPoint, compiled: CompiledModel, row: ResultRow
) -> dict:
    """One tidy row from a variant's compile-time account and the sweep's row measured on the board, whose
    layer_flash holds its firmware's kernel code (from the link map; empty if it was not built)."""
    (layer,) = [layer for layer in compiled.layers if layer.op in WEIGHTED_OPS]
    name = f"{layer.index}:{layer.op}"
    ran = row.status == "ok" or row.failed_stage == "verify"  # else its firmware may not build
    flash = (
        next((entry for entry in json.loads(row.layer_flash) if entry["layer"] == name), None)
        if ran and row.layer_flash
        else None
    )
    weights = point.layer_sparsity["layer"]["weights"]
    instructions = json.loads(row.layer_latency).get(name, np.nan) if row.layer_latency else np.nan
    return {
        "shape": shape.name,
        "op": layer.op,
        "pattern": pruning.kind,
        "pruning": pruning.label,
        "target_sparsity": pruning.sparsity,
        "sparsity": point.achieved_sparsity,
        "weights": weights,
        "nonzero_weights": int(round(weights * (1.0 - point.achieved_sparsity))),
        "macs": layer.macs,
        "nonzero_macs": layer.nonzero_macs,
        "format": compiled.kernel,
        "layer_format": layer.format,
        "kernel": layer.kernel,
        "kernel_family": flash["family"] if flash else "",
        "instructions": instructions,
        "instructions_per_mac": instructions / layer.macs,
        "instructions_per_nonzero": instructions / layer.nonzero_macs if layer.nonzero_macs else np.nan,
        "invoke_median": row.latency_median,
        "values_bytes": layer.weight_bytes.values,
        "index_bytes": layer.weight_bytes.indices,
        "pointer_bytes": layer.weight_bytes.pointers,
        "weight_bytes": layer.weight_bytes.total,
        "code_bytes": flash["code"] if flash else np.nan,
        "output_mismatches": row.output_mismatches,
        "test_inputs": row.device_samples,
        "ops_in_graph": " ".join(compiled.layer_names),
        "board": row.board,
        "unit": row.latency_unit,
        "timing_source": row.timing_source,
        "timing": (
            f"{row.timing_source}: {row.latency_unit}"
            f"{' (not cycles)' if row.latency_unit == 'instructions' else ''}, instructions = layer timer "
            f"over one profiled run, invoke_median = median of {row.latency_runs} whole inferences"
        ),
        "status": row.status,
        "error": row.error,
    }


def with_ratios(rows: list[dict]) -> pd.DataFrame:
    """The table with speedup_vs_dense, bytes_vs_dense and flash_vs_dense (NaN where no dense variant ran)."""
    table = pd.DataFrame(rows)
    keys = ["shape", "pruning"]
    dense = table[table.format == "dense"].set_index(keys)
    reference = dense.reindex(pd.MultiIndex.from_frame(table[keys]))
    table["speedup_vs_dense"] = reference.instructions.to_numpy() / table.instructions
    table["bytes_vs_dense"] = table.weight_bytes / reference.weight_bytes.to_numpy()
    table["flash_vs_dense"] = (table.weight_bytes + table.code_bytes) / (
        reference.weight_bytes + reference.code_bytes
    ).to_numpy()
    return table


_RATIOS = {
    "latency": lambda g: g.speedup_vs_dense,
    "weights": lambda g: 1 / g.bytes_vs_dense,
    "flash": lambda g: 1 / g.flash_vs_dense,
}  # each >= 1 where the format beats dense


def break_even_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per shape and sparse format, over the unstructured points measured: the sparsity (achieved on the int8 weights)
    from which the format is faster than dense, has fewer weight bytes, and has less flash with its code;
    interpolated linearly between the measured points around the crossing of 1.0. A format the compiler
    has no kernel for at that op (the layer ran in another format) has none. No such points (nm measured on
    N:M prunings only): no rows, the same columns."""
    unstructured = table[(table.pattern == "unstructured") & (table.format != "dense") & (table.status == "ok")]
    columns = [
        "shape",
        "format",
        *(f"break_even_{what}{text}" for text in ("", "_text") for what in _RATIOS),
        "best_speedup",
    ]
    return pd.DataFrame(
        [
            {"shape": shape, "format": fmt, **_crossings(fmt, group.sort_values("sparsity"))}
            for (shape, fmt), group in unstructured.groupby(["shape", "format"], sort=False)
        ],
        columns=columns,
    )


def _crossings(fmt: str, group: pd.DataFrame) -> dict:
    if (group.layer_format != fmt).any():
        ran = "/".join(dict.fromkeys(group.layer_format))
        return {
            **{f"break_even_{what}": np.nan for what in _RATIOS},
            **{f"break_even_{what}_text": f"n/a: runs {ran}" for what in _RATIOS},
            "best_speedup": np.nan,
        }
    row = {}
    for what, ratio in _RATIOS.items():
        crossing = break_even(pd.Series(ratio(group).to_numpy(), index=group.sparsity.to_numpy()).dropna())
        row[f"break_even_{what}"] = np.nan if crossing.sparsity is None else crossing.sparsity
        row[f"break_even_{what}_text"] = str(crossing)
    return {**row, "best_speedup": group.speedup_vs_dense.max()}


def patterns_beside_unstructured(table: pd.DataFrame) -> pd.DataFrame:
    """Per shape and N:M pattern, the fastest format at that pattern beside the fastest at the unstructured
    pruning of the same target sparsity (1 - N/M), each with its speedup and weight bytes over dense: what
    pruning to the pattern buys on this board. Only variants whose layer ran in their own format count."""
    ok = table[(table.status == "ok") & (table.format != "dense") & (table.layer_format == table.format)]
    rows = []
    for (shape, label), group in ok[ok.pattern != "unstructured"].groupby(["shape", "pruning"], sort=False):
        target = group.target_sparsity.iloc[0]
        same = ok[(ok["shape"] == shape) & (ok.pattern == "unstructured") & np.isclose(ok.target_sparsity, target)]
        row = {"shape": shape, "pattern": label, "target_sparsity": target}
        for kind, rows_ in (("pattern", group), ("unstructured", same)):
            best = rows_.loc[rows_.instructions.idxmin()] if len(rows_) else None
            row |= {
                f"{kind}_format": best.format if best is not None else "",
                f"{kind}_speedup": best.speedup_vs_dense if best is not None else np.nan,
                f"{kind}_bytes_vs_dense": best.bytes_vs_dense if best is not None else np.nan,
            }
        rows.append(row)
    return pd.DataFrame(rows)


def markdown_summary(table: pd.DataFrame, crossings: pd.DataFrame) -> str:
    """Per shape, the layer's instructions (speedup over dense) and weight bytes (over dense) per format and
    pruning; then the break-even sparsities; then each N:M pattern beside unstructured pruning at its sparsity
    (patterns_beside_unstructured). For docs/kernels.md."""
    parts = [_shape_table(shape, rows) for shape, rows in table.groupby("shape", sort=False)]
    parts.append(_break_even_table(crossings))
    beside = patterns_beside_unstructured(table)
    if len(beside):
        parts.append(_patterns_table(beside))
    return "\n\n".join(parts) + "\n"


def _shape_table(shape: str, rows: pd.DataFrame) -> str:
    first = rows.iloc[0]
    prunings = list(dict.fromkeys(rows.pruning))
    header = ["format", *(_pruning_label(p) for p in prunings), "code bytes"]
    lines = [
        f"**{shape}** ({first.op}, {first.macs:,} MACs): layer {first.unit} (speedup over dense); "
        f"weight bytes (over dense)",
        "",
        _row(header),
        _row(["---"] * len(header)),
    ]
    for fmt, ours in rows.groupby("format", sort=False):
        cells = ours.set_index("pruning")
        ran = "/".join(dict.fromkeys(ours.layer_format))
        name = fmt if ran == fmt else f"{fmt} (runs {ran})"
        pruned = (_cell(cells.loc[p]) if p in cells.index else "" for p in prunings)
        lines.append(_row([name, *pruned, _code(ours.code_bytes)]))
    return "\n".join(lines)


def _break_even_table(crossings: pd.DataFrame) -> str:
    lines = [
        _row(["shape", "format", "break-even: latency", "weight bytes", "flash (weights + code)", "best speedup"]),
        _row(["---"] * 6),
    ]
    for row in crossings.itertuples():
        best = "" if np.isnan(row.best_speedup) else f"{row.best_speedup:.2f}×"
        texts = [row.break_even_latency_text, row.break_even_weights_text, row.break_even_flash_text]
        lines.append(_row([row.shape, row.format, *texts, best]))
    return "\n".join(lines)


def _patterns_table(beside: pd.DataFrame) -> str:
    lines = [
        _row(["shape", "N:M pattern", "fastest at the pattern", "fastest unstructured, same sparsity"]),
        _row(["---"] * 4),
    ]
    for row in beside.itertuples():
        pattern = _best(row.pattern_format, row.pattern_speedup, row.pattern_bytes_vs_dense)
        unstructured = _best(row.unstructured_format, row.unstructured_speedup, row.unstructured_bytes_vs_dense)
        lines.append(_row([row.shape, f"{row.pattern} ({row.target_sparsity:.0%})", pattern, unstructured]))
    return "\n".join(lines)


def _best(fmt: str, speedup: float, bytes_vs_dense: float) -> str:
    return f"{fmt} {speedup:.2f}×, {bytes_vs_dense:.2f} of dense bytes" if fmt else "not measured"


def _pruning_label(pruning) -> str:
    return pruning if ":" in str(pruning) else f"{float(pruning):.0%}"


def _cell(row) -> str:
    if row.status != "ok":
        return "failed"
    return (
        f"{row.instructions / 1000:,.0f}k ({row.speedup_vs_dense:.2f}×)<br>"
        f"{row.weight_bytes:,} B ({row.bytes_vs_dense:.2f})"
    )


def _code(code_bytes: pd.Series) -> str:
    values = sorted({int(v) for v in code_bytes.dropna()})
    return "–".join(f"{v:,}" for v in (values[:1] + values[-1:] if len(values) > 1 else values))


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"
