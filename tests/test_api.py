"""The Python API (harness/api.py): a sweep on the host board as a notebook runs it, and runs read as typed frames."""

import csv
import json
from importlib.metadata import version

import pandas as pd
import pytest

import harness
from harness.config import ConfigError
from harness.pointstore import PointStore
from harness.results import ResultRow

pytestmark = pytest.mark.usefixtures("no_leftover_boards")

# Two points on the host board (the firmware as a Linux process): quick to build and measure, no emulator.
HOST_SWEEP = """
[sweep]
name = "api"
model = "digits_mlp"
targets = [0.8]
kernels = ["dense", "csr"]
boards = ["host"]

[prune]
dense_epochs = 3
finetune_epochs = 1

[device]
runs = 3
accuracy_samples = 60
"""
NULLABLE = {"Int64", "Float64", "string", "boolean"}


@pytest.fixture(scope="module")
def host_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("api")
    (out / "host.toml").write_text(HOST_SWEEP)
    # In-process, as in a notebook; the reaper it starts marks this process's environment, which is put back.
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("HARNESS_OWNER", raising=False)
        rows = harness.sweep(out / "host.toml", results=out / "results", progress=lambda line: None)
    return rows, rows.attrs["run_dir"]


def test_a_sweep_returns_its_rows_typed_with_na_for_what_the_host_board_does_not_report(host_run):
    rows, run_dir = host_run
    assert list(rows.kernel) == ["dense", "csr"] and (rows.status == "ok").all(), rows[["kernel", "error"]]
    assert {str(dtype) for dtype in rows.dtypes} <= NULLABLE
    assert rows.dtypes.flash_total == "Int64" and rows.dtypes.latency_median == "Float64"
    assert rows.dtypes.kernel == "string" and rows.dtypes.firmware_rebuilt == "boolean"
    assert (rows.latency_unit == "ns").all() and (rows.latency_median > 0).all()
    assert (rows.output_mismatches == 0).all() and (rows.device_samples == 60).all()
    # The host process paints no stack and has no clock rate: stored as -1 and 0, read as unknown.
    assert rows.stack_used.isna().all() and rows.clock_hz.isna().all()
    assert rows.mse_device.isna().all() and rows.failed_stage.isna().all() and rows.ns_per_mac.notna().all()
    assert not {"layer_latency", "layer_macs", "layer_flash", "layer_formats", "versions"} & set(rows.columns)
    assert (rows.version_platformio == version("platformio")).all()
    pd.testing.assert_frame_equal(harness.load_results(run_dir), rows)


def test_layers_are_a_tidy_frame_that_adds_up_to_the_rows(host_run):
    rows, run_dir = host_run
    layers = harness.load_layers(run_dir)
    assert {str(dtype) for dtype in layers.dtypes} <= NULLABLE
    assert list(layers.row.unique()) == [0, 1] and (layers.kernel == rows.kernel[layers.row].values).all()
    by_row = layers.groupby("row")
    assert list(by_row.macs.sum()) == list(rows.macs) and list(by_row.nonzero_macs.sum()) == list(rows.nonzero_macs)
    assert layers.latency.notna().all()
    weighted = layers[layers.format.notna()]
    assert (weighted.op == "FULLY_CONNECTED").all() and (weighted.format == weighted.kernel).all()
    dense, csr = (weighted[weighted.kernel == kernel].set_index("index") for kernel in ("dense", "csr"))
    assert (csr.weight_values < dense.weight_values).all() and (csr.weight_pointers > 0).all()
    assert (dense.weight_indices == 0).all()  # a real zero, not unknown


def test_pruned_layers_weigh_up_to_the_achieved_sparsity(host_run):
    rows, run_dir = host_run
    pruned = harness.load_pruned_layers(run_dir)
    assert (pruned.target == 0.8).all() and pruned.achieved.between(0, 1).all()
    zeros = (pruned.achieved * pruned.weights).groupby(pruned.row).sum() / pruned.weights.groupby(pruned.row).sum()
    assert list(zeros.round(6)) == list(rows.achieved_sparsity.round(6))


