"""The auto kernel in a real sweep: a format that does not fit the board is left out, and a choice of dense for
every layer is the dense row, so auto is never slower than dense (issue 11).

One sweep on the emulated Cortex-M3 (mps2_an385, 256 KiB of flash) of an int8 model whose dense weights
(160 KB) fit and whose csr weights (values and a column index per weight: over 320 KB) do not.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_harness

pytestmark = pytest.mark.usefixtures("no_leftover_boards")

CONFIG = """
[sweep]
kernels = ["dense", "csr", "auto"]
boards = ["mps2_an385"]
[device]
warmup = 0
runs = 1
accuracy_samples = 8
"""


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The sweep's rows and its command line's output."""
    import keras

    from harness.quantize import to_int8_tflite

    out = tmp_path_factory.mktemp("auto")
    keras.utils.set_random_seed(11)
    inputs = keras.Input((256,))
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Dense(600, activation="relu")(inputs)))
    x = np.random.default_rng(11).normal(size=(64, 256)).astype(np.float32)
    (out / "wide.tflite").write_bytes(to_int8_tflite(model, x))
    np.savez(out / "data.npz", x_test=x[:8], y_test=np.arange(8) % 10)
    (out / "sweep.toml").write_text(CONFIG)
    proc = run_harness(
        "sweep",
        "--config",
        out / "sweep.toml",
        "--model",
        out / "wide.tflite",
        "--data",
        out / "data.npz",
        "--results",
        out / "results",
    )
    (run,) = [p for p in (out / "results").iterdir() if p.is_dir()]
    frame = pd.read_csv(run / "results.csv", keep_default_na=False, na_values=["nan"])
    return proc, frame.set_index("kernel")


def test_a_format_that_does_not_fit_the_board_is_left_out_of_auto_and_its_row_says_so(sweep):
    proc, rows = sweep
    # The csr row failed at fit, as it should: the sweep reports that failure, and auto does not fail with it.
    assert proc.returncode == 1 and "csr" in proc.stderr and "fit" in proc.stderr, proc.stdout[-3000:] + proc.stderr
    assert rows.loc["csr", "status"] == "error" and rows.loc["csr", "failed_stage"] == "fit"
    assert "does not fit board mps2_an385" in rows.loc["csr", "error"]
    auto = rows.loc["auto"]
    assert auto.status == "ok" and auto.output_mismatches == 0
    assert f"csr left out: {rows.loc['csr', 'error']}" in auto.notes
    assert set(json.loads(auto.layer_formats).values()) == {"dense"}


def test_auto_choosing_dense_for_every_layer_is_the_dense_row_and_says_so(sweep):
    _, rows = sweep
    dense, auto = rows.loc["dense"], rows.loc["auto"]
    assert auto.latency_median == dense.latency_median and auto.latency_unit == "instructions"
    assert auto.layer_latency == dense.layer_latency and auto.flash_total == dense.flash_total
    assert "every layer dense: this is the dense variant's row" in auto.notes
