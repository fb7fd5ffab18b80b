"""The model compiler: generated C built with the host gcc must match TFLite Micro byte for byte.

Every runnable test model, the four MLPerf Tiny reference architectures
included, is compiled with every weight format (KERNEL_FORMATS), built
together with firmware/kernels/*.c and tests/c/model_driver.c (with the
DSP instructions emulated, the path the Cortex-M4 runs; a few models also
with the portable C paths), and run on real inputs
(all scikit-learn digits images for the digits CNN, synthetic data set
samples for the reference models, random int8 for the rest); TFLite Micro's
Python interpreter gives the expected bytes, and its arena is the bound for
ours.
LiteRT's reference kernels are reported as a second opinion only: they
derive some multipliers differently (see the probe tests below).
"""

from __future__ import annotations

import atexit
import doctest
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from ai_edge_litert import schema_py_generated as schema

import tflite_models
from harness.compiler import KERNEL_FORMATS, CompileError, compile_tflite, emit_c, overlap, quant
from harness.compiler.encode import CSR_TILE_WINDOW_MAX, encode_csr, encode_dense
from harness.compiler.lower import LOWERINGS, lower
from harness.compiler.memory_plan import Buffer, Overlap, place, plan_memory
from harness.compiler.overlap import window_distance
from harness.compiler.tflite_reader import SUPPORTED_OPS, read_tflite
from harness.compiler.tflm_arena import tflite_micro_arena
from harness.quantize import run_litert_reference, run_tflite_micro

REPO = Path(__file__).resolve().parents[1]
KERNEL_SOURCES = sorted((REPO / "firmware" / "kernels").glob("*.c"))
DRIVER_DIR = REPO / "tests" / "c"
CFLAGS = [
    "-std=c99",
    "-O1",
    "-g",
    "-Wall",
    "-Wextra",
    "-Wpedantic",
    "-Werror",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
]
EMULATE_DSP = "-DNN_EMULATE_DSP"  # the kernels' packed paths in portable C (firmware/kernels/simd.h)
REFERENCE_KERNELS = "-DNN_REFERENCE_KERNELS"  # each kernel with a reference twin built from it (kernel_sources)
# The kernel builds each kernel suite runs against (docs/kernels.md, "Reference and optimized kernels"): the
# optimized kernels' DSP path and portable path, and the reference kernels beside the other files' DSP path,
# as the Cortex-M4 firmware built with -DNN_REFERENCE_KERNELS has them.
KERNEL_BUILDS = {"emulated_dsp": (EMULATE_DSP,), "portable": (), "reference": (REFERENCE_KERNELS, EMULATE_DSP)}
# Models whose layers reach every portable (NN_DSP 0) path: conv and FC edge geometry, tiny rows, batches.
PORTABLE_MODELS = ("conv_geometry", "mlp_wide", "dense_on_rows", "one_conv", "one_dense", "pooling_wide")
KERNELS = KERNEL_FORMATS  # every format, each bit-exact with TFLM

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")


@pytest.fixture(scope="session")
def models() -> dict[str, bytes]:
    return tflite_models.load_models()


class HostRuns:
    """Compiles, builds and runs each (model, kernel) once per session; TFLM runs once per model."""

    def __init__(self, models: dict[str, bytes], workdir: Path):
        self.models, self.workdir = models, workdir
        self._compiled, self._outputs, self._tflm, self._tflm_arena = {}, {}, {}, {}

    def compiled(self, name: str, kernel: str):
        if (name, kernel) not in self._compiled:
            out_dir = self.workdir / f"{name}-{kernel}"
            self._compiled[name, kernel] = compile_tflite(self.models[name], out_dir, kernel=kernel)
        return self._compiled[name, kernel]

    def inputs(self, name: str) -> np.ndarray:
        info = self.compiled(name, "dense").input
        return tflite_models.sample_inputs(name, info.shape, info.scale, info.zero_point)

    def outputs(self, name: str, kernel: str) -> np.ndarray:
        if (name, kernel) not in self._outputs:
            exe = build_host_executable(self.compiled(name, kernel).out_dir)
            self._outputs[name, kernel] = run_host_executable(exe, self.inputs(name))
        return self._outputs[name, kernel]

    def tflm_arena(self, name: str):
        if name not in self._tflm_arena:
            self._tflm_arena[name] = tflite_micro_arena(self.models[name])
        return self._tflm_arena[name]

    def tflm(self, name: str) -> np.ndarray:
        if name not in self._tflm:
            shape = self.compiled(name, "dense").input.shape
            self._tflm[name] = run_tflite_micro(self.models[name], self.inputs(name).reshape(-1, *shape[1:]))
        return self._tflm[name]


