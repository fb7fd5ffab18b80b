"""The hardware-aware allocator on synthetic cost models whose optimum is known, the cost model's fit, and
the method names; no training (tests/test_prune_hardware_aware_sweep.py prunes a real model)."""

import csv
import itertools
import json

import numpy as np
import pytest

from harness.config import ConfigError, load_config
from harness.kernel_bench.cost_curves import main as cost_curves_main
from harness.kernel_bench.shapes import parse_shape, shape_of_layer
from harness.prune.allocate import allocate, budget_sparsity, hardware_keep_counts, lower_hull, part_way
from harness.prune.cost_model import (
    CostModel,
    Curve,
    LayerGeometry,
    MeasuredLayer,
    NoCostCurves,
    cost_board,
    fit_cost_model,
    geometry_of_shape,
    layer_geometry,
    load_cost_model,
)
from harness.prune.masks import PruningError, least_kept
from harness.prune.method import MethodError, parse_method
from harness.prune.predict import _layer


def brute_force(costs, total):
    """The exact optimum by trying every split (small layers only)."""
    splits = (s for s in itertools.product(*(range(len(c)) for c in costs)) if sum(s) == total)
    return min(sum(c[j] for c, j in zip(costs, s)) for s in splits)


def test_two_layers_with_linear_costs_fill_the_cheaper_layer_first():
    # Marginal cost per weight pruned: -3 in layer 0, -1 in layer 1: layer 0 takes all it can, then layer 1.
    costs = [-3.0 * np.arange(11), -1.0 * np.arange(21)]
    assert allocate(costs, 7) == [7, 0]
    assert allocate(costs, 15) == [10, 5]
    assert allocate(costs, 30) == [10, 20]


def test_two_layers_with_quadratic_costs_meet_at_the_closed_form_optimum():
    # cost_i(k) = a_i k^2 / 2 - b_i k; with k0 + k1 = K the marginal costs are equal at
    # k0 = (a1 K + b0 - b1) / (a0 + a1): here (1 * 60 + 40 - 10) / (2 + 1) = 30, k1 = 30.
    k = np.arange(101, dtype=float)
    costs = [2.0 * k**2 / 2 - 40 * k, 1.0 * k**2 / 2 - 10 * k]
    assert allocate(costs, 60) == [30, 30]


@pytest.mark.parametrize("seed", range(20))
def test_convex_costs_reach_the_brute_force_optimum_and_the_exact_total(seed):
    rng = np.random.default_rng(seed)
    costs = [np.concatenate([[0.0], np.cumsum(np.sort(rng.normal(size=rng.integers(1, 9))))]) for _ in range(3)]
    for total in range(sum(len(c) - 1 for c in costs) + 1):
        counts = allocate(costs, total)
        assert sum(counts) == total
        assert sum(c[j] for c, j in zip(costs, counts)) == pytest.approx(brute_force(costs, total))


@pytest.mark.parametrize("seed", range(10))
def test_any_costs_are_within_one_hull_segment_of_the_optimum(seed):
    # A sparse kernel that pays only past its break-even gives a cost that is not convex; the allocation is
    # optimal on the convex hulls, and only the one layer left between two hull vertices may lose to the
    # true optimum, by at most its curve's height above its hull.
    rng = np.random.default_rng(seed)
    costs = [np.cumsum(rng.normal(size=rng.integers(2, 8))) for _ in range(3)]
    costs = [c - c[0] for c in costs]
    for total in range(sum(len(c) - 1 for c in costs) + 1):
        counts = allocate(costs, total)
        assert sum(counts) == total
        gap = max(float(np.max(c - np.interp(np.arange(len(c)), lower_hull(c), c[lower_hull(c)]))) for c in costs)
        assert sum(c[j] for c, j in zip(costs, counts)) <= brute_force(costs, total) + gap + 1e-9


def test_lower_hull_drops_points_above_and_on_it():
    assert lower_hull(np.array([0.0, 0.0, 0.0, -1.0])) == [0, 3]
    assert lower_hull(np.array([0.0, -1.0, -2.0, -2.5])) == [0, 2, 3]
    assert lower_hull(np.array([5.0])) == [0]


