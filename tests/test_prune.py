import numpy as np
import pytest

from harness.config import PruneConfig
from harness.prune import prune_sweep
from harness.prune.masks import PruningError, kept_count, magnitude_mask, polynomial_sparsity, prunable_layers
from models import REFERENCE_MODELS

QUICK = PruneConfig(dense_epochs=2, finetune_epochs=2)


def test_magnitude_mask_keeps_the_largest_weights_exactly():
    weights = np.array([[0.1, -0.9, 0.3], [0.0, 0.5, -0.2]], np.float32)
    mask = magnitude_mask(weights, 0.5)
    assert mask.tolist() == [[0, 1, 1], [0, 1, 0]]


def test_magnitude_mask_never_revives_pruned_weights():
    weights = np.array([5.0, 4.0, 3.0, 2.0], np.float32)
    previous = np.array([0, 1, 1, 1], np.float32)
    assert magnitude_mask(weights, 0.5, previous).tolist() == [0, 1, 1, 0]


def test_ties_are_broken_by_position():
    mask = magnitude_mask(np.ones(10, np.float32), 0.7)
    assert mask.tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]


def test_kept_count_rejects_targets_outside_unit_interval():
    assert kept_count(144, 0.95) == 7
    with pytest.raises(PruningError, match="outside"):
        kept_count(10, 1.0)


def test_polynomial_schedule_starts_and_ends_at_the_given_sparsities():
    assert polynomial_sparsity(0.5, 0.9, 0, 4) == pytest.approx(0.5)
    assert polynomial_sparsity(0.5, 0.9, 4, 4) == pytest.approx(0.9)
    assert polynomial_sparsity(0.5, 0.9, 1, 4) > 0.5 + (0.9 - 0.5) / 4  # cubic: prunes early, slows late


def test_model_without_prunable_layers_is_refused():
    import keras

    inputs = keras.Input((4,), batch_size=1)
    model = keras.Model(inputs, keras.layers.Softmax()(inputs), name="no_weights")
    with pytest.raises(PruningError, match="model 'no_weights' has no prunable layers"):
        prunable_layers(model)


@pytest.fixture(scope="module")
def digits():
    return REFERENCE_MODELS["digits_cnn"].load_data()


def _sweep(digits, seed):
    model = REFERENCE_MODELS["digits_cnn"].build(seed)
    return prune_sweep(model, digits, [0.9, 0.5], QUICK, seed, progress=lambda _: None)


def test_sweep_reaches_every_target_per_layer_within_one_weight(digits):
    snapshots = _sweep(digits, seed=0)
    assert [s.target for s in snapshots] == [0.5, 0.9]  # ascending, one path
    model = REFERENCE_MODELS["digits_cnn"].build(0)
    sizes = {layer.name: int(np.prod(layer.kernel.shape)) for layer in prunable_layers(model)}
    for snapshot in snapshots:
        for name, achieved in snapshot.layer_sparsity.items():
            assert abs(achieved - snapshot.target) * sizes[name] <= 1.0, (name, achieved)
    assert snapshots[0].float_accuracy > 0.5


def test_sweep_is_reproducible_with_a_seed(digits):
    first, second = _sweep(digits, seed=3), _sweep(digits, seed=3)
    for a, b in zip(first, second):
        assert a.float_accuracy == b.float_accuracy
        for wa, wb in zip(a.weights, b.weights):
            np.testing.assert_array_equal(wa == 0, wb == 0)