@pytest.fixture(scope="session")
def runs(models, tmp_path_factory) -> HostRuns:
    return HostRuns(models, tmp_path_factory.mktemp("compiled"))


def kernel_sources(flags) -> list[Path]:
    """firmware/kernels/*.c as a build with these gcc flags takes them: with REFERENCE_KERNELS each file that
    has a twin in firmware/kernels/reference/ gives way to it, as firmware/kernel_sources.py does for
    PlatformIO."""
    if REFERENCE_KERNELS not in flags:
        return KERNEL_SOURCES
    twins = {source.name: source for source in (REPO / "firmware" / "kernels" / "reference").glob("*.c")}
    return [twins.get(source.name, source) for source in KERNEL_SOURCES]


_KERNEL_OBJECTS: dict[tuple[str, ...], list[Path]] = {}


def _kernel_objects(flags: tuple[str, ...]) -> list[Path]:
    """firmware/kernels/*.c compiled once per session and build; every model links against them."""
    if flags not in _KERNEL_OBJECTS:
        out_dir = Path(tempfile.mkdtemp(prefix="kernels-"))
        atexit.register(shutil.rmtree, out_dir, True)

        def compile_one(source: Path) -> Path:
            obj = out_dir / f"{source.stem}.o"
            command = ["gcc", *CFLAGS, *flags, f"-I{REPO / 'firmware' / 'kernels'}", "-c", str(source), "-o", str(obj)]
            result = subprocess.run(command, capture_output=True, text=True)
            assert result.returncode == 0, f"gcc failed on {source.name}:\n{result.stderr}"
            return obj

        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            _KERNEL_OBJECTS[flags] = list(pool.map(compile_one, kernel_sources(flags)))
    return _KERNEL_OBJECTS[flags]


def build_host_executable(model_dir: Path, dsp: bool = True, reference: bool = False) -> Path:
    """The model with the kernels' DSP path (emulated) or portable path, or with the reference kernels."""
    flags = KERNEL_BUILDS["reference" if reference else "emulated_dsp" if dsp else "portable"]
    exe = model_dir / ("model_test_reference" if reference else "model_test" if dsp else "model_test_portable")
    return link_host_model(model_dir, flags, _kernel_objects(flags), exe)


