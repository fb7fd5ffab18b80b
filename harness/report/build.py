"""Assemble a report: load the runs, draw every plot that the data allow, note every one that they do not."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.figure import Figure

from harness.report import compare, figures, prediction
from harness.report.choices import ChoiceTable, choice_tables
from harness.report.metrics import KeyTable, key_figures, quality_bound
from harness.report.quality import Quality
from harness.report.runs import Run, Series, load_runs, split_series
from harness.report.style import NothingToDraw
from harness.report.tables import LayerTables, VariantTable, layer_tables, provenance, variant_tables


@dataclass
class Plot:
    name: str  # file stem, e.g. "latency-mps2_an386" (the names a single-board run always had)
    caption: str
    figure: Figure


@dataclass
class Section:
    id: str  # the HTML anchor
    title: str
    intro: str
    plots: list[Plot] = field(default_factory=list)


@dataclass
class Report:
    runs: list[Run]
    series: list[Series]
    floor: float | None  # the user's, for accuracy and AUC
    key_figures: list[KeyTable]  # one table per metric
    choices: list[ChoiceTable]  # the auto kernel's format per layer, one table per series that has it
    sections: list[Section]
    notes: list[str]
    variants: list[VariantTable]  # one per series: the first thing the report shows
    layers: list[LayerTables]  # one per series with per-layer latencies
    provenance: list[dict[str, str]]  # one row per series
    predictions: list[prediction.PredictionTable] = field(default_factory=list)  # one per series with predictions

    @property
    def plots(self) -> list[Plot]:
        return [plot for section in self.sections for plot in section.plots]

    def bound_text(self, quality: Quality) -> str:
        """E.g. 'accuracy on the device ≥ 95.0% (given)'."""
        if self.floor is not None and quality.takes_user_floor:
            return f"{quality.name} on the device ≥ {quality.format(self.floor)} (given)"
        return quality.default_bound_text()


# (id, title, intro, [(file prefix, caption, draw one series)]), in reading order.
SERIES_SECTIONS = [
    (
        "latency",
        "Latency",
        "Median latency of one inference per kernel; bars and band: fastest to slowest of the repeated runs.",
        [("latency", "", figures.latency_figure)],
    ),
    (
        "speedup",
        "Speedup over dense",
        "Dense latency divided by sparse latency at the same sparsity; the dotted "
        "line marks the break-even sparsity, from which the sparse kernel stays at least as fast.",
        [("speedup", "", figures.speedup_figure)],
    ),
    (
        "flash",
        "Flash",
        "What each variant stores in flash, by part; the dashed line is the dense model.",
        [("flash", "", figures.flash_figure)],
    ),
    (
        "sram",
        "SRAM",
        "Static RAM without the arena, the activation arena, and the stack high-water mark (stack painting), stacked.",
        [("sram", "", figures.sram_figure)],
    ),
]
PARETO_SECTIONS = [
    (
        "pareto",
        "Pareto fronts",
        "Every variant (kernel x sparsity) as a point; the ringed points are "
        "non-dominated: no other variant is both cheaper and at least as good by the task's metric.",
        [
            ("pareto-latency", "{metric} vs latency", figures.pareto_latency_figure),
            ("pareto-flash", "{metric} vs flash", figures.pareto_flash_figure),
        ],
    ),
    (
        "layers",
        "Per-layer latency",
        "One profiled inference per variant, split by layer.",
        [("layers", "", figures.layers_figure)],
    ),
]
QUALITY_INTRO = (
    "The float model, the int8 model under TFLite Micro on the host and the int8 model on the device, "
    "scored by the task's metric ({metrics}); the dash-dotted line is the key figures' floor (for MSE, "
    "its ceiling)."
)
COMPARE_INTRO = (
    "All series on the same axes. Colour: series; line style: kind of board (dashed: emulated, "
    "dotted: host process, solid: real board); marker: kernel."
)
COMPARISONS = [
    ("compare-speedup", "speedup over dense", compare.compare_speedup_figure),
    ("compare-latency", "latency, one axis per unit", compare.compare_latency_figure),
    ("compare-flash", "total flash", compare.compare_flash_figure),
    # The name the file had when every run was classification.
    ("compare-accuracy", "task metric on the device, one axis per metric", compare.compare_quality_figure),
]


def build_report(run_dirs: list[Path], floor: float | None = None) -> Report:
    loaded = load_runs(run_dirs)
    series = split_series(loaded.runs)
    notes = loaded.notes
    sections = [_series_section(spec, series, notes) for spec in SERIES_SECTIONS]
    sections.append(_quality_section(series, floor, notes))
    sections += [_series_section(spec, series, notes) for spec in PARETO_SECTIONS]
    notes += _ignored_floor(series, floor)
    sections += _allocation_section(series, notes)
    if len(series) > 1:
        notes += compare.comparison_notes(series)
        jobs = [(name, f"all series, {what}", draw, (series,)) for name, what, draw in COMPARISONS]
        sections.append(Section("compare", "Comparison", COMPARE_INTRO, _drawn(jobs, notes)))
    return Report(
        loaded.runs,
        series,
        floor,
        key_figures(series, floor),
        choice_tables(series, notes),
        sections,
        notes,
        variant_tables(series, floor),
        layer_tables(series, floor, notes),
        provenance(series),
        prediction.prediction_tables(series),
    )


def _allocation_section(series: list[Series], notes: list[str]) -> list[Section]:
    """Accuracy against latency by allocation, where a run compares uniform, global or hardware-aware pruning."""
    jobs = [
        (
            f"allocation-{panel[0].panel_slug}",
            f"{panel[0].board}, {', '.join(s.method for s in panel)}",
            prediction.allocation_figure,
            (panel,),
        )
        for panel in prediction.allocation_panels(series)
    ]
    return (
        [Section("allocation", "Accuracy vs latency by allocation", prediction.ALLOCATION_INTRO, _drawn(jobs, notes))]
        if jobs
        else []
    )


def _series_section(spec, series: list[Series], notes: list[str]) -> Section:
    section_id, title, intro, draws = spec
    jobs = [
        (f"{prefix}-{s.slug}", ", ".join(filter(None, [s.label, what.format(metric=s.quality.name)])), draw, (s,))
        for s in series
        for prefix, what, draw in draws
    ]
    return Section(section_id, title, intro, _drawn(jobs, notes))


def _quality_section(series: list[Series], floor: float | None, notes: list[str]) -> Section:
    """One plot per (run, model, board): several pruning methods share its axes. The file keeps the name it had when
    every run was classification."""
    panels: dict[tuple, list[Series]] = {}
    for s in series:
        panels.setdefault((id(s.run), s.model, s.board), []).append(s)
    jobs = [
        (
            f"accuracy-{panel[0].panel_slug}",
            _panel_caption(panel),
            figures.quality_figure,
            (panel, quality_bound(panel[0], floor)),
        )
        for panel in panels.values()
    ]
    qualities = list(dict.fromkeys(s.quality for s in series))
    title = " and ".join(q.title for q in qualities) or "Accuracy"
    intro = QUALITY_INTRO.format(metrics="; ".join(q.description for q in qualities) or "accuracy")
    return Section("accuracy", title, intro, _drawn(jobs, notes))


def _ignored_floor(series: list[Series], floor: float | None) -> list[str]:
    """--accuracy-floor bounds a score; an error keeps its default ceiling, and the reader is told."""
    ignored = [s for s in series if floor is not None and not s.quality.takes_user_floor]
    if not ignored:
        return []
    quality = ignored[0].quality
    return [
        f"--accuracy-floor {floor:g} applies to accuracy and AUC only: ignored for "
        f"{', '.join(s.label for s in ignored)}, scored by {quality.name}, whose key figures hold it to "
        f"{quality.default_bound_text()}"
    ]


def _panel_caption(panel: list[Series]) -> str:
    if len(panel) == 1:
        return f"{panel[0].label}, {panel[0].quality.name}"
    return f"{panel[0].board}, pruning methods {', '.join(s.method for s in panel)}, {panel[0].quality.name}"


def _drawn(jobs: list[tuple[str, str, Callable, tuple]], notes: list[str]) -> list[Plot]:
    plots = []
    for name, caption, draw, args in jobs:
        try:
            plots.append(Plot(name, caption, draw(*args)))
        except NothingToDraw as reason:
            notes.append(str(reason))
    return plots
