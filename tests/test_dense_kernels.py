"""Dense FULLY_CONNECTED and CONV_2D kernels, and requantization, bit for bit.

The kernels have a DSP path (Arm's packed SXTB16/SMLAD instructions, see
firmware/kernels/simd.h) and a portable one. On the host both are built:
plain, and with -DNN_EMULATE_DSP, which runs the DSP algorithm on C
emulations of the instructions, under ASan and UBSan. Each build runs
single-layer models over many geometries (odd depths and channel counts,
strides, dilations, SAME and VALID padding, windows too large for the DSP
path's stack columns, whose columns go in the compiler's scratch buffer)
and must give TFLite Micro's bytes; nn_conv2d_s8_get_buffer_size() must
give the compiler's scratch size. nn_requantize is
checked against a Python model of TFLM's MultiplyByQuantizedMultiplier on
millions of accumulators, multipliers and shifts, rounding ties included.
The emulated Cortex-M4 runs the same algorithm on the real instructions in
tests/test_reference_models.py.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

import tflite_models
from harness.compiler import compile_tflite
from harness.quantize import run_tflite_micro
from test_compiler import CFLAGS, DRIVER_DIR, KERNEL_BUILDS, REPO, _edited, kernel_sources, run_host_executable

KERNEL_DIR = REPO / "firmware" / "kernels"
VARIANTS = {name: list(flags) for name, flags in KERNEL_BUILDS.items()}
OPTIMIZED = {name: VARIANTS[name] for name in ("portable", "emulated_dsp")}  # the reference has no scratch, no table
SAMPLES = 40

# name: (input shape, layer arguments); Dense layers for 1- or 2-D inputs, Conv2D otherwise.
GEOMETRIES = {
    "fc_256x256": ((256,), dict(units=256)),
    "fc_odd": ((37,), dict(units=11, activation="relu")),
    "fc_tiny": ((3,), dict(units=2)),
    "fc_rows": ((5, 14), dict(units=7, activation="relu6")),
    # 8 inputs: the short-row path (an autoencoder's 8 -> 128), rows in fours with 2 left over, and batches.
    "fc_short": ((8,), dict(units=130, activation="relu")),
    "fc_short_rows": ((3, 8), dict(units=6, activation="relu6")),
    # 8 inputs with the compiler's folded constants and the whole int8 range: an odd row count, 2 batches.
    "fc_short_odd": ((2, 8), dict(units=7)),
    # Up to 64 inputs, also with folded constants (folded_deep_rows): the wake-word model's last layer, 32 -> 3;
    # an odd depth (a word and a byte past 32) with 5 rows (a group of 3, 2 alone) and ReLU6; 30 inputs, 1 row.
    "fc_wake_word": ((32,), dict(units=3)),
    "fc_deep_odd": ((2, 33), dict(units=5, activation="relu6")),
    "fc_deep_one_row": ((30,), dict(units=1, activation="relu")),
    "conv_3x3_same": ((16, 16, 16), dict(filters=32, kernel_size=3, padding="same")),
    "conv_1x1": ((8, 8, 64), dict(filters=64, kernel_size=1, activation="relu")),
    "conv_1x1_odd": ((3, 5, 12), dict(filters=5, kernel_size=1)),
    "conv_stride2_rgb": ((9, 7, 3), dict(filters=5, kernel_size=3, strides=2, padding="same")),
    "conv_dilated": ((10, 10, 4), dict(filters=6, kernel_size=3, dilation_rate=2, padding="same", activation="relu")),
    "conv_valid_5x3": ((7, 9, 8), dict(filters=3, kernel_size=(5, 3))),
    "conv_even_kernel": ((6, 6, 1), dict(filters=8, kernel_size=2, padding="same")),
    "conv_stride_1x2": ((5, 5, 12), dict(filters=7, kernel_size=(1, 3), strides=(1, 2), padding="same")),
    "conv_big_stride": ((4, 4, 20), dict(filters=9, kernel_size=4, strides=3, padding="same")),
    # One pixel from its whole input (a streaming model's last 1x1 conv; a 3x2 window over a 3x2 map): run as
    # FULLY_CONNECTED. Odd pixel counts whose windows leave 1 and 3 values past the last group of 4.
    "conv_one_pixel": ((1, 1, 64), dict(filters=32, kernel_size=1, activation="relu")),
    "conv_whole_input": ((3, 2, 5), dict(filters=7, kernel_size=(3, 2))),
    "conv_column_rest1": ((7, 1, 7), dict(filters=5, kernel_size=(3, 1))),
    "conv_1x1_rest3": ((3, 3, 7), dict(filters=6, kernel_size=1)),
    "conv_wide_window": ((6, 6, 32), dict(filters=16, kernel_size=3, padding="same")),  # 288 > 256
    # C_IN 3: kernel rows of 15 bytes copied whole (3 words and 3 bytes), and dilated rows, which are not.
    "conv_gather_rows": ((8, 9, 3), dict(filters=6, kernel_size=(2, 5))),
    "conv_gather_dilated": ((9, 9, 3), dict(filters=4, kernel_size=3, dilation_rate=2, padding="same")),
    # 1x1 over 8 input channels (conv_short_1x1): 90 pixels, a band of 64 and one of 26, 13 channels;
    # and a clamped activation range.
    "conv_1x1_short": ((10, 9, 8), dict(filters=13, kernel_size=1)),
    "conv_1x1_short_relu6": ((5, 7, 8), dict(filters=16, kernel_size=1, activation="relu6")),
    # A first layer, 3x3x3 SAME with ReLU (conv_small_window): 132 pixels, bands of 32 and one of 4.
    "conv_first_layer": ((12, 11, 3), dict(filters=16, kernel_size=3, padding="same", activation="relu")),
    # The small path's window order (rows_to_groups): MobileNet's stride-2 first layer on an odd map; rows
    # read from the input 2 rows apart (dilated rows); every window inside, an odd last pixel; rows of 5 bytes
    # whose last bytes fill groups across rows.
    "conv_first_layer_s2": ((13, 11, 3), dict(filters=8, kernel_size=3, strides=2, padding="same")),
    "conv_first_dilated_rows": ((9, 10, 3), dict(filters=8, kernel_size=3, dilation_rate=(2, 1), padding="same")),
    "conv_first_valid": ((9, 9, 3), dict(filters=5, kernel_size=3, activation="relu")),
    "conv_5x5_gray": ((11, 10, 1), dict(filters=6, kernel_size=5, strides=2, padding="same")),
    # 3x3 over one channel (the digits CNN's first layer), straight-line too: words read across rows, 63
    # pixels (an odd last one), border windows gathered; and the rows read 2 apart in the input.
    "conv_3x3_gray": ((9, 7, 1), dict(filters=16, kernel_size=3, padding="same", activation="relu")),
    "conv_3x3_gray_dilated_rows": ((8, 6, 1), dict(filters=5, kernel_size=3, dilation_rate=(2, 1))),
    # 270 > 256 with C_IN not a multiple of 4 (bytewise gather in the buffer), odd pixels and channels.
    "conv_wide_gather": ((7, 7, 30), dict(filters=5, kernel_size=3, padding="same", activation="relu")),
}
PER_TENSOR = {"fc_odd", "conv_stride2_rgb"}  # one weight scale for every channel
# Copies whose output scale is edited down to input scale x median weight scale x factor, so that
# the multipliers shift left or right by at most 1 bit (outside nn_requantize_right_shift's
# domain), run on inputs near the zero point.
STRONG_SCALE = {
    "fc_strong_scale": ("fc_odd", 3.0),
    "fc_short_strong_scale": ("fc_short", 3.0),
    "conv_strong_scale": ("conv_3x3_same", 0.5),
    "conv_1x1_short_strong_scale": ("conv_1x1_short", 0.5),
}
# Copies with every third channel's weight scale divided by 2^18, as magnitude pruning leaves a channel of a
# few small weights: shifts of about -27, at which the output offset (a ReLU's -128) no longer folds.
TINY_CHANNELS = {"fc_short_tiny_channels": ("fc_short", 2.0**-18)}
MODELS = (*GEOMETRIES, *STRONG_SCALE, *TINY_CHANNELS)


def _build_model(keras, name: str):
    shape, args = GEOMETRIES[name]
    inputs = keras.Input(shape, batch_size=1)
    layer = keras.layers.Dense(**args) if len(shape) <= 2 else keras.layers.Conv2D(**args)
    return keras.Model(inputs, layer(inputs))


def _convert(names: list[str]) -> dict[str, bytes]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    built = {}
    for name in names:
        model = _build_model(keras, name)
        tflite_models._randomize_biases(model)
        representative = (
            np.random.default_rng(2)
            .uniform(-1, 1, (tflite_models.REPRESENTATIVE_SAMPLES, *model.input_shape[1:]))
            .astype(np.float32)
        )
        spec = tflite_models.ModelSpec(name, None, per_channel=name not in PER_TENSOR)
        built[name] = tflite_models._convert(tf, model, spec, representative)
    return built


@pytest.fixture(scope="session")
def models() -> dict[str, bytes]:
    """The single-layer models, converted once and cached like tests/tflite_models.py's."""
    digest = hashlib.sha256(Path(__file__).read_bytes() + version("tensorflow-cpu").encode())
    paths = {name: tflite_models.CACHE_DIR / f"dense-{name}-{digest.hexdigest()[:12]}.tflite" for name in GEOMETRIES}
    missing = [name for name, path in paths.items() if not path.exists()]
    if missing:
        tflite_models.CACHE_DIR.mkdir(parents=True, exist_ok=True)
        for name, tflite in _convert(missing).items():
            tmp = paths[name].with_suffix(".tmp")
            tmp.write_bytes(tflite)
            tmp.replace(paths[name])
    models = {name: path.read_bytes() for name, path in paths.items()}
    return {
        **models,
        **{name: _strong_scale(models[source], factor) for name, (source, factor) in STRONG_SCALE.items()},
        **{name: _tiny_channels(models[source], factor) for name, (source, factor) in TINY_CHANNELS.items()},
    }