def test_measure_returns_the_one_row(host_run, tmp_path):
    # The sweep's settings and its point: the model and the measured row come from the caches.
    settings = {"prune": {"dense_epochs": 3, "finetune_epochs": 1}, "device": {"runs": 3, "accuracy_samples": 60}}
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("HARNESS_OWNER", raising=False)
        row = harness.measure(
            "digits_mlp",
            board="host",
            kernel="csr",
            target=0.8,
            results=tmp_path,
            progress=lambda line: None,
            **settings,
        )
    assert len(row) == 1 and row.board[0] == "host" and row.kernel[0] == "csr" and row.status[0] == "ok"
    assert row.latency_median[0] == host_run[0].set_index("kernel").latency_median["csr"]


def test_a_bad_setting_is_refused_naming_the_keyword():
    with pytest.raises(ConfigError, match=r"boards=\.\.\.: must be tuple"):
        harness.sweep(boards="host")
    with pytest.raises(ConfigError, match=r"the dict config \[sweep\]: 'targets' 1.5 is outside \[0, 1\)"):
        harness.sweep({"targets": [1.5]})


def _stored(run_dir, rows: list[ResultRow]) -> None:
    store = PointStore(run_dir, run_dir / "cache")
    for index, row in enumerate(rows):
        store.save(index, f"key{index}", row)


def _row(**values) -> ResultRow:
    return ResultRow(
        run_id="r",
        model="m",
        target_sparsity=0.5,
        board="mps2_an386",
        core="cortex-m4",
        versions=json.dumps({"qemu-system-arm": "7.2"}),
        **values,
    )


def test_unknown_figures_are_na_and_real_zeros_stay(tmp_path):
    built = {"layer_formats": json.dumps({"0:FULLY_CONNECTED": "dense"}), "flash_weights_dense": 640, "sram_arena": 96}
    measured = _row(
        kernel="dense",
        **built,
        flash_total=9000,
        flash_code=8000,
        flash_kernel_code=2000,
        sram_static=900,
        macs=640,
        nonzero_macs=320,
        latency_median=5000.0,
        latency_runs=3,
        latency_unit="instructions",
        clock_hz=0,
        stack_used=-1,
        output_mismatches=0,
        device_samples=10,
    )
    too_big = _row(kernel="dense", **built).fail("fit", ValueError("needs 1 KiB more flash"))
    no_choice = _row(kernel="auto").fail("choose", ValueError("csr could not be measured"))
    _stored(tmp_path, [measured, too_big, no_choice])
    rows = harness.load_results(tmp_path)

    assert rows.loc[0, "flash_sparse_values"] == 0 and rows.loc[0, "output_mismatches"] == 0
    assert pd.isna(rows.loc[0, "stack_used"]) and pd.isna(rows.loc[0, "clock_hz"]) and pd.isna(rows.loc[0, "error"])
    assert rows.loc[0, ["flash_total", "macs", "latency_runs", "device_samples"]].tolist() == [9000, 640, 3, 10]
    # Compiled, never built: the tables are known, the firmware's figures and the board's are not.
    assert rows.loc[1, ["flash_weights_dense", "flash_sparse_values", "sram_arena"]].tolist() == [640, 0, 96]
    assert (
        rows.loc[1, ["flash_total", "flash_code", "sram_static", "macs", "latency_runs", "output_mismatches"]]
        .isna()
        .all()
    )
    assert rows.loc[1, "failed_stage"] == "fit" and rows.loc[1, "version_qemu_system_arm"] == "7.2"
    # Never compiled: not even the tables are known.
    assert rows.loc[2, ["flash_weights_dense", "flash_sparse_values", "flash_bias_quant", "sram_arena"]].isna().all()
    assert harness.load_layers(tmp_path).row.tolist() == [0, 1]
    assert harness.load_pruned_layers(tmp_path).empty


def test_columns_an_older_harness_did_not_write_are_na(tmp_path):
    _stored(tmp_path, [_row(kernel="csr", notes="")])
    table = tmp_path / "results.csv"
    header, *rows = list(csv.reader(table.open()))
    kept = [i for i, name in enumerate(header) if name not in ("place", "flash_kernel_code")]
    with table.open("w", newline="") as f:
        csv.writer(f).writerows([[line[i] for i in kept] for line in [header, *rows]])
    rows = harness.load_results(tmp_path)
    assert rows.place.isna().all() and rows.dtypes.place == "string"
    assert rows.flash_kernel_code.isna().all() and rows.dtypes.flash_kernel_code == "Int64"


def test_a_folder_without_results_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: no results.csv"):
        harness.load_results(tmp_path)
