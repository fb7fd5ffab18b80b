"""Assemble a report: load the runs, draw every plot that the data allow, note every one that they do not."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from matplotlib.figure import Figure

from harness.report import compare, figures
from harness.report.choices import ChoiceTable, choice_tables
from harness.report.metrics import accuracy_floor, key_figures
from harness.report.runs import Run, Series, load_runs, split_series
from harness.report.style import NothingToDraw


@dataclass
class Plot:
    name: str          # file stem, e.g. "latency-mps2_an386" (the names a single-board run always had)
    caption: str
    figure: Figure


@dataclass
class Section:
    id: str            # the HTML anchor
    title: str
    intro: str
    plots: list[Plot] = field(default_factory=list)


@dataclass
class Report:
    runs: list[Run]
    series: list[Series]
    floor: float | None
    key_figures: list[dict[str, str]]
    choices: list[ChoiceTable]    # the auto kernel's format per layer, one table per series that has it
    sections: list[Section]
    notes: list[str]

    @property
    def plots(self) -> list[Plot]:
        return [plot for section in self.sections for plot in section.plots]


# (id, title, intro, [(file prefix, caption, draw one series)]), in reading order.
SERIES_SECTIONS = [
    ("latency", "Latency", "Median latency of one inference per kernel; bars and band: fastest to slowest of the "
     "repeated runs.", [("latency", "", figures.latency_figure)]),
    ("speedup", "Speedup over dense", "Dense latency divided by sparse latency at the same sparsity; the dotted "
     "line marks the break-even sparsity, from which the sparse kernel stays at least as fast.",
     [("speedup", "", figures.speedup_figure)]),
    ("flash", "Flash", "What each variant stores in flash, by part; the dashed line is the dense model.",
     [("flash", "", figures.flash_figure)]),
    ("sram", "SRAM", "Static RAM without the arena, the activation arena, and the stack high-water mark "
     "(stack painting), stacked.", [("sram", "", figures.sram_figure)]),
]
PARETO_SECTIONS = [
    ("pareto", "Pareto fronts", "Every variant (kernel x sparsity) as a point; the ringed points are "
     "non-dominated: no other variant is both cheaper and at least as accurate.",
     [("pareto-latency", "accuracy vs latency", figures.pareto_latency_figure),
      ("pareto-flash", "accuracy vs flash", figures.pareto_flash_figure)]),
    ("layers", "Per-layer latency", "One profiled inference per variant, split by layer.",
     [("layers", "", figures.layers_figure)]),
]
ACCURACY_INTRO = ("Test accuracy of the float model, of the int8 model under TFLite Micro on the host, and of the "
                  "int8 model on the device; the dash-dotted line is the accuracy floor of the key figures.")
COMPARE_INTRO = ("All series on the same axes. Colour: series; line style: kind of board (dashed: emulated, "
                 "dotted: host process, solid: real board); marker: kernel.")
COMPARISONS = [("compare-speedup", "speedup over dense", compare.compare_speedup_figure),
               ("compare-latency", "latency, one axis per unit", compare.compare_latency_figure),
               ("compare-flash", "total flash", compare.compare_flash_figure),
               ("compare-accuracy", "accuracy on the device", compare.compare_accuracy_figure)]


def build_report(run_dirs: list[Path], floor: float | None = None) -> Report:
    loaded = load_runs(run_dirs)
    series = split_series(loaded.runs)
    notes = loaded.notes
    sections = [_series_section(spec, series, notes) for spec in SERIES_SECTIONS]
    sections.append(_accuracy_section(series, floor, notes))
    sections += [_series_section(spec, series, notes) for spec in PARETO_SECTIONS]
    if len(series) > 1:
        notes += compare.comparison_notes(series)
        jobs = [(name, f"all series, {what}", draw, (series,)) for name, what, draw in COMPARISONS]
        sections.append(Section("compare", "Comparison", COMPARE_INTRO, _drawn(jobs, notes)))
    return Report(loaded.runs, series, floor, key_figures(series, floor), choice_tables(series, notes), sections,
                  notes)


def _series_section(spec, series: list[Series], notes: list[str]) -> Section:
    section_id, title, intro, draws = spec
    jobs = [(f"{prefix}-{s.slug}", ", ".join(filter(None, [s.label, what])), draw, (s,))
            for s in series for prefix, what, draw in draws]
    return Section(section_id, title, intro, _drawn(jobs, notes))


def _accuracy_section(series: list[Series], floor: float | None, notes: list[str]) -> Section:
    """One plot per (run, model, board): several pruning methods share its axes."""
    panels: dict[tuple, list[Series]] = {}
    for s in series:
        panels.setdefault((id(s.run), s.model, s.board), []).append(s)
    jobs = [(f"accuracy-{panel[0].panel_slug}", _panel_caption(panel), figures.accuracy_figure,
             (panel, accuracy_floor(panel[0], floor))) for panel in panels.values()]
    return Section("accuracy", "Accuracy", ACCURACY_INTRO, _drawn(jobs, notes))


def _panel_caption(panel: list[Series]) -> str:
    if len(panel) == 1:
        return panel[0].label
    return f"{panel[0].board}, pruning methods {', '.join(s.method for s in panel)}"


def _drawn(jobs: list[tuple[str, str, Callable, tuple]], notes: list[str]) -> list[Plot]:
    plots = []
    for name, caption, draw, args in jobs:
        try:
            plots.append(Plot(name, caption, draw(*args)))
        except NothingToDraw as reason:
            notes.append(str(reason))
    return plots
