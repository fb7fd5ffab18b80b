"""The hardware-aware and MAC-weighted methods on the digits CNN with real (short) training: the overall
target and each layer's chosen target (hardware-aware) are met in the int8 weights, per-layer control is
obeyed, and the allocation is predicted faster than global magnitude's at the same sparsity. A latency budget
in place of a target; and a real sweep on the emulated Cortex-M4: every row carries its predicted latency,
the ceiling holds, the report shows both."""

import json

import numpy as np
import pytest

from conftest import run_harness
from harness.config import PruneConfig
from harness.prune.cost_model import layer_geometry, load_cost_model
from harness.prune.method import parse_method
from harness.prune.pruner import Pruner
from harness.results import read_results_csv
from test_pruning_engine import QUICK, SPEC, sweep


@pytest.fixture(scope="module")
def digits():
    return SPEC.load_data()


def zeros(table):
    return sum(layer["achieved"] * layer["weights"] for layer in table.values())


def predicted(table):
    """The model's predicted instructions, each layer in its fastest format at its achieved sparsity."""
    model, cost = SPEC.build(0), load_cost_model("mps2_an386")
    return sum(
        float(cost.latency(layer_geometry(model.get_layer(name)), 1.0 - layer["achieved"]))
        for name, layer in table.items()
    )


@pytest.fixture(scope="module")
def global_magnitude(digits):
    return sweep(digits, "global-magnitude/gradual", targets=(0.9,))[0][2]


@pytest.mark.parametrize(
    "method", ["hardware-aware/gradual", "hardware-aware-taylor/one-shot", "mac-weighted-magnitude/gradual"]
)
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


def test_a_latency_budget_prunes_to_the_least_sparsity_predicted_within_it(digits):
    config = PruneConfig(**{**QUICK.__dict__, "methods": ("hardware-aware/gradual",), "latency_budget": 0.5})
    points = sweep(digits, "hardware-aware/gradual", targets=(0.0, 0.9), config=config)
    (dense_point, _, _), (snapshot, _, table) = points  # the budget's point in place of 0.9
    assert dense_point.target == 0.0
    dense = predicted({name: {**layer, "achieved": 0.0} for name, layer in table.items()})
    # Chosen on the dense model's saliency; fine-tuning may move the allocation at that sparsity a little.
    assert predicted(table) <= 0.5 * dense * 1.02
    # Some pruning, less than the target it replaces; how much halves the latency depends on the curves (0.29 with
    # those of 1cdaf2f, over 0.3 before), so only its bounds are held here.
    assert 0.0 < snapshot.target < 0.9


def test_steps_toward_a_target_end_at_the_one_allocation_for_it(digits):
    """head_for allocates the target's zeros once; the steps of a schedule (here with no training between
    them, so the weights stay) end on that allocation and pass between, each layer the same share of its way."""
    pruner = Pruner(SPEC.build(0), digits, QUICK, parse_method("hardware-aware/gradual"), 0, "mps2_an386")

    def zeros():
        return np.array([int(np.sum(mask == 0)) for mask in pruner.masks])

    pruner.prune_to(0.9)
    once = zeros()
    pruner.reset_masks()
    pruner.head_for(0.9)
    pruner.prune_to(0.7875)
    between = zeros()
    pruner.prune_to(0.9)
    assert list(zeros()) == list(once)
    assert np.all(np.abs(between - once * between.sum() / once.sum()) < 1)


SWEEP = """
[sweep]
name = "hardware-aware-quick"
model = "digits_cnn"
targets = [0.8]
kernels = ["csr"]

[prune]
methods = ["magnitude/gradual", "hardware-aware/gradual"]
dense_epochs = 3
finetune_epochs = 2
max_layer_sparsity = 0.9

[device]
warmup = 0
runs = 1
accuracy_samples = 20
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hardware-aware")
    (tmp / "sweep.toml").write_text(SWEEP)
    proc = run_harness("sweep", "--config", tmp / "sweep.toml", "--results", tmp / "results")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return next((tmp / "results").iterdir())


def test_every_row_carries_the_predicted_latency_beside_the_measured(run_dir):
    frame = read_results_csv(run_dir / "results.csv")
    assert len(frame) == 2 and (frame.status == "ok").all()
    for row in frame.itertuples():
        layers, measured = json.loads(row.layer_predicted_latency), json.loads(row.layer_latency)
        assert list(layers) == list(measured) and None not in layers.values()
        assert row.predicted_latency == pytest.approx(sum(layers.values()), abs=1.0)
        # Not the 5 % of docs/pruning.md's models: this one trains 5 epochs, but a wrong unit or a missing op
        # would be far off.
        assert abs(row.predicted_latency / row.latency_median - 1) < 0.10, row


def test_the_allocation_meets_its_per_layer_targets_and_the_ceiling(run_dir):
    frame = read_results_csv(run_dir / "results.csv")
    table = json.loads(frame[frame.prune_method == "hardware-aware/gradual"].layer_sparsity.iloc[0])
    assert abs(zeros(table) - 0.8 * sum(layer["weights"] for layer in table.values())) <= 1.0
    for name, layer in table.items():
        assert abs(layer["achieved"] - layer["target"]) * layer["weights"] <= 1.0, (name, layer)
        assert layer["achieved"] * layer["weights"] <= 0.9 * layer["weights"] + 1.0, (name, layer)


def test_the_report_shows_the_prediction_and_accuracy_against_latency_by_allocation(run_dir):
    summary = (run_dir / "report.md").read_text()
    assert "## Predicted against measured latency" in summary and "worst error" in summary
    assert (run_dir / "allocation-mps2_an386.png").stat().st_size > 5000
    assert "Accuracy vs latency by allocation" in summary


def test_a_hardware_aware_sweep_refuses_a_board_without_curves(tmp_path):
    (tmp_path / "sweep.toml").write_text(SWEEP)
    proc = run_harness(
        "sweep", "--config", tmp_path / "sweep.toml", "--boards", "host", "--results", tmp_path / "results"
    )
    assert proc.returncode != 0
    assert (
        "hardware-aware/gradual: no cost curves for board 'host' in cost_curves.json (boards with curves: "
        "mps2_an386); make them: harness cost-model --measure host"
    ) in proc.stderr