def _strong_scale(tflite: bytes, factor: float) -> bytes:
    """The model with its output scale set to input scale x median weight scale x factor."""

    def edit(model):
        graph = model.subgraphs[0]
        op = graph.operators[0]
        scale = lambda index: np.asarray(graph.tensors[index].quantization.scale)  # noqa: E731
        output = graph.tensors[graph.outputs[0]].quantization
        output.scale = [float(scale(op.inputs[0])[0] * np.median(scale(op.inputs[1])) * factor)]

    return _edited(tflite, edit)


def _tiny_channels(tflite: bytes, factor: float) -> bytes:
    """The model with the weight scale of every third output channel multiplied by factor."""

    def edit(model):
        graph = model.subgraphs[0]
        weights = graph.tensors[graph.operators[0].inputs[1]].quantization
        scales = np.asarray(weights.scale, np.float32)
        scales[::3] *= np.float32(factor)
        weights.scale = scales.tolist()

    return _edited(tflite, edit)


def _gcc(args: list[str]) -> None:
    result = subprocess.run(["gcc", *CFLAGS, *args], capture_output=True, text=True)
    assert result.returncode == 0, f"gcc failed:\n{result.stderr}"


@pytest.fixture(scope="session")
def kernel_objects(tmp_path_factory) -> dict[str, list[Path]]:
    """firmware/kernels/*.c compiled once per variant (the models link against them)."""
    workdir = tmp_path_factory.mktemp("kernels")
    jobs = []
    for variant, flags in VARIANTS.items():
        for source in kernel_sources(flags):
            obj = workdir / f"{variant}-{source.stem}.o"
            jobs.append((variant, obj, [*flags, f"-I{KERNEL_DIR}", "-c", str(source), "-o", str(obj)]))
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(lambda job: _gcc(job[2]), jobs))
    objects: dict[str, list[Path]] = {variant: [] for variant in VARIANTS}
    for variant, obj, _ in jobs:
        objects[variant].append(obj)
    return objects


