"""Plots that cannot mislead, checked on the drawn matplotlib figures: tick labels that differ, legends clear of the
data, titles inside the figure, annotations that say what the plotted curves show, floors a score can reach.

Each test draws a small run written row by row (test_report.write_run), shaped to bring out one defect the report
once had; test_report.py checks the same properties on a real sweep's figures.
"""

import doctest
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from harness.report import build_report, figures, metrics, runs, style, tables, write_report
from harness.results import read_results_csv
from test_report import dense, points, write_run

LONG_MODEL = "/home/someone/experiments/2026-12/keyword-spotting/ds-cnn/pruned/" + "x" * 40 + "/kws_ref_model.tflite"


def rendered(fig):
    """The figure laid out and drawn as it is saved, and its renderer."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return canvas.get_renderer()


def tick_labels(axis) -> list[str]:
    """The major tick labels drawn inside the axis' view, as the reader sees them."""
    low, high = sorted(axis.get_view_interval())
    locations = [loc for loc in axis.get_majorticklocs() if low - 1e-12 <= loc <= high + 1e-12]
    return [label for label in axis.get_major_formatter().format_ticks(locations) if label]


def repeated_ticks(report) -> list[str]:
    problems = []
    for plot in report.plots:
        rendered(plot.figure)
        for ax in plot.figure.axes:
            for name, axis in (("x", ax.xaxis), ("y", ax.yaxis)):
                labels = tick_labels(axis)
                if len(set(labels)) < len(labels):
                    problems.append(f"{plot.name} {name}: {labels}")
    return problems


def narrow_accuracy_run(path, model="digits_cnn"):
    """Every score between 97.5 % and 98.5 %: a percent axis with 0 decimals reads 98% 98% 98%."""
    return write_run(
        path,
        model,
        {
            "dense": dense(
                latency_median=1000.0,
                flash_total=40000,
                accuracy_device=0.983,
                accuracy_float=0.985,
                accuracy_int8_host=0.983,
            ),
            "csr": points(
                latency_median=[1300.0, 800.0, 500.0],
                flash_total=[52000, 30000, 20000],
                accuracy_device=[0.983, 0.980, 0.976],
                accuracy_float=[0.985, 0.982, 0.978],
                accuracy_int8_host=[0.983, 0.980, 0.976],
            ),
        },
    )


def test_tick_labels_differ_on_a_narrow_accuracy_range(tmp_path):
    one = narrow_accuracy_run(tmp_path / "one")
    assert repeated_ticks(build_report([one])) == []
    other = narrow_accuracy_run(tmp_path / "other")  # compare-accuracy too
    assert repeated_ticks(build_report([one, other])) == []


def test_tick_labels_of_a_narrow_accuracy_axis_show_its_decimals(tmp_path):
    report = build_report([narrow_accuracy_run(tmp_path / "run")])
    fig = {plot.name: plot.figure for plot in report.plots}["accuracy-mps2_an386"]
    rendered(fig)
    labels = tick_labels(fig.axes[0].yaxis)
    assert all(re.fullmatch(r"\d+\.\d%", label) for label in labels), labels


def covered(renderer, fig) -> list[str]:
    """Data points, lines' vertices and notes of the axes that a legend of the figure lies over."""
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
    boxes = [legend.get_window_extent(renderer) for legend in legends]
    found = []
    for ax in fig.axes:
        spots = [("axes", ax.get_window_extent(renderer))]
        for collection in ax.collections:
            offsets = collection.get_offsets()
            if len(offsets):
                xy = ax.transData.transform(offsets)
                spots += [(f"point {collection.get_label()}", Bbox([p, p])) for p in xy]
        for text in ax.texts:
            spots.append((f"text '{text.get_text()}'", text.get_window_extent(renderer)))
        for what, spot in spots:
            found += [what for box in boxes if box.overlaps(spot) or box.contains(*spot.p0)]
    return found


def test_legends_lie_outside_the_axes_and_cover_no_point(tmp_path):
    """The pareto-flash legend once sat on a variant (in the lower right corner, where csr 0% is here)."""
    run = write_run(
        tmp_path / "corners",
        "digits_cnn",
        {
            "dense": dense(latency_median=1000.0, flash_total=40000, accuracy_device=0.95),
            "csr": points(
                latency_median=[1500.0, 700.0, 300.0],
                flash_total=[60000, 30000, 12000],
                accuracy_device=[0.90, 0.95, 0.97],
            ),
            "auto": points(
                latency_median=[1000.0, 600.0, 280.0],
                flash_total=[40000, 29000, 12500],
                accuracy_device=[0.95, 0.95, 0.97],
            ),
        },
    )
    report = build_report([run])
    for plot in report.plots:
        assert covered(rendered(plot.figure), plot.figure) == [], plot.name


