"""The hardware-aware allocator on synthetic cost models whose optimum is known, the cost model's fit, and
the method names; no training (tests/test_prune_hardware_aware_sweep.py prunes a real model)."""
import itertools

import numpy as np
import pytest

from harness.config import ConfigError, load_config
from harness.prune.allocate import allocate, hardware_keep_counts, lower_hull
from harness.prune.cost_model import CostModel, Curve, LayerGeometry, fit_cost_model, load_cost_model
from harness.prune.method import MethodError, parse_method


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
    costs = [2.0 * k ** 2 / 2 - 40 * k, 1.0 * k ** 2 / 2 - 10 * k]
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
        gap = max(float(np.max(c - np.interp(np.arange(len(c)), lower_hull(c), c[lower_hull(c)])))
                  for c in costs)
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
SYNTHETIC = CostModel("synthetic", "instructions", "test", (
    Curve("FULLY_CONNECTED", "dense", (0.0, 10.0, 0.0, 0.0), 0.0, 0),
    Curve("FULLY_CONNECTED", "csr", (0.0, 12.0, 20.0, 0.0), 0.0, 0),
    Curve("CONV_2D", "dense", (0.0, 10.0, 0.0, 0.0), 0.0, 0),
    Curve("CONV_2D", "csr", (0.0, 1.0, 9.0, 0.0), 0.0, 0),
))
FC = LayerGeometry("FULLY_CONNECTED", weights=400, macs=400, outputs=10)
CONV = LayerGeometry("CONV_2D", weights=400, macs=400 * 64, outputs=64 * 8)


def counts_for(geometries, sparsity, scores=None, previous=None, min_weights=1, model=SYNTHETIC):
    scores = scores or [np.ones(g.weights) for g in geometries]
    previous = previous or [np.ones(g.weights) for g in geometries]
    return hardware_keep_counts(scores, previous, geometries, model, sparsity, min_weights)


def test_a_layer_whose_sparse_kernel_never_pays_gets_no_zeros():
    assert counts_for([FC, CONV], 0.4) == [400, 80]          # all 320 zeros in the convolution
    assert counts_for([FC, CONV], 0.9) == [79, 1]             # the convolution full (min_weights 1), the rest in fc


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
    geometries = [LayerGeometry(op, int(n), int(n * rng.integers(1, 200)), int(rng.integers(1, 500)))
                  for op, n in zip(["CONV_2D", "FULLY_CONNECTED", "DEPTHWISE_CONV_2D", "CONV_2D"],
                                   rng.integers(9, 3000, size=4))]
    scores = [rng.random(g.weights) for g in geometries]
    previous = [(rng.random(g.weights) > 0.3).astype(np.float32) for g in geometries]
    sizes = sum(g.weights for g in geometries)
    for sparsity in (0.5, 0.8, 0.9, 0.95):
        counts = counts_for(geometries, sparsity, scores, previous, min_weights=4, model=load_cost_model())
        assert sum(counts) == round(sizes * (1 - sparsity))
        assert all(4 <= c <= int(p.sum()) for c, p in zip(counts, previous))


# --- the cost model ---

def test_the_fit_recovers_the_coefficients_of_a_linear_kernel():
    def row(shape, op, macs, sparsity, outputs, fmt, instructions):
        return {"shape": shape, "op": op, "pattern": "unstructured", "layer_format": fmt, "macs": macs,
                "nonzero_macs": macs * (1 - sparsity), "weights": 1, "instructions": instructions,
                "status": "ok", "board": "mps2_an386", "unit": "instructions", "sparsity": sparsity}

    shapes = [("fc-64x16", 1024, 16), ("fc-512x64", 32768, 64), ("fc-32x3", 96, 3)]
    rows = [row(name, "FULLY_CONNECTED", macs, s, outputs, "csr", 300 + 0.5 * macs + 3 * macs * (1 - s) + 7 * outputs)
            for name, macs, outputs in shapes for s in (0.0, 0.5, 0.9)]
    model = fit_cost_model(rows, "test")
    (curve,) = model.curves
    assert curve.coefficients == pytest.approx((300, 0.5, 3, 7), rel=1e-6)
    assert curve.max_error < 1e-9 and curve.rows == 9
    geometry = LayerGeometry("FULLY_CONNECTED", weights=2048, macs=2048, outputs=32)
    assert model.latency(geometry, 0.2) == pytest.approx(300 + 0.5 * 2048 + 3 * 2048 * 0.2 + 7 * 32)


def test_the_fastest_format_is_taken_at_each_density():
    latency = SYNTHETIC.latency(CONV, np.array([1.0, 0.5]))
    assert latency.tolist() == [10.0 * CONV.macs, (1 + 9 * 0.5) * CONV.macs]
    assert SYNTHETIC.latency(CONV, 1.0, "csr") == 10.0 * CONV.macs


def test_the_committed_curves_cover_every_prunable_op_and_predict_dense_within_their_error():
    model = load_cost_model()
    assert model.unit == "instructions" and model.board == "mps2_an386"
    for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        assert {"dense", "csr"} <= set(model.formats(op))
    for curve in model.curves:
        assert curve.max_error < 0.15, curve


# --- names ---

@pytest.mark.parametrize("name, criterion, scope", [("hardware-aware/gradual", "magnitude", "hardware"),
                                                    ("hardware-aware-taylor/one-shot", "taylor", "hardware"),
                                                    ("mac-weighted-magnitude/iterative", "mac-weighted", "global")])
def test_new_method_names_parse_and_name_themselves(name, criterion, scope):
    method = parse_method(name)
    assert (method.criterion, method.scope, method.name) == (criterion, scope, name)


@pytest.mark.parametrize("name, message", [("global-hardware-aware/gradual", "write 'hardware-aware/gradual'"),
                                           ("hardware-aware/one-shot/2:4", "unstructured pruning only"),
                                           ("hardware-awre/gradual", "did you mean 'hardware-aware'")])
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
