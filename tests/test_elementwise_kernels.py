"""ADD, MUL and LOGISTIC kernels on the host, byte for byte against TFLite Micro's arithmetic.

A driver calls nn_add_s8 / nn_mul_s8 directly on parameters and inputs from
Python: parameters as the compiler derives them from random scales and zero
points (tiny and huge scale ratios, zero points at both ends of int8, fused
ReLU / ReLU6 ranges), lengths that leave every tail of the 4-wide loops,
broadcasts along each dimension, and parameters outside the kernels' fast
paths (which then take the reference loop). The expected bytes come from a
step-by-step model of TFLM's integer arithmetic (test_dense_kernels'), and
the kernels are built with the host gcc under ASan and UBSan twice: portable
C, and the DSP path with its instructions emulated (-DNN_EMULATE_DSP).
Small converted models with ADD, MUL and LOGISTIC (odd sizes, broadcasts,
constant operands, fused activations) then run through the compiler
against TFLite Micro's interpreter itself, in both builds.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

import tflite_models
from harness.compiler import compile_tflite
from harness.compiler.quant import activation_range, add_params, logistic_params, mul_multiplier
from harness.quantize import run_tflite_micro
from test_compiler import CFLAGS, KERNEL_BUILDS, REPO, build_host_executable, kernel_sources, run_host_executable
from test_dense_kernels import tflm_multiply_by_quantized_multiplier

KERNEL_DIR = REPO / "firmware" / "kernels"
VARIANTS = {name: list(flags) for name, flags in KERNEL_BUILDS.items()}
ADD, MUL = 0, 1
ADD_FIELDS, MUL_FIELDS = 24, 19  # int32 fields of nn_add_params, nn_mul_params

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "kernels.h"
/* Reads cases until EOF: op (0 ADD, 1 MUL), its params struct as int32s, the input sizes n1, n2, then the
   inputs' bytes; writes the status and the output's bytes. */
int main(void)
{
    int32_t op;
    while (fread(&op, sizeof op, 1, stdin) == 1) {
        nn_add_params add;
        nn_mul_params mul;
        const nn_broadcast *shape = op == 0 ? &add.shape : &mul.shape;
        if (fread(op == 0 ? (void *)&add : (void *)&mul, op == 0 ? sizeof add : sizeof mul, 1, stdin) != 1) {
            return 2;
        }
        int32_t sizes[2];
        if (fread(sizes, sizeof sizes[0], 2, stdin) != 2) {
            return 2;
        }
        const int32_t n = shape->dims[0] * shape->dims[1] * shape->dims[2] * shape->dims[3];
        int8_t *in1 = malloc((size_t)sizes[0]), *in2 = malloc((size_t)sizes[1]), *out = malloc((size_t)n);
        if (fread(in1, 1, (size_t)sizes[0], stdin) != (size_t)sizes[0] ||
            fread(in2, 1, (size_t)sizes[1], stdin) != (size_t)sizes[1]) {
            return 2;
        }
        const int32_t status = op == 0 ? nn_add_s8(&add, in1, in2, out) : nn_mul_s8(&mul, in1, in2, out);
        fwrite(&status, sizeof status, 1, stdout);
        fwrite(out, 1, (size_t)n, stdout);
        free(in1);
        free(in2);
        free(out);
    }
    return 0;
}
"""