# tests/c/model_driver.c also checks MODEL_INPUT_PRESERVED, which the memory plan gets wrong for
# a one-op model whose output overlaps the model input; that is not these kernels' business.
MODEL_DRIVER = r"""
#include <stdio.h>
#include <string.h>
#include "layer_timer.h"
#include "model.h"
void layer_timer_mark(int layer) { (void)layer; }
/* Runs each MODEL_INPUT_BYTES sample from stdin, printing the output in hex, a line per sample. */
int main(void)
{
    static int8_t sample[MODEL_INPUT_BYTES];
    while (fread(sample, 1, MODEL_INPUT_BYTES, stdin) == MODEL_INPUT_BYTES) {
        memcpy(model_input(), sample, MODEL_INPUT_BYTES);
        if (model_invoke() != 0) {
            return 3;
        }
        for (int i = 0; i < MODEL_OUTPUT_BYTES; ++i) {
            printf("%02x", (unsigned)(uint8_t)model_output()[i]);
        }
        printf("\n");
    }
    return 0;
}
"""


@pytest.fixture(scope="session")
def host_outputs(models, kernel_objects, tmp_path_factory) -> dict[tuple[str, str], np.ndarray]:
    """Every model's outputs from both builds, built and run in parallel."""
    workdir = tmp_path_factory.mktemp("dense_models")
    driver = workdir / "driver.c"
    driver.write_text(MODEL_DRIVER)

    def run(job):
        name, variant = job
        compiled = compile_tflite(models[name], workdir / f"{name}-{variant}", kernel="dense")
        exe = compiled.out_dir / "model_test"
        _gcc(
            [
                f"-I{compiled.out_dir}",
                f"-I{KERNEL_DIR}",
                f"-I{DRIVER_DIR}",
                str(compiled.out_dir / "model.c"),
                str(driver),
                *map(str, kernel_objects[variant]),
                "-o",
                str(exe),
            ]
        )
        return run_host_executable(exe, _inputs(name, compiled.input))

    jobs = [(name, variant) for name in MODELS for variant in VARIANTS]
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        return dict(zip(jobs, pool.map(run, jobs)))


