"""Reports of one or several sweeps: plots as PNG and SVG, one self-contained HTML page, a Markdown summary.

    files = report_runs([run_dir], out_dir=run_dir, floor=0.95)   # or build_report() then write_report()

runs.py loads run directories and splits them into series (model x board x
pruning method x run); quality.py picks the task's metric each series is
scored by (accuracy, AUC or MSE); figures.py draws one series, compare.py
several; metrics.py computes the key figures; build.py assembles the report
and write.py writes it.
"""

from __future__ import annotations

from pathlib import Path

from harness.report.build import Report, build_report
from harness.report.write import ReportFiles, write_report

__all__ = ["Report", "ReportFiles", "build_report", "report_runs", "write_report"]


def report_runs(run_dirs: list[Path], out_dir: Path, floor: float | None = None) -> ReportFiles:
    return write_report(build_report(run_dirs, floor), out_dir)
