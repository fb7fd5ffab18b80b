"""What every plot shares: the look, the header naming model, board and timing, units and colours."""
from __future__ import annotations

import functools

import matplotlib
import matplotlib.ticker
from matplotlib.figure import Figure

from harness.report.runs import EMULATED, Series

STYLE = {
    "font.size": 9.5, "axes.titlesize": 9, "axes.labelsize": 9.5, "axes.grid": True, "grid.alpha": 0.3,
    "axes.spines.top": False, "axes.spines.right": False, "legend.fontsize": 8.5, "legend.framealpha": 0.9,
}

SPARSITY_LABEL = "sparsity (% of weights pruned)"
DENSE_COLOR = "#4d4d4d"


class NothingToDraw(Exception):
    """A plot that this data cannot make; the message says why, for the report's notes."""


def styled(draw):
    """Draw a whole figure under the report's style (rcParams apply when each text is made, not at the end)."""
    @functools.wraps(draw)
    def in_style(*args, **kwargs):
        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)
    return in_style


def figure(size: tuple[float, float], ncols: int = 1) -> tuple[Figure, list]:
    """A figure outside pyplot: nothing global holds on to it, so a report of many plots frees them as it goes."""
    fig = Figure(figsize=size, layout="constrained")
    return fig, list(fig.subplots(1, ncols, squeeze=False)[0])


def suptitle(fig: Figure, what: str, models: list[str], boards: list[str]) -> None:
    fig.suptitle(f"{what}: {', '.join(dict.fromkeys(models))} on {', '.join(dict.fromkeys(boards))}",
                 x=0.01, ha="left", fontsize=11, fontweight="bold")


def tag_axes(ax, tags: list[str], color: str) -> None:
    """Say above the axes how its data were timed, coloured by the kind of board, so an emulated result is never
    mistaken for a measured one."""
    ax.set_title("\n".join(dict.fromkeys(tags)), loc="left", color=color, fontsize=8.5,
                 bbox={"facecolor": color, "alpha": 0.08, "edgecolor": color, "boxstyle": "round"})


def timing_tag(series: Series) -> str:
    """E.g. 'EMULATED BOARD (QEMU) · timing: qemu-icount-systick, in instructions (not cycles)'."""
    unit = f"{series.unit} (not cycles)" if series.kind is EMULATED else series.unit
    return f"{series.kind.badge} · timing: {series.source}, in {unit}"


def series_header(fig: Figure, ax, what: str, series: Series) -> None:
    suptitle(fig, what, [series.model], [series.board])
    tag_axes(ax, [timing_tag(series)], series.kind.color)


LINE_NAMES = {"-": "solid", "--": "dashed", ":": "dotted", "-.": "dash-dot"}


def tag_comparison(ax, series_list: list[Series]) -> None:
    """One tag per kind of timing on the axes, saying which line style stands for it."""
    tags = [f"{LINE_NAMES[s.kind.linestyle]} lines: {timing_tag(s)}" for s in series_list]
    colors = {s.kind.color for s in series_list}
    tag_axes(ax, tags, colors.pop() if len(colors) == 1 else "black")


def comparison_header(fig: Figure, ax, what: str, series_list: list[Series]) -> None:
    suptitle(fig, what, [s.model for s in series_list], [s.board for s in series_list])
    tag_comparison(ax, series_list)


def latency_scale(unit: str, peak: float) -> tuple[float, str]:
    """A divisor and a unit name that keep latency numbers short, without hiding what was counted.

    >>> latency_scale("instructions", 979480)
    (1000.0, 'thousand instructions')
    >>> latency_scale("ns", 52859)
    (1000.0, 'µs')
    """
    if unit == "ns":
        steps = ((1e6, "ms"), (1e3, "µs"))
    else:
        steps = ((1e6, f"million {unit}"), (1e3, f"thousand {unit}"))
    return next(((divisor, name) for divisor, name in steps if peak >= divisor), (1.0, unit))


def kernel_color(series: Series, kernel: str) -> str:
    """Dense is the grey reference in every plot; sparse kernels take the palette in order."""
    if kernel == "dense":
        return DENSE_COLOR
    return f"C{series.sparse_kernels().index(kernel)}"


def percent_axis(ax, axis: str = "x") -> None:
    """Axes whose data are fractions, shown as percentages."""
    formatter = matplotlib.ticker.PercentFormatter(xmax=1.0, decimals=0)
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(formatter)
