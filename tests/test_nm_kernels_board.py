"""The nm CONV_2D kernel's assembly on the emulated Cortex-M4, bit-exact with TFLite Micro on odd shapes.

Host builds (tests/test_nm_kernels.py) run the C loops the assembly replaces, and the only board runs of nm
CONV_2D were the default bench shapes and tests/test_activation_clamps.py's model, with a fused clamp. These
layers have no activation, so no clamp, and shapes the default ones do not reach: maps whose pixel count is not
a multiple of the tile of 4 (35, 15, 30 and 15 output pixels), odd output channel counts, input depths that are
multiples of 4 but not of 8 (a row's units padded to an even count: 2:4 on 27 groups, 1:4 on 5), a 4-deep
input (a 1:4 unit spans two taps), a stride and a 1-pixel-wide map.
"""

import pandas as pd
import pytest

from conftest import run_kernel_bench

# 5 shapes x 2 patterns x (dense, nm) = 20 firmware builds and runs; a busy machine needs more than 900 s.
pytestmark = pytest.mark.timeout(1800)

SHAPES = (
    "conv3x3-7x5x12-5",
    "conv1x1-5x3x20-3-valid",
    "conv3x3-9x7x4-7-valid",
    "conv3x3-11x9x8-9-s2",
    "conv1x1-15x1x16-33",
)
PATTERNS = ("2:4", "1:4")


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    out = tmp_path_factory.mktemp("nm-kernels")
    run_kernel_bench(out, SHAPES, PATTERNS, ["nm"])
    return pd.read_csv(out / "kernels.csv", dtype={"pruning": str})


@pytest.mark.parametrize("shape", SHAPES)
def test_nm_conv_matches_tflite_micro_on_the_board(table, shape):
    rows = table[(table["shape"] == shape) & (table["format"] == "nm")]
    assert sorted(rows.pruning) == sorted(PATTERNS) and set(rows.status) == {"ok"}, rows.to_string()
    assert (rows.output_mismatches == 0).all() and (rows.test_inputs > 0).all()
    # The nm kernel ran, not dense in its place: a layer the format refused would say conv2d_s8.
    assert set(rows.kernel) == {"conv2d_nm_s8"}
