"""Kernel code bytes per layer, from the linker's map of real builds (emulated Cortex-M4 and host)."""

import json
import subprocess

import numpy as np
import pytest

from harness.build import build_firmware
from harness.compiler import compile_tflite
from harness.results import ResultRow, record_layer_flash

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def mlp_tflite():
    """Two FULLY_CONNECTED layers (so one kernel family serves two layers), half their weights zero."""
    import keras

    from harness.quantize import to_int8_tflite

    keras.utils.set_random_seed(0)
    inputs = keras.Input((32,), batch_size=1)
    hidden = keras.layers.Dense(16, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(8)(hidden))
    for layer in model.layers[1:]:
        kernel, bias = layer.get_weights()
        kernel[np.abs(kernel) < np.median(np.abs(kernel))] = 0.0
        layer.set_weights([kernel, bias])
    return to_int8_tflite(model, np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32))


@pytest.fixture(scope="module")
def built(mlp_tflite, tmp_path_factory):
    """(compiled model, firmware) per (format, board environment), built on first use."""
    made = {}

    def get(fmt: str, env: str):
        if (fmt, env) not in made:
            root = tmp_path_factory.mktemp(f"{fmt}-{env}")
            compiled = compile_tflite(mlp_tflite, root / "model", kernel=fmt)
            firmware = build_firmware(env, compiled.out_dir, root / "build", build_id=f"{fmt}{env}"[:16])
            made[fmt, env] = compiled, firmware
        return made[fmt, env]

    return get


def _symbol_sizes(tool: str, path) -> dict[str, int]:
    """Defined symbols with a size, by name (`nm -S`): an account of the code that does not read the map."""
    out = subprocess.run([tool, "-S", "--defined-only", str(path)], capture_output=True, text=True, check=True).stdout
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tTrRdD":
            sizes[parts[3]] = int(parts[1], 16)
    return sizes


def test_code_of_a_linked_kernel_matches_its_symbols(built):
    compiled, firmware = built("dense", "mps2_an386")
    code = firmware.kernel_code
    assert code.family("fully_connected_s8") == "fully_connected_s8"
    assert code.bytes_of("fully_connected_s8") > 0
    kernel_object = firmware.build_dir / firmware.env / "src" / "kernels" / "fully_connected_s8.o"
    defined = _symbol_sizes("arm-none-eabi-nm", kernel_object)
    linked = _symbol_sizes("arm-none-eabi-nm", firmware.elf)
    assert defined, f"no symbols in {kernel_object}"
    kept = [linked[name] for name in defined if name in linked]
    # The linker starts each function on a word; Thumb code ends on a halfword, so up to 2 bytes of padding
    # follow a function (the map counts them, the symbols do not): seen after an assembly function of 322 B.
    assert 0 <= code.bytes_of("fully_connected_s8") - sum(kept) <= 2 * len(kept)


def test_kernels_not_linked_have_no_code(built):
    _, dense = built("dense", "mps2_an386")
    _, csr = built("csr", "mps2_an386")
    assert "fully_connected_csr_s8" not in dense.kernel_code.family_bytes
    assert "fully_connected_s8" not in csr.kernel_code.family_bytes
    assert csr.kernel_code.bytes_of("fully_connected_csr_s8") > 0
    for code in (dense.kernel_code, csr.kernel_code):
        assert "conv2d_s8" not in code.family_bytes and code.bytes_of("conv2d_s8") == 0


@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_layer_flash_counts_a_shared_kernel_family_once(built, fmt):
    compiled, firmware = built(fmt, "mps2_an386")
    row = ResultRow(run_id="t", model="mlp", target_sparsity=0.5, kernel=fmt, board="mps2_an386", core="cortex-m4")
    record_layer_flash(row, compiled, firmware.kernel_code)
    layers = json.loads(row.layer_flash)
    assert [layer["layer"] for layer in layers] == list(compiled.layer_names)
    (family,) = {layer["family"] for layer in layers}
    assert len(layers) == 2 and all(layer["code"] == firmware.kernel_code.family_bytes[family] for layer in layers)
    assert row.flash_kernel_code == firmware.kernel_code.family_bytes[family]
    for layer, info in zip(layers, compiled.layers):
        assert (layer["values"], layer["indices"], layer["pointers"]) == (
            info.weight_bytes.values,
            info.weight_bytes.indices,
            info.weight_bytes.pointers,
        )
        assert layer["format"] == fmt and layer["kernel"] == info.kernel
    sparse = sum(layer["indices"] + layer["pointers"] for layer in layers)
    assert (sparse > 0) == (fmt != "dense")


def test_host_build_attributes_code_too(built):
    _, firmware = built("dense", "host")
    defined = _symbol_sizes("nm", firmware.build_dir / firmware.env / "src" / "kernels" / "fully_connected_s8.o")
    linked = _symbol_sizes("nm", firmware.elf)
    # The host links without --gc-sections: every kernel is in, and the code is the objects' whole .text.
    assert firmware.kernel_code.bytes_of("fully_connected_s8") >= sum(linked[name] for name in defined) > 0
    assert firmware.kernel_code.bytes_of("conv2d_s8") > 0
