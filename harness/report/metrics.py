"""The numbers a reader looks for first: break-even sparsity, best speedup, flash saved, Pareto fronts.

Flash saved is measured against the task's metric (quality.py): a floor under accuracy or AUC, a ceiling over MSE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.report.quality import Quality
from harness.report.runs import Series


def ratio_over_dense(series: Series, kernel: str, column: str) -> pd.Series:
    """dense / kernel for a column (latency: speedup; flash: compression), indexed by target sparsity."""
    dense = series.kernel_rows("dense").set_index("target_sparsity")[column]
    other = series.kernel_rows(kernel).set_index("target_sparsity")[column]
    return (dense.reindex(other.index) / other).dropna()


@dataclass(frozen=True)
class Crossing:
    """Where a ratio over dense reaches 1 for good. Exactly one of the three cases holds."""

    sparsity: float | None  # from where on the ratio stays >= 1, interpolated between the last measured point
    # below 1 and the next
    from_start: bool = False  # >= 1 at every sparsity measured
    never_up_to: float | None = None  # below 1 at the highest sparsity measured: it never stays >= 1
    below: tuple[float, ...] = ()  # every sparsity measured where the ratio is below 1
    dips: bool = False  # some of them come after a point >= 1: it falls back below dense on the way

    def describe(self, worse: str = "below 1× at") -> str:
        """E.g. '≈ 70% (slower at 0%, 50%)': where it is worse than dense is named whenever that is not simply every
        point before the break-even."""
        if self.from_start:
            text = f"≤ {self.sparsity:.0%}"
        elif self.never_up_to is not None:
            text = f"> {self.never_up_to:.0%}"
        else:
            text = f"≈ {self.sparsity:.0%}" if self.sparsity is not None else "n/a"
        return f"{text} ({worse} {percents(self.below)})" if self.dips else text

    def __str__(self) -> str:
        return self.describe()


def percents(values) -> str:
    """E.g. '0%, 50%', sparsities for a sentence."""
    return ", ".join(f"{value:.0%}" for value in values)


def break_even(ratio: pd.Series) -> Crossing:
    """The sparsity from which the ratio stays at or above 1: interpolated linearly between the last point below 1
    and the next one. A ratio that dips below 1 after reaching it breaks even only after its last dip.

    >>> str(break_even(pd.Series([0.5, 1.5], index=[0.4, 0.8])))
    '≈ 60%'
    >>> str(break_even(pd.Series([1.1, 0.9, 1.3], index=[0.0, 0.5, 0.9])))
    '≈ 60% (below 1× at 50%)'
    """
    if ratio.empty:
        return Crossing(None)
    is_below = (ratio < 1.0).to_numpy()
    below = tuple(ratio.index[is_below])
    dips = bool((is_below & np.maximum.accumulate(~is_below)).any())
    if not below:
        return Crossing(ratio.index[0], from_start=True)
    last = int(np.flatnonzero(is_below)[-1])
    if last == len(ratio) - 1:
        return Crossing(None, never_up_to=ratio.index[-1], below=below, dips=dips)
    x0, y0 = ratio.index[last], ratio.iloc[last]
    x1, y1 = ratio.index[last + 1], ratio.iloc[last + 1]
    return Crossing(x0 + (1.0 - y0) * (x1 - x0) / (y1 - y0), below=below, dips=dips)


def pareto_front(cost: np.ndarray, benefit: np.ndarray) -> np.ndarray:
    """Mask of the points no other point beats: cost no higher and benefit no lower, one strictly.

    >>> pareto_front(np.array([1, 2, 3]), np.array([0.5, 0.9, 0.8])).tolist()
    [True, True, False]
    """
    cost, benefit = np.asarray(cost, float), np.asarray(benefit, float)
    dominated = (
        (cost[None, :] <= cost[:, None])
        & (benefit[None, :] >= benefit[:, None])
        & ((cost[None, :] < cost[:, None]) | (benefit[None, :] > benefit[:, None]))
    )
    return ~dominated.any(axis=1) & np.isfinite(cost) & np.isfinite(benefit)


def dense_baseline(series: Series) -> pd.Series | None:
    """The dense model: the dense kernel at the lowest sparsity measured."""
    dense = series.kernel_rows("dense")
    return dense.iloc[0] if not dense.empty else None


def quality_bound(series: Series, floor: float | None) -> float:
    """What the key figures hold the series' metric on the device to: the user's floor where it applies (accuracy,
    AUC), else the dense model's value made a little worse (Quality.default_bound)."""
    quality = series.quality
    if floor is not None and quality.takes_user_floor:
        return floor
    baseline = dense_baseline(series)
    return quality.default_bound(baseline[quality.device]) if baseline is not None else float("nan")


def smallest_within_bound(series: Series, kernel: str, bound: float) -> pd.Series | None:
    """The kernel's smallest-flash point whose metric on the device meets the bound."""
    rows = series.kernel_rows(kernel)
    rows = rows[series.quality.meets(rows[series.quality.device], bound)]
    return rows.loc[rows.flash_total.idxmin()] if not rows.empty else None


@dataclass(frozen=True)
class KeyTable:
    """The key figures of the series scored by one metric: its bound has a column of its own."""

    quality: Quality
    rows: list[dict[str, str]]  # one per (series, sparse kernel), formatted for HTML and Markdown alike


def key_figures(series_list: list[Series], floor: float | None) -> list[KeyTable]:
    """One table per metric, in the order the series first use them."""
    # The series label says more than the board only when runs, methods or versions differ.
    labelled = any(series.label != series.board for series in series_list)
    tables: dict[Quality, list[dict[str, str]]] = {}
    for series in series_list:
        bound = quality_bound(series, floor)
        tables.setdefault(series.quality, []).extend(
            ({"series": series.label} if labelled else {}) | _key_row(series, kernel, bound)
            for kernel in series.sparse_kernels()
        )
    return [KeyTable(quality, rows) for quality, rows in tables.items() if rows]


def _key_row(series: Series, kernel: str, bound: float) -> dict[str, str]:
    speedup = ratio_over_dense(series, kernel, "latency_median")
    best = f"{speedup.max():.2f}× at {speedup.idxmax():.0%}" if not speedup.empty else "n/a"
    quality = series.quality
    return {
        "model": series.model,
        "board": series.board,
        "timing": series.kind.name,
        "kernel": kernel,
        "break-even sparsity (latency)": break_even(speedup).describe("slower at"),
        "best speedup": best,
        "break-even sparsity (flash)": break_even(ratio_over_dense(series, kernel, "flash_total")).describe(
            "larger at"
        ),
        quality.bound_name: quality.format(bound),
        f"flash saved at {quality.bound_name}": _flash_saved(series, kernel, bound),
    }


def _flash_saved(series: Series, kernel: str, bound: float) -> str:
    baseline = dense_baseline(series)
    if baseline is None:
        return "n/a (no dense kernel)"
    name = series.quality.bound_name
    best = smallest_within_bound(series, kernel, bound)
    if best is None:
        return f"none: no point meets the {name}"
    saved = baseline.flash_total - best.flash_total
    if saved < 0:
        return (
            f"none: its smallest point within the {name} ({best.target_sparsity:.0%}) is {-saved / 1024:.1f} KiB larger"
        )
    return f"{saved / 1024:.1f} KiB ({saved / baseline.flash_total:.0%}) at {best.target_sparsity:.0%}"
