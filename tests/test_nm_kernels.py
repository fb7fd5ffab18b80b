"""The N:M format (nm): its encoder, and its FULLY_CONNECTED and CONV_2D kernels on the host, byte for byte
against TFLite Micro.

Small int8 models are pruned 2:4 and 1:4 along the input channels by the pruning engine's own mask
(harness/prune/masks.n_of_m_mask), with an empty output channel and some extra zeros, so groups hold
fewer nonzeros than N too. They cover input depths that are multiples of 4 but not of 8 (a row's last
unit padded), rows of 8-unit turns and leftovers, batches, small and large output counts, 3x3, strided,
dilated and 1x1 convolutions, padding, 1-pixel-wide maps and a convolution run as one dot product.
Each is built with the host gcc under ASan and UBSan twice: portable C, and the DSP path with its
instructions emulated (-DNN_EMULATE_DSP).
"""

from __future__ import annotations

import doctest
import subprocess
from pathlib import Path

import numpy as np
import pytest

import tflite_models
from harness.chooser import choose, layer_options
from harness.compiler import KERNEL_FORMATS, CompileError, compile_tflite, encode_nm
from harness.compiler.encode import FORMATS, FormatRefused
from harness.compiler.lower import _conv_offsets, _sparse_conv_layout, sparse_conv_scratch_bytes
from harness.prune.masks import n_of_m_mask
from harness.quantize import run_tflite_micro
from test_compiler import CFLAGS, REPO, link_host_model, run_host_executable
from test_depthwise_kernels import DSP_FLAGS, kernel_objects  # noqa: F401  (kernel_objects: a fixture)
from test_sparse_formats import conv_window

SAMPLES = 30
PATTERNS = {"2:4": (2, 4), "1:4": (1, 4)}


def _fc(keras):
    inputs = keras.Input((20,), batch_size=1)
    x = keras.layers.Dense(44, activation="relu")(inputs)  # 20 inputs: 5 groups, 2:4 pads a unit
    x = keras.layers.Dense(64, activation="relu")(x)  # 44: 8-unit turns and leftovers
    x = keras.layers.Dense(40)(x)  # 64: 8-unit turns only
    return keras.Model(inputs, keras.layers.Dense(3)(x))


def _fc_rows(keras):
    inputs = keras.Input((3, 12), batch_size=1)  # FULLY_CONNECTED with 3 batch rows
    return keras.Model(inputs, keras.layers.Dense(5, activation="relu6")(inputs))


def _conv(keras):
    inputs = keras.Input((9, 9, 12), batch_size=1)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)  # a band, C_IN 12
    x = keras.layers.Conv2D(20, 3, strides=2, padding="valid")(x)  # in place, C_IN 8
    x = keras.layers.Conv2D(36, 3, dilation_rate=2, padding="same")(x)  # taps apart
    x = keras.layers.Conv2D(68, 1, activation="relu")(x)  # 1x1, many outputs
    return keras.Model(inputs, keras.layers.Conv2D(3, 1)(x))  # 3 outputs


def _column(keras):
    inputs = keras.Input((13, 1, 4), batch_size=1)  # a 1-pixel-wide map, as streaming models have
    x = keras.layers.Conv2D(8, (3, 1), padding="same")(inputs)
    x = keras.layers.Conv2D(8, (5, 1), strides=(2, 1), padding="valid", activation="relu")(x)
    return keras.Model(inputs, keras.layers.Conv2D(3, (3, 1), padding="valid")(x))  # 3 pixels: a partial tile


def _conv_as_fc(keras):
    inputs = keras.Input((3, 3, 4), batch_size=1)  # one output pixel from the whole input
    return keras.Model(inputs, keras.layers.Conv2D(6, 3, padding="valid")(inputs))


ARCHITECTURES = {"fc": _fc, "fc_rows": _fc_rows, "conv": _conv, "column": _column, "conv_as_fc": _conv_as_fc}
MODELS = {f"{arch}-{pattern}": (arch, pattern) for arch in ARCHITECTURES for pattern in (*PATTERNS, "50%")}


