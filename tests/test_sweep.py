"""The whole path, for real: train, prune, convert, compile, build with PlatformIO, run under QEMU over serial."""

import json
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from bench_sweeps import events, start_sweep
from conftest import run_harness
from harness.compiler import KERNEL_FORMATS

pytestmark = pytest.mark.usefixtures("no_leftover_boards")

QUICK_SWEEP = """
[sweep]
name = "e2e"
targets = [0.0, 0.9]
kernels = ["dense", "csr"]
boards = ["mps2_an386"]

[prune]
dense_epochs = 12
finetune_epochs = 4

[device]
runs = 3
accuracy_samples = 120
"""


def sweep(tmp_path, *extra, text=QUICK_SWEEP):
    config = tmp_path / "quick.toml"
    config.write_text(text)
    proc = run_harness("sweep", "--config", config, "--results", tmp_path / "results", *extra)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = next(line.split("results in ")[1] for line in proc.stdout.splitlines() if "results in " in line)
    return proc, pd.read_csv(f"{run_dir}/results.csv"), run_dir


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    return sweep(tmp_path_factory.mktemp("sweep"))


def test_every_point_runs_on_the_emulated_m4_and_matches_tflite_micro(first_run):
    _, frame, _ = first_run
    assert len(frame) == 4
    assert (frame.status == "ok").all(), frame[["kernel", "target_sparsity", "error"]]
    assert (frame.output_mismatches == 0).all()
    assert (frame.device_samples == 120).all()
    assert (frame.latency_unit == "instructions").all()
    assert frame.timing_source.str.contains("icount").all()
    assert (frame.accuracy_device > 0.8).all()


def test_sparse_kernel_needs_fewer_instructions_at_90_percent(first_run):
    _, frame, _ = first_run
    at = frame.set_index(["target_sparsity", "kernel"]).latency_median
    # The dense kernels use the DSP extension, so this is a real speedup: about 1.9x on the digits CNN.
    assert at[(0.9, "csr")] < at[(0.9, "dense")] / 1.5
    assert at[(0.0, "csr")] > at[(0.9, "csr")] * 2  # CSR work scales with the nonzeros


def test_flash_and_sram_are_accounted(first_run):
    _, frame, _ = first_run
    csr = frame[frame.kernel == "csr"].set_index("target_sparsity")
    dense = frame[frame.kernel == "dense"].set_index("target_sparsity")
    assert (dense.flash_sparse_values == 0).all() and (dense.flash_weights_dense > 0).all()
    assert csr.flash_sparse_values[0.9] < csr.flash_sparse_values[0.0]
    assert csr.flash_total[0.9] < dense.flash_total[0.9]
    assert (frame.flash_code > 0).all() and (frame.flash_total > frame.flash_code).all()
    assert (frame.sram_arena > 0).all() and (frame.sram_static >= frame.sram_arena).all()
    assert (frame.stack_used > 0).all()