@pytest.fixture(scope="session")
def drivers(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("elementwise")
    source = out / "driver.c"
    source.write_text(DRIVER)
    built = {}
    for variant, flags in VARIANTS.items():
        exe = out / f"driver-{variant}"
        elementwise = [str(path) for path in kernel_sources(flags) if path.name in ("add_s8.c", "mul_s8.c")]
        command = ["gcc", *CFLAGS, *flags, f"-I{KERNEL_DIR}", str(source), *elementwise, "-o", str(exe)]
        result = subprocess.run(command, capture_output=True, text=True)
        assert result.returncode == 0, f"gcc failed:\n{result.stderr}"
        built[variant] = str(exe)
    return built


# ---- cases ---------------------------------------------------------------------------------------


class Case:
    """One call: op, its params (field name -> value, in the struct's order), inputs and the shape."""

    def __init__(self, op: int, dims, shape1, shape2, params: dict, rng: np.random.Generator):
        self.op, self.dims, self.params = op, list(dims), params
        self.in1 = rng.integers(-128, 128, shape1, dtype=np.int8)
        self.in2 = rng.integers(-128, 128, shape2, dtype=np.int8)

    def strides(self, shape) -> list[int]:
        contiguous = [int(np.prod(shape[d + 1 :])) for d in range(4)]
        return [s if d == o else 0 for d, o, s in zip(shape, self.dims, contiguous)]

    def encode(self) -> bytes:
        fields = [*self.dims, *self.strides(self.in1.shape), *self.strides(self.in2.shape), *self.params.values()]
        assert len(fields) == (ADD_FIELDS if self.op == ADD else MUL_FIELDS)
        return (
            np.array([self.op, *fields, self.in1.size, self.in2.size], dtype=np.int32).tobytes()
            + self.in1.tobytes()
            + self.in2.tobytes()
        )

    def expected(self) -> np.ndarray:
        """TFLM's reference ADD / MUL (integer_ops/add.h, mul.h), step by step in int64."""
        p = self.params
        a = np.broadcast_to(self.in1, self.dims).astype(np.int64).ravel() + p["input1_offset"]
        b = np.broadcast_to(self.in2, self.dims).astype(np.int64).ravel() + p["input2_offset"]

        def rescale(x, m, s):
            return tflm_multiply_by_quantized_multiplier(x, np.full_like(x, m), np.full_like(x, s))

        if self.op == ADD:
            shifted = lambda x: ((x << p["left_shift"]) + (1 << 31)) % (1 << 32) - (1 << 31)  # noqa: E731
            total = rescale(shifted(a), p["input1_multiplier"], p["input1_shift"]) + rescale(
                shifted(b), p["input2_multiplier"], p["input2_shift"]
            )
            total = (total + (1 << 31)) % (1 << 32) - (1 << 31)
            out = rescale(total, p["output_multiplier"], p["output_shift"])
        else:
            out = rescale(a * b, p["output_multiplier"], p["output_shift"])
        return np.clip(out + p["output_offset"], p["act_min"], p["act_max"]).astype(np.int8)


def _activation(rng, scale: float, zero_point: int) -> tuple[int, int]:
    return activation_range(str(rng.choice(["NONE", "RELU", "RELU6", "RELU_N1_TO_1"])), scale, zero_point)


def _quantization(rng) -> tuple[float, int]:
    scale = float(np.float32(10.0 ** rng.uniform(-4, 1)))
    zero_point = int(rng.choice([-128, 127, 0, int(rng.integers(-128, 128))]))
    return scale, zero_point


def _shapes(rng, broadcast: bool):
    """Output dims and the two inputs' shapes; with broadcast, each input keeps some dims at 1."""
    dims = [int(rng.integers(1, 4)), int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 40))]
    if rng.random() < 0.3:  # a long row: the 4-wide loop and each of its 0-3 element tails
        dims = [1, 1, 1, int(rng.integers(1, 300))]
    if not broadcast:
        return dims, dims, dims
    keep = lambda: [d if rng.random() < 0.5 else 1 for d in dims]  # noqa: E731
    return dims, keep(), keep()


def add_case(rng, broadcast=False, scales=None) -> Case:
    (s1, z1), (s2, z2), (so, zo) = scales or (_quantization(rng), _quantization(rng), _quantization(rng))
    dims, shape1, shape2 = _shapes(rng, broadcast)
    lo, hi = _activation(rng, so, zo)
    rescaling = add_params(s1, s2, so)
    params = {
        "input1_offset": -z1,
        "input2_offset": -z2,
        "output_offset": zo,
        "left_shift": rescaling["left_shift"],
        "input1_multiplier": rescaling["input1_multiplier"],
        "input1_shift": rescaling["input1_shift"],
        "input2_multiplier": rescaling["input2_multiplier"],
        "input2_shift": rescaling["input2_shift"],
        "output_multiplier": rescaling["output_multiplier"],
        "output_shift": rescaling["output_shift"],
        "act_min": lo,
        "act_max": hi,
    }
    return Case(ADD, dims, shape1, shape2, params, rng)


