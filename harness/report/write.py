"""Write a report: every plot as PNG and SVG, one self-contained HTML page, a short Markdown summary.

The HTML embeds its PNGs as data URIs and needs no script, font or style
sheet from anywhere, so it opens offline and can be mailed as one file. Its
tables are plain HTML, read as they are; a short script in the page only adds
sorting by a click on a column's head.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import matplotlib

from harness.report.build import Plot, Report, Section
from harness.report.prediction import PREDICTION_INTRO, PREDICTION_TITLE
from harness.report.runs import Run
from harness.report.tables import VariantTable

PNG_DPI = 150


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    images: list[Path]


def write_report(report: Report, out_dir: Path) -> ReportFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    images, embedded = [], {}
    for plot in report.plots:
        png, svg = _save(plot, out_dir)
        images += [png, svg]
        embedded[plot.name] = base64.b64encode(png.read_bytes()).decode()
    html_path = out_dir / "report.html"
    html_path.write_text(_html(report, embedded))
    markdown_path = out_dir / "report.md"
    markdown_path.write_text(_markdown(report))
    return ReportFiles(html_path, markdown_path, images)


def _save(plot: Plot, out_dir: Path) -> tuple[Path, Path]:
    png, svg = out_dir / f"{plot.name}.png", out_dir / f"{plot.name}.svg"
    plot.figure.savefig(png, dpi=PNG_DPI)
    # Text stays text in the SVG: smaller, searchable, and editable for a paper's fonts. A fixed salt makes the
    # SVG's element ids, hence the file, the same every time the same data are reported.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": plot.name}):
        plot.figure.savefig(svg)
    return png, svg


CHOICE_TITLE = "Auto kernel: weight format per layer"
CHOICE_INTRO = (
    "The format the auto kernel chose for each layer with weights at each sparsity: the fastest one "
    "measured, as long as the model's weights stay no larger than dense's (or within the flash budget, if "
    "one was set). The last "
    "row divides auto's latency by the fastest single kernel's at the same sparsity."
)


NO_KEY_FIGURES = "No series has both a dense and a sparse kernel."
VARIANTS_TITLE = "Variants"
VARIANTS_INTRO = (
    "Every variant measured (kernel x sparsity target), with its median latency, speedup over dense at "
    "the same sparsity, flash, SRAM by part and score on the device. Highlighted (and named in the last "
    "column): the fastest and the smallest variant whose score meets each floor of the table below it."
)
FLOORS_INTRO = "The best variant at each floor: the key figures' (given or default) and steps from the dense model's."
LAYERS_TITLE = "Per-layer tables"
LAYERS_INTRO = (
    "For one sparse variant and for dense at its sparsity: each layer's op, shapes, multiply-accumulates, "
    "weight bytes by part, format, latency, share of the inference and latency per MAC; then each sparse "
    "variant's speedup over dense, layer by layer. Layer latencies come from one profiled inference."
)
PROVENANCE_TITLE = "Provenance"


def _title(report: Report) -> str:
    models = ", ".join(dict.fromkeys(s.model for s in report.series)) or "no results"
    boards = ", ".join(dict.fromkeys(s.board for s in report.series))
    return f"Sparsity report: {models}" + (f" on {boards}" if boards else "")


# --- HTML ----------------------------------------------------------------------------------------

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1400px; margin: 0 auto; padding: 0 24px 48px; color: #222; }
h1 { font-size: 1.6em; margin: 28px 0 4px; } h2 { margin-top: 40px; border-bottom: 1px solid #ddd; }
nav a { margin-right: 14px; } .meta { color: #666; }
table { border-collapse: collapse; font-size: 0.9em; margin: 12px 0; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; } th { background: #f4f4f4; }
table.sortable th { cursor: pointer; } tr.best td { background: #fff1c2; font-weight: 600; }
table.sortable td:first-child { white-space: nowrap; }
.plots { display: flex; flex-wrap: wrap; gap: 8px 24px; }
figure { flex: 1 1 600px; max-width: 900px; margin: 12px 0 20px; } figure img { width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
.notes li { color: #8a4b00; } .badge { padding: 1px 7px; border-radius: 9px; font-size: 0.85em; color: #fff; }
"""


def _html(report: Report, embedded: dict[str, str]) -> str:
    sections = "".join(_html_section(section, embedded) for section in report.sections)
    nav = " ".join(
        f'<a href="#{id_}">{html.escape(title)}</a>'
        for id_, title in [
            ("summary", "Summary"),
            *((s.id, s.title) for s in report.sections),
            *([("per-layer", LAYERS_TITLE)] if report.layers else []),
            ("runs", "Runs and provenance"),
        ]
    )
    generated = datetime.now(UTC).isoformat(timespec="seconds")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(_title(report))}'
        f"</title>\n<style>{CSS}</style></head><body>\n<h1>{html.escape(_title(report))}</h1>\n"
        f'<p class="meta">generated {generated} from {len(report.runs)} run(s)</p><nav>{nav}</nav>\n'
        f"{_html_summary(report)}{sections}{_html_layers(report)}{_html_runs(report)}<script>{SORTING}</script>"
        "</body></html>\n"
    )


