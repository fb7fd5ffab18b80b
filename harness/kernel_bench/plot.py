"""The micro-benchmark's figure: one row per shape; instructions, speedup over dense, bytes over dense.

Unstructured points are joined by lines over the sparsity achieved on the
int8 weights; N:M points are unjoined markers at their own sparsity. Dense
is the grey reference line, and each format's break-even sparsity (latency
in the middle column, weight bytes in the right one) is a dotted line.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.report.runs import timing_kind
from harness.report.style import DENSE_COLOR, SPARSITY_LABEL, latency_scale, percent_axis, styled, tag_axes

PNG_DPI = 150
PATTERN_MARKERS = {"2:4": "s", "1:4": "D"}  # other N:M patterns get "^"


def plot_kernel_bench(table: pd.DataFrame, crossings: pd.DataFrame, stem: Path) -> tuple[Path, ...]:
    """Write <stem>.png and <stem>.svg of the variants measured; returns their paths."""
    fig = _figure(table[table.status == "ok"], crossings)
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    fig.savefig(png, dpi=PNG_DPI)
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": stem.name}):
        fig.savefig(svg)  # text stays text; a fixed salt keeps the same data the same file
    return png, svg


@styled
def _figure(table: pd.DataFrame, crossings: pd.DataFrame):
    shapes = list(dict.fromkeys(table["shape"]))
    formats = list(dict.fromkeys(table["format"]))
    colors = {
        fmt: DENSE_COLOR if fmt == "dense" else f"C{i}" for i, fmt in enumerate(f for f in formats if f != "dense")
    } | ({"dense": DENSE_COLOR} if "dense" in formats else {})
    fig = Figure(figsize=(14, 3.6 * len(shapes) + 0.6), layout="constrained")
    axes = fig.subplots(len(shapes), 3, squeeze=False)
    for row_axes, shape in zip(axes, shapes):
        rows = table[table["shape"] == shape]
        _instructions(row_axes[0], rows, formats, colors)
        _ratio(
            row_axes[1],
            rows,
            formats,
            colors,
            "speedup_vs_dense",
            "speedup over dense (×)",
            crossings,
            shape,
            "break_even_latency",
            "left",
        )
        _ratio(
            row_axes[2],
            rows,
            formats,
            colors,
            "bytes_vs_dense",
            "weight bytes / dense weight bytes",
            crossings,
            shape,
            "break_even_weights",
            "right",
        )
        first = rows.iloc[0]
        row_axes[0].set_title(f"{shape} ({first.op}, {first.macs:,} MACs)", loc="left", fontweight="bold")
    kind = timing_kind(str(table.unit.iloc[0]), str(table.timing_source.iloc[0]))
    unit = table.unit.iloc[0]
    tag_axes(
        axes[0][1],
        [
            f"{kind.badge} · {table.board.iloc[0]} · per-layer timer, in {unit}"
            f"{' (not cycles)' if unit == 'instructions' else ''}"
        ],
        kind.color,
    )
    fig.suptitle(
        "Kernel micro-benchmark: one layer per shape, dense and sparse weight formats",
        x=0.01,
        ha="left",
        fontsize=11,
        fontweight="bold",
    )
    legend = {}
    for ax in axes[:, 0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(legend.values(), legend.keys(), loc="outside lower center", ncols=min(len(legend), 8))
    return fig


def _points(ax, rows: pd.DataFrame, fmt: str, color: str, column: str, divisor: float = 1.0) -> None:
    ours = rows[rows.format == fmt]
    line = ours[ours.pattern == "unstructured"].sort_values("sparsity")
    style = {"linestyle": "--", "marker": None} if fmt == "dense" else {"marker": "o"}
    ax.plot(line.sparsity, line[column] / divisor, color=color, label=fmt, **style)
    for pattern, group in ours[ours.pattern != "unstructured"].groupby("pattern"):
        ax.scatter(
            group.sparsity,
            group[column] / divisor,
            color=color,
            marker=PATTERN_MARKERS.get(pattern, "^"),
            facecolors="none",
            s=40,
            label=f"{fmt}, {pattern} pattern",
        )


def _instructions(ax, rows: pd.DataFrame, formats: list[str], colors: dict) -> None:
    divisor, unit = latency_scale(str(rows.unit.iloc[0]), float(np.nanmax(rows.instructions)))
    for fmt in formats:
        _points(ax, rows, fmt, colors[fmt], "instructions", divisor)
    ax.set(xlabel=SPARSITY_LABEL, ylabel=f"layer ({unit})")
    ax.set_ylim(bottom=0)
    percent_axis(ax)


def _ratio(  # noqa: PLR0913 (one panel's data, columns and labels; called twice with different columns)
    ax,
    rows: pd.DataFrame,
    formats: list[str],
    colors: dict,
    column: str,
    label: str,
    crossings: pd.DataFrame,
    shape: str,
    crossing_column: str,
    corner: str,
) -> None:
    """Ratios over dense; each format's break-even a dotted line, and its value listed in a free corner."""
    ax.axhline(1.0, color=DENSE_COLOR, linestyle="--", linewidth=1)
    left = corner == "left"
    lines = [("break-even sparsity", DENSE_COLOR)]
    for fmt in formats:
        if fmt == "dense":
            continue
        _points(ax, rows, fmt, colors[fmt], column)
        found = crossings[(crossings["shape"] == shape) & (crossings.format == fmt)]
        if found.empty:
            continue
        at = found[crossing_column].iloc[0]
        if np.isfinite(at):
            ax.axvline(at, color=colors[fmt], linestyle=":", linewidth=1.2)
        lines.append((f"{fmt}: {found[crossing_column + '_text'].iloc[0]}", colors[fmt]))
    for number, (text, color) in enumerate(lines if len(lines) > 1 else []):
        ax.text(
            0.02 if left else 0.98,
            0.97 - 0.065 * number,
            text,
            transform=ax.transAxes,
            ha="left" if left else "right",
            va="top",
            color=color,
            fontsize=8,
        )
    ax.set(xlabel=SPARSITY_LABEL, ylabel=label)
    ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], 1.0) * (1.05 + 0.1 * len(lines)))  # room for the list
    percent_axis(ax)