def _prune(model, spec: tflite_models.ModelSpec) -> None:
    """N:M by the pruning engine's mask, output channel 0 emptied and 1 in 8 survivors zeroed; "50%" is
    unstructured (magnitude), which the nm format refuses."""
    rng = np.random.default_rng(5)
    pattern = MODELS[spec.name][1]
    for layer in model.layers:
        if not hasattr(layer, "kernel"):
            continue
        kernel = np.array(layer.kernel.numpy())
        if pattern in PATTERNS:
            kernel *= n_of_m_mask(np.abs(kernel), *PATTERNS[pattern])
            kernel[..., 0] = 0.0
            kernel[rng.random(kernel.shape) < 0.125] = 0.0
        else:
            kernel[np.abs(kernel) <= np.quantile(np.abs(kernel), 0.5)] = 0.0
        layer.kernel.assign(kernel)


@pytest.fixture(scope="session")
def models() -> dict[str, bytes]:
    specs = {name: tflite_models.ModelSpec(name, ARCHITECTURES[arch]) for name, (arch, _) in MODELS.items()}
    return tflite_models.convert_cached("nm", Path(__file__), specs, _prune)


def _inputs(compiled) -> np.ndarray:
    size = int(np.prod(compiled.input.shape))
    return np.random.default_rng(11).integers(-128, 128, (SAMPLES, size), dtype=np.int8)


def _host_outputs(compiled, kernel_objects, flavour: str, tmp_path: Path) -> np.ndarray:  # noqa: F811 (the fixture)
    exe = link_host_model(
        compiled.out_dir, DSP_FLAGS[flavour], kernel_objects[flavour], tmp_path / f"model_test_{flavour}"
    )
    return run_host_executable(exe, _inputs(compiled))


