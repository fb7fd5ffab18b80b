"""The whole path, for real: train, prune, convert, compile, build with PlatformIO, run under QEMU over serial."""
import json

import pandas as pd
import pytest

from conftest import run_harness

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


def sweep(tmp_path, *extra):
    config = tmp_path / "quick.toml"
    config.write_text(QUICK_SWEEP)
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
    assert at[(0.9, "csr")] < at[(0.9, "dense")] / 2
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
