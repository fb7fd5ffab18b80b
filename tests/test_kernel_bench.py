"""`harness kernels`: a small real micro-benchmark on the emulated Cortex-M4, and its arithmetic."""

import doctest

import numpy as np
import pandas as pd
import pytest

from conftest import run_harness, run_kernel_bench
from harness.kernel_bench import shapes
from harness.kernel_bench.run import make_plan
from harness.kernel_bench.shapes import ShapeError
from harness.kernel_bench.table import break_even_table, patterns_beside_unstructured

COLUMNS = [
    "shape",
    "op",
    "pattern",
    "pruning",
    "target_sparsity",
    "sparsity",
    "weights",
    "nonzero_weights",
    "macs",
    "nonzero_macs",
    "format",
    "layer_format",
    "kernel",
    "kernel_family",
    "instructions",
    "instructions_per_mac",
    "instructions_per_nonzero",
    "invoke_median",
    "values_bytes",
    "index_bytes",
    "pointer_bytes",
    "weight_bytes",
    "code_bytes",
    "output_mismatches",
    "test_inputs",
    "ops_in_graph",
    "board",
    "unit",
    "timing_source",
    "timing",
    "status",
    "error",
    "speedup_vs_dense",
    "bytes_vs_dense",
    "flash_vs_dense",
]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("kernels")
    proc = run_kernel_bench(out, ["fc-32x64"], ["0", "0.9"], ["dense", "csr"], timeout=600)
    return proc, pd.read_csv(out / "kernels.csv"), pd.read_csv(out / "break_even.csv"), out


def test_every_variant_is_measured_and_bit_exact(bench):
    proc, table, _, out = bench
    assert list(table.columns) == COLUMNS
    assert len(table) == 4 and set(zip(table.pruning, table.format)) == {
        (p, f) for p in (0.0, 0.9) for f in ("dense", "csr")
    }
    assert (table.status == "ok").all(), table[["pruning", "format", "error"]]
    assert (table.output_mismatches == 0).all() and (table.test_inputs > 0).all()
    assert (table.ops_in_graph == "0:FULLY_CONNECTED").all()  # int8 in and out: no QUANTIZE op in the timing
    assert (table.unit == "instructions").all() and (table.instructions > 0).all()
    assert (table.code_bytes > 0).all()
    assert set(table.kernel) == {"fully_connected_s8", "fully_connected_csr_s8"}
    assert "variants on mps2_an386" in proc.stdout and "1/4" in proc.stdout
    for name in ("kernels.png", "kernels.svg"):
        assert (out / name).stat().st_size > 0
    summary = (out / "summary.md").read_text()
    assert "**fc-32x64** (FULLY_CONNECTED, 2,048 MACs)" in summary and "| fc-32x64 | csr |" in summary


def test_ratios_come_from_the_measured_columns(bench):
    _, table, _, _ = bench
    dense = table[table.format == "dense"].set_index("pruning")
    csr = table[table.format == "csr"].set_index("pruning")
    assert np.allclose(csr.speedup_vs_dense, dense.instructions / csr.instructions)
    assert np.allclose(csr.bytes_vs_dense, csr.weight_bytes / dense.weight_bytes)
    assert np.allclose(
        csr.flash_vs_dense, (csr.weight_bytes + csr.code_bytes) / (dense.weight_bytes + dense.code_bytes)
    )
    assert (table.weight_bytes == table.values_bytes + table.index_bytes + table.pointer_bytes).all()
    assert np.allclose(table.instructions_per_mac, table.instructions / table.macs)
    assert np.allclose(table.instructions_per_nonzero, table.instructions / table.nonzero_macs)
    assert (dense.speedup_vs_dense == 1.0).all()
    assert csr.sparsity[0.9] == pytest.approx(0.9, abs=1 / 2048) and csr.nonzero_weights[0.9] == 205
    # 90% of the weights gone: CSR must beat dense on time and on weight bytes.
    assert csr.speedup_vs_dense[0.9] > 1.0 and csr.bytes_vs_dense[0.9] < 1.0


def test_break_even_of_the_run_is_between_its_points(bench):
    _, _, crossings, _ = bench
    (row,) = crossings.itertuples()
    assert row.format == "csr" and 0.0 <= row.break_even_latency <= 0.9 and 0.0 < row.break_even_weights < 0.9


def _synthetic(
    shape: str, fmt: str, sparsities, speedups, bytes_ratios, pattern="unstructured", ran: str | None = None
) -> list[dict]:
    return [
        {
            "shape": shape,
            "format": fmt,
            "layer_format": ran or fmt,
            "pattern": pattern,
            "sparsity": s,
            "speedup_vs_dense": v,
            "bytes_vs_dense": b,
            "flash_vs_dense": b,
            "status": "ok",
        }
        for s, v, b in zip(sparsities, speedups, bytes_ratios)
    ]


