"""The auto kernel's choice, per series: which weight format each layer took at each sparsity.

One table per series that has the auto kernel: a row per layer with
weights, a column per sparsity, and a last row comparing auto's latency
with the fastest single kernel at that sparsity, so a cost of the rule that
the model's weights stay no larger than dense's (or the flash budget) is
visible where it arises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from harness.chooser import AUTO
from harness.report.runs import Series

VERSUS_FASTEST = "auto latency ÷ fastest single kernel"


@dataclass(frozen=True)
class ChoiceTable:
    label: str  # the series
    rows: list[dict[str, str]]  # {"layer": ..., "<sparsity>": format, ...}


def choice_tables(series_list: list[Series], notes: list[str]) -> list[ChoiceTable]:
    tables = []
    for series in series_list:
        auto = series.kernel_rows(AUTO)
        if auto.empty:
            continue
        choices = {f"{target:.0%}": _formats(text) for target, text in zip(auto.target_sparsity, auto.layer_formats)}
        if not any(choices.values()):
            notes.append(f"{series.label}: the auto kernel's rows record no per-layer formats (layer_formats)")
            continue
        layers = list(dict.fromkeys(layer for chosen in choices.values() for layer in chosen))
        rows = [
            {"layer": layer} | {column: chosen.get(layer, "?") for column, chosen in choices.items()}
            for layer in layers
        ]
        rows.append({"layer": VERSUS_FASTEST} | _versus_fastest(series))
        tables.append(ChoiceTable(series.label, rows))
    return tables


def _formats(text: str) -> dict[str, str]:
    return json.loads(text) if isinstance(text, str) and text.strip() else {}


def _versus_fastest(series: Series) -> dict[str, str]:
    """Per sparsity, e.g. '1.000 (dense)': auto's median latency over the fastest other kernel's."""
    cells = {}
    for _, row in series.kernel_rows(AUTO).iterrows():
        others = series.rows[(series.rows.kernel != AUTO) & (series.rows.target_sparsity == row.target_sparsity)]
        column = f"{row.target_sparsity:.0%}"
        if others.empty or not np.isfinite(row.latency_median):
            cells[column] = "n/a"
            continue
        fastest = others.loc[others.latency_median.idxmin()]
        cells[column] = f"{row.latency_median / fastest.latency_median:.3f} ({fastest.kernel})"
    return cells
