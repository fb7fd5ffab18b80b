"""Fused activations narrower than int8 on the emulated Cortex-M4, in every weight format, bit-exact with TFLite
Micro.

Several optimized kernels clamp in a separate path when a fused ReLU or ReLU6 narrows the output range (the csr
CONV_2D and FULLY_CONNECTED output stages in assembly, the dense FULLY_CONNECTED's 8-input path, the dense
convolution's fast paths, which need the whole int8 range). A ReLU whose output zero point is -128 and a ReLU6
whose range stays under 6 clamp nothing, and so the models elsewhere in the tests reach these paths on the host
only. tflite_models.activation_clamps concatenates ReLU and ReLU6 branches with linear ones, as Inception- and
DenseNet-like models do: the converter gives the branches the concatenation's scale and zero point, and every
layer with weights clamps inside int8 (checked in the generated parameters, so this cannot pass vacuously).
Its weights are pruned 2:4 along the input channels where they come in 4s (csr, nm and the other formats
apply), and scaled by 3 so that branches reach past 6. One sweep builds and runs it in every format and auto.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tflite_models
from conftest import run_harness
from harness.compiler import KERNEL_FORMATS, compile_tflite
from harness.prune.masks import n_of_m_mask

M4 = "mps2_an386"
SAMPLES = 20
NAME = "activation_clamps"
KERNELS = (*KERNEL_FORMATS, "auto")
WEIGHTED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}

# One firmware build and run per format, then auto's: over the default 900 s on a busy machine.
pytestmark = [pytest.mark.timeout(1800), pytest.mark.usefixtures("no_leftover_boards")]


def _prune(model, spec) -> None:
    for layer in model.layers:
        attr = tflite_models._kernel_name(layer)
        if attr is None:
            continue
        kernel = np.array(getattr(layer, attr).numpy()) * 3.0
        if attr == "kernel" and kernel.shape[-2] % 4 == 0:
            kernel *= n_of_m_mask(np.abs(kernel), 2, 4)
        else:
            kernel[np.abs(kernel) <= np.quantile(np.abs(kernel), 0.5)] = 0.0
        getattr(layer, attr).assign(kernel)


@pytest.fixture(scope="module")
def model() -> bytes:
    spec = tflite_models.ModelSpec(NAME, tflite_models.activation_clamps)
    return tflite_models.convert_cached("clamps", Path(__file__), {NAME: spec}, _prune)[NAME]


@pytest.fixture(scope="module")
def results(model, tmp_path_factory) -> pd.DataFrame:
    directory = tmp_path_factory.mktemp("clamps")
    tflite, npz, config = directory / f"{NAME}.tflite", directory / f"{NAME}.npz", directory / "clamps.toml"
    tflite.write_bytes(model)
    x_test = np.random.default_rng(7).uniform(-1, 1, (SAMPLES, 8, 8, 5)).astype(np.float32)  # as calibrated
    np.savez(npz, x_test=x_test, y_test=np.zeros(SAMPLES, np.int64))
    kernels = ", ".join(f'"{kernel}"' for kernel in KERNELS)
    config.write_text(
        f'[sweep]\nname = "clamps"\nkernels = [{kernels}]\nboards = ["{M4}"]\n\n'
        f"[device]\nwarmup = 0\nruns = 1\naccuracy_samples = {SAMPLES}\ntimeout_s = 60.0\n"
    )
    proc = run_harness(
        "sweep", "--config", config, "--model", tflite, "--data", npz, "--results", directory / "results", timeout=1700
    )
    csv = re.search(r"^results: (\S+/results\.csv)", proc.stdout, re.MULTILINE)
    assert proc.returncode == 0 and csv, proc.stdout[-3000:] + proc.stderr[-3000:]
    return pd.read_csv(csv[1]).set_index("kernel")


def _activation_ranges(model_c: str) -> dict[int, tuple[int, int]]:
    """Each layer's clamp as the generated parameters hold it: op index -> (act_min, act_max)."""
    found = re.findall(r"\.act_min = (-?\d+), \.act_max = (-?\d+), \.multiplier = op(\d+)_multiplier", model_c)
    return {int(op): (int(lo), int(hi)) for lo, hi, op in found}


@pytest.mark.parametrize("fmt", KERNEL_FORMATS)
def test_every_layer_with_weights_clamps_inside_int8(model, tmp_path, fmt):
    compiled = compile_tflite(model, tmp_path / fmt, kernel=fmt)
    ranges = _activation_ranges((compiled.out_dir / "model.c").read_text())
    weighted = {layer.index: layer for layer in compiled.layers if layer.op in WEIGHTED}
    assert set(ranges) == set(weighted)
    clamped = {index for index, (lo, hi) in ranges.items() if (lo, hi) != (-128, 127)}
    linear = {1, 4, 14}  # the linear branches (activation NONE)
    assert clamped == set(weighted) - linear, ranges
    assert all(-128 < ranges[index][0] for index in clamped)
    # ReLU6 narrows both ends on every layer type; the 1x1 convolution (op 6) is a ReLU.
    assert {index for index in clamped if ranges[index][1] < 127} == clamped - {6}, ranges
    assert {weighted[i].op for i in clamped - {6}} == WEIGHTED
    assert [weighted[i].weight_shape[-1] for i in (0, 13)] == [5, 8]  # a bytewise gather tail; the 8-input FC


@pytest.mark.parametrize("kernel", KERNELS)
def test_bit_exact_with_tflite_micro_on_the_board(results, kernel):
    row = results.loc[kernel]
    assert row.status == "ok", row.error
    assert row.output_mismatches == 0 and row.device_samples == SAMPLES
    if kernel in KERNEL_FORMATS:  # the board ran the format's kernels (a format runs a layer it refuses dense)
        assert kernel in json.loads(row.layer_formats).values()


def test_the_sparse_formats_run_their_own_kernels(model, tmp_path):
    kernels = {
        fmt: {layer.kernel for layer in compile_tflite(model, tmp_path / fmt, kernel=fmt).layers}
        for fmt in ("csr", "nm")
    }
    assert {"conv2d_csr_s8", "depthwise_conv2d_csr_s8", "fully_connected_csr_s8"} <= kernels["csr"]
    assert {"conv2d_nm_s8", "fully_connected_nm_s8"} <= kernels["nm"]
