"""The pruning engine with real (short) training on the digits CNN: every schedule, criterion and pattern
reaches its targets exactly in the int8 weights, per-layer control is obeyed, a seed fixes the result."""

import json

import numpy as np
import pytest

from harness.config import PruneConfig
from harness.models import REFERENCE_MODELS
from harness.prune import PruningError, export_model, int8_layer_sparsity, parse_method, prune_sweep
from harness.prune_report import mask_overhead
from harness.quantize import to_int8_tflite

QUICK = PruneConfig(dense_epochs=3, finetune_epochs=2, round_fraction=0.5, round_epochs=1, saliency_batches=2)
SPEC = REFERENCE_MODELS["digits_cnn"]


@pytest.fixture(scope="module")
def digits():
    return SPEC.load_data()


def sweep(digits, method, targets=(0.5, 0.9), config=QUICK, seed=0, board="mps2_an386"):
    """Prune, convert each snapshot to int8 and measure it: [(snapshot, tflite, layer table)]."""
    model = SPEC.build(seed)
    snapshots = prune_sweep(
        model, digits, targets, config, parse_method(method), seed, progress=lambda _: None, board=board
    )
    out = []
    for snapshot in snapshots:
        exported = export_model(model, snapshot)
        tflite = to_int8_tflite(exported, digits.x_train[:20])
        out.append((snapshot, tflite, int8_layer_sparsity(tflite, snapshot, exported)))
    return out


def assert_exact(table):
    for name, layer in table.items():
        assert abs(layer["achieved"] - layer["target"]) * layer["weights"] <= 1.0, (name, layer)


@pytest.mark.parametrize(
    "method",
    [
        "magnitude/one-shot",
        "magnitude/iterative",
        "magnitude/gradual",
        "magnitude/lottery",
        "taylor/gradual",
        "random/iterative",
    ],
)
def test_every_layer_reaches_its_target_within_one_int8_weight(digits, method):
    points = sweep(digits, method, targets=(0.9, 0.5))
    assert [p[0].target for p in points] == [0.5, 0.9]  # ascending, one path
    for _, _, table in points:
        assert_exact(table)
    assert points[0][0].float_scores["accuracy"] > 0.5


@pytest.mark.parametrize("criterion", ["global-magnitude", "global-taylor", "global-random"])
def test_global_ranking_is_exact_in_total(digits, criterion):
    ((snapshot, _, table),) = sweep(digits, f"{criterion}/gradual", targets=(0.8,))
    zeros = sum(layer["achieved"] * layer["weights"] for layer in table.values())
    total = sum(layer["weights"] for layer in table.values())
    assert abs(zeros - 0.8 * total) <= 1.0
    assert len({round(layer["achieved"], 2) for layer in table.values()}) > 1  # layers differ


def test_n_of_m_keeps_n_in_every_m_input_weights_of_the_int8_model(digits):
    from harness.compiler import read_tflite

    points = sweep(digits, "magnitude/one-shot/2:4", targets=(0.0, 0.7))
    assert [p[0].target for p in points] == [0.0, 0.5]  # N:M fixes its own sparsity
    _, tflite, table = points[1]
    assert table["conv1"] == {"target": 0.0, "achieved": 0.0, "weights": 144}  # one input channel: no groups of 4
    assert_exact(table)
    for op in read_tflite(tflite).ops:
        if op.kind in ("CONV_2D", "FULLY_CONNECTED") and op.inputs[1].shape[-1] % 4 == 0:
            groups = op.inputs[1].data.reshape(-1, 4)  # int8 layouts OHWI and (out, in): input innermost
            assert (np.count_nonzero(groups, axis=1) <= 2).all()


