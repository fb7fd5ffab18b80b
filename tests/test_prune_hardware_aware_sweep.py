"""The hardware-aware and MAC-weighted methods on the digits CNN with real (short) training: the overall
target and each layer's chosen target (hardware-aware) are met in the int8 weights, per-layer control is
obeyed, and the allocation is predicted faster than global magnitude's at the same sparsity."""
import pytest

from harness.config import PruneConfig
from harness.prune.cost_model import layer_geometry, load_cost_model
from test_pruning_engine import QUICK, SPEC, sweep


@pytest.fixture(scope="module")
def digits():
    return SPEC.load_data()


def zeros(table):
    return sum(layer["achieved"] * layer["weights"] for layer in table.values())


def predicted(table):
    """The model's predicted instructions, each layer in its fastest format at its achieved sparsity."""
    model, cost = SPEC.build(0), load_cost_model()
    return sum(float(cost.latency(layer_geometry(model.get_layer(name)), 1.0 - layer["achieved"]))
               for name, layer in table.items())


@pytest.fixture(scope="module")
def global_magnitude(digits):
    return sweep(digits, "global-magnitude/gradual", targets=(0.9,))[0][2]


@pytest.mark.parametrize("method", ["hardware-aware/gradual", "hardware-aware-taylor/one-shot",
                                    "mac-weighted-magnitude/gradual"])
def test_overall_and_per_layer_targets_are_met_in_the_int8_weights(digits, method, global_magnitude):
    points = sweep(digits, method, targets=(0.5, 0.9))
    for snapshot, _, table in points:
        total = sum(layer["weights"] for layer in table.values())
        assert abs(zeros(table) - snapshot.target * total) <= 1.0
        # A global ranking (mac-weighted) records the overall target per layer, the allocator its choice.
        for name, layer in table.items() if method.startswith("hardware-aware") else ():
            assert abs(layer["achieved"] - layer["target"]) * layer["weights"] <= 1.0, (name, layer)
    table = points[-1][2]
    if method.startswith("hardware-aware"):
        assert predicted(table) < predicted(global_magnitude)
    assert table != global_magnitude


def test_skipped_and_own_target_layers_stay_out_of_the_allocation(digits):
    config = PruneConfig(**{**QUICK.__dict__, "skip": ("conv1",), "layer_targets": {"fc2": 0.5}})
    ((_, _, table),) = sweep(digits, "hardware-aware/gradual", targets=(0.8,), config=config)
    assert table["conv1"]["achieved"] == 0.0 and table["conv1"]["target"] == 0.0
    assert table["fc2"]["target"] == 0.5 and abs(table["fc2"]["achieved"] - 0.5) * table["fc2"]["weights"] <= 1
    pooled = {name: layer for name, layer in table.items() if name in ("conv2", "fc1")}
    assert abs(zeros(pooled) - 0.8 * sum(layer["weights"] for layer in pooled.values())) <= 1.0