def _inputs(name: str, info) -> np.ndarray:
    rng = np.random.default_rng(7)
    shape = (SAMPLES, int(np.prod(info.shape)))
    if name in STRONG_SCALE:
        return np.clip(info.zero_point + rng.integers(-2, 3, shape), -128, 127).astype(np.int8)
    return rng.integers(-128, 128, shape, dtype=np.int8)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", MODELS)
def test_dense_kernels_match_tflite_micro(models, host_outputs, tmp_path, name, variant):
    compiled = compile_tflite(models[name], tmp_path / "model", kernel="dense")
    inputs = _inputs(name, compiled.input)
    expected = run_tflite_micro(models[name], inputs.reshape(-1, *compiled.input.shape[1:]))
    got = host_outputs[name, variant]
    mismatched = np.flatnonzero(np.any(got != expected.reshape(len(inputs), -1), axis=1))
    assert mismatched.size == 0, f"{mismatched.size} of {len(inputs)} samples differ, first {mismatched[0]}"


BUFFER_SIZE_DRIVER = r"""
#include <stdio.h>
#include "kernels.h"
/* Reads (kernel_h, kernel_w, c_in) int32 triples from stdin, writes nn_conv2d_s8_get_buffer_size(). */
int main(void)
{
    int32_t in[3];
    while (fread(in, sizeof in[0], 3, stdin) == 3) {
        nn_conv2d_params params = {0};
        params.window.kernel_h = in[0];
        params.window.kernel_w = in[1];
        params.window.input.c = in[2];
        const int32_t out = nn_conv2d_s8_get_buffer_size(&params);
        fwrite(&out, sizeof out, 1, stdout);
    }
    return 0;
}
"""


@pytest.mark.parametrize("variant", OPTIMIZED)
def test_conv2d_buffer_size_matches_the_compiler(kernel_objects, tmp_path, variant):
    from harness.compiler.lower import dense_conv_scratch_bytes

    cases = [(kh, kw, c) for kh in (1, 2, 3, 5) for kw in (1, 3, 4) for c in (1, 3, 4, 12, 30, 32, 64, 65)]
    driver = tmp_path / "size.c"
    driver.write_text(BUFFER_SIZE_DRIVER)
    exe = tmp_path / "size"
    _gcc([f"-I{KERNEL_DIR}", str(driver), *map(str, kernel_objects[variant]), "-o", str(exe)])
    result = subprocess.run(
        [str(exe)], input=np.array(cases, dtype=np.int32).tobytes(), capture_output=True, check=True
    )
    got = np.frombuffer(result.stdout, dtype=np.int32).tolist()
    expected = [dense_conv_scratch_bytes({"kernel_h": kh, "kernel_w": kw, "input": {"c": c}}) for kh, kw, c in cases]
    assert got == expected
    assert any(expected) and not all(expected)


@pytest.mark.parametrize("kernel", ["dense", "csr", "delta4", "bitmask", "block4"])
def test_a_conv_computing_one_pixel_from_its_whole_input_runs_fully_connected(models, tmp_path, kernel):
    for name, family in [
        ("conv_one_pixel", "fully_connected"),
        ("conv_whole_input", "fully_connected"),
        ("conv_column_rest1", "conv2d"),
    ]:
        compiled = compile_tflite(models[name], tmp_path / f"{name}-{kernel}", kernel=kernel)
        expected = f"{family}_s8" if kernel == "dense" else f"{family}_{kernel}_s8"
        assert [layer.kernel for layer in compiled.layers] == [expected], name
    whole = compile_tflite(models["conv_whole_input"], tmp_path / "macs", kernel=kernel)
    assert whole.layers[0].macs == 3 * 2 * 5 * 7 and whole.layers[0].op == "CONV_2D"


