"""The plots of one series (one model on one board, one pruning method, one run), one function each.

Each returns a matplotlib Figure, or raises NothingToDraw with the reason.
Sparsity and accuracy are plotted as fractions on percent-formatted axes; each series is scored by its task's
metric (quality.py).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from harness.report.metrics import break_even, pareto_front, percents, ratio_over_dense
from harness.report.runs import Series
from harness.report.style import (
    DENSE_COLOR,
    SPARSITY_LABEL,
    NothingToDraw,
    figure,
    kernel_color,
    latency_scale,
    legend_outside,
    percent_axis,
    series_header,
    styled,
)

FLASH_PARTS = [
    ("code", "#9e9e9e", lambda r: r.flash_code),
    ("dense weights", "#4e79a7", lambda r: r.flash_weights_dense),
    ("sparse values", "#59a14f", lambda r: r.flash_sparse_values),
    ("sparse indices", "#e15759", lambda r: r.flash_sparse_indices),
    ("sparse pointers", "#b07aa1", lambda r: r.flash_sparse_pointers),
    ("biases + requantization", "#9c755f", lambda r: r.flash_bias_quant),
]

LAYER_COLORS = colormaps["tab20"].colors

# .data + .bss include the activation arena, so the arena is taken out to stack the parts without counting it twice.
SRAM_PARTS = [
    ("static (.data + .bss), arena excluded", "#9e9e9e", lambda r: r.sram_static - r.sram_arena),
    ("activation arena", "#f28e2b", lambda r: r.sram_arena),
    ("stack high-water mark", "#76b7b2", lambda r: r.stack_used.where(r.stack_used >= 0)),
]


@styled
def latency_figure(series: Series) -> Figure:
    fig, (ax,) = figure((8.5, 4.2))
    divisor, unit = latency_scale(series.unit, series.rows.latency_max.max())
    for kernel in series.kernels():
        rows = series.kernel_rows(kernel)
        # Clipped: a hand-edited or merged results file may put the median outside min..max.
        spread = [
            (rows.latency_median - rows.latency_min).clip(lower=0) / divisor,
            (rows.latency_max - rows.latency_median).clip(lower=0) / divisor,
        ]
        color = kernel_color(series, kernel)
        ax.errorbar(
            rows.target_sparsity,
            rows.latency_median / divisor,
            yerr=spread,
            marker="o",
            capsize=4,
            color=color,
            label=kernel,
        )
        ax.fill_between(
            rows.target_sparsity,
            rows.latency_min / divisor,
            rows.latency_max / divisor,
            color=color,
            alpha=0.15,
            linewidth=0,
        )
    rows = series.rows
    widest = ((rows.latency_max - rows.latency_min) / rows.latency_median).max()
    ax.set(xlabel=SPARSITY_LABEL, ylabel=f"latency per inference ({unit})")
    ax.set_ylim(bottom=0)
    percent_axis(ax)
    # QEMU's counts barely vary: say how wide the spread is, so invisible bars are not read as missing.
    legend_outside(
        ax, title=f"kernel: median of\n{rows.latency_runs.max()} runs, bars:\nmin–max (widest {widest * 100:.2g}%)"
    )
    series_header(fig, ax, "Latency vs sparsity", series)
    return fig


@styled
def speedup_figure(series: Series) -> Figure:
    if "dense" not in series.kernels() or not series.sparse_kernels():
        raise NothingToDraw(f"{series.label}: speedup needs the dense kernel and a sparse one")
    fig, (ax,) = figure((8.5, 4.2))
    ax.axhline(1.0, color=DENSE_COLOR, linestyle="--", linewidth=1, label="dense (1×)")
    for line, kernel in enumerate(series.sparse_kernels()):
        speedup = ratio_over_dense(series, kernel, "latency_median")
        color = kernel_color(series, kernel)
        ax.plot(speedup.index, speedup, marker="o", color=color, label=kernel)
        _mark_break_even(ax, speedup, kernel, color, line)
    ax.axhspan(0, 1, color="#e15759", alpha=0.07, linewidth=0)  # slower than dense
    ax.set(xlabel=SPARSITY_LABEL, ylabel="speedup over dense (×, dense latency / sparse latency)")
    ax.set_ylim(bottom=0)
    percent_axis(ax)
    legend_outside(ax, title="kernel")
    series_header(fig, ax, "Speedup over dense vs sparsity", series)
    return fig


def _mark_break_even(ax, speedup: pd.Series, kernel: str, color: str, line: int) -> None:
    """A vertical line where the sparse kernel starts to win for good; a note when it always or never does, or
    where it falls back below dense after winning.

    Notes sit in the bottom right corner, inside the band where sparse is slower, one line per kernel.
    """
    crossing = break_even(speedup)
    if crossing.sparsity is not None and not crossing.from_start:
        ax.axvline(crossing.sparsity, color=color, linestyle=":", linewidth=1.2)
        # Named: two kernels' marks may sit side by side, and colour alone would not say whose each is.
        ax.annotate(
            f"{kernel}: break-even {crossing.describe('slower at')}",
            (crossing.sparsity, 1.0),
            xytext=(6, -16),
            textcoords="offset points",
            color=color,
            fontsize=8.5,
        )
        return
    if crossing.from_start:
        text = (
            f"{kernel}: at least as fast as dense at every sparsity measured ({speedup.index[0]:.0%} to "
            f"{speedup.index[-1]:.0%})"
        )
    elif crossing.dips:
        text = (
            f"{kernel}: slower than dense at {percents(crossing.below)}, so no break-even up to {speedup.index[-1]:.0%}"
        )
    else:
        text = f"{kernel}: never faster than dense, up to {speedup.index[-1]:.0%}"
    ax.text(0.98, 0.03 + 0.06 * line, text, transform=ax.transAxes, ha="right", va="bottom", color=color, fontsize=8.5)


@styled
def flash_figure(series: Series) -> Figure:
    fig, (ax,) = figure(_bar_figure_size(series))
    _stacked_bars(ax, series, FLASH_PARTS)
    dense = series.kernel_rows("dense")
    if not dense.empty:
        ax.axhline(
            dense.flash_total.iloc[0] / 1024, color="black", linestyle="--", linewidth=1, label="dense model, total"
        )
    ax.set_ylabel("flash (KiB)")
    legend_outside(ax, fontsize=8)
    series_header(fig, ax, "Flash vs sparsity", series)
    return fig


@styled
def sram_figure(series: Series) -> Figure:
    fig, (ax,) = figure(_bar_figure_size(series))
    _stacked_bars(ax, series, SRAM_PARTS)
    ax.set_ylabel("SRAM (KiB)")
    legend_outside(ax, fontsize=8)
    if (series.rows.stack_used < 0).all():
        ax.text(
            0.01,
            0.97,
            "stack high-water mark: not measured on this board",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
        )
    series_header(fig, ax, "SRAM vs sparsity", series)
    return fig


def _bar_figure_size(series: Series) -> tuple[float, float]:
    bars = series.rows.target_sparsity.nunique() * len(series.kernels())
    return max(8.5, 0.55 * bars + 3.5), 4.6  # 2 inches for the legend beside the bars


def _stacked_bars(ax, series: Series, parts) -> None:
    """One group of bars per sparsity, one bar per kernel, each stacked by part, in KiB."""
    kernels = series.kernels()
    targets = sorted(series.rows.target_sparsity.unique())
    width = 0.8 / len(kernels)
    x = np.arange(len(targets))
    kernel_ticks = []
    for k, kernel in enumerate(kernels):
        rows = series.kernel_rows(kernel).set_index("target_sparsity").reindex(targets)
        offset = x + (k - (len(kernels) - 1) / 2) * width
        bottom = np.zeros(len(targets))
        for label, color, part in parts:
            values = part(rows).fillna(0).to_numpy() / 1024
            ax.bar(offset, values, width * 0.92, bottom=bottom, color=color, label=label if k == 0 else None)
            bottom += values
        kernel_ticks += [(position, kernel) for position in offset]
    # Kernel names label each bar; the sparsity labels its group, one line further down.
    ax.set_xticks([p for p, _ in kernel_ticks], [k for _, k in kernel_ticks], minor=True)
    ax.tick_params(axis="x", which="minor", labelsize=7.5)
    ax.set_xticks(x, [f"{t:.0%}" for t in targets])
    ax.xaxis.remove_overlapping_locs = False  # with an odd number of kernels the middle bar sits on the group's tick
    ax.tick_params(axis="x", which="major", length=0, pad=14)
    ax.set_xlabel(SPARSITY_LABEL)
    ax.grid(axis="x", visible=False)


@styled
def quality_figure(panel: list[Series], bound: float | None) -> Figure:
    """The task's metric of the float model, of int8 on the host and on the device; several pruning methods share the
    axes, one colour each. bound: the key figures' floor (or ceiling), drawn as a line."""
    quality = panel[0].quality
    fig, (ax,) = figure((9, 4.4))
    several = len(panel) > 1
    for m, series in enumerate(panel):
        per_point = series.rows.sort_values("target_sparsity").drop_duplicates("target_sparsity")
        method = f"{series.method}: " if several else ""
        # Device lines take the kernel colours of the other plots; the host-side lines keep out of their way.
        colors = [f"C{m}"] * 3 if several else ["C4", "C1", None]
        ax.plot(
            per_point.target_sparsity,
            per_point[quality.column("float")],
            "o-",
            color=colors[0],
            label=f"{method}float (Keras)",
        )
        ax.plot(
            per_point.target_sparsity,
            per_point[quality.column("int8_host")],
            "s--",
            color=colors[1],
            label=f"{method}int8, TFLite Micro on the host",
        )
        for marker, kernel in zip("x+1234", series.kernels()):
            rows = series.kernel_rows(kernel)
            ax.plot(
                rows.target_sparsity,
                rows[quality.device],
                marker=marker,
                linestyle=":",
                markersize=9,
                color=colors[2] or kernel_color(series, kernel),
                label=f"{method}int8 on the device, {kernel}",
            )
    if bound is not None and np.isfinite(bound):
        ax.axhline(
            bound, color="#e15759", linewidth=1, linestyle="-.", label=f"{quality.bound_name} {quality.format(bound)}"
        )
    ax.set(xlabel=SPARSITY_LABEL, ylabel=quality.axis_label)
    percent_axis(ax, "x")
    if quality.percent:
        percent_axis(ax, "y")
    legend_outside(ax, fontsize=8)
    series_header(fig, ax, f"{quality.title} vs sparsity", panel[0])
    return fig