# Optional: the tables read the same without it. Numbers sort as numbers ("1,024" and "1.90×" too), text as text.
SORTING = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (head, column) {
    head.title = "sort by this column";
    head.addEventListener("click", function () {
      var up = head.dataset.order !== "up";
      head.dataset.order = up ? "up" : "down";
      var key = function (row) {
        var text = row.cells[column].textContent.replace(/,/g, "");
        var number = parseFloat(text);
        return isNaN(number) ? text : number;
      };
      var rows = Array.prototype.slice.call(table.tBodies[0].rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
        return up ? order : -order;
      });
      rows.forEach(function (row) { table.tBodies[0].appendChild(row); });
    });
  });
});
"""


def _html_summary(report: Report) -> str:
    badges = "".join(
        f'<span class="badge" style="background:{s.kind.color}">{html.escape(s.label)}: '
        f"{html.escape(s.kind.badge)}, {html.escape(s.unit)}</span> "
        for s in report.series
    )
    notes = "".join(f"<li>{html.escape(note)}</li>" for note in report.notes)
    return (
        f'<section id="summary"><h2>Summary</h2><p>{badges}</p>'
        f"{_html_variants(report)}{_html_predictions(report)}"
        f"<h3>Key figures</h3>{_html_key_figures(report)}"
        f"{_html_choices(report)}" + (f'<h3>Notes</h3><ul class="notes">{notes}</ul>' if notes else "") + "</section>\n"
    )


def _html_predictions(report: Report) -> str:
    if not report.predictions:
        return ""
    tables = "".join(
        f"<h4>{html.escape(t.series.label)}: worst error {html.escape(t.worst)}</h4>"
        f"{_html_table(t.rows, sortable=True)}"
        for t in report.predictions
    )
    return f'<h3 id="predicted">{PREDICTION_TITLE}</h3><p>{html.escape(PREDICTION_INTRO)}</p>{tables}'


def _html_key_figures(report: Report) -> str:
    """A table per metric, each after the bound its flash saved is measured at."""
    if not report.key_figures:
        return f"<p>{NO_KEY_FIGURES}</p>"
    return "".join(
        f"<p>{html.escape(table.quality.bound_title)}: "
        f"{html.escape(report.bound_text(table.quality))}.</p>{_html_table(table.rows)}"
        for table in report.key_figures
    )


def _html_choices(report: Report) -> str:
    if not report.choices:
        return ""
    tables = "".join(f"<h4>{html.escape(table.label)}</h4>{_html_table(table.rows)}" for table in report.choices)
    return f'<h3 id="auto-choice">{CHOICE_TITLE}</h3><p>{html.escape(CHOICE_INTRO)}</p>{tables}'


def _html_variants(report: Report) -> str:
    if not report.variants:
        return ""
    tables = "".join(_html_variant_table(table, len(report.variants) > 1) for table in report.variants)
    return f'<h3 id="variants">{VARIANTS_TITLE}</h3><p>{html.escape(VARIANTS_INTRO)}</p>{tables}'


def _html_variant_table(table: VariantTable, labelled: bool) -> str:
    series = table.series
    label = f"<h4>{html.escape(series.label)}</h4>" if labelled else ""
    return (
        f"{label}{_html_table(table.rows, sortable=True, highlight=table.best)}"
        f"<p>{html.escape(FLOORS_INTRO)}</p>{_html_table(table.floors)}"
    )


def _html_layers(report: Report) -> str:
    if not report.layers:
        return ""
    parts = "".join(
        f"<h3>{html.escape(t.series.label)}: {html.escape(t.chosen)}, {html.escape(t.why)}</h3>"
        f"<h4>{html.escape(t.chosen)}</h4>{_html_table(t.variant, sortable=True)}"
        f"<h4>{html.escape(t.dense_name)}</h4>{_html_table(t.dense, sortable=True)}"
        f"<h4>Speedup over dense per layer (dense latency / sparse latency)</h4>{_html_table(t.speedup, sortable=True)}"
        for t in report.layers
    )
    return f'<section id="per-layer"><h2>{LAYERS_TITLE}</h2><p>{html.escape(LAYERS_INTRO)}</p>{parts}</section>\n'


def _html_table(rows: list[dict[str, str]], sortable: bool = False, highlight: list[int] = ()) -> str:
    if not rows:
        return ""
    head = "".join(f'<th scope="col">{html.escape(column)}</th>' for column in rows[0])
    body = "".join(
        ('<tr class="best">' if number in highlight else "<tr>")
        + "".join(f"<td>{html.escape(value)}</td>" for value in row.values())
        + "</tr>"
        for number, row in enumerate(rows)
    )
    css = ' class="sortable"' if sortable else ""
    return f"<table{css}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_section(section: Section, embedded: dict[str, str]) -> str:
    """Plots side by side, each linking to its PNG file (beside the page) for the full size."""
    figures = "".join(
        f'<figure><a href="{plot.name}.png"><img src="data:image/png;base64,{embedded[plot.name]}" '
        f'alt="{html.escape(section.title)}: {html.escape(plot.caption)}"></a><figcaption>'
        f"{html.escape(plot.caption)} · files: {plot.name}.png, {plot.name}.svg</figcaption></figure>"
        for plot in section.plots
    )
    body = (
        f'<div class="plots">{figures}</div>'
        if figures
        else "<p>Nothing to draw here; see the notes in the summary.</p>"
    )
    return (
        f'<section id="{section.id}"><h2>{html.escape(section.title)}</h2><p>{html.escape(section.intro)}</p>'
        f"{body}</section>\n"
    )


def _html_runs(report: Report) -> str:
    rows = [_run_facts(run) for run in report.runs]
    return (
        f'<section id="runs"><h2>Runs</h2>{_html_table(rows)}<h3 id="provenance">{PROVENANCE_TITLE}</h3>'
        f"{_html_table(_transposed(report.provenance))}</section>\n"
    )


def _run_facts(run: Run) -> dict[str, str]:
    return {
        "run": run.name,
        "directory": str(run.path),
        "started": run.manifest.get("started", "?"),
        "harness": ", ".join(sorted(set(run.frame.harness_sha.astype(str)))),
        "points (ok / all)": f"{len(run.ok)} / {len(run.frame)}",
    }


def _transposed(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """A fact per row and a series per column: provenance reads down, however many series there are."""
    if not rows:
        return []
    return [{"": fact} | {row["series"]: row[fact] for row in rows} for fact in rows[0] if fact != "series"]


# --- Markdown ------------------------------------------------------------------------------------


def _markdown(report: Report) -> str:
    lines = [f"# {_title(report)}", "", "Runs: " + ", ".join(f"`{run.name}`" for run in report.runs), ""]
    lines += [f"- {s.label}: {s.kind.badge}, timing {s.source} in {s.unit}" for s in report.series]
    if report.variants:
        lines += ["", f"## {VARIANTS_TITLE}", "", VARIANTS_INTRO]
        for table in report.variants:
            marked = [
                row | {"variant": f"**{row['variant']}**"} if number in table.best else row
                for number, row in enumerate(table.rows)
            ]
            lines += ["", f"{table.series.label}:", ""] + _markdown_table(marked)
            lines += ["", FLOORS_INTRO, ""] + _markdown_table(table.floors)
    lines += _markdown_predictions(report)
    lines += ["", "## Key figures"]
    for table in report.key_figures:
        lines += ["", f"{table.quality.bound_title}: {report.bound_text(table.quality)}.", ""]
        lines += _markdown_table(table.rows)
    if not report.key_figures:
        lines += ["", NO_KEY_FIGURES]
    if report.choices:
        lines += ["", f"## {CHOICE_TITLE}", "", CHOICE_INTRO]
        for table in report.choices:
            lines += ["", f"{table.label}:", ""] + _markdown_table(table.rows)
    if report.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in report.notes]
    if report.layers:
        lines += ["", f"## {LAYERS_TITLE}", "", LAYERS_INTRO]
        for t in report.layers:
            lines += ["", f"{t.series.label}: {t.chosen}, {t.why}:", ""] + _markdown_table(t.variant)
            lines += ["", f"{t.dense_name}:", ""] + _markdown_table(t.dense)
            lines += ["", "Speedup over dense per layer:", ""] + _markdown_table(t.speedup)
    if report.provenance:
        lines += ["", f"## {PROVENANCE_TITLE}", ""] + _markdown_table(_transposed(report.provenance))
    lines += ["", "## Plots", "", "Full report with every plot: [report.html](report.html)", ""]
    lines += [
        f"- [{section.title}: {plot.caption}]({plot.name}.png)" for section in report.sections for plot in section.plots
    ]
    return "\n".join(lines) + "\n"


def _markdown_predictions(report: Report) -> list[str]:
    if not report.predictions:
        return []
    lines = ["", f"## {PREDICTION_TITLE}", "", PREDICTION_INTRO]
    for t in report.predictions:
        lines += ["", f"{t.series.label}: worst error {t.worst}", ""] + _markdown_table(t.rows)
    return lines


def _markdown_table(rows: list[dict[str, str]]) -> list[str]:
    if not rows:
        return []
    columns = list(rows[0])
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)] + [
        "| " + " | ".join(row[c].replace("|", "\\|") for c in columns) + " |" for row in rows
    ]