def test_break_even_is_interpolated_where_the_ratio_crosses_one():
    table = pd.DataFrame(
        _synthetic("fc", "dense", [0.0, 0.5, 0.9], [1, 1, 1], [1, 1, 1])
        + _synthetic("fc", "csr", [0.0, 0.5, 0.9], [0.5, 0.8, 1.6], [2.0, 1.0, 0.25])
        + _synthetic("fc", "csr", [0.5], [9.0], [0.1], pattern="2:4")  # N:M points do not count
        + _synthetic("fc", "fast", [0.0, 0.5], [1.2, 2.0], [0.5, 0.4])
        + _synthetic("fc", "slow", [0.0, 0.5], [0.5, 0.9], [4.0, 3.0])
        + _synthetic("fc", "fallback", [0.0, 0.5], [1.0, 1.0], [1.0, 1.0], ran="dense")
    )
    table.loc[len(table)] = {**_synthetic("fc", "csr", [0.7], [50.0], [0.01])[0], "status": "error"}  # not a figure
    crossings = break_even_table(table).set_index("format")
    assert list(crossings.index) == ["csr", "fast", "slow", "fallback"]
    # speedup 0.8 at 50% and 1.6 at 90%: 1.0 is reached a quarter of the way, at 60%
    assert crossings.break_even_latency["csr"] == pytest.approx(0.6)
    assert crossings.break_even_latency_text["csr"] == "≈ 60%"
    # dense / csr bytes: 0.5, 1.0, 4.0: reaches 1 exactly at 50%
    assert crossings.break_even_weights["csr"] == pytest.approx(0.5)
    assert crossings.break_even_latency_text["fast"] == "≤ 0%"
    assert np.isnan(crossings.break_even_latency["slow"]) and crossings.break_even_latency_text["slow"] == "> 50%"
    assert crossings.best_speedup["csr"] == 1.6
    # a format with no kernel for the op ran dense: equal to dense, which is no break-even at 0%
    assert np.isnan(crossings.break_even_latency["fallback"])
    assert crossings.break_even_latency_text["fallback"] == "n/a: runs dense"


def test_n_of_m_patterns_sit_beside_unstructured_pruning_of_their_sparsity():
    rows = [
        {
            **row,
            "pruning": row["sparsity"],
            "target_sparsity": row["sparsity"],
            "instructions": 100 / row["speedup_vs_dense"],
        }
        for row in (
            _synthetic("fc", "csr", [0.5, 0.75], [1.1, 1.6], [1.0, 0.5])
            + _synthetic("fc", "bitmask", [0.5, 0.75], [0.7, 1.2], [0.6, 0.4])
            + _synthetic("fc", "nm", [0.5], [1.0], [1.0], ran="dense")  # refused there: not a figure
            + _synthetic("fc", "csr", [0.5, 0.75], [1.1, 1.6], [1.0, 0.5], pattern="N:M")
            + _synthetic("fc", "nm", [0.5, 0.75], [1.3, 2.2], [0.62, 0.31], pattern="N:M")
        )
    ]
    for row, label in zip(rows[-4:], ["2:4", "1:4", "2:4", "1:4"]):
        row["pruning"] = label
    beside = patterns_beside_unstructured(pd.DataFrame(rows)).set_index("pattern")
    assert beside.loc["2:4", "pattern_format"] == "nm" and beside.loc["2:4", "pattern_speedup"] == 1.3
    assert beside.loc["2:4", "unstructured_format"] == "csr" and beside.loc["2:4", "unstructured_speedup"] == 1.1
    assert beside.loc["1:4", "pattern_bytes_vs_dense"] == 0.31 and beside.loc["1:4", "target_sparsity"] == 0.75
    assert beside.loc["1:4", "unstructured_bytes_vs_dense"] == 0.5


def test_n_of_m_format_is_measured_on_n_of_m_prunings_only(tmp_path):
    proc = run_harness(
        "kernels",
        "--shapes",
        "fc-32x64",
        "--sparsities",
        "0.5,2:4,1:4",
        "--formats",
        "nm",
        "--board",
        "mps2_an386",
        "--out",
        tmp_path,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(tmp_path / "kernels.csv")
    assert set(zip(table.pruning, table.format)) == {
        ("0.5", "dense"),
        ("2:4", "dense"),
        ("1:4", "dense"),
        ("2:4", "nm"),
        ("1:4", "nm"),
    }
    nm = table[table.format == "nm"].set_index("pruning")
    assert (nm.status == "ok").all() and (nm.output_mismatches == 0).all() and (nm.layer_format == "nm").all()
    assert set(nm.kernel) == {"fully_connected_nm_s8"} and (nm.code_bytes > 0).all()
    assert nm.bytes_vs_dense["2:4"] == 0.625 and nm.bytes_vs_dense["1:4"] == 0.3125
    # Half the units, fewer instructions. Against dense no claim here: on so small a layer (2,048 MACs) each
    # row's end weighs, and dense's 32-input path with the compiler's constants is faster than both (4,360).
    assert nm.instructions["1:4"] < nm.instructions["2:4"]
    summary = (tmp_path / "summary.md").read_text()
    assert "| fc-32x64 | 2:4 (50%) | nm " in summary and "| fc-32x64 | 1:4 (75%) | nm " in summary


@pytest.mark.parametrize(
    "shapes, prunings, formats, message",
    [
        (["fc-3"], ["0.5"], None, "is none of"),
        (["fc-4x4"], ["1.0"], None, "outside [0, 1)"),
        (["fc-4x4"], ["4:2"], None, "0 < N < M"),
        (["fc-4x4"], ["0.5"], ["nope"], "unknown format nope"),
        (["dw15x1-10x1x4-valid"], ["0"], None, "leaves no output"),
        (["fc-4x4-valid"], ["0"], None, "is none of"),
        (["conv3x3-8x8x4-8-s0"], ["0"], None, "zero dimension"),
        (["dw3x3-8x8x4-s2-valid"], ["0"], None, "is none of"),
    ],
)
def test_plans_that_cannot_run_say_why(shapes, prunings, formats, message):
    with pytest.raises(ShapeError, match=message.replace("[", r"\[").replace(")", r"\)")):
        make_plan(shapes, prunings, formats, "mps2_an386")


def test_dense_is_always_measured():
    plan = make_plan(["fc-4x4", "fc-4x4"], ["0.5"], ["csr"], "mps2_an386")
    assert plan.formats == ("dense", "csr") and [s.name for s in plan.shapes] == ["fc-4x4"]


def test_doctests():
    failures, tried = doctest.testmod(shapes)
    assert tried and not failures