@pytest.mark.parametrize("flavour", DSP_FLAGS)
@pytest.mark.parametrize("name", [name for name, (_, pattern) in MODELS.items() if pattern in PATTERNS])
def test_bit_exact_with_tflite_micro(models, kernel_objects, tmp_path, name, flavour):  # noqa: F811 (the fixture)
    compiled = compile_tflite(models[name], tmp_path / "model", kernel="nm")
    assert {layer.format for layer in compiled.layers} == {"nm"}
    assert {layer.kernel for layer in compiled.layers} <= {"fully_connected_nm_s8", "conv2d_nm_s8"}
    n = PATTERNS[MODELS[name][1]][0]
    assert all(0 < layer.nonzero_macs <= layer.macs * n // 4 for layer in compiled.layers)
    got = _host_outputs(compiled, kernel_objects, flavour, tmp_path)
    expected = run_tflite_micro(models[name], _inputs(compiled).reshape(-1, *compiled.input.shape[1:]))
    expected = expected.reshape(SAMPLES, -1)
    mismatched = np.flatnonzero(np.any(got != expected, axis=1))
    assert mismatched.size == 0, (
        f"{mismatched.size} of {SAMPLES} samples differ; sample {mismatched[0]}: "
        f"got {got[mismatched[0]][:16]}..., TFLM {expected[mismatched[0]][:16]}..."
    )


def test_a_layer_that_is_not_n_of_m_runs_dense_and_naming_nm_for_it_is_an_error(models, tmp_path):
    compiled = compile_tflite(models["conv-50%"], tmp_path / "nm", kernel="nm")
    assert {layer.format for layer in compiled.layers} == {"dense"}
    with pytest.raises(CompileError, match=r"op 0 \(CONV_2D\): .*not N:4 along the input channels.*holds [34] "):
        compile_tflite(models["conv-50%"], tmp_path / "named", layer_kernels={0: "nm"})


@pytest.mark.parametrize("name", ["conv-2:4", "conv-50%"])
def test_auto_has_nm_as_a_candidate_for_n_of_m_layers_only(models, tmp_path, name):
    variants = {fmt: compile_tflite(models[name], tmp_path / fmt, kernel=fmt) for fmt in KERNEL_FORMATS}
    # Latencies as a board might measure them: nm fastest wherever it runs.
    latencies = {
        fmt: {layer: 100.0 if fmt == "nm" else 200.0 for layer in compiled.layer_names}
        for fmt, compiled in variants.items()
    }
    options = layer_options(variants, latencies)
    with_nm = [layer.name for layer in options if "nm" in {option.format for option in layer.options}]
    chosen = choose(options).formats
    if name == "conv-2:4":
        assert len(with_nm) == len(options) == 5 and set(chosen.values()) == {"nm"}
    else:
        assert with_nm == [] and "nm" not in chosen.values()


def test_a_layer_whose_groups_are_not_input_channels_is_refused(models, tmp_path):
    # A 2x1 window on 2 input channels: a group of 4 weights spans two kernel rows, however sparse.
    with pytest.raises(FormatRefused, match="do not read 4 consecutive input channels"):
        FORMATS["nm"](np.zeros((2, 4), np.int8), "w", np.array([0, 1, 20, 21]), 20)
    with pytest.raises(FormatRefused, match="18 inputs per output are not a multiple of 4"):
        FORMATS["nm"](np.zeros((2, 18), np.int8), "w")


BUFFER_SIZE_DRIVER = r"""
#include <stdio.h>
#include "kernels.h"
/* Reads a window (input h w c, output h w c, kernel, stride, dilation, padding) and n; prints the nm
   FULLY_CONNECTED buffer size for input_depth = KH * KW * C_IN, then the CONV_2D one. */
int main(void)
{
    nn_conv2d_params conv = {0};
    nn_window *w = &conv.window;
    nn_nm_s8 weights = {0, 0, 0, 4};
    while (scanf("%d %d %d %d %d %d %d %d %d %d %d %d %d %d %d", &w->input.h, &w->input.w, &w->input.c,
                 &w->output.h, &w->output.w, &w->output.c, &w->kernel_h, &w->kernel_w, &w->stride_h,
                 &w->stride_w, &w->dilation_h, &w->dilation_w, &w->pad_top, &w->pad_left, &weights.n) == 15) {
        nn_fully_connected_params fc = {1, w->kernel_h * w->kernel_w * w->input.c, w->output.c, {0}, NULL, 0};
        printf("%d %d\n", (int)nn_fully_connected_nm_s8_get_buffer_size(&fc, &weights),
               (int)nn_conv2d_nm_s8_get_buffer_size(&conv, &weights));
    }
    return 0;
}
"""


def test_buffer_sizes_are_the_compilers(tmp_path):
    windows = [
        conv_window(16, 16, 16, 32, 3),
        conv_window(9, 9, 12, 8, 3, pad=0),
        conv_window(8, 8, 20, 6, 3, dilation=2),
        conv_window(16, 16, 64, 64, 1, pad=0),
        conv_window(5, 5, 4, 3, 3, stride=2),
    ]
    source, exe = tmp_path / "size.c", tmp_path / "size"
    source.write_text(BUFFER_SIZE_DRIVER)
    kernels = REPO / "firmware" / "kernels"
    build = subprocess.run(
        [
            "gcc",
            *CFLAGS,
            f"-I{kernels}",
            str(source),
            str(kernels / "fully_connected_nm_s8.c"),
            str(kernels / "conv2d_nm_s8.c"),
            str(kernels / "conv2d_csr_s8.c"),
            "-o",
            str(exe),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    lines, expected = [], []
    for window in windows:
        for n in (1, 2):
            inputs = window["kernel_h"] * window["kernel_w"] * window["input"]["c"]
            matrix = np.zeros((window["output"]["c"], inputs), np.int8)
            matrix[:, ::4] = 1  # N:M with one nonzero per group; the encoder picks n = 1
            if n == 2:
                matrix[:, 1::4] = 1
            row_step = _sparse_conv_layout(window)[1]
            conv = FORMATS["nm"](matrix, "w", _conv_offsets(window, row_step), row_step)
            assert conv.n == n
            expected.append((FORMATS["nm"](matrix, "w").table_bytes(1), sparse_conv_scratch_bytes(window, conv)))
            lines.append(
                " ".join(
                    str(v)
                    for v in [
                        *window["input"].values(),
                        *window["output"].values(),
                        *(
                            window[k]
                            for k in (
                                "kernel_h",
                                "kernel_w",
                                "stride_h",
                                "stride_w",
                                "dilation_h",
                                "dilation_w",
                                "pad_top",
                                "pad_left",
                            )
                        ),
                        n,
                    ]
                )
            )
    out = subprocess.run([str(exe)], input="\n".join(lines), capture_output=True, text=True, check=True)
    assert [tuple(map(int, line.split())) for line in out.stdout.split("\n") if line] == expected


def _decode(encoded, shape) -> np.ndarray:
    """The matrix an NmWeights holds, read as kernels.h describes the layout."""
    rows, cols = shape
    n, units = encoded.n, encoded.units
    values = encoded.values.values.reshape(rows, units // 2, 2, 2)  # [row, unit pair, a/b, unit in pair]
    slots = encoded.slots.values.reshape(rows, units // 2)
    group_inputs = encode_nm.GROUPS_PER_UNIT[n] * encode_nm.M
    matrix = np.zeros((rows, units * group_inputs), np.int8)
    for row in range(rows):
        for u in range(units):
            slot = (slots[row, u // 2] >> (4 * (u % 2))) & 15
            for which, position in enumerate(encode_nm.PAIRS[n][slot]):
                matrix[row, u * group_inputs + position] = values[row, u // 2, which, u % 2]
    assert not matrix[:, cols:].any()
    return matrix[:, :cols]


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("shape", [(6, 20), (5, 256), (3, 44), (1, 4), (4, 8)])
def test_encoder_round_trip_and_byte_account(pattern, shape):
    rng = np.random.default_rng(7)
    n, m = PATTERNS[pattern]
    weights = rng.integers(-128, 128, shape).astype(np.int8)
    weights[weights == 0] = 1
    matrix = (weights * n_of_m_mask(rng.random(shape).T, n, m).T).astype(np.int8)
    matrix[rng.random(shape) < 0.2] = 0  # groups with fewer than N nonzeros
    matrix[0] = 0
    encoded = FORMATS["nm"](matrix, "w")
    assert encoded.format == "nm" and encoded.n <= n
    assert np.array_equal(_decode(encoded, shape), matrix)
    units = encoded.units
    assert units % 2 == 0 and encoded.bytes.values == shape[0] * 2 * units and encoded.bytes.pointers == 0
    assert encoded.bytes.indices == shape[0] * units // 2  # 4 bits per unit: 2 per stored weight
    assert encoded.struct("s").fields["n"] == encoded.n and encoded.struct("s").fields["m"] == 4
    assert encoded.nonzeros == np.count_nonzero(matrix)


def test_two_of_four_stores_at_most_0_625_of_the_dense_bytes():
    matrix = np.ones((8, 256), np.int8) * n_of_m_mask(np.random.default_rng(0).random((256, 8)), 2, 4).T
    encoded = FORMATS["nm"](matrix.astype(np.int8), "w")
    assert (encoded.n, encoded.bytes.total) == (2, 8 * 256 * 5 // 8)
    one = FORMATS["nm"]((matrix * (np.arange(256) % 4 == 0)).astype(np.int8), "w")
    assert (one.n, one.bytes.total) == (1, 8 * 256 * 5 // 16)


def test_doctests():
    assert doctest.testmod(encode_nm).failed == 0


def test_a_sweep_with_auto_leaves_out_nm_variants_that_run_every_layer_dense(models, tmp_path):
    from types import SimpleNamespace

    from harness.device.boards import get_board
    from harness.plan import plan_sweep, without_dense_copies

    points = []
    for name in ("conv-2:4", "conv-50%"):
        path = tmp_path / f"{name}.tflite"
        path.write_bytes(models[name])
        points.append(SimpleNamespace(tflite_path=path))  # the plan only needs where the model is
    plan = plan_sweep(("dense", "auto"), points, [get_board("host")])
    variants = {
        (p.point.tflite_path, p.kernel): compile_tflite(
            p.point.tflite_path.read_bytes(), tmp_path / f"{i}", kernel=p.kernel
        )
        for i, p in enumerate(plan)
        if p.kernel != "auto"
    }
    kept = {(p.point.tflite_path.stem, p.kernel) for p in without_dense_copies(plan, variants)}
    assert ("conv-2:4", "nm") in kept and ("conv-50%", "nm") not in kept
    assert {("conv-50%", "dense"), ("conv-50%", "auto"), ("conv-50%", "csr")} <= kept