def test_a_total_outside_the_layers_capacity_is_refused():
    with pytest.raises(ValueError, match="can lose 0 to 3"):
        allocate([np.zeros(2), np.zeros(3)], 4)


# --- the allocation on layers, through a cost model ---

# Instructions per MAC: dense 10; csr 12 + 20 per nonzero MAC on FULLY_CONNECTED (above dense at any
# density: its zeros never pay), 1 + 9 per nonzero MAC on CONV_2D (below dense at any density under 1).
SYNTHETIC = CostModel(
    "synthetic",
    "instructions",
    "test",
    (
        Curve("FULLY_CONNECTED", "dense", (0.0, 10.0, 0.0, 0.0, 0.0), 0.0, 0),
        Curve("FULLY_CONNECTED", "csr", (0.0, 12.0, 20.0, 0.0, 0.0), 0.0, 0),
        Curve("CONV_2D", "dense", (0.0, 10.0, 0.0, 0.0, 0.0), 0.0, 0),
        Curve("CONV_2D", "csr", (0.0, 1.0, 9.0, 0.0, 0.0), 0.0, 0),
    ),
)
FC = LayerGeometry("FULLY_CONNECTED", weights=400, macs=400, outputs=10)
CONV = LayerGeometry("CONV_2D", weights=400, macs=400 * 64, outputs=64 * 8)


def counts_for(geometries, sparsity, scores=None, previous=None, min_weights=1, model=SYNTHETIC):
    scores = scores or [np.ones(g.weights) for g in geometries]
    previous = previous or [np.ones(g.weights) for g in geometries]
    return hardware_keep_counts(scores, previous, geometries, model, sparsity, min_weights, tradeoff=1.0)


def test_a_layer_whose_sparse_kernel_never_pays_gets_no_zeros():
    assert counts_for([FC, CONV], 0.4) == [400, 80]  # all 320 zeros in the convolution
    assert counts_for([FC, CONV], 0.9) == [79, 1]  # the convolution full (min_weights 1), the rest in fc


def test_a_layer_the_cost_model_has_no_curve_for_costs_only_accuracy():
    unknown = LayerGeometry("CONV_3D", weights=400, macs=400 * 64, outputs=512)
    assert counts_for([unknown, CONV], 0.4) == [400, 80]


def test_saliency_keeps_weights_where_latency_gains_little():
    # Saliency counts as a share of each layer's own: 380 of fc's weights hold almost none of it, every
    # weight of the convolution an equal part. Its zeros would gain 18 of 408,000 instructions each, less
    # than they cost; fc's gain nothing and cost nothing, so fc takes them.
    scores = [np.concatenate([np.full(380, 1e-6), np.ones(20)]), np.linspace(1.0, 2.0, 400)]
    conv = LayerGeometry("CONV_2D", weights=400, macs=400 * 2, outputs=20)  # a small share of the latency
    fc = LayerGeometry("FULLY_CONNECTED", weights=400, macs=400 * 100, outputs=10)
    assert counts_for([fc, conv], 0.4, scores=scores) == [80, 400]


@pytest.mark.parametrize("seed", range(5))
def test_the_total_is_exact_and_earlier_zeros_stay(seed):
    rng = np.random.default_rng(seed)
    geometries = [
        LayerGeometry(op, int(n), int(n * rng.integers(1, 200)), int(rng.integers(1, 500)))
        for op, n in zip(["CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D", "CONV_2D"], rng.integers(9, 3000, size=4))
    ]
    scores = [rng.random(g.weights) for g in geometries]
    previous = [(rng.random(g.weights) > 0.3).astype(np.float32) for g in geometries]
    sizes = sum(g.weights for g in geometries)
    for sparsity in (0.5, 0.8, 0.9, 0.95):
        counts = counts_for(geometries, sparsity, scores, previous, min_weights=4, model=load_cost_model("mps2_an386"))
        assert sum(counts) == round(sizes * (1 - sparsity))
        assert all(4 <= c <= int(p.sum()) for c, p in zip(counts, previous))