def test_layers_of_up_to_64_inputs_get_constants_folded_by_the_compiler(models, tmp_path):
    # nn_fully_connected_params.folded: 3 words per channel, given to the dense kernel when every channel shifts
    # right by 2 bits or more; offset_after_shift says whether some channel's offset did not fold.
    def folded(name: str, kernel: str = "dense"):
        compiled = compile_tflite(models[name], tmp_path / f"{name}-{kernel}", kernel=kernel)
        source = (compiled.out_dir / "model.c").read_text()
        after = re.search(r"\.offset_after_shift = (\d)", source)
        return compiled, re.search(r"static const int32_t op\d+_folded\[(\d+)\]", source), after

    for name, units, after in [
        ("fc_short", 130, "0"),
        ("fc_short_rows", 6, "0"),
        ("fc_short_odd", 7, "0"),
        ("fc_short_tiny_channels", 130, "1"),
        ("fc_wake_word", 3, "0"),
        ("fc_deep_odd", 5, "0"),
        ("fc_odd", 11, "0"),
        ("conv_one_pixel", 32, "0"),
    ]:
        compiled, emitted, offset_after_shift = folded(name)
        assert emitted and int(emitted.group(1)) == 3 * units, name
        assert offset_after_shift.group(1) == after, name
        # bias, multiplier and shift as for every layer, then the 3 words: 21 bytes per channel.
        assert compiled.flash["biases_and_quant"] == (4 + 4 + 1 + 12) * units, name
    # Shifts above -2 (the kernel derives its constants at run time), over 64 inputs, other formats: none.
    for name, kernel in [("fc_short_strong_scale", "dense"), ("fc_256x256", "dense"), ("fc_short", "csr")]:
        assert folded(name, kernel)[1] is None, (name, kernel)


# ---- requantization ----------------------------------------------------------------------------

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1

REQUANTIZE_DRIVER = r"""
#include <stdio.h>
#include "requantize.h"
#ifdef NN_REFERENCE_KERNELS
#define REQUANTIZE nn_requantize_reference /* what the reference kernels call, for every shift */
#else
#define REQUANTIZE nn_requantize
#endif
/* Reads (acc, multiplier, shift) int32 triples from stdin, writes REQUANTIZE() of each. */
int main(void)
{
    int32_t in[3];
    while (fread(in, sizeof in[0], 3, stdin) == 3) {
        const int32_t out = REQUANTIZE(in[0], in[1], (int)in[2]);
        fwrite(&out, sizeof out, 1, stdout);
    }
    return 0;
}
"""


