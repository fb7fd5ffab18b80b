"""The pruning engine's pieces, without training: masks, methods, int8 survival, filter tracing and compaction."""

import numpy as np
import pytest

from harness.models import REFERENCE_MODELS
from harness.prune.export import survivors_stay_nonzero
from harness.prune.masks import (
    PruningError,
    global_keep_counts,
    kept_count,
    n_of_m_mask,
    polynomial_sparsity,
    prunable_layers,
    top_k_mask,
)
from harness.prune.method import MethodError, parse_method
from harness.prune.structured import compact, filter_keep, filter_masks, trace_channels


def test_top_k_mask_keeps_the_highest_scores_exactly():
    scores = np.abs(np.array([[0.1, -0.9, 0.3], [0.0, 0.5, -0.2]], np.float32))
    assert top_k_mask(scores, kept_count(scores.size, 0.5)).tolist() == [[0, 1, 1], [0, 1, 0]]


def test_pruned_weights_are_never_revived():
    previous = np.array([0, 1, 1, 1], np.float32)
    assert top_k_mask(np.array([5.0, 4.0, 3.0, 2.0]), 2, previous).tolist() == [0, 1, 1, 0]


def test_ties_are_broken_by_position():
    assert top_k_mask(np.ones(10), 3).tolist() == [1, 1, 1, 0, 0, 0, 0, 0, 0, 0]


def test_kept_count_honours_range_and_minimum():
    assert kept_count(144, 0.95) == 7
    assert kept_count(144, 0.95, min_weights=20) == 20
    assert kept_count(10, 0.5, min_weights=50) == 10
    with pytest.raises(PruningError, match="outside"):
        kept_count(10, 1.0)


def test_global_ranking_is_exact_in_total_and_keeps_each_layers_minimum():
    small, large = np.full(10, 100.0), np.arange(100.0)  # the small layer holds the largest scores
    counts = global_keep_counts([small, large], [None, None], 0.9, min_weights=1)
    assert counts == [10, 1]
    counts = global_keep_counts([np.zeros(10), large], [None, None], 0.9, min_weights=4)
    assert counts == [4, 7] and sum(counts) == 11


def test_n_of_m_keeps_n_in_every_group_along_the_input_dimension():
    scores = np.random.default_rng(0).random((3, 3, 8, 5))  # Conv2D kernel: (kh, kw, in, out)
    mask = n_of_m_mask(scores, 2, 4)
    groups = np.moveaxis(mask, -2, -1).reshape(3, 3, 5, 2, 4)
    assert (groups.sum(axis=-1) == 2).all()
    best = np.argsort(-np.moveaxis(scores, -2, -1).reshape(3, 3, 5, 2, 4), axis=-1)[..., :2]
    assert np.take_along_axis(groups, best, axis=-1).all()


def test_polynomial_schedule_starts_and_ends_at_the_given_sparsities():
    assert polynomial_sparsity(0.5, 0.9, 0, 4) == pytest.approx(0.5)
    assert polynomial_sparsity(0.5, 0.9, 4, 4) == pytest.approx(0.9)
    assert polynomial_sparsity(0.5, 0.9, 1, 4) > 0.5 + (0.9 - 0.5) / 4  # cubic: prunes early, slows late


@pytest.mark.parametrize(
    "text, name",
    [
        ("magnitude/gradual", "magnitude/gradual"),
        ("global-taylor/iterative", "global-taylor/iterative"),
        ("random/lottery/unstructured", "random/lottery"),
        ("magnitude/one-shot/2:4", "magnitude/one-shot/2:4"),
        ("magnitude/gradual/filter", "magnitude/gradual/filter"),
    ],
)
def test_method_names_round_trip(text, name):
    assert parse_method(text).name == name


@pytest.mark.parametrize(
    "text, message",
    [
        ("magnitude", "must be 'criterion/schedule'"),
        ("magnitud/gradual", "unknown criterion 'magnitud' (did you mean 'magnitude'?)"),
        ("magnitude/gradul", "unknown schedule 'gradul' (did you mean 'gradual'?)"),
        ("magnitude/gradual/filters", "unknown pattern 'filters' (did you mean 'filter'?)"),
        ("magnitude/gradual/2:4", "one-shot schedule only"),
        ("magnitude/one-shot/4:4", "0 < N < M"),
        ("global-magnitude/gradual/filter", "global ranking is for unstructured pruning only"),
    ],
)
def test_bad_method_names_the_part(text, message):
    with pytest.raises(MethodError) as err:
        parse_method(text)
    assert message in str(err.value)


def test_model_without_prunable_layers_is_refused():
    import keras

    inputs = keras.Input((4,), batch_size=1)
    model = keras.Model(inputs, keras.layers.Softmax()(inputs), name="no_weights")
    with pytest.raises(PruningError, match="model 'no_weights' has no prunable layers"):
        prunable_layers(model)


def test_survivors_too_small_for_int8_are_raised_to_one_step():
    kernel = np.array([[1.0, -0.5], [0.001, -0.002], [0.3, 0.0]], np.float32)  # (in, out): channels are columns
    mask = np.array([[1, 1], [1, 1], [0, 1]], np.float32)
    raised = survivors_stay_nonzero(kernel * mask, mask, depthwise=False)
    assert raised[1].tolist() == pytest.approx([1 / 127, -0.5 / 127])
    assert raised[2, 0] == 0  # pruned: stays zero
    assert raised[2, 1] == pytest.approx(0.5 / 127)  # a survivor that happened to be zero
    assert (raised[0] == kernel[0]).all()


def test_filter_tracing_follows_the_chain_through_pooling_and_flatten():
    graph = trace_channels(REFERENCE_MODELS["digits_cnn"].build(0))
    assert graph.prunable == ("conv1", "conv2", "fc1")  # fc2 feeds the output: its filters are the classes
    assert graph.sources["fc1"].layer == "conv2" and graph.sources["fc1"].tile == 4  # 2x2 positions x 32


@pytest.mark.parametrize("name", ["digits_cnn", "digits_dscnn"])
def test_compacted_model_computes_what_the_masked_model_computes(name):
    model = REFERENCE_MODELS[name].build(0)
    graph = trace_channels(model)
    layers = {layer.name: layer for layer in prunable_layers(model)}
    keep = {n: filter_keep(np.abs(layers[n].kernel.numpy()), 0.75, None, 1) for n in graph.prunable}
    masks = filter_masks(graph, {n: tuple(layer.kernel.shape) for n, layer in layers.items()}, keep)
    for n, layer in layers.items():
        layer.kernel.assign(layer.kernel.numpy() * masks[n])
    small = compact(model, graph, keep)
    x = REFERENCE_MODELS[name].load_data().x_test[:1]
    np.testing.assert_allclose(np.asarray(small(x)), np.asarray(model(x)), atol=1e-5)
    assert small.count_params() < model.count_params() / 2