@pytest.mark.parametrize("seed", range(5))
def test_part_way_moves_every_layer_the_same_share_with_an_exact_total(seed):
    """As a schedule uses it: each step from where the last one left the layers."""
    rng = np.random.default_rng(seed)
    now = rng.integers(0, 50, size=6)
    planned = now + rng.integers(0, 300, size=6)
    zeros = list(now)
    for total in sorted(rng.integers(now.sum(), planned.sum() + 1, size=8)):
        start, zeros = np.array(zeros), part_way(zeros, planned, int(total))
        assert sum(zeros) == total
        assert np.all(start <= zeros) and np.all(np.array(zeros) <= planned)
        share = (total - start.sum()) / ((planned - start).sum() or 1)
        assert np.all(np.abs(zeros - (start + share * (planned - start))) < 1)
    assert part_way(zeros, planned, int(planned.sum())) == list(planned)
    with pytest.raises(ValueError, match="not on the way"):
        part_way(now, planned, int(planned.sum()) + 1)


# --- the cost model ---


def test_the_fit_recovers_the_coefficients_of_a_linear_kernel():
    def row(shape, macs, sparsity, instructions):
        return {
            "shape": shape,
            "op": "CONV_2D",
            "pattern": "unstructured",
            "layer_format": "csr",
            "macs": macs,
            "nonzero_macs": macs * (1 - sparsity),
            "weights": 1,
            "instructions": instructions,
            "status": "ok",
            "board": "mps2_an386",
            "unit": "instructions",
            "sparsity": sparsity,
        }

    def kernel(macs, nonzero_macs, outputs, inner):
        return 300 + 0.5 * macs + 3 * nonzero_macs + 7 * outputs + 2 * macs / inner

    # (name, MACs, outputs, window row: kernel width x input channels): the rows set the inner loops apart
    # from the MACs.
    shapes = [
        ("conv3x3-8x8x1-16", 9216, 1024, 3),
        ("conv3x3-4x4x16-32", 73728, 512, 48),
        ("conv1x1-16x16x16-32", 131072, 8192, 16),
        ("conv3x3-16x16x3-16", 110592, 4096, 9),
        ("conv3x3-16x16x16-16", 589824, 4096, 48),
    ]
    rows = [
        row(name, macs, s, kernel(macs, macs * (1 - s), outputs, inner))
        for name, macs, outputs, inner in shapes
        for s in (0.0, 0.5, 0.9)
    ]
    model = fit_cost_model(rows, "test")
    (curve,) = model.curves
    assert curve.coefficients == pytest.approx((300, 0.5, 3, 7, 2), rel=1e-6)
    assert curve.max_error < 1e-9 and curve.rows == 15
    geometry = LayerGeometry("CONV_2D", weights=2304, macs=2304 * 64, outputs=1024, inner=8)
    assert model.latency(geometry, 0.2) == pytest.approx(kernel(2304 * 64, 2304 * 64 * 0.2, 1024, 8))


@pytest.mark.parametrize(
    "make, input_shape, weights, inner",
    [
        (lambda k: k.Conv2D(64, (10, 4), strides=2, padding="same"), (49, 10, 1), (64, 10, 4, 1), 4),  # DS-CNN's
        (lambda k: k.Conv2D(16, 3, padding="same"), (8, 8, 3), (16, 3, 3, 3), 9),
        (lambda k: k.Conv1D(8, 5), (20, 6), (8, 1, 5, 6), 30),  # a CONV_2D of height 1
        (lambda k: k.DepthwiseConv2D(3, padding="same"), (5, 5, 64), (1, 3, 3, 64), 1),  # 3 pixels a row: one
        (lambda k: k.DepthwiseConv2D(3, padding="same"), (16, 16, 16), (1, 3, 3, 16), 14),  # a run of 14
        (lambda k: k.Dense(12), (64,), (12, 64), 64),
    ],
)
def test_the_inner_loop_is_a_window_row_for_keras_and_compiled_layers_alike(make, input_shape, weights, inner):
    """A convolution's kernels copy each window row of kernel width x input channels bytes at once, the
    depthwise csr kernel runs a channel along a row's inner pixels when there are 8 (docs/pruning.md): the
    allocation (Keras layers) and the prediction (compiled layers) count them alike."""
    import keras

    model = keras.Sequential([keras.Input(input_shape), make(keras.layers)])
    geometry = layer_geometry(model.layers[0])
    output = (1, *model.layers[0].output.shape[1:])
    compiled = _layer("0", geometry.op, "k", "dense", weights, geometry.macs, geometry.macs, [], output)
    assert geometry.inner == compiled.inner == inner