def tflm_multiply_by_quantized_multiplier(acc: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """TFLM's MultiplyByQuantizedMultiplier step by step, as gemmlowp writes it, in int64.

    >>> tflm_multiply_by_quantized_multiplier(np.array([100, -100, 3, -3]), np.array([1 << 30] * 4),
    ...                                       np.array([0, 0, -1, -1])).tolist()
    [50, -50, 1, -1]
    """
    acc, multiplier, shift = (np.asarray(v, dtype=np.int64) for v in (acc, multiplier, shift))
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    # x * (1 << left) in int32, wrapping.
    a = ((acc << left) + (1 << 31)) % (1 << 32) - (1 << 31)
    # SaturatingRoundingDoublingHighMul: nudge, then division truncating toward zero.
    product = a * multiplier
    nudged = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    high = np.sign(nudged) * (np.abs(nudged) >> 31)
    high = np.where((a == INT32_MIN) & (multiplier == INT32_MIN), INT32_MAX, high)
    # RoundingDivideByPOT: ties away from zero.
    mask = (np.int64(1) << right) - 1
    remainder = high & mask
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + (remainder > threshold)


def _requantize_cases(rng: np.random.Generator, n: int) -> np.ndarray:
    """(acc, multiplier, shift) rows: TFLM's multipliers (and 0, and smaller ones), every shift,
    accumulators of every size and ones placed on the rounding ties of both roundings."""
    multiplier = rng.integers(1 << 30, 1 << 31, n)
    multiplier[rng.random(n) < 0.05] = 0
    small = rng.random(n) < 0.1
    multiplier[small] = rng.integers(0, 1 << 30, small.sum())
    multiplier[rng.random(n) < 0.02] = INT32_MAX
    # Multipliers with few bits set make exact products, so exact ties of the first rounding.
    exact = rng.random(n) < 0.1
    multiplier[exact] = rng.choice([1 << 30, 3 << 29, 5 << 28], exact.sum())
    shift = rng.integers(-31, 31, n)
    shift[: n // 2] = rng.integers(-14, 1, n // 2)  # the shifts real layers have
    bits = rng.integers(1, 33, n)
    acc = rng.integers(INT32_MIN, INT32_MAX, n, endpoint=True) >> (32 - bits)
    acc[rng.random(n) < 0.01] = INT32_MIN
    acc[rng.random(n) < 0.01] = INT32_MAX
    # Ties: acc * multiplier near an odd multiple of 2^30 (the first rounding) or of 2^(30 + e).
    e = np.maximum(-shift, 0)
    tie = rng.random(n) < 0.4
    scale = np.where(rng.random(n) < 0.5, np.int64(1) << 30, np.int64(1) << np.minimum(30 + e, 61))
    k = rng.integers(-(1 << 12), 1 << 12, n) * 2 + 1
    nonzero = np.maximum(multiplier, 1)
    target = (k.astype(object) * scale.astype(object) // nonzero.astype(object)).astype(np.float64)
    placed = np.clip(target, INT32_MIN, INT32_MAX).astype(np.int64) + rng.integers(-2, 3, n)
    acc = np.where(tie, np.clip(placed, INT32_MIN, INT32_MAX), acc)
    return np.stack([acc, multiplier, shift], axis=1).astype(np.int32)


@pytest.mark.parametrize("variant", VARIANTS)
def test_requantize_matches_tflm_arithmetic(tmp_path, variant):
    source = tmp_path / "requantize_driver.c"
    source.write_text(REQUANTIZE_DRIVER)
    exe = tmp_path / "requantize_driver"
    _gcc([*VARIANTS[variant], f"-I{KERNEL_DIR}", str(source), "-o", str(exe)])
    cases = _requantize_cases(np.random.default_rng(11), 1_000_000)
    result = subprocess.run([str(exe)], input=cases.tobytes(), capture_output=True, check=True)
    got = np.frombuffer(result.stdout, dtype=np.int32)
    expected = tflm_multiply_by_quantized_multiplier(cases[:, 0], cases[:, 1], cases[:, 2])
    wrong = np.flatnonzero(got != expected)
    assert wrong.size == 0, (
        f"{wrong.size} wrong, first: acc, multiplier, shift = {cases[wrong[0]].tolist()} "
        f"gave {got[wrong[0]]}, TFLM {expected[wrong[0]]}"
    )


PRECOMPUTED_DRIVER = r"""
#include <stdio.h>
#include "requantize.h"
/* Reads (acc, multiplier, shift) int32 triples; writes whether the channel's constants can be precomputed,
   and if so nn_requantize_precomputed() with them (else 0). */
int main(void)
{
    int32_t in[3];
    while (fread(in, sizeof in[0], 3, stdin) == 3) {
        nn_requant_channel channel;
        int32_t out[2] = {nn_requantize_channel_of(in[1], (int)in[2], &channel), 0};
        if (out[0]) {
            out[1] = nn_requantize_precomputed(in[0], &channel);
        }
        fwrite(out, sizeof out[0], 2, stdout);
    }
    return 0;
}
"""


def _run_channel_driver(tmp_path, variant: str, driver: str, cases: np.ndarray) -> np.ndarray:
    """A per-channel requantization driver's outputs (flags, then the result) for each row of cases, by column."""
    source = tmp_path / "channel_driver.c"
    source.write_text(driver)
    exe = tmp_path / "channel_driver"
    _gcc([*VARIANTS[variant], f"-I{KERNEL_DIR}", str(source), "-o", str(exe)])
    result = subprocess.run([str(exe)], input=cases.tobytes(), capture_output=True, check=True)
    return np.frombuffer(result.stdout, dtype=np.int32).reshape(len(cases), -1).T


def _channel_cases(seed: int) -> np.ndarray:
    cases = _requantize_cases(np.random.default_rng(seed), 500_000)
    # TFLM's channel whose scale is too small to represent (a pruned, all-zero channel): multiplier 0, shift 0.
    cases[::7, 1:] = 0
    return cases


def _assert_matches(flags: np.ndarray, got: np.ndarray, expected: np.ndarray, cases: np.ndarray) -> None:
    wrong = np.flatnonzero((flags == 1) & (got != expected))
    assert wrong.size == 0, (
        f"{wrong.size} wrong, first: {cases[wrong[0]].tolist()} gave {got[wrong[0]]}, expected {expected[wrong[0]]}"
    )


@pytest.mark.parametrize("variant", OPTIMIZED)
def test_requantize_with_per_channel_constants_matches_tflm(tmp_path, variant):
    # The depthwise kernels' table (depthwise_util.h): constants per channel, computed once per call.
    cases = _channel_cases(12)
    fits, got = _run_channel_driver(tmp_path, variant, PRECOMPUTED_DRIVER, cases)
    assert np.array_equal(fits == 1, (cases[:, 2] <= -2) | (cases[:, 1] == 0))
    _assert_matches(fits, got, tflm_multiply_by_quantized_multiplier(cases[:, 0], cases[:, 1], cases[:, 2]), cases)


FOLDED_DRIVER = r"""
#include <stdio.h>
#include "requantize.h"
/* Reads (acc, multiplier, shift, offset) int32 quadruples; writes whether the channel's constants can be
   precomputed, whether the offset folds into its start, and nn_requantize_folded() with the offset added when
   it does not fold (0s when the constants cannot be precomputed). */
int main(void)
{
    int32_t in[4];
    while (fread(in, sizeof in[0], 4, stdin) == 4) {
        nn_requant_channel channel;
        int32_t out[3] = {nn_requantize_channel_of(in[1], (int)in[2], &channel), 0, 0};
        if (out[0]) {
            int folds;
            const int32_t start = nn_requantize_fold(&channel, in[3], &folds);
            out[1] = folds;
            out[2] = nn_requantize_folded(in[0], channel.multiplier, start, channel.shift_minus_1) +
                     (folds ? 0 : in[3]);
        }
        fwrite(out, sizeof out[0], 3, stdout);
    }
    return 0;
}
"""


@pytest.mark.parametrize("variant", OPTIMIZED)
def test_requantize_with_the_offset_folded_matches_tflm(tmp_path, variant):
    # The column and 1x1 paths (depthwise_conv2d_s8.c, conv2d_s8.c): the output offset added by the shift.
    cases = _channel_cases(13)
    rng = np.random.default_rng(14)
    offsets = rng.integers(-128, 128, (len(cases), 1), dtype=np.int32)
    offsets[::5] = rng.choice([-128, 127], (len(offsets[::5]), 1))
    offsets[1::5] = rng.integers(-40, 40, (len(offsets[1::5]), 1))  # small enough to fold at e - 1 of 24 or 25
    quads = np.concatenate([cases, offsets], axis=1)
    fits, folds, got = _run_channel_driver(tmp_path, variant, FOLDED_DRIVER, quads)
    e = np.where(cases[:, 1] == 0, 2, -cases[:, 2].astype(np.int64))
    assert np.array_equal(fits == 1, e >= 2)
    bound = (np.abs(offsets[:, 0].astype(np.int64)) << np.maximum(e - 1, 0)) + (1 << np.maximum(e - 2, 0)) + 2**30 + 1
    assert np.array_equal(folds == 1, (e >= 2) & (bound <= 2**31 - 1))
    assert np.any((folds == 1) & (e - 1 >= 24)) and np.any((fits == 1) & (folds == 0))
    expected = tflm_multiply_by_quantized_multiplier(cases[:, 0], cases[:, 1], cases[:, 2]) + offsets[:, 0]
    _assert_matches(fits, got, expected, quads)


FOLD_DRIVER = r"""
#include <stdio.h>
#include "requantize.h"
/* Reads (multiplier, shift, offset) int32 triples; writes whether the channel's constants can be precomputed,
   whether its offset folds, then its multiplier, start (nn_requantize_fold) and e - 1, or 0s. */
int main(void)
{
    int32_t in[3];
    while (fread(in, sizeof in[0], 3, stdin) == 3) {
        nn_requant_channel channel;
        int32_t out[5] = {nn_requantize_channel_of(in[0], (int)in[1], &channel), 0, 0, 0, 0};
        if (out[0]) {
            int folds;
            out[3] = nn_requantize_fold(&channel, in[2], &folds);
            out[1] = folds, out[2] = channel.multiplier, out[4] = channel.shift_minus_1;
        }
        fwrite(out, sizeof out[0], 5, stdout);
    }
    return 0;
}
"""


def test_the_compiler_folds_a_channel_as_the_kernels_do(tmp_path):
    # quant.fold_requantization computes at compile time what requantize.h computes at run time, and puts the
    # offset that does not fold above e - 1.
    from harness.compiler.quant import fold_requantization

    rng = np.random.default_rng(16)
    tiny = np.stack([rng.integers(1 << 30, 1 << 31, 1000), rng.integers(-31, -22, 1000)], axis=1)  # e - 1 >= 22
    channels = np.concatenate([_channel_cases(15)[:100_000, 1:], tiny.astype(np.int32)])
    for offset in (-128, -100, -21, -1, 0, 5, 40, 127):
        cases = np.concatenate([channels, np.full((len(channels), 1), offset, dtype=np.int32)], axis=1)
        fits, folds, multiplier, start, shift_minus_1 = _run_channel_driver(tmp_path, "portable", FOLD_DRIVER, cases)
        expected_fits, expected_folds, words = fold_requantization(channels[:, 0], channels[:, 1], offset)
        assert np.array_equal(fits == 1, expected_fits) and np.array_equal(folds == 1, expected_folds), offset
        after = np.where(folds == 1, 0, offset * 256)
        expected_words = np.stack([multiplier, start, shift_minus_1 + after], axis=1) * (fits == 1)[:, None]
        assert np.array_equal(words, expected_words.reshape(-1)), offset
        assert expected_fits.any() and not expected_fits.all()
        assert expected_folds.any() and (abs(offset) < 100 or not expected_folds[expected_fits].all())


# ---- the instruction emulations ----------------------------------------------------------------

SIMD_DRIVER = r"""
#include <stdio.h>
#include "simd.h"
/* Reads (x, y, acc) int32 triples, writes the helpers' results for each. */
int main(void)
{
    int32_t in[3];
    while (fread(in, sizeof in[0], 3, stdin) == 3) {
        const int32_t x = in[0], y = in[1], acc = in[2];
        const int32_t out[] = {nn_sxtb16(x), nn_sxtb16_ror8(x), nn_smlad(x, y, acc), nn_smladx(x, y, acc),
                               nn_smlabb(x, y, acc), nn_smlabt(x, y, acc), nn_smlatb(x, y, acc),
                               nn_smlatt(x, y, acc), nn_pkhbt16(x, y), nn_pkhtb16(x, y), nn_sadd16(x, y),
                               nn_ssat16bit(x), nn_smax16(x, y), nn_smin16(x, y)};
        fwrite(out, sizeof out[0], sizeof out / sizeof out[0], stdout);
    }
    return 0;
}
"""


def _simd_model(x: np.ndarray, y: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """What the Armv7E-M instructions compute (Arm ARM pseudocode), in int64 then wrapped."""

    def half(v, top):
        return ((v >> 16) if top else v).astype(np.int16).astype(np.int64)

    def byte(v, k):
        return (v >> (8 * k)).astype(np.int8).astype(np.int64)

    def pack(bottom, top):
        return (bottom & 0xFFFF) | ((top & 0xFFFF) << 16)

    x, y, acc = (v.astype(np.int64) for v in (x, y, acc))
    xb, xt, yb, yt = half(x, 0), half(x, 1), half(y, 0), half(y, 1)
    results = [
        pack(byte(x, 0), byte(x, 2)),
        pack(byte(x, 1), byte(x, 3)),
        acc + xb * yb + xt * yt,
        acc + xb * yt + xt * yb,
        acc + xb * yb,
        acc + xb * yt,
        acc + xt * yb,
        acc + xt * yt,
        pack(xb, yb),
        pack(yt, xt),
        pack(xb + yb, xt + yt),
        np.clip(x, -32768, 32767),
        pack(np.maximum(xb, yb), np.maximum(xt, yt)),
        pack(np.minimum(xb, yb), np.minimum(xt, yt)),
    ]
    return np.stack([(r + (1 << 31)) % (1 << 32) - (1 << 31) for r in results], axis=1).astype(np.int32)


def test_dsp_emulation_matches_the_instructions(tmp_path):
    source = tmp_path / "simd_driver.c"
    source.write_text(SIMD_DRIVER)
    exe = tmp_path / "simd_driver"
    _gcc(["-DNN_EMULATE_DSP", f"-I{KERNEL_DIR}", str(source), "-o", str(exe)])
    rng = np.random.default_rng(13)
    cases = rng.integers(INT32_MIN, INT32_MAX, (100_000, 3), endpoint=True, dtype=np.int64)
    cases[:1000] = rng.choice([INT32_MIN, 0x80008000 - (1 << 32), -1, 0, 0x7FFF7FFF, INT32_MAX], (1000, 3))
    cases = cases.astype(np.int32)
    result = subprocess.run([str(exe)], input=cases.tobytes(), capture_output=True, check=True)
    got = np.frombuffer(result.stdout, dtype=np.int32).reshape(len(cases), -1)
    np.testing.assert_array_equal(got, _simd_model(cases[:, 0], cases[:, 1], cases[:, 2]))