@styled
def pareto_latency_figure(series: Series) -> Figure:
    divisor, unit = latency_scale(series.unit, series.rows.latency_median.max())
    return _pareto_figure(series, series.rows.latency_median / divisor, f"latency per inference ({unit})", "latency")


@styled
def pareto_flash_figure(series: Series) -> Figure:
    return _pareto_figure(series, series.rows.flash_total / 1024, "flash (KiB)", "flash")


def _pareto_figure(series: Series, cost: pd.Series, xlabel: str, what: str) -> Figure:
    """Every variant as a point; the non-dominated ones (nothing cheaper is as good) ringed and joined."""
    quality = series.quality
    score = series.rows[quality.device]
    if score.isna().all():
        raise NothingToDraw(f"{series.label}: no {quality.name} measured on the device")
    fig, (ax,) = figure((9, 4.4))
    for kernel in series.kernels():
        mine = series.rows.kernel == kernel
        ax.scatter(cost[mine], score[mine], color=kernel_color(series, kernel), label=kernel, zorder=3)
    front = series.rows[pareto_front(cost.to_numpy(), quality.benefit(score))].assign(cost=cost, score=score)
    front = front.sort_values(["cost", "score"])
    ax.step(front.cost, front.score, where="post", color="black", linewidth=1, linestyle="--", zorder=2)
    ax.scatter(
        front.cost,
        front.score,
        s=170,
        facecolors="none",
        edgecolors="black",
        linewidths=1.3,
        zorder=4,
        label="non-dominated (Pareto front)",
    )
    # Equal points (dense at every sparsity costs the same) share one label instead of printing over each other.
    for (x, y), tied in front.groupby(["cost", "score"], sort=False):
        names = "; ".join(
            f"{kernel} " + ", ".join(f"{t:.0%}" for t in rows.target_sparsity)
            for kernel, rows in tied.groupby("kernel", sort=False)
        )
        ax.annotate(names, (x, y), xytext=(7, 4), textcoords="offset points", fontsize=8)
    ax.set(xlabel=f"{xlabel}, lower is better", ylabel=quality.device_label)
    ax.set_xlim(left=0)
    if quality.percent:
        percent_axis(ax, "y")
    legend_outside(ax)
    series_header(fig, ax, f"{quality.title} vs {what}", series)
    return fig


