"""The auto kernel's chooser: fastest format per layer, weights never larger than dense's, ties, the flash budget.

The choice is a pure function of per-layer latencies and bytes, so most
tests give it small tables; one builds its input from a real model compiled
in every format. The sweep that measures the latencies on the emulated board
is tested in test_sweep.py.
"""

import doctest
import json
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import chooser
from harness.chooser import ChooserError, LayerOptions, Option, choose, layer_options
from harness.compiler import KERNEL_FORMATS, compile_tflite
from tflite_models import load_models


def layer(index: int, *options: tuple[str, float, int], op: str = "CONV_2D") -> LayerOptions:
    return LayerOptions(f"{index}:{op}", index, tuple(Option(*option) for option in options))


def test_doctests():
    failures, _ = doctest.testmod(chooser)
    assert failures == 0


def test_each_layer_takes_its_fastest_format():
    layers = [
        layer(0, ("dense", 100, 90), ("csr", 60, 40)),
        layer(2, ("dense", 50, 900), ("csr", 70, 300)),
        layer(5, ("dense", 10, 64), ("csr", 3, 20), ("bitmask", 2, 30)),
    ]
    choice = choose(layers)
    assert choice.formats == {0: "csr", 2: "dense", 5: "bitmask"}
    assert choice.latency == 60 + 50 + 2 and choice.bytes == 40 + 900 + 30
    assert choice.dense_latency == 160 and choice.dense_bytes == 1054 and choice.flash_budget == 1054


def test_a_layer_may_grow_past_dense_when_the_model_stays_no_larger():
    small_first = layer(0, ("dense", 400, 144), ("csr", 380, 206))  # a first conv, pruned less than the rest
    choice = choose([small_first, layer(2, ("dense", 1000, 4608), ("csr", 300, 900))])
    assert choice.formats == {0: "csr", 2: "csr"} and choice.bytes <= choice.dense_bytes


def test_the_model_never_takes_more_weight_bytes_than_dense_however_fast():
    choice = choose(
        [layer(0, ("dense", 400_000, 144), ("csr", 90_000, 202)), layer(2, ("dense", 100, 64), ("csr", 90, 64))]
    )
    assert choice.formats == {0: "dense", 2: "csr"} and choice.bytes <= choice.dense_bytes


def test_equal_latencies_go_to_fewer_bytes_then_to_dense():
    assert choose([layer(0, ("dense", 50, 64), ("csr", 50, 40))]).formats == {0: "csr"}
    assert choose([layer(0, ("csr", 50, 64), ("dense", 50, 64))]).formats == {0: "dense"}
    # Without dense in the tie, the name decides, so the order the formats come in never does.
    tie = [("dense", 90, 64), ("csr", 50, 40), ("bitmask", 50, 40)]
    assert choose([layer(0, *tie)]).formats == choose([layer(0, *reversed(tie))]).formats == {0: "bitmask"}


def test_a_layer_with_dense_only_stays_dense():
    choice = choose([layer(1, ("dense", 500, 72), op="DEPTHWISE_CONV_2D")])
    assert choice.formats == {1: "dense"}


def test_a_layer_without_a_dense_option_is_an_error():
    with pytest.raises(ChooserError, match="layer 0:CONV_2D: no dense option"):
        choose([layer(0, ("csr", 1, 1))])


def test_a_budget_the_fastest_choice_meets_changes_nothing():
    layers = [layer(0, ("dense", 100, 90), ("csr", 60, 40))]
    assert choose(layers, flash_budget=40).layers == choose(layers).layers


def test_over_the_budget_the_switch_saving_most_bytes_per_added_instruction_goes_first():
    layers = [
        layer(0, ("dense", 100, 1000), ("csr", 200, 100)),  # -900 B for +100: 9 B per instruction
        layer(1, ("dense", 100, 1000), ("csr", 110, 700)),  # -300 B for +10: 30 B per instruction
        layer(2, ("dense", 100, 1000), ("csr", 101, 990)),
    ]  # -10 B for +1: 10 B per instruction
    assert choose(layers).formats == {0: "dense", 1: "dense", 2: "dense"}
    assert choose(layers, flash_budget=2700).formats == {0: "dense", 1: "csr", 2: "dense"}
    assert choose(layers, flash_budget=2695).formats == {0: "dense", 1: "csr", 2: "csr"}
    assert choose(layers, flash_budget=2000).formats == {0: "csr", 1: "csr", 2: "csr"}
    choice = choose(layers, flash_budget=2000)
    assert choice.bytes <= 2000 and choice.flash_budget == 2000


def test_the_budget_may_move_a_layer_twice():
    """From the fastest format to the best saving per instruction, then on to what the budget still needs."""
    layers = [layer(0, ("dense", 100, 1000), ("csr", 60, 800), ("block4", 150, 600), ("bitmask", 400, 100))]
    assert choose(layers).formats == {0: "csr"}
    assert choose(layers, flash_budget=700).formats == {0: "block4"}  # 200 B for +90 beats 700 B for +340
    assert choose(layers, flash_budget=500).formats == {0: "bitmask"}


def test_a_budget_below_the_smallest_choice_names_both():
    layers = [layer(0, ("dense", 100, 144), ("csr", 60, 202)), layer(2, ("dense", 100, 4608), ("csr", 60, 942))]
    with pytest.raises(ChooserError) as err:
        choose(layers, flash_budget=1000)
    message = str(err.value)
    assert "flash budget of 1,000 B of weights cannot be met" in message
    assert "the smallest choice takes 1,086 B" in message
    assert "0:CONV_2D dense 144 B" in message and "2:CONV_2D csr 942 B" in message