def test_filter_pruning_yields_a_smaller_dense_int8_model(digits):
    from harness.compiler import read_tflite

    (dense, dense_tflite, _), (pruned, tflite, table) = sweep(digits, "magnitude/gradual/filter", targets=(0.0, 0.75))
    weights = [op.inputs[1].data for op in read_tflite(tflite).ops if op.kind in ("CONV_2D", "FULLY_CONNECTED")]
    assert [w.shape[0] for w in weights] == [8, 16, 32, 10]  # output channels: half the filters kept
    assert np.mean([np.count_nonzero(w) / w.size for w in weights]) > 0.95  # dense, not masked
    assert 0.7 < table["conv2"]["achieved"] < 0.8 and table["fc2"]["target"] == 0.0
    assert len(tflite) < len(dense_tflite) / 2


def test_skip_layer_targets_and_minimum_weights(digits):
    config = PruneConfig(**{**QUICK.__dict__, "skip": ("fc2",), "layer_targets": {"fc1": 0.95}, "min_weights": 20})
    points = sweep(digits, "magnitude/gradual", targets=(0.5, 0.9), config=config)
    first, second = points[0][2], points[1][2]
    assert first["fc2"]["achieved"] == 0.0 and second["fc2"]["achieved"] == 0.0
    assert first["fc1"]["target"] == 0.95 and abs(first["fc1"]["achieved"] - 0.95) * 8192 <= 1
    assert second["conv1"]["achieved"] == pytest.approx(1 - 20 / 144)  # 0.9 would keep 14 of 144
    json.dumps(first)  # the results column is JSON


def test_unknown_or_conflicting_layer_names_are_named(digits):
    config = PruneConfig(**{**QUICK.__dict__, "skip": ("fc9",)})
    with pytest.raises(
        PruningError,
        match=r"skip: model 'digits_cnn' has no prunable layer 'fc9' \(its prunable "
        r"layers: conv1, conv2, fc1, fc2\)",
    ):
        sweep(digits, "magnitude/gradual", config=config)
    config = PruneConfig(**{**QUICK.__dict__, "skip": ("fc1",), "layer_targets": {"fc1": 0.5}})
    with pytest.raises(PruningError, match="'fc1' is both in 'skip' and in 'layer_targets'"):
        sweep(digits, "magnitude/gradual", config=config)


def test_target_outside_unit_interval_is_refused(digits):
    with pytest.raises(PruningError, match="sparsity 1.0 is outside"):
        sweep(digits, "magnitude/gradual", targets=(0.5, 1.0))


def test_a_seed_fixes_masks_and_accuracies(digits):
    first = sweep(digits, "taylor/iterative", seed=3)
    second = sweep(digits, "taylor/iterative", seed=3)
    for (a, tflite_a, _), (b, tflite_b, _) in zip(first, second):
        assert a.float_scores == b.float_scores
        for name in a.masks:
            np.testing.assert_array_equal(a.masks[name], b.masks[name])
        assert tflite_a == tflite_b


def test_masks_in_the_train_step_do_not_double_the_epoch_time():
    seconds = mask_overhead(SPEC, seed=0, epochs=4)
    assert seconds["masked"] < 2 * seconds["plain"], seconds


def test_layers_are_paired_with_int8_weights_by_name_not_order():
    # The converter runs ResNet-8's shortcut convolutions before the blocks they bypass.
    spec = REFERENCE_MODELS["ic_resnet8"]
    data = spec.load_data()
    config = PruneConfig(dense_epochs=0, finetune_epochs=0, layer_targets={"s2_shortcut": 0.3, "fc": 0.7})
    model = spec.build(0)
    (snapshot,) = prune_sweep(
        model, data, (0.5,), config, parse_method("magnitude/one-shot"), 0, progress=lambda _: None
    )
    exported = export_model(model, snapshot)
    table = int8_layer_sparsity(to_int8_tflite(exported, data.x_train[:8]), snapshot, exported)
    assert set(table) == set(snapshot.layer_sizes)
    assert_exact(table)
    assert round(table["s2_shortcut"]["achieved"], 2) == 0.3 and round(table["s1a"]["achieved"], 2) == 0.5