@pytest.mark.parametrize(
    "name", ["conv10x4-49x10x1-64-s2", "conv1x1-16x16x32-64-s2", "conv3x3-9x9x8-4-valid-s2", "dw3x3-32x32x8-s2"]
)
def test_a_bench_shape_fits_with_the_outputs_and_inner_loops_of_its_keras_layer(name):
    """The fit reads a benchmark row's outputs and inner loops from the shape's name, the allocation from the
    Keras layer: with a stride the output map (and a depthwise row's run) shrinks, in both alike."""
    import keras

    from harness.prune.cost_model import _outputs_and_loops

    shape = parse_shape(name)
    model = keras.Sequential([keras.Input(shape.input_shape), shape.keras_layer()])
    geometry = layer_geometry(model.layers[0])
    outputs, loops = _outputs_and_loops({"shape": name, "macs": geometry.macs})
    assert (outputs, loops) == (geometry.outputs, geometry.macs / geometry.inner)
    assert geometry_of_shape(shape) == geometry
    assert shape_of_layer(model.layers[0]) == name


@pytest.mark.parametrize("model_name", ["ic_resnet8", "kws_ds_cnn", "digits_cnn", "mnist1d_cnn"])
def test_every_layer_of_a_reference_model_has_a_bench_shape_of_its_own_geometry(model_name):
    """--profile measures a model's layers by these shapes; a layer is then predicted from its shape's
    measurements only if the geometries are equal, so a wrong name would silently fall back to the fit."""
    from harness.model_source import REFERENCE_MODELS
    from harness.prune.masks import prunable_layers

    for layer in prunable_layers(REFERENCE_MODELS[model_name].build(0)):
        name = shape_of_layer(layer)
        if model_name == "mnist1d_cnn" and type(layer).__name__ == "Conv1D":
            assert name is None, name  # a Conv1D is a CONV_2D of height 1 that no shape name builds
            continue
        assert geometry_of_shape(parse_shape(name)) == layer_geometry(layer), (layer.name, name)


@pytest.mark.parametrize(
    "make, input_shape",
    [
        (lambda k: k.Conv2D(8, 3, dilation_rate=2), (16, 16, 4)),
        (lambda k: k.Conv2D(8, 3, strides=(2, 1)), (16, 16, 4)),
        (lambda k: k.DepthwiseConv2D(3, depth_multiplier=2), (16, 16, 4)),
        (lambda k: k.Dense(8), (4, 6)),  # on the last axis of a 2-D input
    ],
)
def test_a_layer_no_bench_shape_builds_alike_has_none(make, input_shape):
    import keras

    model = keras.Sequential([keras.Input(input_shape), make(keras.layers)])
    assert shape_of_layer(model.layers[0]) is None


