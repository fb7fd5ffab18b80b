"""The csr kernels' assembly paths on the emulated Cortex-M4, bit-exact with TFLite Micro on odd shapes.

Host builds (tests/test_compiler.py) run the C loops the assembly replaces; only the board runs the
assembly itself. Each shape reaches a different part of it: CONV_2D tiles of 8 pixels that end part way
(band rows of 5 pixels, images of 15 and 35), input channels that are not a multiple of 4 (the tile
gather's bytewise tail), odd channel counts, 288-value windows (the tile path's 16-bit positions), a
window past the tile buffer (the in-place path), empty output channels at 90 % (their tiny scales shift
right by more than 23 bits: the output stage adds their offset after the shift), FULLY_CONNECTED rows
past one pass of sums (64) and 16-bit indices. fc-75x37 has rows of 75 nonzeros unpruned (3 single
nonzeros, a first turn of 2 groups of 4 entered part way, 2 full turns of 32) and of a few at 90 %, and
37 outputs: 9 groups of 4 through the assembly output stage, one output in C; fc-300x70 at 90 % has
rows of about 30 nonzeros, first turns of most lengths.
"""

import subprocess

import pandas as pd
import pytest

from conftest import PROJECT_DIR, run_kernel_bench

TESTS_C = PROJECT_DIR / "tests" / "c"

# 32 firmware builds and runs: over the default 900 s on a busy machine.
pytestmark = pytest.mark.timeout(1800)

SHAPES = (
    "conv3x3-7x5x6-5",
    "conv1x1-5x3x8-3-valid",
    "conv3x3-9x7x3-7-valid",
    "conv3x3-6x6x32-4",
    "conv3x3-5x5x40-3",
    "conv1x1-16x16x16-32",
    "fc-300x70",
    "fc-75x37",
)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    out = tmp_path_factory.mktemp("csr-kernels")
    run_kernel_bench(out, SHAPES, ["0", "0.9"], ["csr"])
    return pd.read_csv(out / "kernels.csv")


@pytest.mark.parametrize("shape", SHAPES)
def test_csr_matches_tflite_micro_on_the_board(table, shape):
    rows = table[(table["shape"] == shape) & (table["format"] == "csr")]
    assert len(rows) == 2 and set(rows.status) == {"ok"}, rows[["target_sparsity", "status", "error"]].to_string()
    assert (rows.output_mismatches == 0).all() and (rows.test_inputs > 0).all()
    assert set(rows.kernel) == {"fully_connected_csr_s8" if shape.startswith("fc") else "conv2d_csr_s8"}


def test_the_shapes_reach_both_conv_paths_and_both_index_widths(table):
    dense_weights = table[(table["format"] == "csr") & (table.target_sparsity == 0)].set_index("shape")
    # conv3x3-6x6x32: 288-value windows, the tile buffer's largest: positions past 255, 16-bit.
    assert dense_weights.index_bytes["conv3x3-6x6x32-4"] == 2 * 288 * 4
    # conv3x3-5x5x40: 360-value windows, past the tile buffer: offsets into the band, 16-bit.
    assert dense_weights.index_bytes["conv3x3-5x5x40-3"] == 2 * 360 * 3
    # conv3x3-7x5x6: 54-value windows in the buffer, one byte per position.
    assert dense_weights.index_bytes["conv3x3-7x5x6-5"] == 54 * 5
    assert dense_weights.index_bytes["fc-300x70"] == 2 * 300 * 70


def test_fully_connected_csr_assembly_matches_c_on_random_rows(tmp_path):
    """tests/c/fc_csr_semihosted.c: the kernel on the emulated M4 against a C reference, with the shifts,
    zero multipliers and activation ranges the one-layer models above never have."""
    elf = tmp_path / "fc_csr.elf"
    build = subprocess.run(
        ["arm-none-eabi-gcc", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-mcpu=cortex-m4", "-mthumb"]
        + ["-nostdlib", "-nostartfiles", "-ffreestanding", "-I", PROJECT_DIR / "firmware" / "kernels"]
        + ["-T", TESTS_C / "semihosted.ld", TESTS_C / "fc_csr_semihosted.c", "-o", elf, "-lgcc"],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run(
        ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-semihosting", "-kernel", elf],
        capture_output=True,
        text=True,
        timeout=300,
    )
    printed = run.stdout + run.stderr  # QEMU writes semihosting output to stderr
    assert run.returncode == 0 and printed.strip() == "ALL OK", printed