def test_options_come_from_every_format_of_a_real_model():
    tflite = load_models()["kws_ds_cnn"]
    with tempfile.TemporaryDirectory() as tmp:
        variants = {fmt: compile_tflite(tflite, f"{tmp}/{fmt}", kernel=fmt) for fmt in KERNEL_FORMATS}
    latencies = {
        fmt: {name: 1000.0 + i for i, name in enumerate(compiled.layer_names)} for fmt, compiled in variants.items()
    }
    options = layer_options(variants, latencies)
    dense = variants["dense"]
    assert [o.name for o in options] == [f"{layer.index}:{layer.op}" for layer in dense.layers if layer.format]
    by_name = {o.name: o for o in options}
    ops = {o.name.split(":")[1] for o in options}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= ops
    for name, layer_options_ in by_name.items():
        found = {option.format: option for option in layer_options_.options}
        compiled_layers = {
            fmt: next(cl for cl in compiled.layers if f"{cl.index}:{cl.op}" == name)
            for fmt, compiled in variants.items()
        }
        # A layer without a kernel in some format ran dense in that format's variant: no option there.
        assert set(found) == {fmt for fmt, compiled_layer in compiled_layers.items() if compiled_layer.format == fmt}
        for fmt, option in found.items():
            assert option.bytes == compiled_layers[fmt].weight_bytes.total
            assert option.latency == latencies[fmt][name]
        assert found["dense"].bytes == compiled_layers["dense"].weight_bytes.values
    # Some layer has every format but nm, which takes N:M layers only (this model is pruned unstructured).
    assert any({o.format for o in layer_options_.options} == set(KERNEL_FORMATS) - {"nm"} for layer_options_ in options)


def test_options_need_the_dense_variant_and_every_latency():
    tflite = load_models()["one_dense"]
    with tempfile.TemporaryDirectory() as tmp:
        csr = compile_tflite(tflite, f"{tmp}/csr", kernel="csr")
        dense = compile_tflite(tflite, f"{tmp}/dense", kernel="dense")
    with pytest.raises(ChooserError, match="needs the dense variant"):
        layer_options({"csr": csr}, {"csr": {}})
    with pytest.raises(ChooserError, match="no measured layer latencies for csr"):
        layer_options({"dense": dense, "csr": csr}, {"dense": {}})
    with pytest.raises(
        ChooserError, match="the dense variant's measured layer latencies have no layer 0:FULLY_CONNECTED"
    ):
        layer_options({"dense": dense}, {"dense": {}})


def test_the_sweep_leaves_out_a_format_with_wrong_outputs_and_chooses_nothing_without_a_measurement():
    from harness.auto import choose_auto
    from harness.device.boards import get_board
    from harness.plan import PlannedPoint
    from harness.results import ResultRow

    tflite = load_models()["one_dense"]
    with tempfile.TemporaryDirectory() as tmp:
        variants = {fmt: compile_tflite(tflite, f"{tmp}/{fmt}", kernel=fmt) for fmt in ("dense", "csr")}
    board = get_board("mps2_an386")
    planned = PlannedPoint(0, None, "auto", board, listed=True)

    def row(fmt, latency):
        return ResultRow(
            "run", "m", 0.0, fmt, board.name, board.core, layer_latency=json.dumps({"0:FULLY_CONNECTED": latency})
        )

    wrong = row("csr", 1).fail("verify", RuntimeError("3 of 60 outputs differ from TFLite Micro"))
    choice, left_out = choose_auto(
        planned, {"dense": (variants["dense"], row("dense", 900)), "csr": (variants["csr"], wrong)}, flash_budget=0
    )
    assert choice.formats == {0: "dense"}
    assert left_out == {"csr": "3 of 60 outputs differ from TFLite Micro"}

    unbuilt = row("csr", 1).fail("build", RuntimeError("ld returned 1 exit status"))
    with pytest.raises(ChooserError, match="1 could not be: csr: build: ld returned 1 exit status"):
        choose_auto(planned, {"dense": (variants["dense"], row("dense", 900)), "csr": (variants["csr"], unbuilt)}, 0)
    wrong_dense = row("dense", 900).fail("verify", RuntimeError("outputs differ"))
    with pytest.raises(ChooserError, match="dense: verify: outputs differ"):
        choose_auto(planned, {"dense": (variants["dense"], wrong_dense), "csr": (variants["csr"], row("csr", 1))}, 0)


def test_a_shrunk_choice_slower_than_dense_falls_back_to_dense():
    # Fastest: 0 in "x" (300 B) and 1 in "x"; over the 200 B budget, the best bytes-per-latency switch moves
    # layer 0 to "y", which ends 1 slower than all-dense. (Seen on ResNet-8 at 50 %: 24.84 M against 24.45 M.)
    layers = [
        layer(0, ("dense", 100, 100), ("x", 50, 300), ("y", 101, 10)),
        layer(1, ("dense", 100, 100), ("x", 100, 90)),
    ]
    choice = choose(layers)
    assert choice.formats == {0: "dense", 1: "dense"}
    assert choice.latency == choice.dense_latency == 200


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 1000),
            st.integers(1, 500),
            st.lists(st.tuples(st.integers(1, 1000), st.integers(0, 800)), min_size=1, max_size=4),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_never_slower_than_dense_and_never_larger(tables):
    layers = [
        layer(i, ("dense", latency, size), *((f"f{j}", lat, b) for j, (lat, b) in enumerate(others)))
        for i, (latency, size, others) in enumerate(tables)
    ]
    choice = choose(layers)
    assert choice.latency <= choice.dense_latency
    assert choice.bytes <= choice.dense_bytes
