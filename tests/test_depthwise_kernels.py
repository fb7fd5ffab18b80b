"""DEPTHWISE_CONV_2D kernels on the host, byte for byte against TFLite Micro.

Small int8 models of chained depthwise layers cover the geometries the
reference handles: strides, dilation, SAME and VALID padding (with windows
cut on every side, or only at the bottom and right), depth multipliers above
1, windows other than 3x3, channel counts that are not multiples of 4,
1-pixel-wide maps with (k x 1) windows of 3 to 15 taps (streaming models;
the 3x1 and 5x1 column path with every row count modulo 3 and 5, and in
bands), per-tensor and per-channel scales, fused activations, and sparsities from 0
to 90 % with an empty output channel; 32-bit CSR row starts too. The csr
kernel's runs (a row's pixels a channel at a time) are reached by most layers
here, its per-pixel path by the borders and by outputs that overlap their
input by no whole number of pixels (odd_channels), by depth multipliers above
1 and by rows of fewer than 8 pixels inside the image; wide_rows has rows
longer than one run and 7 channels. Each model is compiled with dense and CSR
weights and built
with the host gcc under ASan and UBSan twice: portable C, and the DSP path
with its instructions emulated in C (-DNN_EMULATE_DSP, simd.h). The models
are converted once and cached like tflite_models' (TensorFlow is imported
only when one is missing).
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import tflite_models
from harness.compiler import CompileError, compile_tflite, encode_depthwise
from harness.quantize import run_tflite_micro
from test_compiler import CFLAGS, KERNEL_BUILDS, REPO, kernel_sources, link_host_model, run_host_executable

SAMPLES = 30
DSP_FLAGS = {"portable": [], "dsp": list(KERNEL_BUILDS["emulated_dsp"]), "reference": list(KERNEL_BUILDS["reference"])}


def _layers(keras, input_shape, *layers):
    inputs = keras.Input(input_shape, batch_size=1)
    x = inputs
    for kwargs in layers:
        x = keras.layers.DepthwiseConv2D(**kwargs)(x)
    return keras.Model(inputs, x)


# name -> (input shape, layers, sparsity, per-channel scales)
MODELS = {
    "sides": (
        (9, 11, 8),
        [
            dict(kernel_size=3, padding="same", activation="relu"),
            dict(kernel_size=3, strides=2, padding="valid", activation="relu6"),
            dict(kernel_size=3, dilation_rate=2, padding="same"),
        ],
        0.5,
        True,
    ),
    "multiplier": (
        (7, 6, 3),
        [
            dict(kernel_size=3, padding="same", depth_multiplier=2),
            dict(kernel_size=(2, 3), strides=(1, 2), padding="same", depth_multiplier=3),
            dict(kernel_size=5, padding="same", activation="relu"),
        ],
        0.7,
        True,
    ),
    "odd_channels": (
        (6, 7, 5),
        [dict(kernel_size=3, padding="same"), dict(kernel_size=3, strides=2, padding="same", activation="relu")],
        0.9,
        False,
    ),
    "even_stride": (
        (10, 10, 16),
        [
            dict(kernel_size=3, padding="same", activation="relu"),
            dict(kernel_size=3, strides=2, padding="same"),
            dict(kernel_size=3, padding="valid", activation="relu6"),
        ],
        0.0,
        True,
    ),
    # 1-pixel-wide maps with (k x 1) windows, as the streaming wake-word model's; channels 12 (groups of 4)
    # and 6 (a group and 2 lanes); a (1 x k) window along a row; strides and dilation along the column.
    "column": (
        (30, 1, 12),
        [
            dict(kernel_size=(3, 1), padding="valid"),
            dict(kernel_size=(5, 1), padding="valid", activation="relu"),
            dict(kernel_size=(10, 1), padding="valid"),
            dict(kernel_size=(15, 1), padding="same", activation="relu6"),
        ],
        0.5,
        True,
    ),
    "column_odd": (
        (23, 1, 6),
        [
            dict(kernel_size=(4, 1), strides=(2, 1), padding="valid"),
            dict(kernel_size=(3, 1), dilation_rate=(2, 1), padding="valid"),
            dict(kernel_size=(7, 1), padding="same"),
        ],
        0.0,
        False,
    ),
    # The 3x1 and 5x1 column path (run_column): each row count modulo 3 and 5 (the unrolled loops'
    # entries), 7 channels, fused ReLU and ReLU6 (full int8 range or not), an empty channel; and
    # 132 channels, whose outputs go through the stack in two bands (23 rows, then 5 or 1).
    "column_taps": (
        (45, 1, 7),
        [
            dict(kernel_size=(3, 1), padding="valid"),
            dict(kernel_size=(3, 1), padding="valid", activation="relu"),
            dict(kernel_size=(3, 1), padding="valid"),
            *[
                dict(kernel_size=(5, 1), padding="valid", activation=activation)
                for activation in (None, "relu", None, "relu6", None)
            ],
        ],
        0.5,
        True,
    ),
    "column_bands": (
        (30, 1, 132),
        [dict(kernel_size=(3, 1), padding="valid"), dict(kernel_size=(5, 1), padding="valid")],
        0.0,
        True,
    ),
    "row": (
        (2, 19, 8),
        [dict(kernel_size=(1, 7), padding="valid"), dict(kernel_size=(2, 5), padding="valid", activation="relu")],
        0.9,
        True,
    ),
    # The csr kernel's runs: rows of more than its 32 pixels a run, an odd channel count, taps between
    # 0 and 9 per channel (passes through the sums), stride 2 with dilation along the row.
    "wide_rows": (
        (4, 80, 7),
        [
            dict(kernel_size=3, strides=(1, 2), padding="same", activation="relu"),
            dict(kernel_size=3, padding="same"),
            dict(kernel_size=(2, 3), dilation_rate=(1, 2), padding="valid"),
        ],
        0.3,
        True,
    ),
    # Nearly every channel without a nonzero (the per-pixel path's groups of 4 stored as constants), on
    # maps too narrow for runs; 9 channels: two groups and a lone channel.
    "empty_groups": (
        (6, 6, 9),
        [dict(kernel_size=3, padding="same"), dict(kernel_size=3, strides=2, padding="same", activation="relu")],
        0.97,
        True,
    ),
    # 81 taps: dense only. Two layers: a one-op model meets a memory-plan bug (its input is marked
    # preserved, yet the output may overlap it).
    "window_9x9": ((9, 9, 4), [dict(kernel_size=9, padding="same"), dict(kernel_size=3, padding="same")], 0.3, True),
}


def _spec(name: str) -> tflite_models.ModelSpec:
    shape, layers, sparsity, per_channel = MODELS[name]
    return tflite_models.ModelSpec(
        name, lambda keras: _layers(keras, shape, *layers), sparsity=sparsity, per_channel=per_channel
    )


def _empty_first_channel(model) -> None:
    """Zero output channel 0 of every layer (an empty CSR row): input channel 0, multiplier 0.

    Not tflite_models' empty_channel: a depthwise kernel's last axis is the depth multiplier.
    """
    for layer in model.layers:
        if hasattr(layer, "depthwise_kernel"):
            kernel = np.array(layer.depthwise_kernel.numpy())
            kernel[:, :, 0, 0] = 0.0
            layer.depthwise_kernel.assign(kernel)


@pytest.fixture(scope="session")
def models() -> dict[str, bytes]:
    return tflite_models.convert_cached(
        "depthwise", Path(__file__), {name: _spec(name) for name in MODELS}, _prune_and_empty
    )


def _prune_and_empty(model, spec: tflite_models.ModelSpec) -> None:
    tflite_models._prune(model, spec)
    if spec.sparsity:
        _empty_first_channel(model)


@pytest.fixture(scope="session")
def kernel_objects(tmp_path_factory) -> dict[str, list[Path]]:
    """firmware/kernels/*.c compiled once per flavour (portable, emulated DSP, reference)."""
    out = tmp_path_factory.mktemp("kernels")

    def compile_one(job):
        flavour, source = job
        obj = out / f"{flavour}-{source.stem}.o"
        command = [
            "gcc",
            *CFLAGS,
            *DSP_FLAGS[flavour],
            f"-I{REPO / 'firmware' / 'kernels'}",
            "-c",
            str(source),
            "-o",
            str(obj),
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, f"gcc failed:\n{result.stderr}"
        return flavour, obj

    objects = {flavour: [] for flavour in DSP_FLAGS}
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        for flavour, obj in pool.map(compile_one, [(f, s) for f in DSP_FLAGS for s in kernel_sources(DSP_FLAGS[f])]):
            objects[flavour].append(obj)
    return objects


@pytest.fixture(scope="session")
def inputs(models) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    return {name: rng.integers(-128, 128, (SAMPLES, int(np.prod(MODELS[name][0]))), dtype=np.int8) for name in models}


@pytest.fixture(scope="session")
def expected(models, inputs) -> dict[str, np.ndarray]:
    return {
        name: run_tflite_micro(models[name], inputs[name].reshape(-1, *MODELS[name][0])).reshape(SAMPLES, -1)
        for name in models
    }


def _run(
    models, kernel_objects, inputs, tmp_path, name: str, kernel: str, flavour: str, edit=lambda source: source
) -> np.ndarray:
    """The host build's outputs; edit may rewrite the generated model.c first."""
    compiled = compile_tflite(models[name], tmp_path / "model", kernel=kernel)
    assert {layer.kernel for layer in compiled.layers} == {f"depthwise_conv2d{'_csr' if kernel == 'csr' else ''}_s8"}
    source = compiled.out_dir / "model.c"
    source.write_text(edit(source.read_text()))
    exe = link_host_model(compiled.out_dir, DSP_FLAGS[flavour], kernel_objects[flavour], tmp_path / "model_test")
    return run_host_executable(exe, inputs[name])


@pytest.mark.parametrize("flavour", DSP_FLAGS)
@pytest.mark.parametrize("kernel", ["dense", "csr"])
@pytest.mark.parametrize("name", [name for name in MODELS if name != "window_9x9"])
def test_bit_exact_with_tflite_micro(models, kernel_objects, inputs, expected, tmp_path, name, kernel, flavour):
    got = _run(models, kernel_objects, inputs, tmp_path, name, kernel, flavour)
    mismatched = np.flatnonzero(np.any(got != expected[name], axis=1))
    assert mismatched.size == 0, (
        f"{mismatched.size} of {SAMPLES} samples differ; sample {mismatched[0]}: "
        f"got {got[mismatched[0]][:16]}..., TFLM {expected[name][mismatched[0]][:16]}..."
    )


@pytest.mark.parametrize("flavour", DSP_FLAGS)
def test_large_window_runs_dense_and_csr_says_why_not(models, kernel_objects, inputs, expected, tmp_path, flavour):
    got = _run(models, kernel_objects, inputs, tmp_path, "window_9x9", "dense", flavour)
    assert np.array_equal(got, expected["window_9x9"])
    with pytest.raises(CompileError, match="a 9x9 window has more than 64 taps"):
        compile_tflite(models["window_9x9"], tmp_path / "csr", kernel="csr")


def test_layouts_and_flash_account(models, tmp_path):
    dense = compile_tflite(models["odd_channels"], tmp_path / "dense", kernel="dense")
    csr = compile_tflite(models["odd_channels"], tmp_path / "csr", kernel="csr")
    for d, s in zip(dense.layers, csr.layers):
        assert 0 < s.nonzero_macs < s.macs
        assert d.weight_bytes.values == 2 * 9 * 8  # int16, 5 channels padded to 2 groups of 4
        assert s.weight_bytes.values == s.weight_bytes.indices == s.nonzero_macs // (s.macs // (9 * 5))
        assert d.nonzero_macs == s.nonzero_macs and d.macs == s.macs


@pytest.mark.parametrize("flavour", DSP_FLAGS)
def test_csr_with_32_bit_row_starts(models, kernel_objects, inputs, expected, tmp_path, flavour):
    # The compiler picks them only past 65,535 nonzeros in a layer (over 7,281 channels of 3x3):
    # the same small model with its row starts rewritten as uint32_t takes that path.
    def widen(source: str) -> str:
        widened = re.sub(r"static const uint16_t (op\d+_weights_row_start)", r"static const uint32_t \1", source)
        widened = widened.replace(".row_start_u16 =", ".row_start_u32 =")
        assert widened.count("uint32_t op") == 3 and ".row_start_u16" not in widened
        return widened

    got = _run(models, kernel_objects, inputs, tmp_path, "multiplier", "csr", flavour, widen)
    assert np.array_equal(got, expected["multiplier"])


def test_dense_layout_doctest():
    assert doctest.testmod(encode_depthwise).failed == 0