def test_run_writes_results_manifest_and_plots(first_run):
    _, frame, run_dir = first_run
    parquet = pd.read_parquet(f"{run_dir}/results.parquet")
    assert len(parquet) == len(frame)
    manifest = json.loads(open(f"{run_dir}/manifest.json").read())
    assert manifest["config"]["targets"] == [0.0, 0.9]
    assert "arm-none-eabi-gcc" in manifest["versions"]
    for name in ("latency", "flash", "sram", "accuracy"):
        assert open(f"{run_dir}/{name}-mps2_an386.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    layers = json.loads(frame.layer_latency.iloc[0])
    assert len(layers) >= 6 and all(v > 0 for v in layers.values())


def test_identical_rerun_rebuilds_nothing(first_run, tmp_path):
    proc, frame, _ = sweep(tmp_path)
    assert "models: cached" in proc.stdout
    assert not frame.firmware_rebuilt.any()
    first = first_run[1].set_index(["target_sparsity", "kernel"])
    again = frame.set_index(["target_sparsity", "kernel"])
    # -icount makes runs repeatable to within the timer's resolution (one SysTick tick = 40 instructions)
    assert ((first.latency_median - again.latency_median).abs() <= 40).all()


def test_other_emulated_cores_and_the_host_board(first_run, tmp_path):
    _, frame, _ = sweep(tmp_path, "--boards", "mps2_an385,mps2_an500,host", "--kernels", "csr", "--targets", "0.9")
    assert (frame.status == "ok").all(), frame[["board", "error"]]
    assert (frame.output_mismatches == 0).all()
    units = dict(zip(frame.board, frame.latency_unit))
    assert units == {"mps2_an385": "instructions", "mps2_an500": "instructions", "host": "ns"}


# --- the auto kernel ------------------------------------------------------------------------------

# Every format, listed, so that each candidate the auto kernel chose from is a row to check its choice against.
AUTO_KERNELS = [*KERNEL_FORMATS, "auto"]
AUTO_SWEEP = QUICK_SWEEP.replace('kernels = ["dense", "csr"]', f"kernels = {json.dumps(AUTO_KERNELS)}")
# A layer's instruction count in one format, measured in two firmwares, may differ a little: the digits model
# reuses its input's bytes (MODEL_INPUT_PRESERVED 0), so the timed runs after the first see inputs that depend on
# the memory plan (under 0.05 % on this model, docs/compiler.md), and the timer counts ticks of 40 instructions.
TOLERANCE = 0.001


def within(latency, bound):
    return latency <= bound * (1 + TOLERANCE) + 40


@pytest.fixture(scope="module")
def auto_run(first_run, tmp_path_factory):
    """After first_run, so that its dense and CSR points come from the results cache."""
    proc, frame, run_dir = sweep(tmp_path_factory.mktemp("auto"), text=AUTO_SWEEP)
    chosen = {event["target"]: event["layers"] for event in events(Path(run_dir)) if event["event"] == "auto_chosen"}
    return proc, frame, chosen


def test_auto_kernel_takes_per_layer_the_fastest_format_within_the_dense_weight_bytes(auto_run):
    _, frame, chosen = auto_run
    assert list(frame.kernel.unique()) == AUTO_KERNELS and len(frame) == 2 * len(AUTO_KERNELS)
    assert (frame.status == "ok").all() and (frame.output_mismatches == 0).all()
    assert sorted(chosen) == [0.0, 0.9]
    rows = frame.set_index(["target_sparsity", "kernel"])
    for target, layers in chosen.items():
        auto = rows.loc[(target, "auto")]
        assert json.loads(auto.layer_formats) == {name: layer["chosen"] for name, layer in layers.items()}
        measured = {fmt: json.loads(rows.loc[(target, fmt)].layer_latency) for fmt in KERNEL_FORMATS}
        auto_layers = json.loads(auto.layer_latency)
        for name, layer in layers.items():
            options = layer["options"]
            for fmt, option in options.items():
                assert option["latency"] == measured[fmt][name]  # the choice used the candidates' measurements
            # The layer took as long in the auto firmware as in its format's own: counts add up across firmwares.
            assert within(auto_layers[name], measured[layer["chosen"]][name]), name
    assert set(json.loads(rows.loc[(0.9, "auto")].layer_formats).values()) - {"dense"}  # some layer went sparse


def test_auto_kernel_is_as_fast_as_every_kernel_whose_weights_are_no_larger_than_dense(auto_run):
    _, frame, chosen = auto_run
    rows = frame.set_index(["target_sparsity", "kernel"])
    weights = (
        rows.flash_weights_dense + rows.flash_sparse_values + rows.flash_sparse_indices + rows.flash_sparse_pointers
    )
    for target, layers in chosen.items():
        auto = rows.loc[(target, "auto")].latency_median
        assert within(auto, rows.loc[(target, "dense")].latency_median)
        assert weights[(target, "auto")] <= weights[(target, "dense")]
        fastest = {
            name: min(layer["options"].values(), key=lambda option: option["latency"]) for name, layer in layers.items()
        }
        if sum(option["bytes"] for option in fastest.values()) <= weights[(target, "dense")]:
            assert all(
                layers[name]["options"][layers[name]["chosen"]]["latency"] == option["latency"]
                for name, option in fastest.items()
            )
        for kernel in KERNEL_FORMATS:
            if weights[(target, kernel)] <= weights[(target, "dense")]:
                assert within(auto, rows.loc[(target, kernel)].latency_median), (target, kernel)


def test_auto_alone_resumes_with_its_candidates_measured_but_not_listed(auto_run, tmp_path):
    """--kernels auto: the candidates are measured but are no rows; killed in the auto phase, the sweep resumes
    with them."""
    config = tmp_path / "quick.toml"
    config.write_text(AUTO_SWEEP)
    proc = start_sweep(config, tmp_path / "results", "--kernels", "auto", "--fresh")  # auto points are cached too
    deadline = time.monotonic() + 300
    while not any(
        e["event"] == "measuring" and e["phase"] == "auto kernel"
        for run_dir in (tmp_path / "results").glob("*/")
        for e in events(run_dir)
    ):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()[-3000:]
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    # Again --fresh: the candidates can only come from the killed run.
    again, frame, _ = sweep(tmp_path, "--kernels", "auto", "--fresh", text=AUTO_SWEEP)
    assert "(resumed)" in again.stdout
    # Every format at both targets but nm, which takes no layer of a model pruned without an N:M pattern.
    candidates = 2 * (len(KERNEL_FORMATS) - 1)
    assert f"0 points to measure on 1 boards (mps2_an386#1), {candidates} measured before" in again.stdout
    assert list(frame.kernel) == ["auto", "auto"] and (frame.status == "ok").all()
    first = auto_run[1][auto_run[1].kernel == "auto"]
    assert list(frame.layer_formats) == list(first.layer_formats)
    assert all(
        within(again_, first_) and within(first_, again_)
        for again_, first_ in zip(frame.latency_median, first.latency_median)
    )