@styled
def layers_figure(series: Series) -> Figure:
    table = layer_breakdown(series)
    if table.empty:
        raise NothingToDraw(f"{series.label}: no per-layer latencies recorded")
    divisor, unit = latency_scale(series.unit, table.sum(axis=1).max())
    fig, (ax,) = figure((8.5, 1.6 + 0.32 * len(table)))
    left = np.zeros(len(table))
    for i, layer in enumerate(table.columns):
        values = table[layer].fillna(0).to_numpy() / divisor
        ax.barh(
            np.arange(len(table)),
            values,
            left=left,
            color=LAYER_COLORS[i % len(LAYER_COLORS)],
            label=layer,
            edgecolor="white",
            linewidth=0.5,
        )
        left += values
    ax.set_yticks(np.arange(len(table)), table.index)
    ax.invert_yaxis()  # variants read top-down in sweep order
    ax.set(xlabel=f"latency per inference, by layer ({unit})", ylabel="variant (kernel, sparsity)")
    ax.grid(axis="y", visible=False)
    legend_outside(ax, title="layer", fontsize=8)
    series_header(fig, ax, "Per-layer latency", series)
    return fig


def layer_breakdown(series: Series) -> pd.DataFrame:
    """Rows: variants ('csr 90%'); columns: layers in execution order; values in the series' latency unit."""
    records = {}
    for kernel in series.kernels():
        for _, row in series.kernel_rows(kernel).iterrows():
            layers = parse_layers(row.layer_latency)
            if layers:
                records[f"{kernel} {row.target_sparsity:.0%}"] = layers
    return pd.DataFrame.from_dict(records, orient="index")


def parse_layers(text: str) -> dict[str, float]:
    """{'0:CONV_2D': n, ...}; the first harness wrote a bare list, named here by position.

    >>> parse_layers('[5, 7]')
    {'layer 0': 5, 'layer 1': 7}
    """
    if not isinstance(text, str) or not text.strip():
        return {}
    layers = json.loads(text)
    return layers if isinstance(layers, dict) else {f"layer {i}": v for i, v in enumerate(layers)}
