"""Reports of real sweeps: every plot drawn and labelled, the HTML page opens in a browser, bad input is told.

One small real sweep (the end-to-end test's, on the emulated Cortex-M4 and
the host board, so two kinds of timing) feeds every test; comparisons of runs
use copies of it with a column changed, the way another run or harness
version would differ.
"""

import base64
import json
import re
import shutil
import subprocess

import pandas as pd
import pytest
from PIL import Image

from conftest import run_harness
from harness.report import build_report, write_report
from harness.report.choices import VERSUS_FASTEST
from harness.report.metrics import break_even, pareto_front
from harness.results import ResultRow, read_results_csv, write_results
from test_sweep import AUTO_SWEEP, QUICK_SWEEP

SECTIONS = [
    "summary",
    "latency",
    "speedup",
    "flash",
    "sram",
    "accuracy",
    "pareto",
    "layers",
    "compare",
    "per-layer",
    "runs",
]
PLOTS = ["latency", "speedup", "flash", "sram", "accuracy", "pareto-latency", "pareto-flash", "layers"]


@pytest.fixture(scope="session")  # test_report_tables.py reads the same sweep
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    (tmp / "quick.toml").write_text(QUICK_SWEEP)  # the end-to-end test's sweep: its models are cached
    proc = run_harness(
        "sweep", "--config", tmp / "quick.toml", "--boards", "mps2_an386,host", "--results", tmp / "results"
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "report: " in proc.stdout
    return next((tmp / "results").iterdir())


def copy_run(run_dir, dest, edit):
    """Another run made from this one: its results passed through edit(frame), e.g. to set another harness version."""
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("*.png", "*.svg", "report.*", "logs"))
    edit(read_results_csv(dest / "results.csv")).to_csv(dest / "results.csv", index=False, na_rep="nan")
    (dest / "manifest.json").unlink()
    return dest


def test_sweep_writes_its_report(run_dir):
    for board in ("mps2_an386", "host"):
        for plot in PLOTS:
            for suffix in ("png", "svg"):
                assert (run_dir / f"{plot}-{board}.{suffix}").stat().st_size > 5000, f"{plot}-{board}.{suffix}"
    for plot in ("compare-speedup", "compare-latency", "compare-flash", "compare-accuracy"):
        assert (run_dir / f"{plot}.png").exists()
    summary = (run_dir / "report.md").read_text()
    assert "| csr |" in summary and "latency units differ (instructions, ns)" in summary


def axis_texts(fig):
    return [fig.get_suptitle()] + [
        text for ax in fig.axes for text in (ax.get_title("left"), ax.get_xlabel(), ax.get_ylabel())
    ]


def test_every_plot_is_drawn_labelled_and_titled(run_dir):
    report = build_report([run_dir])
    assert {plot.name for plot in report.plots} >= {f"{p}-{b}" for p in PLOTS for b in ("mps2_an386", "host")}
    assert not report.notes[1:], report.notes  # only the note that the two boards' latency units differ
    for plot in report.plots:
        fig = plot.figure
        assert fig.axes, plot.name
        for ax in fig.axes:
            assert ax.lines or ax.collections or ax.patches, f"{plot.name}: empty axes"
            for label in (ax.get_xlabel(), ax.get_ylabel()):
                assert re.search(r"\(.+\)", label), f"{plot.name}: '{label}' names no unit"
        texts = " ".join(axis_texts(fig))
        assert "digits_cnn" in fig.get_suptitle(), plot.name
        for board, source in (("mps2_an386", "qemu-icount-systick"), ("host", "host-clock-monotonic")):
            if board in plot.name or plot.name.startswith("compare"):
                assert board in fig.get_suptitle() and source in texts, plot.name


def test_every_plot_has_distinct_ticks_clear_legends_and_titles_inside(run_dir):
    """test_report_plots.py's properties, on the figures of a real sweep."""
    from test_report_plots import covered, outside, rendered, repeated_ticks

    report = build_report([run_dir])
    assert repeated_ticks(report) == []
    for plot in report.plots:
        renderer = rendered(plot.figure)
        assert covered(renderer, plot.figure) == [] and outside(renderer, plot.figure) == [], plot.name


def test_instruction_counts_are_never_called_cycles(run_dir):
    for plot in build_report([run_dir]).plots:
        if "host" in plot.name:
            continue
        for text in axis_texts(plot.figure):
            assert "cycles" not in text.replace("(not cycles)", ""), f"{plot.name}: {text}"
        if plot.name.startswith(("latency", "layers", "pareto-latency")):
            assert "instructions" in plot.figure.axes[0].get_xlabel() + plot.figure.axes[0].get_ylabel()


