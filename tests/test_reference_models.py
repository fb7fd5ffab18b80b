"""The four MLPerf Tiny reference architectures (models/tinyml.py) on the emulated Cortex-M4, and board budgets.

Each model (untrained, BatchNorm calibrated, pruned to 80 %; see
tflite_models.py) goes through the normal sweep path, `harness sweep --model
m.tflite --data d.npz`, with both kernels: compiled, built with PlatformIO,
run under QEMU and checked byte for byte against TFLite Micro on the board.
Their host-side bit-exactness, LiteRT difference and arena against TFLite
Micro are tested with every other model in test_compiler.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

import tflite_models
from conftest import run_harness
from harness.compiler import compile_tflite, read_tflite
from harness.compiler.budget import STACK_BYTES, BudgetError, board_budget, check_fits, model_need
from harness.compiler.ir import WEIGHTED_OPS

DEVICE_SAMPLES = 5  # MobileNet costs about 100 M instructions per inference on the reference kernels
M4 = "mps2_an386"

pytestmark = pytest.mark.usefixtures("no_leftover_boards")

SWEEP_CONFIG = f"""
[sweep]
name = "reference"
kernels = ["dense", "csr"]
boards = ["{M4}"]

[device]
warmup = 1
runs = 3
accuracy_samples = {DEVICE_SAMPLES}
timeout_s = 60.0
"""


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    return tflite_models.load_models()


def write_model_and_data(models, name: str, directory) -> tuple:
    """The model's .tflite and an .npz of its first synthetic samples, as a user would bring them."""
    tflite, npz = directory / f"{name}.tflite", directory / f"{name}.npz"
    tflite.write_bytes(models[name])
    data = tflite_models.reference_data(name)
    np.savez(
        npz,
        x_train=data.x_train[:DEVICE_SAMPLES],
        y_train=data.y_train[:DEVICE_SAMPLES],
        x_test=data.x_test[:DEVICE_SAMPLES],
        y_test=data.y_test[:DEVICE_SAMPLES],
    )
    return tflite, npz


def sweep(directory, tflite, npz, *extra):
    config = directory / "reference.toml"
    config.write_text(SWEEP_CONFIG)
    return run_harness(
        "sweep", "--config", config, "--model", tflite, "--data", npz, "--results", directory / "results", *extra
    )


def results_of(proc) -> pd.DataFrame:
    """The run's rows, by kernel; the sweep prints where it wrote them, failed or not."""
    csv = re.search(r"^results: (\S+/results\.csv)", proc.stdout, re.MULTILINE)
    assert csv, proc.stdout[-3000:] + proc.stderr[-3000:]
    return pd.read_csv(csv[1]).set_index("kernel")


@dataclass(frozen=True)
class Swept:
    name: str
    tflite: bytes
    results: pd.DataFrame  # one row per kernel
    compiled: dict  # kernel -> CompiledModel


@pytest.fixture(scope="module", params=tflite_models.REFERENCE_MODELS)
def swept(request, models, tmp_path_factory) -> Swept:
    name = request.param
    directory = tmp_path_factory.mktemp(name)
    proc = sweep(directory, *write_model_and_data(models, name, directory))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    compiled = {kernel: compile_tflite(models[name], directory / kernel, kernel=kernel) for kernel in ("dense", "csr")}
    return Swept(name, models[name], results_of(proc), compiled)


def test_runs_on_the_emulated_m4_bit_exact_with_tflite_micro(swept):
    frame, dense, csr = swept.results, swept.compiled["dense"], swept.compiled["csr"]
    assert (frame.status == "ok").all(), frame[["error"]]
    assert (frame.output_mismatches == 0).all() and (frame.device_samples == DEVICE_SAMPLES).all()
    assert (frame.latency_unit == "instructions").all()
    graph = read_tflite(swept.tflite)
    params = sum(
        t.size for op in graph.ops if op.kind in WEIGHTED_OPS for t in op.inputs[1:3] if t is not None and t.is_constant
    )
    print(
        f"{swept.name}: {params:,} params, {sum(layer.macs for layer in dense.layers):,} MACs; "
        f"arena {dense.arena_bytes:,} B dense, {csr.arena_bytes:,} B csr; "
        f"tables {dense.table_bytes:,} B dense, {csr.table_bytes:,} B csr; "
        f"firmware flash {frame.flash_total['dense']:,} B dense, {frame.flash_total['csr']:,} B csr; "
        f"{frame.latency_median['dense']:,.0f} instructions per inference dense, "
        f"{frame.latency_median['csr']:,.0f} csr"
    )


def test_fits_the_m4_and_the_budget_estimate_is_a_lower_bound(swept):
    budget = board_budget(M4)
    for kernel, row in swept.results.iterrows():
        need = model_need(swept.compiled[kernel])
        ram = row.sram_static + STACK_BYTES
        assert row.flash_total <= budget.flash_bytes and ram <= budget.ram_bytes
        # The pre-build check must never refuse a model that links; it misses at most the kernels' code beyond
        # the smallest one (the optimized kernels take 0.5-9.5 KB each on the M4, docs/kernels.md). VWW's csr
        # firmware is 25,756 B over the estimate since the csr conv's 288-value tiles and the dense first-conv and
        # FC paths (4th pass), 23,252 B before them, 16,854 B before issue 14. The estimate does not yet know
        # each kernel's code size.
        assert need.flash_bytes <= row.flash_total < need.flash_bytes + 28 * 1024, (kernel, need, row.flash_total)
        assert need.ram_bytes <= ram < need.ram_bytes + 1024, (kernel, need, ram)


# ---- board budgets -------------------------------------------------------------------------------


def test_a_model_too_big_for_the_board_is_refused_before_building(models, tmp_path):
    # The autoencoder's dense weights (277 KB) overflow the Cortex-M3 board's 256 KiB of flash.
    proc = sweep(
        tmp_path,
        *write_model_and_data(models, "ad_fc_autoencoder", tmp_path),
        "--boards",
        "mps2_an385",
        "--kernels",
        "dense",
    )
    assert proc.returncode != 0
    assert "firmware built" not in proc.stdout  # refused before PlatformIO ran
    row = results_of(proc).loc["dense"]
    assert row.status == "error"
    assert "does not fit board mps2_an385" in row.error and "more than its 262,144 B" in row.error
    assert "of flash" in row.error and "of RAM" not in row.error


def test_budget_error_says_which_memory_and_by_how_much(models, tmp_path):
    boards = tmp_path / "boards"
    boards.mkdir()
    (boards / "tiny.json").write_text(json.dumps({"upload": {"maximum_size": 65536, "maximum_ram_size": 16384}}))
    compiled = compile_tflite(models["vww_mobilenet_v1"], tmp_path / "model", kernel="csr")
    need = model_need(compiled)
    with pytest.raises(BudgetError) as refused:
        check_fits(compiled, "tiny", boards)
    message = str(refused.value)
    assert (
        f"{need.flash_bytes:,} B of flash" in message
        and f"{need.flash_bytes - 65536:,} B more than its 65,536 B" in message
    )
    assert f"{need.ram_bytes:,} B of RAM ({compiled.arena_bytes:,} B of activation arena" in message
    assert f"{need.ram_bytes - 16384:,} B more than its 16,384 B" in message
    check_fits(compiled, M4)  # fits the Cortex-M4


def test_boards_without_a_budget_are_not_checked(tmp_path):
    assert board_budget("host") is None  # its JSON sets no limit
    assert board_budget("no_such_board") is None  # no JSON at all
    assert board_budget(M4).flash_bytes == 512 * 1024 and board_budget(M4).ram_bytes == 128 * 1024