def test_a_measured_shape_predicts_its_layers_and_the_curve_the_others(tmp_path):
    """Linear between the measured densities, along the end segments past them; only an equal geometry."""
    geometry = LayerGeometry("CONV_2D", weights=2304, macs=2304 * 64, outputs=1024, inner=8)
    measured = MeasuredLayer("conv3x3-8x8x16-16", "csr", geometry, (0.05, 0.1, 0.5), (1000.0, 1500.0, 5000.0))
    model = CostModel("b", "instructions", "test", SYNTHETIC.curves, measured=(measured,))
    assert model.latency(geometry, np.array([0.1, 0.3, 0.02, 1.0]), "csr").tolist() == pytest.approx(
        [1500.0, 3250.0, 700.0, 9375.0]
    )
    other = LayerGeometry("CONV_2D", weights=2304, macs=2304 * 64, outputs=1024, inner=4)
    assert model.latency(other, 0.1, "csr") == SYNTHETIC.latency(other, 0.1, "csr")
    assert model.latency(geometry, 0.1, "dense") == SYNTHETIC.latency(geometry, 0.1, "dense")  # no dense measured
    assert model.measured_shape(geometry) == "conv3x3-8x8x16-16" and model.measured_shape(other) is None
    assert CostModel.from_json("b", json.loads(json.dumps(model.to_json()))) == model


def test_a_fit_keeps_each_shape_and_format_as_measured():
    rows = [
        {"shape": "fc-64x10", "op": "FULLY_CONNECTED", "pattern": "unstructured", "layer_format": fmt,
         "macs": "640", "nonzero_macs": str(nonzero), "instructions": str(count), "status": "ok",
         "board": "b", "unit": "instructions"}
        for fmt, nonzero, count in [("csr", 64, 500), ("csr", 640, 3000), ("dense", 640, 1400), ("dense", 64, 1400)]
    ]  # fmt: skip
    measured = {m.format: m for m in fit_cost_model(rows, "test").measured}
    assert measured["csr"].densities == (0.1, 1.0) and measured["csr"].instructions == (500.0, 3000.0)
    assert measured["csr"].geometry == LayerGeometry("FULLY_CONNECTED", 640, 640, 10, 64)


def test_the_fastest_format_is_taken_at_each_density():
    latency = SYNTHETIC.latency(CONV, np.array([1.0, 0.5]))
    assert latency.tolist() == [10.0 * CONV.macs, (1 + 9 * 0.5) * CONV.macs]
    assert SYNTHETIC.latency(CONV, 1.0, "csr") == 10.0 * CONV.macs


def test_the_committed_curves_cover_every_prunable_op_and_predict_dense_within_their_error():
    model = load_cost_model("mps2_an386")
    assert model.unit == "instructions" and model.board == "mps2_an386"
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        assert {"dense", "csr"} <= set(model.formats(op))
    # A curve's worst shape, not a model: CONV_2D csr is 25.1 % off on a 3x3 8x8x64 with every weight kept (where
    # auto runs dense) since the fit has every layer of ResNet-8, DS-CNN and the digits CNN among its shapes
    # (docs/pruning.md); those layers are predicted from their own measurements, and whole models are held to
    # 5 % by test_cost_model_measured.py.
    for curve in model.curves:
        assert curve.max_error < 0.26, curve


# --- names ---


@pytest.mark.parametrize(
    "name, criterion, scope",
    [
        ("hardware-aware/gradual", "magnitude", "hardware"),
        ("hardware-aware-taylor/one-shot", "taylor", "hardware"),
        ("mac-weighted-magnitude/iterative", "mac-weighted", "global"),
    ],
)
def test_new_method_names_parse_and_name_themselves(name, criterion, scope):
    method = parse_method(name)
    assert (method.criterion, method.scope, method.name) == (criterion, scope, name)


@pytest.mark.parametrize(
    "name, message",
    [
        ("global-hardware-aware/gradual", "write 'hardware-aware/gradual'"),
        ("hardware-aware/one-shot/2:4", "unstructured pruning only"),
        ("hardware-awre/gradual", "did you mean 'hardware-aware'"),
    ],
)
def test_wrong_new_method_names_are_explained(name, message):
    with pytest.raises(MethodError, match=message):
        parse_method(name)