def chromium(*args, profile):
    """Debian's chromium, headless and quiet: no network, no updates, a fresh profile."""
    chrome = shutil.which("chromium")
    assert chrome, "chromium is not installed: `make test` installs it (APT_PKGS in the Makefile)"
    return subprocess.run(
        [
            chrome,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_report_opens_in_headless_chromium(run_dir, tmp_path):
    page = (run_dir / "report.html").as_uri()
    dom = chromium("--dump-dom", page, profile=tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    for section in SECTIONS:
        assert f'<section id="{section}">' in dom.stdout, section
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', dom.stdout)
    assert len(images) == len(build_report([run_dir]).plots)
    console_errors = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console_errors, console_errors

    screenshot = tmp_path / "report.png"
    shot = chromium(
        f"--screenshot={screenshot}",
        "--window-size=1280,4000",
        "--hide-scrollbars",
        page,
        profile=tmp_path / "profile-shot",
    )
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    colors = Image.open(screenshot).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colors is None or len(colors) > 500, "the screenshot is nearly blank"
    for encoded in images[:3]:
        (tmp_path / "embedded.png").write_bytes(base64.b64decode(encoded))
        assert Image.open(tmp_path / "embedded.png").size[0] > 800


def test_comparing_harness_versions_with_a_floor(run_dir, tmp_path):
    other = copy_run(
        run_dir,
        tmp_path / "other-run",
        lambda frame: frame[frame.board == "host"].assign(harness_sha="0123456789ab", run_id="other-run"),
    )
    proc = run_harness("report", run_dir, other, "--accuracy-floor", "0.9", "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    summary = (tmp_path / "out" / "report.md").read_text()
    assert "≥ 90.0% (given)" in summary
    assert "harness 0123456789ab" in summary
    key_figures = summary.split("## Key figures")[1].split("\n## ")[0]
    key_rows = [line for line in key_figures.splitlines() if "| csr |" in line]
    assert len(key_rows) == 3  # two boards of one version, the host board of the other
    assert all("KiB" in row for row in key_rows)
    assert (tmp_path / "out" / "compare-speedup.svg").exists()


def test_a_directory_without_results_is_named_and_the_rest_reported(run_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    alone = run_harness("report", tmp_path / "empty")
    assert alone.returncode == 2
    assert "error: nothing to report" in alone.stderr and "no results.csv" in alone.stderr
    assert "Traceback" not in alone.stderr

    mixed = run_harness("report", run_dir, tmp_path / "empty", "--out", tmp_path / "out")
    assert mixed.returncode == 0, mixed.stderr
    assert f"warning: {tmp_path / 'empty'}: no results.csv" in mixed.stderr
    assert "no results.csv" in (tmp_path / "out" / "report.html").read_text()


def test_failed_points_and_missing_columns_are_noted(run_dir, tmp_path):
    failed = copy_run(
        run_dir,
        tmp_path / "failed",
        lambda frame: frame.assign(status="error", failed_stage="run", error="board silent"),
    )
    proc = run_harness("report", failed)
    assert proc.returncode == 2
    assert "none of its 8 points succeeded" in proc.stderr and "board silent" in proc.stderr

    older = copy_run(run_dir, tmp_path / "older", lambda frame: frame.drop(columns=["layer_latency", "stack_used"]))
    report = build_report([older])
    assert any("has no layer_latency, stack_used" in note for note in report.notes)
    assert not any(plot.name.startswith("layers") for plot in report.plots)
    assert any(plot.name.startswith("latency") for plot in report.plots)


@pytest.fixture(scope="module")
def auto_run_dir(tmp_path_factory):
    """The end-to-end test's sweep with the auto kernel: its points are in the results cache after the first run."""
    tmp = tmp_path_factory.mktemp("auto-report")
    (tmp / "auto.toml").write_text(AUTO_SWEEP)
    proc = run_harness("sweep", "--config", tmp / "auto.toml", "--results", tmp / "results")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return next((tmp / "results").iterdir())


def test_auto_kernel_is_one_more_series_and_its_choice_a_table(auto_run_dir, tmp_path):
    report = build_report([auto_run_dir])
    figures = {plot.name: plot.figure for plot in report.plots}
    for name in ("latency", "speedup", "pareto-latency"):
        assert "auto" in figures[f"{name}-mps2_an386"].axes[0].get_legend_handles_labels()[1], name
    assert "auto" in [tick.get_text() for tick in figures["flash-mps2_an386"].axes[0].get_xticklabels(minor=True)]
    assert "auto 90%" in [tick.get_text() for tick in figures["layers-mps2_an386"].axes[0].get_yticklabels()]

    auto = read_results_csv(auto_run_dir / "results.csv").query("kernel == 'auto'").set_index("target_sparsity")
    chosen = {f"{target:.0%}": json.loads(text) for target, text in auto.layer_formats.items()}
    (table,) = report.choices
    *layers, versus = table.rows
    assert [row["layer"] for row in layers] == list(chosen["0%"])
    assert all(row[column] == chosen[column][row["layer"]] for row in layers for column in ("0%", "90%"))
    assert versus["layer"] == VERSUS_FASTEST
    assert all(re.fullmatch(r"\d+\.\d{3} \(\w+\)", versus[column]) for column in ("0%", "90%"))

    out = tmp_path / "report"
    write_report(report, out)
    summary = (out / "report.md").read_text()
    assert "## Auto kernel: weight format per layer" in summary
    assert f"| {layers[0]['layer']} | {layers[0]['0%']} | {layers[0]['90%']} |" in summary
    dom = chromium("--dump-dom", (out / "report.html").as_uri(), profile=tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    section = dom.stdout.split('<section id="summary">')[1].split("</section>")[0]
    assert '<h3 id="auto-choice">Auto kernel: weight format per layer</h3>' in section
    assert f"<td>{layers[-1]['layer']}</td><td>{layers[-1]['0%']}</td><td>{layers[-1]['90%']}</td>" in section


@pytest.mark.parametrize(
    "speedups, expected",
    [
        ([0.5, 1.5], "≈ 60%"),  # crosses between the two points: interpolated
        ([1.2, 2.0], "≤ 40%"),  # already faster at the lowest sparsity measured
        ([0.5, 0.9], "> 80%"),  # never faster
        ([1.2, 0.98], "> 80% (below 1× at 80%)"),  # faster first, then slower: it never stays faster
    ],
)
def test_break_even(speedups, expected):
    assert str(break_even(pd.Series(speedups, index=[0.4, 0.8]))) == expected


def test_break_even_is_where_the_ratio_stays_above_one():
    """The last crossing counts: a dip below 1 after a win moves the break-even past it, and is named."""
    crossing = break_even(pd.Series([1.1, 0.9, 1.3], index=[0.0, 0.5, 0.9]))
    assert crossing.sparsity == pytest.approx(0.5 + 0.1 / 0.4 * 0.4)
    assert not crossing.from_start and crossing.below == (0.5,)
    assert crossing.describe("slower at") == "≈ 60% (slower at 50%)"
    # below 1 only before the crossing: nothing else to say
    assert break_even(pd.Series([0.5, 0.9, 1.3], index=[0.0, 0.5, 0.9])).describe("slower at") == "≈ 60%"


def test_pareto_front_keeps_only_non_dominated_points():
    cost = [1.0, 2.0, 2.0, 3.0]
    accuracy = [0.90, 0.95, 0.94, 0.95]
    assert pareto_front(cost, accuracy).tolist() == [True, True, False, False]


# --- Small runs written here, row by row, for what a real sweep would take long to produce ------------------------

SPARSITIES = [0.0, 0.5, 0.9]


def write_run(
    path, model, kernels, task="classification", board="mps2_an386", drop=(), method="", sparsities=SPARSITIES
):
    """A run directory: kernels maps a kernel to one dict per sparsity of the columns that differ from the default
    (latency_median, flash_total, and the task's metric). drop: columns an older harness did not write; method: the
    rows' pruning method (an N:M one visits its own sparsity only)."""
    path.mkdir(parents=True)
    rows = []
    for kernel, points in kernels.items():
        for sparsity, values in zip(sparsities, points):
            values = {"latency_median": 1000.0, "flash_total": 40000} | values
            rows.append(
                ResultRow(
                    run_id=path.name,
                    model=model,
                    target_sparsity=sparsity,
                    kernel=kernel,
                    board=board,
                    core="cortex-m4",
                    task=task,
                    latency_min=values["latency_median"],
                    latency_max=values["latency_median"],
                    latency_runs=3,
                    latency_unit="instructions",
                    timing_source="qemu-icount-systick",
                    flash_code=values["flash_total"] // 2,
                    prune_method=method,
                    **values,
                )
            )
    write_results(path / "results.csv", rows)
    if drop:
        read_results_csv(path / "results.csv").drop(columns=list(drop)).to_csv(
            path / "results.csv", index=False, na_rep="nan"
        )
    return path


def dense(**values):
    return [values] * len(SPARSITIES)


def points(**columns):
    """One dict per sparsity from one list per column."""
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def figure_texts(fig):
    return (
        axis_texts(fig)
        + [text.get_text() for ax in fig.axes for text in ax.texts]
        + [label for ax in fig.axes for label in ax.get_legend_handles_labels()[1]]
    )


def ringed(fig):
    """The (cost, metric) points a Pareto plot rings as non-dominated."""
    (ax,) = fig.axes
    (ring,) = [c for c in ax.collections if c.get_label() == "non-dominated (Pareto front)"]
    return sorted(set(map(tuple, ring.get_offsets().tolist())))


def test_a_kernel_that_dips_below_dense_is_never_called_as_fast(tmp_path):
    """auto wins at 0%, loses at 50% (0.98×), wins at 90% (1.18×): the break-even is past 50%, and 50% is named."""
    run = write_run(
        tmp_path / "dips",
        "digits_cnn",
        {
            "dense": dense(latency_median=1000.0, flash_total=40000, accuracy_device=0.95),
            "auto": points(
                latency_median=[950.0, 1000 / 0.98, 1000 / 1.18],
                flash_total=[39000, 50000, 25000],
                accuracy_device=[0.95, 0.95, 0.94],
            ),
            "csr": points(
                latency_median=[1100.0, 900.0, 1200.0],
                flash_total=[50000, 30000, 20000],
                accuracy_device=[0.95, 0.95, 0.94],
            ),
        },
    )
    report = build_report([run])
    texts = " | ".join(figure_texts({p.name: p.figure for p in report.plots}["speedup-mps2_an386"]))
    assert "at least as fast" not in texts
    assert "break-even ≈ 54% (slower at 50%)" in texts  # 0.98 -> 1.18 crosses 1 a tenth of the way to 90%
    assert "csr: slower than dense at 0%, 90%, so no break-even up to 90%" in texts
    (table,) = report.key_figures
    rows = {row["kernel"]: row for row in table.rows}
    assert rows["auto"]["break-even sparsity (latency)"] == "≈ 54% (slower at 50%)"
    assert rows["auto"]["break-even sparsity (flash)"] == "≈ 60% (larger at 50%)"  # 0.8x at 50%, 1.6x at 90%
    assert rows["csr"]["break-even sparsity (latency)"] == "> 90% (slower at 0%, 90%)"
    assert rows["csr"]["break-even sparsity (flash)"] == "≈ 19%"  # larger only before it: nothing to add


def test_a_reconstruction_run_with_anomaly_labels_is_scored_by_auc(tmp_path):
    auc = dict(auc_float=0.97, auc_int8_host=0.96)
    run = write_run(
        tmp_path / "ae",
        "autoencoder",
        task="reconstruction",
        kernels={
            "dense": dense(mse_device=0.010, auc_device=0.95, **auc),
            "csr": points(
                flash_total=[50000, 30000, 20000],
                mse_device=[0.010, 0.011, 0.030],
                auc_device=[0.95, 0.945, 0.90],
                **{k: [v] * 3 for k, v in auc.items()},
            ),
        },
    )
    report = build_report([run], floor=0.93)
    figures = {plot.name: plot.figure for plot in report.plots}
    quality = figures["accuracy-mps2_an386"]
    (ax,) = quality.axes
    assert "AUC" in ax.get_ylabel() and "accuracy" not in " ".join(figure_texts(quality))
    device = {line.get_label(): list(line.get_ydata()) for line in ax.lines}
    assert device["int8 on the device, csr"] == [0.95, 0.945, 0.90]
    assert device["AUC floor 0.93"] == [0.93, 0.93]  # the user's floor applies to AUC
    for name in ("pareto-latency-mps2_an386", "pareto-flash-mps2_an386"):
        assert figures[name].axes[0].get_ylabel() == "AUC on the device (ROC, higher is better)"
        assert "AUC vs" in figures[name].get_suptitle()
    (table,) = report.key_figures
    assert table.rows[0]["AUC floor"] == "0.93"
    assert table.rows[0]["flash saved at AUC floor"].endswith("at 50%")  # 0.945 >= 0.93, 0.90 is not
    assert [s.title for s in report.sections if s.id == "accuracy"] == ["AUC"]
    assert not any("floor" in note for note in report.notes)


def test_a_reconstruction_run_without_labels_is_scored_by_mse_lower_is_better(tmp_path):
    run = write_run(
        tmp_path / "ae",
        "autoencoder",
        task="reconstruction",
        kernels={
            "dense": dense(flash_total=40000, mse_float=0.009, mse_int8_host=0.010, mse_device=0.010),
            "csr": points(
                flash_total=[50000, 30000, 20000],
                mse_float=[0.009] * 3,
                mse_int8_host=[0.010] * 3,
                mse_device=[0.010, 0.0104, 0.030],
            ),
        },
    )
    report = build_report([run], floor=0.95)
    figures = {plot.name: plot.figure for plot in report.plots}
    (ax,) = figures["accuracy-mps2_an386"].axes
    assert ax.get_ylabel() == "reconstruction MSE (lower is better)"
    ceiling = {line.get_label(): line.get_ydata()[0] for line in ax.lines}["MSE ceiling 0.0105"]
    assert ceiling == pytest.approx(0.0105)  # the dense model's MSE x 1.05, not the accuracy floor given
    pareto = figures["pareto-flash-mps2_an386"]
    assert pareto.axes[0].get_ylabel() == "MSE on the device (lower is better)"
    # least error and least flash win: dense (39 KiB, 0.010), csr 50% (29.3 KiB, 0.0104), csr 90% (19.5 KiB, 0.030);
    # csr 0% (48.8 KiB, 0.010) is beaten by dense
    assert ringed(pareto) == [(20000 / 1024, 0.030), (30000 / 1024, 0.0104), (40000 / 1024, 0.010)]
    (table,) = report.key_figures
    row = table.rows[0]
    assert row["MSE ceiling"] == "0.0105" and "accuracy floor" not in row
    assert row["flash saved at MSE ceiling"] == "9.8 KiB (25%) at 50%"
    (note,) = [note for note in report.notes if "--accuracy-floor" in note]
    assert "applies to accuracy and AUC only: ignored for mps2_an386, scored by MSE" in note
    out = tmp_path / "out"
    write_report(report, out)
    summary = (out / "report.md").read_text()
    assert "MSE ceiling: MSE on the device at most 5% above the dense model's (default)." in summary
    assert "| MSE ceiling | flash saved at MSE ceiling |" in summary
    assert "accuracy" not in summary.split("## Key figures")[1].split("## Notes")[0]


def test_runs_of_different_metrics_are_compared_on_axes_of_their_own(tmp_path):
    """An older classification run (no task column) next to an autoencoder scored by MSE."""
    classifier = write_run(
        tmp_path / "cnn",
        "digits_cnn",
        drop=["task", "mse_device", "auc_device"],
        kernels={"dense": dense(accuracy_device=0.95), "csr": points(accuracy_device=[0.95, 0.94, 0.90])},
    )
    autoencoder = write_run(
        tmp_path / "ae",
        "autoencoder",
        task="reconstruction",
        kernels={"dense": dense(mse_device=0.010), "csr": points(mse_device=[0.010, 0.011, 0.030])},
    )
    report = build_report([classifier, autoencoder])
    assert not any("has no" in note for note in report.notes), report.notes  # an older run is classification
    assert any("scored by different metrics (accuracy, MSE)" in note for note in report.notes)
    compared = {plot.name: plot.figure for plot in report.plots}["compare-accuracy"]
    accuracy_axes, mse_axes = compared.axes
    assert accuracy_axes.get_ylabel() == "test accuracy on the device (% correct, higher is better)"
    assert mse_axes.get_ylabel() == "MSE on the device (lower is better)"
    assert [line.get_label() for line in accuracy_axes.lines] == ["digits_cnn · dense", "digits_cnn · csr"]
    assert [line.get_label() for line in mse_axes.lines] == ["autoencoder · dense", "autoencoder · csr"]
    assert list(mse_axes.lines[1].get_ydata()) == [0.010, 0.011, 0.030]
    assert compared.get_suptitle().startswith("Accuracy and MSE vs sparsity, compared")
    assert [table.quality.name for table in report.key_figures] == ["accuracy", "MSE"]
    assert "accuracy floor" in report.key_figures[0].rows[0] and "MSE ceiling" in report.key_figures[1].rows[0]
