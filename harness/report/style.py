"""What every plot shares: the look, the header naming model, board and timing, units and colours."""

from __future__ import annotations

import functools
import re

import matplotlib
import matplotlib.ticker
from matplotlib.figure import Figure

from harness.report.runs import EMULATED, Series

STYLE = {
    "font.size": 9.5,
    "axes.titlesize": 9,
    "axes.labelsize": 9.5,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8.5,
    "legend.framealpha": 0.9,
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


TITLE_SIZE = 11
TAG_SIZE = 8.5


def suptitle(fig: Figure, what: str, models: list[str], boards: list[str]) -> None:
    text = f"{what}: {', '.join(dict.fromkeys(models))} on {', '.join(dict.fromkeys(boards))}"
    fig.suptitle(
        wrapped(text, fig.get_figwidth() * 0.97, TITLE_SIZE), x=0.01, ha="left", fontsize=TITLE_SIZE, fontweight="bold"
    )


def tag_axes(ax, tags: list[str], color: str) -> None:
    """Say above the axes how its data were timed, coloured by the kind of board, so an emulated result is never
    mistaken for a measured one."""
    # The axes' column's share of the figure, less its legend's: a grid of several rows (the kernel benchmark's)
    # shares the width among its columns, not among all its axes.
    spec = ax.get_subplotspec()
    columns = spec.get_gridspec().ncols if spec is not None else len(ax.figure.axes)
    width = ax.figure.get_figwidth() * 0.75 / columns
    text = "\n".join(wrapped(tag, width, TAG_SIZE) for tag in dict.fromkeys(tags))
    ax.set_title(
        text,
        loc="left",
        color=color,
        fontsize=TAG_SIZE,
        bbox={"facecolor": color, "alpha": 0.08, "edgecolor": color, "boxstyle": "round"},
    )


# The widest characters of the report's fonts (bold capitals) take about this many ems; a line of ems at this rate
# fits however the title is spelt.
EM_PER_CHARACTER = 0.72


def wrapped(text: str, inches: float, points: float) -> str:
    """The text in lines that fit `inches` at a font of `points`: broken after spaces and path separators, so a long
    model path is shown whole instead of being cut off at the figure's edge; never inside parentheses, so
    "(not cycles)" stays one phrase.

    >>> wrapped("Latency vs sparsity: /a/very/long/path/model.tflite on mps2_an386", 2.0, 11)
    'Latency vs\\nsparsity: /a/very/\\nlong/path/\\nmodel.tflite on\\nmps2_an386'
    """
    width = max(8, int(inches * 72 / (points * EM_PER_CHARACTER)))
    lines = [""]
    for piece in re.findall(r"(?:\([^)]*\)|[^ /])*(?:[ /]|$)", text):
        while len(piece) > width:  # a name without separators longer than a line
            lines += [piece[:width], ""]
            piece = piece[width:]
        if len(lines[-1]) + len(piece.rstrip()) > width and lines[-1]:
            lines.append("")
        lines[-1] += piece
    return "\n".join(line.rstrip() for line in lines if line.strip())


LEGEND_INCHES = 2.4  # the widest a legend's labels grow: a series named by a long model path is wrapped


def legend_outside(ax, **options):
    """The legend right of the axes, where it covers no data point, line or note.

    A legend taller than the figure (many methods x kernels) cannot be placed by the constrained layout, which
    then gives up and cuts it off: the figure grows to hold it."""
    handles, labels = ax.get_legend_handles_labels()
    size = options.get("fontsize", STYLE["legend.fontsize"])
    labels = [wrapped(label, LEGEND_INCHES, size) for label in labels]
    title_lines = options["title"].count("\n") + 1 if options.get("title") else 0
    # Each entry: its text lines at matplotlib's 1.2 line spacing and 0.5 em between entries; the frame and the
    # figure's title and timing tag above the axes take about 1.6 inches more.
    lines = sum(1.2 * (label.count("\n") + 1) + 0.5 for label in labels) + 1.2 * title_lines
    needed = lines * size / 72 + 1.6
    if needed > ax.figure.get_figheight():
        ax.figure.set_figheight(needed)
    return ax.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        borderaxespad=0.0,
        **options,
    )


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


class DistinctPercents(matplotlib.ticker.PercentFormatter):
    """Fractions as percentages, with the fewest decimals that show every tick as it is: 97.5% and 98.0% on a
    narrow accuracy axis, 0% to 100% on a sparsity axis, 12.5% (not 13%) between 10% and 15%."""

    MAX_DECIMALS = 4

    def __init__(self):
        super().__init__(xmax=1.0, decimals=0)

    def format_ticks(self, values):
        percents = [100.0 * value for value in values]
        for decimals in range(self.MAX_DECIMALS + 1):
            if all(abs(p - round(p, decimals)) < 1e-6 * max(1.0, abs(p)) for p in percents):
                break
        self.decimals = decimals
        return [self.format_pct(value, 1.0) for value in values]


def percent_axis(ax, axis: str = "x") -> None:
    """Axes whose data are fractions, shown as percentages."""
    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(DistinctPercents())