def test_a_config_names_the_new_methods(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('[prune]\nmethods = ["hardware-aware/gradual", "mac-weighted-magnitude/gradual"]\n')
    assert load_config(path).prune.methods == ("hardware-aware/gradual", "mac-weighted-magnitude/gradual")
    path.write_text('[prune]\nmethods = ["hardware-aware/gradual/filter"]\n')
    with pytest.raises(ConfigError, match="unstructured pruning only"):
        load_config(path)


# --- λ, the ceiling and the latency budget, on synthetic costs with a known optimum ---

# Two convolutions whose csr pays from the first zero (SYNTHETIC): each zero of A saves 9 * 64 = 576
# instructions, each of B 9 * 16 = 144, of 128,000 dense; uniform scores, so each zero costs 1/100 of A's saliency
# or 1/400 of B's. Marginal cost per zero (m = 2 layers): A -576/128000 + λ/200, B -144/128000 + λ/800:
# A is the cheaper below λ = 0.9, B above.
A = LayerGeometry("CONV_2D", weights=100, macs=100 * 64, outputs=64)
B = LayerGeometry("CONV_2D", weights=400, macs=400 * 16, outputs=64)


def uniform_counts(sparsity, tradeoff, min_weights=1):
    return hardware_keep_counts(
        [np.ones(100), np.ones(400)], [np.ones(100), np.ones(400)], [A, B], SYNTHETIC, sparsity, min_weights, tradeoff
    )


@pytest.mark.parametrize(
    "tradeoff, kept", [(0.0, [1, 399]), (0.5, [1, 399]), (0.85, [1, 399]), (0.95, [100, 300]), (2.0, [100, 300])]
)
def test_the_tradeoff_decides_which_layer_pays_for_the_zeros(tradeoff, kept):
    # 100 zeros (20 % of 500): all in the cheaper layer, as far as its floor (1 weight) allows.
    assert uniform_counts(0.2, tradeoff) == kept


def test_a_ceiling_per_layer_sends_the_rest_to_the_next_cheapest_layer():
    floors = [least_kept(100, 1, 0.5), least_kept(400, 1, 0.5)]
    assert floors == [50, 200]
    assert uniform_counts(0.2, 0.5, floors) == [50, 350]  # A stops at 50 % sparsity; B takes the other 50 zeros
    assert uniform_counts(0.5, 0.5, floors) == [50, 200]  # both at the ceiling: 250 zeros is all there is


def test_a_latency_budget_gives_the_least_sparsity_that_meets_it():
    pool = ([np.ones(100), np.ones(400)], [np.ones(100), np.ones(400)], [A, B], SYNTHETIC)
    dense = 10 * (A.macs + B.macs)
    # At λ = 0.5 A loses 99 weights first (576 each), then B (144 each): 11 of B's meet this budget, 10 do not.
    budget = dense - 99 * 576 - 11 * 144
    assert budget_sparsity(*pool, budget, 1, 0.5) == pytest.approx(110 / 500)
    assert budget_sparsity(*pool, budget + 1, 1, 0.5) == pytest.approx(110 / 500)
    assert budget_sparsity(*pool, budget - 1, 1, 0.5) == pytest.approx(111 / 500)
    assert budget_sparsity(*pool, dense, 1, 0.5) == 0.0
    fewest = dense - 99 * 576 - 399 * 144  # every weight pruned but one per layer
    assert budget_sparsity(*pool, fewest, 1, 0.5) == pytest.approx(498 / 500)
    assert budget_sparsity(*pool, fewest - 1, 1, 0.5) is None


# --- per board ---


def test_a_board_without_curves_has_no_cost_model_and_is_told_how_to_make_one():
    with pytest.raises(
        NoCostCurves,
        match=r"no cost curves for board 'host'.*make them: harness cost-model --measure host$",
    ):
        load_cost_model("host")
    assert cost_board("global-magnitude/gradual", ["host", "mps2_an386"]) is None  # needs no cost model
    assert cost_board("hardware-aware/gradual", ["mps2_an386", "mps2_an386"]) == "mps2_an386"
    with pytest.raises(PruningError, match="hardware-aware/gradual: no cost curves for board 'host'"):
        cost_board("hardware-aware/gradual", ["host"])
    with pytest.raises(PruningError, match="one board's cost curves; the sweep has mps2_an386, host: run one sweep"):
        cost_board("hardware-aware/gradual", ["mps2_an386", "host"])


def test_curves_are_kept_per_board_and_a_refit_replaces_only_its_own(tmp_path):
    curves = tmp_path / "curves.json"
    other = CostModel("other_board", "cycles", "by hand", SYNTHETIC.curves)
    committed = load_cost_model("mps2_an386")
    curves.write_text(json.dumps({"other_board": other.to_json(), "mps2_an386": committed.to_json()}))
    kernels = tmp_path / "kernels.csv"
    fields = [
        "shape",
        "op",
        "pattern",
        "layer_format",
        "macs",
        "nonzero_macs",
        "instructions",
        "status",
        "board",
        "unit",
        "pruning",
    ]
    with open(kernels, "w", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        for s in (0.0, 0.5, 0.9):
            for name, macs in (("fc-64x16", 1024), ("fc-512x64", 32768), ("fc-32x3", 96)):
                writer.writerow(
                    {
                        "shape": name,
                        "op": "FULLY_CONNECTED",
                        "pattern": "unstructured",
                        "layer_format": "dense",
                        "macs": macs,
                        "nonzero_macs": macs * (1 - s),
                        "instructions": 100 + 2 * macs,
                        "status": "ok",
                        "board": "mps2_an386",
                        "unit": "instructions",
                        "pruning": s,
                    }
                )
    assert cost_curves_main([str(kernels), "--out", str(curves)]) == 0
    assert load_cost_model("other_board", curves) == other
    refit = load_cost_model("mps2_an386", curves)
    assert [(c.op, c.format) for c in refit.curves] == [("FULLY_CONNECTED", "dense")]
    assert refit.ops == committed.ops  # the ops without weights are kept unless refitted from sweeps


# --- the [prune] keys ---

HW = 'methods = ["hardware-aware/gradual"]\n'


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "[prune]\ntradeoff = 2.0\n",
            (
                r"\[prune\]: 'tradeoff' applies to the hardware-aware methods only, and "
                r"'methods' \(global-magnitude/gradual\) has none"
            ),
        ),
        ("[prune]\nlatency_budget = 0.5\n", "'latency_budget' applies to the hardware-aware methods only"),
        (f"[prune]\n{HW}latency_budget = 1.5\n", r"\[prune\]: 'latency_budget' 1.5 is outside \[0, 1\)"),
        (f"[prune]\n{HW}tradeoff = -1.0\n", r"\[prune\]: 'tradeoff' must be at least 0.0, got -1.0"),
        (f'[prune]\n{HW}tradeoff = "1"\n', r"\[prune\]: 'tradeoff' must be float, got '1'"),
        ("[prune]\nmax_layer_sparsity = 0.0\n", r"'max_layer_sparsity' 0.0 is outside \(0, 1\]"),
        (
            "[sweep]\ntargets = [0.5, 0.9]\n[prune]\nmax_layer_sparsity = 0.8\n",
            r"\[sweep\]: target 0.9 is above \[prune\] 'max_layer_sparsity' 0.8",
        ),
        (
            "[sweep]\ntargets = [0.5]\n[prune]\nmax_layer_sparsity = 0.8\nlayer_targets = { fc1 = 0.9 }\n",
            r"\[prune\]: target 0.9 of layer 'fc1' is above 'max_layer_sparsity' 0.8",
        ),
        (
            "[prune]\nmax_layer_sparsty = 0.9\n",
            "unknown key 'max_layer_sparsty' \\(did you mean 'max_layer_sparsity'\\?\\)",
        ),
    ],
)
def test_wrong_hardware_aware_keys_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "sweep.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as raised:
        load_config(path)
    assert "\n" not in str(raised.value) and str(raised.value).startswith(str(path))


def test_hardware_aware_keys_are_read(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(
        f"[sweep]\ntargets = [0.9]\n[prune]\n{HW}tradeoff = 2\nlatency_budget = 0.4\nmax_layer_sparsity = 0.95\n"
    )
    prune = load_config(path).prune
    assert (prune.tradeoff, prune.latency_budget, prune.max_layer_sparsity) == (2.0, 0.4, 0.95)
