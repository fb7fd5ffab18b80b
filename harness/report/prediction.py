"""The cost model checked and used: predicted against measured latency per variant, and accuracy against
measured latency for the ways of sharing the zeros among layers (uniform, global, hardware-aware).

The prediction columns come from harness/prune/predict.py; a series whose rows have none (a board without cost
curves, an older harness) has no table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from harness.report.runs import Series
from harness.report.style import comparison_header, figure, latency_scale, legend_outside, percent_axis, styled

PREDICTION_TITLE = "Predicted against measured latency"
PREDICTION_INTRO = (
    "The pruning cost model's latency of each variant (harness/prune/predict.py: each layer with "
    "weights from its op, format and sparsity, each other op from its elements) beside the measured "
    "median; error = predicted / measured − 1. Empty where a layer's format or kernel has no curve."
)
ALLOCATION_INTRO = (
    "Accuracy on the device against measured latency, each pruning method's fastest variant at each "
    "sparsity: uniform (every layer to the same target), global (all layers' weights ranked together) "
    "and hardware-aware (each layer's share chosen by the board's cost model) on the same axes. Up "
    "and to the left is better."
)

# The ways of sharing the zeros among layers this view compares, by the criterion part of a method's name.
ALLOCATIONS = {
    "magnitude": "uniform",
    "taylor": "uniform",
    "global-magnitude": "global",
    "global-taylor": "global",
    "mac-weighted-magnitude": "MAC-weighted",
    "hardware-aware": "hardware-aware",
    "hardware-aware-taylor": "hardware-aware",
}


@dataclass
class PredictionTable:
    series: Series
    rows: list[dict[str, str]]
    worst: str  # the largest |error| of the series, as text


def prediction_tables(series_list: list[Series]) -> list[PredictionTable]:
    tables = []
    for series in series_list:
        rows = series.rows.sort_values(["target_sparsity", "kernel"])
        predicted = pd.to_numeric(rows.predicted_latency, errors="coerce")
        if predicted.isna().all():
            continue
        error = predicted / rows.latency_median - 1.0
        cells = [
            {
                "sparsity": f"{row.target_sparsity:.3g}",
                "kernel": row.kernel,
                f"measured ({series.unit})": f"{row.latency_median:,.0f}",
                f"predicted ({series.unit})": "" if np.isnan(p) else f"{p:,.0f}",
                "error": "" if np.isnan(e) else f"{e:+.1%}",
            }
            for row, p, e in zip(rows.itertuples(), predicted, error)
        ]
        worst = error.abs().idxmax() if error.notna().any() else None
        tables.append(
            PredictionTable(
                series,
                cells,
                ""
                if worst is None
                else f"{error[worst]:+.1%} ({rows.kernel[worst]} at {rows.target_sparsity[worst]:.3g})",
            )
        )
    return tables


def allocation_panels(series_list: list[Series]) -> list[list[Series]]:
    """Series of one run, model and board that share the zeros in at least two of the compared ways."""
    panels: dict[tuple, list[Series]] = {}
    for series in series_list:
        if _allocation(series) is not None:
            panels.setdefault((id(series.run), series.model, series.board), []).append(series)
    return [panel for panel in panels.values() if len({_allocation(s) for s in panel}) >= 2]


def _allocation(series: Series) -> str | None:
    criterion, _, rest = series.method.partition("/")
    return None if "/" in rest else ALLOCATIONS.get(criterion)  # a pattern (N:M, filter) is another question


@styled
def allocation_figure(panel: list[Series]) -> Figure:
    """Accuracy on the device against measured latency, one line per method through its fastest variant at each
    sparsity, labelled with the sparsity."""
    quality = panel[0].quality
    fig, (ax,) = figure((9, 4.6))
    fastest_of = [_fastest(series) for series in panel]
    peak = max(fastest.latency_median.max() for fastest in fastest_of)
    divisor, unit = latency_scale(panel[0].unit, peak)
    for number, (series, fastest) in enumerate(zip(panel, fastest_of)):
        ax.plot(
            fastest.latency_median / divisor,
            fastest[quality.device],
            marker="osD^v<>"[number % 7],
            linestyle=series.kind.linestyle,
            color=f"C{number}",
            label=f"{_allocation(series)}: {series.method}",
        )
        for row in fastest.itertuples():
            ax.annotate(
                f"{row.target_sparsity:.0%} {row.kernel}",
                (row.latency_median / divisor, getattr(row, quality.device)),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color=f"C{number}",
            )
    ax.set(xlabel=f"measured latency per inference ({unit})", ylabel=quality.device_label)
    ax.set_xlim(0, peak / divisor * 1.15)  # room for the rightmost point's label
    if quality.percent:
        percent_axis(ax, "y")
    legend_outside(ax, fontsize=8)
    comparison_header(fig, ax, f"{quality.title} vs latency by allocation", panel)
    return fig


def _fastest(series: Series) -> pd.DataFrame:
    """The series' fastest variant at each sparsity."""
    rows = series.rows
    return rows.loc[rows.groupby("target_sparsity").latency_median.idxmin()].sort_values("target_sparsity")