def link_host_model(model_dir: Path, flags: list[str], kernel_objects: list[Path], exe: Path) -> Path:
    """The compiled model's model.c with the test driver and kernel objects built with the same flags."""
    command = [
        "gcc",
        *CFLAGS,
        *flags,
        f"-I{model_dir}",
        f"-I{REPO / 'firmware' / 'kernels'}",
        f"-I{DRIVER_DIR}",
        str(model_dir / "model.c"),
        str(DRIVER_DIR / "model_driver.c"),
        *map(str, kernel_objects),
        "-o",
        str(exe),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, f"gcc failed:\n{result.stderr}"
    return exe


def run_host_executable(exe: Path, inputs: np.ndarray) -> np.ndarray:
    result = subprocess.run([str(exe)], input=inputs.astype(np.int8).tobytes(), capture_output=True)
    assert result.returncode == 0, f"{exe.name} exited {result.returncode}: {result.stderr.decode()}"
    lines = result.stdout.decode().split()
    return np.stack([np.frombuffer(bytes.fromhex(line), dtype=np.int8) for line in lines])


def _first_difference(got: np.ndarray, expected: np.ndarray) -> str:
    rows = np.flatnonzero(np.any(got != expected, axis=1))
    if rows.size == 0:
        return ""
    i = rows[0]
    return f"{rows.size} of {len(got)} samples differ; sample {i}: got {got[i].tolist()}, TFLM {expected[i].tolist()}"


# ---- bit-exactness ---------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name", tflite_models.RUNNABLE_MODELS)
def test_bit_exact_with_tflite_micro(runs, name, kernel):
    got, expected = runs.outputs(name, kernel), runs.tflm(name).reshape(len(runs.inputs(name)), -1)
    assert got.shape == expected.shape
    assert np.array_equal(got, expected), _first_difference(got, expected)


@pytest.mark.parametrize("name", tflite_models.RUNNABLE_MODELS)
def test_litert_reference_difference_is_reported(runs, models, name, record_property):
    shape = runs.compiled(name, "dense").input.shape
    litert = run_litert_reference(models[name], runs.inputs(name).reshape(-1, *shape[1:]))
    ours = runs.outputs(name, "dense").astype(np.int32)
    difference = np.abs(ours - litert.reshape(ours.shape).astype(np.int32))
    largest, samples = int(difference.max()), int(np.any(difference, axis=1).sum())
    record_property("litert_max_abs_diff", largest)
    print(f"{name}: LiteRT's reference kernels differ by up to {largest} LSB on {samples} of {len(ours)} samples")
    # FULLY_CONNECTED rounding differs by 1 LSB and softmax can amplify it a few times;
    # much more would mean the references disagree on semantics, not rounding.
    assert largest <= 16


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name", PORTABLE_MODELS)
def test_portable_kernels_are_bit_exact_too(runs, name, kernel):
    exe = build_host_executable(runs.compiled(name, kernel).out_dir, dsp=False)
    got = run_host_executable(exe, runs.inputs(name))
    expected = runs.tflm(name).reshape(len(runs.inputs(name)), -1)
    assert np.array_equal(got, expected), _first_difference(got, expected)


@pytest.mark.parametrize("kernel", ["dense", "csr"])  # the formats with reference twins (firmware/kernels/reference/)
@pytest.mark.parametrize("name", tflite_models.RUNNABLE_MODELS)
def test_reference_kernels_are_bit_exact_too(runs, name, kernel):
    exe = build_host_executable(runs.compiled(name, kernel).out_dir, reference=True)
    got = run_host_executable(exe, runs.inputs(name))
    expected = runs.tflm(name).reshape(len(runs.inputs(name)), -1)
    assert np.array_equal(got, expected), _first_difference(got, expected)


def test_reference_model_is_bit_exact_at_every_sparsity(runs):
    # The demo's model: 1797 digits images at 0%, 50% and 90% sparsity, both kernels.
    for name in ("digits_cnn_s0", "digits_cnn_s50", "digits_cnn_s90"):
        for kernel in KERNELS:
            assert np.array_equal(runs.outputs(name, kernel), runs.tflm(name).reshape(1797, 10)), (name, kernel)
        layers = runs.compiled(name, "csr").layers
        assert [layer.kernel for layer in layers] == [
            "conv2d_csr_s8",
            "max_pool2d_s8",
            "conv2d_csr_s8",
            "max_pool2d_s8",
            "alias",
            "fully_connected_csr_s8",
            "fully_connected_csr_s8",
            "softmax_s8",
        ]


# ---- the generated-model contract ------------------------------------------------------------


def test_model_header_follows_the_design_contract(runs):
    compiled = runs.compiled("digits_cnn_s50", "csr")
    header = (compiled.out_dir / "model.h").read_text()
    source = (compiled.out_dir / "model.c").read_text()
    defines = dict(re.findall(r"#define (MODEL_\w+)\s+(\d+)", header))
    assert defines == {
        "MODEL_INPUT_BYTES": "64",
        "MODEL_OUTPUT_BYTES": "10",
        "MODEL_NUM_LAYERS": "8",
        "MODEL_ARENA_BYTES": str(compiled.arena_bytes),
        "MODEL_INPUT_PRESERVED": str(int(compiled.input_preserved)),
    }
    for declaration in (
        "extern const char model_id[];",
        "extern const char *const model_layer_names[];",
        "int8_t *model_input(void);",
        "const int8_t *model_output(void);",
        "int model_invoke(void);",
    ):
        assert declaration in header
    assert '#include "layer_timer.h"' in source
    assert re.findall(r"layer_timer_mark\((\d+)\)", source) == [str(i) for i in range(1, 9)]
    assert '"0:CONV_2D"' in source and '"7:SOFTMAX"' in source
    assert f'const char model_id[] = "{compiled.model_id}";' in source
    assert compiled.layer_names[0] == "0:CONV_2D" and len(compiled.layer_names) == 8


def test_model_id_depends_on_model_and_kernel(runs):
    ids = {runs.compiled(name, kernel).model_id for name in ("digits_cnn_s0", "digits_cnn_s50") for kernel in KERNELS}
    assert len(ids) == 2 * len(KERNELS)


# nm takes N:M layers only, and these models are pruned without a pattern: test_nm_kernels checks its account.
@pytest.mark.parametrize("kernel", [k for k in KERNELS if k not in ("dense", "nm")])
def test_flash_account_adds_up(runs, kernel):
    for name in ("digits_cnn_s0", "digits_cnn_s90"):
        dense, sparse = runs.compiled(name, "dense"), runs.compiled(name, kernel)
        assert dense.flash["sparse_values"] == 0 and sparse.flash["dense_weights"] == 0
        # The dense kernel's folded constants (FULLY_CONNECTED of up to 64 inputs) are the only difference.
        folded = re.findall(r"static const int32_t op\d+_folded\[(\d+)\]", (dense.out_dir / "model.c").read_text())
        assert folded  # digits_cnn's FC 64 -> 10
        assert dense.flash["biases_and_quant"] == sparse.flash["biases_and_quant"] + 4 * sum(map(int, folded))
        for kind in ("values", "indices", "pointers"):
            assert sparse.flash[f"sparse_{kind}"] == sum(getattr(layer.weight_bytes, kind) for layer in sparse.layers)
        assert dense.flash["dense_weights"] == sum(layer.weight_bytes.total for layer in dense.layers)
        assert dense.table_bytes == sum(dense.flash.values())
        # Every byte of the emitted weight arrays is accounted for, under the kind its format gives it.
        source = (sparse.out_dir / "model.c").read_text()
        emitted = sum(
            int(count) * {"int8_t": 1, "uint8_t": 1, "uint16_t": 2, "uint32_t": 4}[ctype]
            for ctype, count in re.findall(r"static const (\w+) op\d+_weights_\w+\[(\d+)\]", source)
        )
        assert emitted == sum(layer.weight_bytes.total for layer in sparse.layers)
    sparse, dense = runs.compiled("digits_cnn_s90", kernel), runs.compiled("digits_cnn_s90", "dense")
    assert sparse.table_bytes < dense.table_bytes
    conv = sparse.layers[2]
    assert conv.macs == 4 * 4 * 32 * 3 * 3 * 16
    assert conv.nonzero_macs == 4 * 4 * int(
        np.count_nonzero(read_tflite(runs.models["digits_cnn_s90"]).ops[2].inputs[1].data)
    )


def test_weight_sparsity_is_measured_on_the_int8_weights(runs):
    assert runs.compiled("digits_cnn_s0", "dense").weight_sparsity < 0.05
    assert abs(runs.compiled("digits_cnn_s90", "csr").weight_sparsity - 0.9) < 0.01
    assert runs.compiled("pooling", "dense").weight_sparsity == 0.0  # no weights at all


# ---- memory plan -----------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name", tflite_models.RUNNABLE_MODELS)
def test_memory_plan_overlaps_live_buffers_only_where_a_kernel_allows(models, name, kernel):
    graph = read_tflite(models[name])
    plan = plan_memory(graph, lower(graph, kernel))
    allowed = {(o.input, o.output): o.distance for o in plan.overlaps}
    buffers = plan.buffers
    for buffer in buffers:
        assert 0 <= plan.offsets[buffer.key] and plan.offsets[buffer.key] + buffer.size <= plan.arena_bytes
    for i, a in enumerate(buffers):
        for b in buffers[i + 1 :]:
            a_start, b_start = plan.offsets[a.key], plan.offsets[b.key]
            if not a.lives_with(b) or a_start + a.size <= b_start or b_start + b.size <= a_start:
                continue
            # They share bytes: one must be an output written over its dying input from below.
            if (a.key, b.key) in allowed:
                assert a_start - b_start >= allowed[a.key, b.key], (a, b)
            else:
                assert b_start - a_start >= allowed[b.key, a.key], (a, b)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("name", tflite_models.RUNNABLE_MODELS)
def test_arena_is_never_larger_than_tflite_micros(runs, models, name, kernel, record_property):
    ours, tflm = runs.compiled(name, kernel).arena_bytes, runs.tflm_arena(name)
    record_property("tflm_arena_head", tflm.head)
    print(
        f"{name} {kernel}: arena {ours} B, TFLite Micro {tflm.head} B planned + {tflm.tail} B of its own "
        f"(host-sized), input {'kept' if runs.compiled(name, kernel).input_preserved else 'reused'}"
    )
    assert ours <= tflm.head


def test_memory_plan_reuses_freed_space():
    chain = [Buffer("a", 100, 0, 1), Buffer("b", 60, 1, 2), Buffer("c", 100, 2, 3), Buffer("d", 8, 3, 3)]
    offsets = place(chain)
    assert offsets["c"] == offsets["a"]  # a is dead by the time c is written
    assert max(offsets[b.key] + b.size for b in chain) == 160


def test_a_chain_of_overlapping_layers_steps_down():
    # Three 100-byte layers, each output allowed 8 bytes below its input: 116 bytes instead of 200.
    chain = [Buffer("a", 100, 0, 1), Buffer("b", 100, 1, 2), Buffer("c", 100, 2, 3)]
    overlaps = [Overlap("a", "b", 8), Overlap("b", "c", 8)]
    offsets = place(chain, overlaps, tightest=True)
    assert offsets == {"a": 16, "b": 8, "c": 0}
    assert max(offsets.values()) + 100 == 116
    assert max(place(chain, tightest=True).values()) + 100 == 200  # without the overlaps


def test_window_distance_follows_the_last_window_reading_each_pixel():
    def window(size, kernel, stride, pad):
        return {
            "input": {"h": size, "w": size, "c": 4},
            "output": {"h": -(-size // stride), "w": -(-size // stride), "c": 8},
            "kernel_h": kernel,
            "kernel_w": kernel,
            "stride_h": stride,
            "stride_w": stride,
            "dilation_h": 1,
            "dilation_w": 1,
            "pad_top": pad,
            "pad_left": pad,
        }

    # 1x1 widening 4 -> 8 channels: the last input pixel is read with the last output pixel.
    assert window_distance(window(6, 1, 1, 0)) == 36 * 8 - 35 * 4
    # 3x3 SAME keeping the size: input pixel p is last read by output pixel p + w + 1.
    assert window_distance({**window(6, 3, 1, 1), "output": {"h": 6, "w": 6, "c": 4}}) == (6 + 2) * 4


def test_input_is_kept_intact_only_when_that_costs_no_arena(models):
    graph = read_tflite(models["one_dense"])  # the input (1 B) fits beside the output
    assert plan_memory(graph, lower(graph, "dense")).input_preserved
    graph = read_tflite(models["ad_fc_autoencoder"])  # keeping 640 B through 128-wide layers would cost
    plan = plan_memory(graph, lower(graph, "dense"))
    assert not plan.input_preserved and plan.arena_bytes == 640 + 128


@pytest.mark.parametrize("name", ["one_dense", "one_conv", "one_depthwise"])
def test_a_kept_input_never_shares_bytes_with_the_output(models, name):
    # In a one-op model the input's last use is the op that writes the output.
    graph = read_tflite(models[name])
    plan = plan_memory(graph, lower(graph, "dense"))
    if plan.input_preserved:
        start, end = plan.offset_of(graph.input), plan.offset_of(graph.input) + graph.input.nbytes
        out = plan.offset_of(graph.output)
        assert end <= out or out + graph.output.nbytes <= start


def test_reshape_aliases_its_input(models):
    graph = read_tflite(models["dense_on_rows"])
    plan = plan_memory(graph, lower(graph, "dense"))
    reshape = graph.ops[0]
    assert plan.offset_of(reshape.outputs[0]) == plan.offset_of(reshape.inputs[0])


# ---- weight encoders -------------------------------------------------------------------------


def _decode_csr(encoded, shape, column_index=None) -> np.ndarray:
    columns = np.arange(shape[1]) if column_index is None else np.asarray(column_index)
    column_of = {int(stored): col for col, stored in enumerate(columns)}
    matrix = np.zeros(shape, dtype=np.int8)
    starts = encoded.row_start.values
    for row in range(shape[0]):
        for k in range(starts[row], starts[row + 1]):
            matrix[row, column_of[int(encoded.index.values[k])]] = encoded.values.values[k]
    return matrix


@pytest.mark.parametrize(
    "shape, density, index_type, start_type",
    [
        ((16, 64), 0.3, np.uint8, np.uint16),
        ((10, 256), 0.5, np.uint8, np.uint16),
        ((10, 300), 0.5, np.uint16, np.uint16),
        ((300, 300), 0.9, np.uint16, np.uint32),  # more than 65535 nonzeros
        ((5, 7), 0.0, np.uint8, np.uint16),  # all zero
    ],
)
def test_csr_round_trip(shape, density, index_type, start_type):
    rng = np.random.default_rng(0)
    matrix = rng.integers(-128, 128, shape).astype(np.int8) * (rng.random(shape) < density)
    matrix[0] = 0  # an empty row
    encoded = encode_csr(matrix, "w")
    assert np.array_equal(_decode_csr(encoded, shape), matrix)
    assert encoded.index.values.dtype == index_type and encoded.row_start.values.dtype == start_type
    nonzeros = int(np.count_nonzero(matrix))
    assert encoded.bytes.values == nonzeros
    assert encoded.bytes.indices == nonzeros * np.dtype(index_type).itemsize
    assert encoded.bytes.pointers == (shape[0] + 1) * np.dtype(start_type).itemsize
    assert encode_dense(matrix, "w").bytes.values == matrix.size


def test_csr_stores_window_positions_up_to_the_tile_window_and_offsets_beyond():
    """Windows the CONV_2D kernel gathers into its tile buffer (kernels.h, NN_CSR_TILE_WINDOW_MAX) are
    indexed by position; longer rows keep the input offsets the compiler passes."""
    short = np.zeros((2, 3), dtype=np.int8)
    short[0, 1], short[1, [0, 2]] = 3, (4, 5)
    assert encode_csr(short, "w", np.array([0, 40, 900])).index.values.tolist() == [1, 0, 2]
    long = np.zeros((1, CSR_TILE_WINDOW_MAX + 1), dtype=np.int8)
    long[0, [1, CSR_TILE_WINDOW_MAX]] = (6, 7)
    offsets = np.arange(long.shape[1]) * 3
    encoded = encode_csr(long, "w", offsets)
    assert encoded.index.values.tolist() == [3, 3 * CSR_TILE_WINDOW_MAX]
    assert np.array_equal(_decode_csr(encoded, long.shape, offsets), long)


# ---- error messages --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("float_model", r"is float32, but only int8 models are supported; convert it with full-integer int8"),
        ("int16_model", r"is int16, but only int8 models are supported; convert it with full-integer int8"),
        ("tanh_model", r"op 1 \(TANH\) is not supported; supported ops: CONV_2D, .*FULLY_CONNECTED"),
        ("dynamic_time", r"dynamic dimension\(s\) 1 in its shape signature \[1, -1, 8\]: only a dynamic batch"),
    ],
)
def test_refuses_models_it_cannot_run(models, tmp_path, name, expected):
    with pytest.raises(CompileError, match=expected):
        compile_tflite(models[name], tmp_path)


def test_refuses_bytes_that_are_not_tflite(tmp_path):
    with pytest.raises(CompileError, match="not a .tflite model"):
        compile_tflite(b"not a model at all", tmp_path)


def test_refuses_unknown_kernel_and_bad_model_id(models, tmp_path):
    with pytest.raises(ValueError, match="kernel must be one of"):
        compile_tflite(models["pooling"], tmp_path, kernel="bcsr")
    with pytest.raises(ValueError, match="model_id"):
        compile_tflite(models["pooling"], tmp_path, model_id="has spaces")


def test_unsupported_op_error_lists_every_supported_op(models, tmp_path):
    with pytest.raises(CompileError) as refused:
        compile_tflite(models["tanh_model"], tmp_path)
    assert all(kind in str(refused.value) for kind in SUPPORTED_OPS)


def test_every_supported_op_has_a_lowering():
    assert set(SUPPORTED_OPS) == set(LOWERINGS)


# ---- requantization arithmetic ----------------------------------------------------------------


def test_quantize_multiplier_matches_tflm_rounding():
    assert quant.quantize_multiplier(1.0) == (1 << 30, 1)
    assert quant.quantize_multiplier(0.75) == (3 << 29, 0)
    assert quant.quantize_multiplier(2.0**-40) == (0, 0)  # flushed to zero like TFLM
    assert quant.round_half_away(2.5) == 3 and quant.round_half_away(-2.5) == -3


def test_activation_ranges():
    assert quant.activation_range("RELU", 0.05, -128) == (-128, 127)
    assert quant.activation_range("RELU6", 0.05, -10) == (-10, 110)
    assert quant.activation_range("NONE", 0.05, 3) == (-128, 127)


# ---- multipliers derived exactly as TFLM derives them ------------------------------------------
#
# TFLM computes input_scale * weight_scale / output_scale in double; LiteRT rounds the product to
# float32 first. The two multipliers differ in their last bits, which changes an output only when
# the accumulator lands next to a rounding boundary, so random inputs rarely tell them apart. These
# probes give each channel a scale and a bias that put it on such a boundary.

PROBE_INPUT_SCALE = np.float32(0.0123457)
PROBE_OUTPUT_SCALE = np.float32(0.0123457 * 0.00789 / 4.6821e-5)  # outputs about acc / 21358


def _tflm_requantize(acc: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """MultiplyByQuantizedMultiplier (double rounding) for int64 accumulators and shift <= 0."""
    nudged = acc * multiplier + np.where(acc >= 0, 1 << 30, 1 - (1 << 30))
    high = np.sign(nudged) * (np.abs(nudged) >> 31)  # division truncating toward zero
    mask = (1 << -shift) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> -shift) + ((high & mask) > threshold)


def _probe_multiplier(weight_scale: np.float32, product_in_float32: bool) -> tuple[int, int]:
    product = (
        float(PROBE_INPUT_SCALE * weight_scale)
        if product_in_float32
        else float(PROBE_INPUT_SCALE) * float(weight_scale)
    )
    return quant.quantize_multiplier(product / float(PROBE_OUTPUT_SCALE))


def _probe_channels(count: int) -> list[tuple[np.float32, int, int, int]]:
    """(weight scale, accumulator, output with the double product, with the float32 one), outputs differing."""
    accumulators = np.arange(-2_500_000, 2_500_000, dtype=np.int64)  # outputs stay within int8
    channels = []
    for i in range(1000):
        weight_scale = np.float32(0.00789 * (1 + i / 997))
        double = _tflm_requantize(accumulators, *_probe_multiplier(weight_scale, False))
        single = _tflm_requantize(accumulators, *_probe_multiplier(weight_scale, True))
        differs = np.flatnonzero(double != single)
        if differs.size:
            k = differs[0]
            channels.append((weight_scale, int(accumulators[k]), int(double[k]), int(single[k])))
        if len(channels) == count:
            return channels
    raise AssertionError("no probe channels found")


def _edited(tflite: bytes, edit) -> bytes:
    """The model after edit(ModelT) changed it in place."""
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    edit(model)
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _set_quantization(tensor, scales, zero_points=None) -> None:
    tensor.quantization.scale = np.asarray(scales, np.float32).tolist()
    tensor.quantization.zeroPoint = zero_points or [0] * len(tensor.quantization.scale)


def _probe_model(tflite: bytes, weight_scales, biases) -> bytes:
    """The one-op model with weights 1, zero points 0, the probe scales and the given int32 biases."""

    def edit(model):
        subgraph = model.subgraphs[0]
        (op,) = subgraph.operators
        inp, weights, bias = (subgraph.tensors[i] for i in op.inputs)
        scales = np.asarray(weight_scales, np.float32)
        _set_quantization(inp, [PROBE_INPUT_SCALE])
        _set_quantization(subgraph.tensors[op.outputs[0]], [PROBE_OUTPUT_SCALE])
        _set_quantization(weights, scales)
        _set_quantization(bias, PROBE_INPUT_SCALE * scales)
        model.buffers[weights.buffer].data = np.ones(int(np.prod(weights.shape)), np.int8).view(np.uint8)
        model.buffers[bias.buffer].data = np.asarray(biases, np.int32).view(np.uint8)

    return _edited(tflite, edit)


@pytest.mark.parametrize(
    "name, input_shape", [("one_dense_per_tensor", (1,)), ("one_dense", (1,)), ("one_conv", (1, 1, 1))]
)
def test_multipliers_use_the_double_product_like_tflm(models, tmp_path, name, input_shape):
    per_tensor = name.endswith("per_tensor")  # one weight scale, probed by all 16 channels
    found = _probe_channels(1 if per_tensor else 16)
    channels = found * 16 if per_tensor else found
    scales = [scale for scale, *_ in found]
    # The input is 1 and every weight 1, so each channel's accumulator is its bias + 1.
    probe = _probe_model(models[name], scales, [acc - 1 for _, acc, _, _ in channels])
    expected = [double for _, _, double, _ in channels]
    one = np.ones((1, *input_shape), dtype=np.int8)
    assert run_tflite_micro(probe, one).reshape(-1).tolist() == expected
    assert expected != [single for *_, single in channels]
    for kernel in KERNELS:
        compiled = compile_tflite(probe, tmp_path / kernel, kernel=kernel)
        got = run_host_executable(build_host_executable(compiled.out_dir), one.reshape(1, -1))
        assert got[0].tolist() == expected


def test_average_pool_sums_of_extreme_values_are_exact(runs, models):
    """The packed AVERAGE_POOL_2D path sums up to 256 int8 values in int16 lanes: windows all -128 (the lanes'
    least sum, -32768), all 127, and alternating, average as in TFLite Micro, on DSP and portable paths."""
    compiled = runs.compiled("pooling_wide", "dense")
    size = int(np.prod(compiled.input.shape))
    inputs = np.stack([np.full(size, -128), np.full(size, 127), np.where(np.arange(size) % 2, -128, 127)]).astype(
        np.int8
    )
    expected = run_tflite_micro(models["pooling_wide"], inputs.reshape(-1, *compiled.input.shape[1:]))
    for dsp in (True, False):
        got = run_host_executable(build_host_executable(compiled.out_dir, dsp=dsp), inputs)
        assert np.array_equal(got, expected.reshape(got.shape)), _first_difference(got, expected.reshape(got.shape))


def test_mean_with_identical_input_and_output_quantization(models, tmp_path):
    # The converter never makes one, but TFLM once took another path for it; the model ends at
    # the first MEAN, whose output gets its input's quantization.
    def edit(model):
        subgraph = model.subgraphs[0]
        kinds = [model.operatorCodes[op.opcodeIndex].builtinCode for op in subgraph.operators]
        mean = kinds.index(schema.BuiltinOperator.MEAN)
        subgraph.operators = subgraph.operators[: mean + 1]
        source, target = (
            subgraph.tensors[subgraph.operators[-1].inputs[0]],
            subgraph.tensors[subgraph.operators[-1].outputs[0]],
        )
        _set_quantization(target, source.quantization.scale, list(source.quantization.zeroPoint))
        subgraph.outputs = [subgraph.operators[-1].outputs[0]]
        model.signatureDefs = None

    probe = _edited(models["tensor_ops"], edit)
    inputs = np.random.default_rng(4).integers(-128, 128, (100, 6 * 6 * 4), dtype=np.int8)
    expected = run_tflite_micro(probe, inputs.reshape(-1, 6, 6, 4)).reshape(100, -1)
    compiled = compile_tflite(probe, tmp_path)
    assert compiled.layers[-1].op == "MEAN"
    assert np.array_equal(run_host_executable(build_host_executable(compiled.out_dir), inputs), expected)


@pytest.mark.parametrize("module", [emit_c, overlap, quant])
def test_doctests(module):
    failures, _ = doctest.testmod(module)
    assert failures == 0