def outside(renderer, fig) -> list[str]:
    """Texts (titles, axis labels, legends, notes) that reach past the figure's edges."""
    frame = fig.bbox
    texts = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        if ax.get_legend() is not None:
            texts.append(ax.get_legend())
    found = []
    for text in texts:
        if not text.get_visible() or (hasattr(text, "get_text") and not text.get_text()):
            continue
        box = text.get_window_extent(renderer)
        if box.x0 < frame.x0 - 1 or box.x1 > frame.x1 + 1 or box.y0 < frame.y0 - 1 or box.y1 > frame.y1 + 1:
            found.append(text.get_text() if hasattr(text, "get_text") else type(text).__name__)
    return found


def test_titles_fit_a_long_model_path(tmp_path):
    one = narrow_accuracy_run(tmp_path / "long", model=LONG_MODEL)
    other = narrow_accuracy_run(tmp_path / "other")
    report = build_report([one, other])
    for plot in report.plots:
        assert outside(rendered(plot.figure), plot.figure) == [], plot.name
    for plot in report.plots:
        if LONG_MODEL in plot.figure.get_suptitle().replace("\n", ""):
            break
    else:
        pytest.fail("no title names the whole model path")


def test_a_dense_model_that_scores_zero_gets_a_floor_of_zero(tmp_path):
    """Dense accuracy 0 (a broken model, a wrong data set) once gave 'accuracy floor -1.0%'."""
    run = write_run(
        tmp_path / "zero",
        "digits_cnn",
        {
            "dense": dense(accuracy_device=0.0, accuracy_float=0.0, accuracy_int8_host=0.0),
            "csr": points(
                latency_median=[1300.0, 800.0, 500.0],
                accuracy_device=[0.0, 0.0, 0.0],
                accuracy_float=[0.0] * 3,
                accuracy_int8_host=[0.0] * 3,
            ),
        },
    )
    report = build_report([run])
    (table,) = report.key_figures
    assert table.rows[0]["accuracy floor"] == "0.0%"
    quality = {plot.name: plot.figure for plot in report.plots}["accuracy-mps2_an386"]
    labels = quality.axes[0].get_legend_handles_labels()[1]
    assert "accuracy floor 0.0%" in labels
    (floor_line,) = [line for line in quality.axes[0].lines if line.get_label().startswith("accuracy floor")]
    assert min(floor_line.get_ydata()) >= 0
    out = tmp_path / "out"
    write_report(report, out)
    for page in ("report.md", "report.html"):
        assert not re.search(r"-\d+(\.\d+)?\s?%", (out / page).read_text()), page


def claims(fig, kernel) -> list[str]:
    return [text.get_text() for ax in fig.axes for text in ax.texts if text.get_text().startswith(f"{kernel}:")]


def test_speedup_annotations_say_what_the_plotted_curves_show(tmp_path):
    """Every note is read back against the line it speaks of: auto wins at 0 %, dips below dense at 50 %, wins at
    90 % (once annotated 'at least as fast as dense'); csr never wins; delta4 always does; bitmask crosses once."""
    run = write_run(
        tmp_path / "notes",
        "digits_cnn",
        {
            "dense": dense(latency_median=1000.0, accuracy_device=0.95),
            "auto": points(latency_median=[950.0, 1000 / 0.98, 1000 / 1.18], accuracy_device=[0.95] * 3),
            "csr": points(latency_median=[1500.0, 1200.0, 1100.0], accuracy_device=[0.95] * 3),
            "delta4": points(latency_median=[990.0, 800.0, 400.0], accuracy_device=[0.95] * 3),
            "bitmask": points(latency_median=[1400.0, 900.0, 500.0], accuracy_device=[0.95] * 3),
        },
    )
    fig = {plot.name: plot.figure for plot in build_report([run]).plots}["speedup-mps2_an386"]
    (ax,) = fig.axes
    lines = {
        line.get_label(): (np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float))
        for line in ax.lines
        if line.get_label() in ("auto", "csr", "delta4", "bitmask")
    }
    assert set(lines) == {"auto", "csr", "delta4", "bitmask"}
    for kernel, (x, y) in lines.items():
        (claim,) = claims(fig, kernel)
        below = {f"{value:.0%}" for value in x[y < 1]}
        if "at least as fast" in claim:
            assert not below, claim
        elif "never faster" in claim:
            assert len(below) == len(x), claim
        named = set(re.findall(r"\d+%", claim.split("slower at")[1])) if "slower at" in claim else set()
        if "slower at" in claim:
            assert named == below, claim
        if match := re.search(r"break-even ≈ (\d+)%", claim):
            crossing = int(match.group(1)) / 100
            assert (y[x > crossing + 0.005] >= 1).all() and (y[x < crossing - 0.005] < 1).any(), claim
            color = next(line.get_color() for line in ax.lines if line.get_label() == kernel)
            marks = [
                line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == ":" and line.get_color() == color
            ]
            assert any(abs(mark - crossing) < 0.006 for mark in marks), (claim, marks)
    assert "slower at 50%" in claims(fig, "auto")[0]


