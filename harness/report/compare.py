"""Several series on the same axes: boards, pruning methods, harness versions or runs side by side.

Colour tells the series apart, line style the kind of board (emulated, host
process, real), marker the kernel. Latencies share an axis only when they
share a unit; speedup, a ratio, compares every series.
"""

from __future__ import annotations

from matplotlib.figure import Figure

from harness.report.metrics import ratio_over_dense
from harness.report.quality import Quality
from harness.report.runs import Series
from harness.report.style import (
    DENSE_COLOR,
    SPARSITY_LABEL,
    NothingToDraw,
    comparison_header,
    figure,
    latency_scale,
    legend_outside,
    percent_axis,
    styled,
    suptitle,
    tag_comparison,
)

MARKERS = "osD^v<>"


def comparison_notes(series_list: list[Series]) -> list[str]:
    """What the reader must know before comparing these curves."""
    notes = []
    models = sorted({s.model for s in series_list})
    if len(models) > 1:
        notes.append(f"the runs measure different models ({', '.join(models)}): they share axes, not a network")
    units = sorted({s.unit for s in series_list})
    if len(units) > 1:
        notes.append(
            f"latency units differ ({', '.join(units)}): latencies are compared on one axis per unit, "
            "speedup (a ratio) on one axis for all"
        )
    metrics = list(dict.fromkeys(s.quality.name for s in series_list))
    if len(metrics) > 1:
        notes.append(
            f"the series are scored by different metrics ({', '.join(metrics)}): each metric is compared on "
            "an axis of its own"
        )
    shared = set.intersection(*(set(s.rows.target_sparsity) for s in series_list))
    if not shared:
        notes.append("the series share no sparsity target: their curves are compared between different points")
    return notes


def _color(series_list: list[Series], series: Series) -> str:
    return f"C{series_list.index(series) % 10}"


@styled
def compare_speedup_figure(series_list: list[Series]) -> Figure:
    fig, (ax,) = figure((10, 4.8))
    for series in series_list:
        for marker, kernel in zip(MARKERS, series.sparse_kernels()):
            speedup = ratio_over_dense(series, kernel, "latency_median")
            ax.plot(
                speedup.index,
                speedup,
                marker=marker,
                linestyle=series.kind.linestyle,
                color=_color(series_list, series),
                label=f"{series.label} · {kernel}",
            )
    if not ax.lines:
        raise NothingToDraw("no series has both the dense kernel and a sparse one: no speedup to compare")
    ax.axhline(1.0, color=DENSE_COLOR, linestyle="--", linewidth=1, label="dense (1×)")
    ax.set(xlabel=SPARSITY_LABEL, ylabel="speedup over dense (×, dense latency / sparse latency)")
    ax.set_ylim(bottom=0)
    percent_axis(ax)
    legend_outside(ax, fontsize=8)
    comparison_header(fig, ax, "Speedup over dense, compared", series_list)
    return fig


@styled
def compare_latency_figure(series_list: list[Series]) -> Figure:
    """One axis per latency unit: instructions, nanoseconds and cycles are different quantities."""
    by_unit: dict[str, list[Series]] = {}
    for series in series_list:
        by_unit.setdefault(series.unit, []).append(series)
    fig, axes = figure((8.5 * len(by_unit) + 0.5, 4.8), ncols=len(by_unit))
    for ax, group in zip(axes, by_unit.values()):
        divisor, unit = latency_scale(group[0].unit, max(s.rows.latency_median.max() for s in group))
        _lines(ax, series_list, group, "latency_median", divisor)
        ax.set(xlabel=SPARSITY_LABEL, ylabel=f"latency per inference ({unit})")
        ax.set_ylim(bottom=0)
        percent_axis(ax)
        legend_outside(ax, fontsize=8)
        tag_comparison(ax, group)
    suptitle(fig, "Latency vs sparsity, compared", [s.model for s in series_list], [s.board for s in series_list])
    return fig


@styled
def compare_flash_figure(series_list: list[Series]) -> Figure:
    fig, (ax,) = figure((10, 4.8))
    _lines(ax, series_list, series_list, "flash_total", 1024)
    ax.set(xlabel=SPARSITY_LABEL, ylabel="flash, total (KiB)")
    ax.set_ylim(bottom=0)
    percent_axis(ax)
    legend_outside(ax, fontsize=8)
    comparison_header(fig, ax, "Flash vs sparsity, compared", series_list)
    return fig


@styled
def compare_quality_figure(series_list: list[Series]) -> Figure:
    """One axis per metric: accuracy, AUC and MSE are different quantities, and MSE is better low."""
    by_quality: dict[Quality, list[Series]] = {}
    for series in series_list:
        by_quality.setdefault(series.quality, []).append(series)
    fig, axes = figure((9.5 * len(by_quality) + 0.5, 4.8), ncols=len(by_quality))
    for ax, (quality, group) in zip(axes, by_quality.items()):
        _lines(ax, series_list, group, quality.device, 1)
        ax.set(xlabel=SPARSITY_LABEL, ylabel=quality.device_label)
        percent_axis(ax, "x")
        if quality.percent:
            percent_axis(ax, "y")
        legend_outside(ax, fontsize=8)
        tag_comparison(ax, group)
    suptitle(
        fig,
        f"{' and '.join(q.title for q in by_quality)} vs sparsity, compared",
        [s.model for s in series_list],
        [s.board for s in series_list],
    )
    return fig


def _lines(ax, series_list: list[Series], drawn: list[Series], column: str, divisor: float) -> None:
    """One line per (series, kernel); colours come from the whole comparison, so they agree across axes."""
    for series in drawn:
        for marker, kernel in zip(MARKERS, series.kernels()):
            rows = series.kernel_rows(kernel)
            ax.plot(
                rows.target_sparsity,
                rows[column] / divisor,
                marker=marker,
                linestyle=series.kind.linestyle,
                color=_color(series_list, series),
                label=f"{series.label} · {kernel}",
            )
