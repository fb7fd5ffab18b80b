"""The reference kernels (firmware/kernels/reference/) on the emulated Cortex-M4, bit-exact with TFLite Micro.

The host suites run every kernel test against the reference build too
(test_compiler.KERNEL_BUILDS). Here the firmware itself is built with
-DNN_REFERENCE_KERNELS through PlatformIO (firmware/kernel_sources.py swaps
the files), run under QEMU through the harness's own board session, and its
outputs compared with TFLite Micro's; the same model built with the
optimized kernels runs beside it, and the two must differ in the code they
run, not in their bytes. Two small models between them reach every kernel
with a reference twin: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED (dense
and CSR weights), ADD and MUL.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import tflite_models
from harness.build import build_firmware
from harness.cache import toolchain_versions
from harness.compiler import compile_tflite
from harness.device.boards import get_board
from harness.device.session import board_session
from harness.quantize import run_tflite_micro
from test_compiler import REFERENCE_KERNELS

M4 = "mps2_an386"
SAMPLES = 8
TWINS = {path.stem for path in (Path(__file__).resolve().parents[1] / "firmware" / "kernels" / "reference").glob("*.c")}
# model -> the format of its FULLY_CONNECTED layers; the other layers are dense. ADD, MUL, CONV_2D,
# FULLY_CONNECTED; DEPTHWISE_CONV_2D, CONV_2D, FULLY_CONNECTED with CSR weights.
MODELS = {"tensor_ops": "dense", "dynamic_batch": "csr"}

pytestmark = [
    pytest.mark.usefixtures("no_leftover_boards"),
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("arm-none-eabi-gcc", "qemu-system-arm")),
        reason="needs arm-none-eabi-gcc and qemu-system-arm",
    ),
]


def _on_the_board(compiled, inputs: np.ndarray, build_dir: Path, monkeypatch, reference: bool):
    """The firmware's outputs for each input, its layers' instruction counts on the last one, and its link map."""
    if reference:
        monkeypatch.setenv("PLATFORMIO_BUILD_FLAGS", REFERENCE_KERNELS)
    else:
        monkeypatch.delenv("PLATFORMIO_BUILD_FLAGS", raising=False)
    board = get_board(M4)
    firmware = build_firmware(board.name, compiled.out_dir, build_dir, build_id=build_dir.name)
    with board_session(board, firmware, build_dir / "serial.log", reply_timeout=30.0) as client:
        outputs = np.stack([np.frombuffer(client.infer(sample.tobytes()), dtype=np.int8) for sample in inputs])
        layers = client.layers()
    return outputs, layers, firmware


@pytest.mark.parametrize("name", MODELS)
def test_reference_firmware_is_bit_exact_with_tflite_micro(name, tmp_path, monkeypatch):
    tflite = tflite_models.load_models()[name]
    dense = compile_tflite(tflite, tmp_path / "dense", kernel="dense")
    fc_layers = {layer.index: MODELS[name] for layer in dense.layers if layer.op == "FULLY_CONNECTED"}
    compiled = compile_tflite(tflite, tmp_path / "model", kernel="dense", layer_kernels=fc_layers)
    kernels = [layer.kernel for layer in compiled.layers]
    info = compiled.input
    inputs = tflite_models.sample_inputs(name, info.shape, info.scale, info.zero_point)[:SAMPLES]
    expected = run_tflite_micro(tflite, inputs.reshape(-1, *info.shape[1:])).reshape(len(inputs), -1)

    got, reference_layers, firmware = _on_the_board(compiled, inputs, tmp_path / "reference", monkeypatch, True)
    assert np.array_equal(got, expected), f"{np.any(got != expected, axis=1).sum()} of {len(inputs)} samples differ"
    link_map = (firmware.elf.parent / "firmware.map").read_text()
    for kernel in {kernel for kernel in kernels if kernel in TWINS}:
        assert f"kernels/reference/{kernel}.o" in link_map, kernel
        assert firmware.kernel_code.bytes_of(kernel) > 0, kernel

    optimized, optimized_layers, _ = _on_the_board(compiled, inputs, tmp_path / "optimized", monkeypatch, False)
    assert np.array_equal(optimized, expected)
    twin_layers = [i for i, kernel in enumerate(kernels) if kernel in TWINS]
    reference_work = sum(reference_layers[i] for i in twin_layers)
    optimized_work = sum(optimized_layers[i] for i in twin_layers)
    print(
        f"\n{name} on {M4}, layers with a reference twin ({', '.join(sorted(set(kernels) & TWINS))}): "
        f"{reference_work:,} instructions with the reference kernels, {optimized_work:,} optimized "
        f"({reference_work / optimized_work:.2f}x)"
    )
    assert reference_work > optimized_work


def test_the_sweep_tells_builds_with_other_flags_apart(monkeypatch):
    # PLATFORMIO_BUILD_FLAGS goes into the versions, which every cache key of the sweep hashes and each row keeps.
    monkeypatch.delenv("PLATFORMIO_BUILD_FLAGS", raising=False)
    assert "PLATFORMIO_BUILD_FLAGS" not in toolchain_versions([])
    monkeypatch.setenv("PLATFORMIO_BUILD_FLAGS", REFERENCE_KERNELS)
    assert toolchain_versions([])["PLATFORMIO_BUILD_FLAGS"] == REFERENCE_KERNELS