def mul_case(rng, broadcast=False) -> Case:
    (s1, z1), (s2, z2), (so, zo) = _quantization(rng), _quantization(rng), _quantization(rng)
    dims, shape1, shape2 = _shapes(rng, broadcast)
    lo, hi = _activation(rng, so, zo)
    multiplier, shift = mul_multiplier(s1, s2, so)
    params = {
        "input1_offset": -z1,
        "input2_offset": -z2,
        "output_offset": zo,
        "output_multiplier": multiplier,
        "output_shift": shift,
        "act_min": lo,
        "act_max": hi,
    }
    return Case(MUL, dims, shape1, shape2, params, rng)


def _run(driver: str, cases: list[Case]) -> list[np.ndarray]:
    result = subprocess.run([driver], input=b"".join(case.encode() for case in cases), capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    outputs, data = [], result.stdout
    for case in cases:
        n = int(np.prod(case.dims))
        assert np.frombuffer(data[:4], dtype=np.int32)[0] == 0, "the kernel refused its parameters"
        outputs.append(np.frombuffer(data[4 : 4 + n], dtype=np.int8))
        data = data[4 + n :]
    assert not data
    return outputs


def _check(driver: str, cases: list[Case]) -> None:
    wrong = [
        (i, case)
        for i, (case, got) in enumerate(zip(cases, _run(driver, cases)))
        if not np.array_equal(got, case.expected())
    ]
    assert not wrong, (
        f"{len(wrong)} of {len(cases)} cases differ; first: dims {wrong[0][1].dims}, params {wrong[0][1].params}"
    )


# ---- ADD -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_add_matches_tflm_on_random_quantizations(drivers, variant):
    rng = np.random.default_rng(1)
    _check(drivers[variant], [add_case(rng, broadcast=i % 3 == 0) for i in range(3000)])


@pytest.mark.parametrize("variant", VARIANTS)
def test_add_matches_tflm_at_extreme_scales(drivers, variant):
    # Scale ratios from 1e-6 (the smaller input's multiplier shifts right by ~20 bits) to 1 (both inputs
    # rescaled by 1/2); output rescalings (2 max scale / (2^20 output scale)) from 0.99 (no right shift:
    # the reference loop) through 0.3 (a right shift of 1 bit) to 1.3 * 2^-32 (31 bits); zero points at
    # both ends.
    rng = np.random.default_rng(2)
    cases = []
    for ratio in (1.0, 0.999999, 0.5, 1e-3, 1e-6, 1e-9):
        for real in (0.99, 0.49, 0.3, 2.0**-10, 1.7 * 2.0**-19, 1.3 * 2.0**-32):
            for z1, z2, zo in ((-128, -128, -128), (127, 127, 127), (-128, 127, 0), (0, 0, -128)):
                s1 = 0.05
                s2 = float(np.float32(s1 * ratio))
                so = float(np.float32(2 * max(s1, s2) / (2**20 * real)))
                case = add_case(rng, scales=((s1, z1), (s2, z2), (so, zo)))
                cases += [case, add_case(rng, scales=((s2, z2), (s1, z1), (so, zo)))]
    assert {c.params["output_shift"] for c in cases} >= {-1, -31}
    assert {c.params["input2_shift"] for c in cases} >= {0, -1, -10, -20, -30}
    # The tabulated input without a right shift (TFLM's ratios give one of at least 1 bit).
    for i in range(60):
        case = add_case(rng, broadcast=i % 2 == 0)
        case.params["input1_multiplier"], case.params["input1_shift"] = 1 << 30, 0
        case.params["input2_multiplier"], case.params["input2_shift"] = int(rng.integers(0, 1 << 31)), 0
        cases.append(case)
    _check(drivers[variant], cases)


@pytest.mark.parametrize("variant", VARIANTS)
def test_add_outside_the_fast_path_takes_the_reference(drivers, variant):
    # Parameters TFLM's int8 ADD never makes: neither input rescaled by exactly 1/2, another left shift,
    # an output rescaling without a right shift. The kernel must still compute TFLM's formula.
    rng = np.random.default_rng(3)
    cases = []
    for i in range(300):
        case = add_case(rng, broadcast=i % 2 == 0)
        p = case.params
        change = i % 3
        if change == 0:
            p["input1_multiplier"], p["input1_shift"] = int(rng.integers(1 << 30, 1 << 31)), int(rng.integers(-3, 1))
            p["input2_multiplier"], p["input2_shift"] = int(rng.integers(1 << 30, 1 << 31)), int(rng.integers(-3, 1))
        elif change == 1:
            p["left_shift"] = int(rng.integers(15, 20))
        else:
            p["output_multiplier"], p["output_shift"] = int(rng.integers(1 << 30, 1 << 31)), -int(rng.integers(0, 2))
            p["output_shift"] = 0 if i % 2 else p["output_shift"]
        cases.append(case)
    _check(drivers[variant], cases)


# ---- whole models against TFLite Micro's interpreter ---------------------------------------------


def _residual(keras):
    # Odd sizes (105 and 99 elements: the 4-wide loop and a tail), either input the one with the larger
    # scale, a fused ReLU and none.
    layers = keras.layers
    inputs = keras.Input((5, 7, 3), batch_size=1)
    x = layers.ReLU()(layers.Add()([inputs, layers.Conv2D(3, 1)(inputs)]))
    x = layers.Add()([layers.Conv2D(3, 3, padding="same")(x), x])
    x = layers.Conv2D(11, 3, padding="valid")(x)
    return keras.Model(inputs, layers.Add()([x, layers.Conv2D(11, 1, activation="relu6")(x)]))


def _broadcast(keras):
    # Per-channel values broadcast over the map on either side, a scalar constant (Rescaling: MUL and
    # ADD by constants), products of a tensor with itself and with a convolution of it.
    layers = keras.layers
    inputs = keras.Input((4, 6, 5), batch_size=1)
    mean = layers.GlobalAveragePooling2D(keepdims=True)(inputs)
    x = layers.Add()([inputs, mean])
    x = layers.Add()([mean, layers.Rescaling(0.75, offset=-0.5)(x)])
    x = layers.Multiply()([x, layers.GlobalAveragePooling2D(keepdims=True)(x)])
    x = layers.Multiply()([layers.Conv2D(5, 1)(x), x])
    return keras.Model(inputs, layers.Multiply()([x, x]))


def _sigmoid(keras):
    # LOGISTIC over 336 elements (past 256: the table) and over 6 (element by element).
    layers = keras.layers
    inputs = keras.Input((6, 7, 8), batch_size=1)
    x = layers.Conv2D(8, 1, activation="sigmoid")(inputs)
    return keras.Model(inputs, layers.Dense(6, activation="sigmoid")(layers.Flatten()(x)))


MODELS = {"residual": _residual, "broadcast": _broadcast, "sigmoid": _sigmoid}


@pytest.fixture(scope="session")
def models() -> dict[str, bytes]:
    return tflite_models.convert_cached(
        "elementwise", Path(__file__), {name: tflite_models.ModelSpec(name, build) for name, build in MODELS.items()}
    )


@pytest.mark.parametrize(
    "dsp, reference", [(True, False), (False, False), (True, True)], ids=["emulated_dsp", "portable", "reference"]
)
@pytest.mark.parametrize("name", MODELS)
def test_models_match_tflite_micro(models, tmp_path, name, dsp, reference):
    compiled = compile_tflite(models[name], tmp_path / name, kernel="dense")
    kernels = [layer.kernel for layer in compiled.layers]
    assert {"add_s8", "mul_s8", "logistic_s8"} & set(kernels), kernels
    inputs = np.random.default_rng(4).integers(-128, 128, (200, int(np.prod(compiled.input.shape))), dtype=np.int8)
    got = run_host_executable(build_host_executable(compiled.out_dir, dsp=dsp, reference=reference), inputs)
    expected = run_tflite_micro(models[name], inputs.reshape(-1, *compiled.input.shape[1:]))
    assert np.array_equal(got, expected.reshape(got.shape)), (
        f"{np.any(got != expected.reshape(got.shape), 1).sum()} differ"
    )


# ---- MUL -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_mul_matches_tflm_on_random_quantizations(drivers, variant):
    rng = np.random.default_rng(5)
    _check(drivers[variant], [mul_case(rng, broadcast=i % 3 == 0) for i in range(3000)])


@pytest.mark.parametrize("variant", VARIANTS)
def test_mul_matches_tflm_at_extreme_scales(drivers, variant):
    # Rescalings (input scales' product over the output scale) from 1.5 (a left shift: the reference loop)
    # and 0.99 (no shift: the same) through 0.3 (a right shift of 1 bit) to 1.3 * 2^-32 (31 bits, where an
    # output zero point far from 0 no longer fits the fast path's 32 bits); zero points at both ends.
    rng = np.random.default_rng(6)
    cases = []
    for real in (1.5, 0.99, 0.3, 2.0**-10, 1.7 * 2.0**-19, 2.0**-25, 1.3 * 2.0**-32):
        for z1, z2, zo in ((-128, -128, -128), (127, 127, 127), (-128, 127, 0), (0, 0, -128), (5, -3, 100)):
            for _ in range(4):
                case = mul_case(rng, broadcast=len(cases) % 2 == 0)
                s1, s2 = 0.05, 0.02
                multiplier, shift = mul_multiplier(s1, s2, float(np.float32(s1 * s2 / real)))
                case.params.update(
                    input1_offset=-z1,
                    input2_offset=-z2,
                    output_offset=zo,
                    output_multiplier=multiplier,
                    output_shift=shift,
                )
                case.params["act_min"], case.params["act_max"] = -128, 127
                cases.append(case)
    assert {c.params["output_shift"] for c in cases} >= {1, 0, -1, -31}
    _check(drivers[variant], cases)


# ---- LOGISTIC ------------------------------------------------------------------------------------

LOGISTIC_DRIVER = r"""
#include <stdio.h>
#include "kernels.h"
/* Reads (input zero point, radius, multiplier, left shift) int32 quadruples; for each writes the 256
   outputs of every int8 input, once element by element (calls of 1) and once in one call of 600 elements
   (the table: every byte, then the first 344 again, in another order). */
int main(void)
{
    int32_t q[4];
    while (fread(q, sizeof q[0], 4, stdin) == 4) {
        nn_logistic_params p = {1, q[0], q[1], q[2], q[3]};
        int8_t in[600], single[256], table[600];
        for (int32_t i = 0; i < 600; ++i) {
            in[i] = (int8_t)(i < 256 ? i : 255 - i % 256);
        }
        for (int32_t i = 0; i < 256; ++i) {
            if (nn_logistic_s8(&p, &in[i], &single[i]) != NN_OK) {
                return 2;
            }
        }
        p.size = 600;
        if (nn_logistic_s8(&p, in, table) != NN_OK) {
            return 2;
        }
        fwrite(single, 1, 256, stdout);
        fwrite(table, 1, 600, stdout);
    }
    return 0;
}
"""


@pytest.mark.parametrize("variant", ["portable", "emulated_dsp"])  # logistic_s8.c is in the reference build too
def test_logistic_table_gives_the_element_by_element_bytes(tmp_path, variant):
    # Past 256 elements nn_logistic_s8 looks each byte up in a table of the 256 it computes first;
    # the element-by-element path is the one the models above check against TFLite Micro.
    source = tmp_path / "logistic_driver.c"
    source.write_text(LOGISTIC_DRIVER)
    exe = tmp_path / "logistic_driver"
    result = subprocess.run(
        [
            "gcc",
            *CFLAGS,
            *VARIANTS[variant],
            f"-I{KERNEL_DIR}",
            str(source),
            str(KERNEL_DIR / "logistic_s8.c"),
            "-o",
            str(exe),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    rng = np.random.default_rng(7)
    params = []
    for scale in (1e-3, 0.02, 0.0625, 0.1, 0.5, 3.0):
        multiplier, left_shift, radius = logistic_params(scale)
        for zero_point in (-128, 127, int(rng.integers(-128, 128))):
            params.append([zero_point, radius, multiplier, left_shift])
    run = subprocess.run([str(exe)], input=np.array(params, dtype=np.int32).tobytes(), capture_output=True)
    assert run.returncode == 0
    outputs = np.frombuffer(run.stdout, dtype=np.int8).reshape(len(params), 856)
    single, table = outputs[:, :256], outputs[:, 256:]
    order = np.array([i if i < 256 else 255 - i % 256 for i in range(600)]) % 256
    assert np.array_equal(table, single[:, order])
    assert len(np.unique(single)) > 100  # the scales reach both saturations and the curve between