def test_n_of_m_speedup_is_drawn_beside_unstructured_at_equal_sparsity(tmp_path):
    """Issue 14: a sweep pruning one model both unstructured and 2:4 shows the trade on one plot, the N:M kernel's
    point at 50 % beside the unstructured curve's (its series visits 0 and 2:4 = 50 % only)."""
    run = write_run(
        tmp_path / "run",
        "digits_cnn",
        {"dense": dense(latency_median=1000.0), "csr": points(latency_median=[2000.0, 1100.0, 300.0])},
        method="magnitude/gradual",
    )
    n_of_m = write_run(
        tmp_path / "2of4",
        "digits_cnn",
        {"dense": [{"latency_median": 1000.0}] * 2, "nm": points(latency_median=[1000.0, 800.0])},
        method="magnitude/one-shot/2:4",
        sparsities=[0.0, 0.5],
    )
    merged = pd.concat([read_results_csv(run / "results.csv"), read_results_csv(n_of_m / "results.csv")])
    merged.to_csv(run / "results.csv", index=False, na_rep="nan")
    fig = {plot.name: plot.figure for plot in build_report([run]).plots}["compare-speedup"]
    (ax,) = fig.axes
    drawn = {line.get_label(): dict(zip(line.get_xdata(), line.get_ydata())) for line in ax.lines}
    assert drawn["magnitude/gradual · csr"][0.5] == pytest.approx(1000 / 1100)
    assert drawn["magnitude/one-shot/2:4 · nm"] == pytest.approx({0.0: 1.0, 0.5: 1.25})


@pytest.mark.parametrize("module", [style, tables, metrics, figures, runs], ids=lambda module: module.__name__)
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


def test_a_legend_of_many_series_grows_the_figure_to_fit_whole(recwarn):
    """Four methods x three kernels on one accuracy plot (a hardware-aware sweep) once made a legend taller than
    the figure: the constrained layout gave up (a UserWarning) and the legend was cut off at the bottom."""
    fig, (ax,) = style.figure((9.0, 4.4))
    for number in range(20):
        ax.plot([0.0, 0.9], [0.5, 0.6], label=f"mac-weighted-magnitude/gradual: int8 on the device, kernel {number}")
    style.legend_outside(ax, fontsize=8)
    renderer = rendered(fig)
    assert outside(renderer, fig) == []
    assert not [w for w in recwarn if "constrained_layout" in str(w.message)]


def test_percent_ticks_show_each_value_as_it_is():
    """12.5 % once read "12%" between 10% and 15%: distinct labels, but one of them wrong."""
    formatter = style.DistinctPercents()
    assert formatter.format_ticks([0.1, 0.125, 0.15]) == ["10.0%", "12.5%", "15.0%"]
    assert formatter.format_ticks([0.0, 0.5, 1.0]) == ["0%", "50%", "100%"]


def test_a_timing_tag_over_a_grid_wraps_to_its_column_not_to_every_axes():
    """The kernel benchmark's 4 x 3 grid once wrapped its tag to a twelfth of the figure: 'instructio / ns'."""
    fig = Figure(figsize=(14, 15))
    axes = fig.subplots(4, 3)
    style.tag_axes(axes[0][1], ["EMULATED BOARD (QEMU) · mps2_an386 · per-layer timer, in instructions"], "#c25e00")
    lines = axes[0][1].get_title(loc="left").splitlines()
    assert len(lines) <= 2 and "instructions" in lines[-1], lines
