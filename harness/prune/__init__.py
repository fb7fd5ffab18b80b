"""Prune a Keras model to a sweep of sparsity targets, by one method along one path.

    snapshots = prune_sweep(model, data, [0.0, 0.5, 0.9], config, parse_method("magnitude/gradual"), seed=0)

The model is trained dense once; the method's schedule then visits the
targets in ascending order and snapshots the model at each, so adding a
target costs a fine-tune, not a training run (see schedules.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from harness.config import PruneConfig
from harness.prune.export import export_model, int8_layer_sparsity, total_sparsity
from harness.prune.masks import PruningError, check_target
from harness.prune.method import Method, parse_method
from harness.prune.pruner import Pruner, Snapshot
from harness.prune.schedules import SCHEDULES
from harness.scoring import headline

__all__ = [
    "PruningError",
    "Snapshot",
    "Method",
    "parse_method",
    "prune_sweep",
    "export_model",
    "int8_layer_sparsity",
    "total_sparsity",
]


def _path_targets(targets, method: Method) -> list[float]:
    """The targets a method visits, ascending: an N:M pattern has one sparsity of its own (and the dense point)."""
    for target in targets:
        check_target(target)
    fixed = method.fixed_target()
    chosen = set(targets) if fixed is None else {t for t in targets if t == 0.0} | {fixed}
    return sorted(chosen)


def _budget_targets(pruner: Pruner, targets, budget: float, progress: Callable[[str], None]) -> list[float]:
    """A latency budget in place of the sweep's targets: the least sparsity the allocation needs to meet it on
    the dense model's saliency (rounded up to 1e-4), and the dense point if the sweep has it."""
    share = math.ceil(pruner.budget_target(budget) * 1e4) / 1e4
    progress(
        f"{pruner.method.name}: latency budget {budget:.0%} of the prunable layers' predicted dense latency: "
        f"sparsity {share:.4f}"
    )
    return sorted({t for t in targets if t == 0.0} | {share})


def prune_sweep(  # noqa: PLR0913 (the engine's public entry: model, data, targets and how to prune them)
    model,
    data,
    targets,
    config: PruneConfig,
    method: Method,
    seed: int,
    progress: Callable[[str], None] = print,
    board: str | None = None,
) -> list[Snapshot]:
    """board: the one the sweep measures on, whose cost model a hardware-aware method allocates by."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    targets = _path_targets(targets, method)
    pruner = Pruner(model, data, config, method, seed, board)
    early = pruner.weights()  # lottery ticket: survivors rewind to these
    pruner.train(config.rewind_epoch)
    if config.rewind_epoch:
        early = pruner.weights()
    loss = pruner.train(config.dense_epochs - config.rewind_epoch)
    progress(f"{method.name}: trained dense model, {config.dense_epochs} epochs, loss {loss:.3f}")
    if config.latency_budget and method.scope == "hardware":
        targets = _budget_targets(pruner, targets, config.latency_budget, progress)
    snapshots = []
    for snapshot in SCHEDULES[method.schedule](pruner, targets, config, early):
        progress(
            f"{method.name} sparsity {snapshot.target:.2f}: float {headline(snapshot.float_scores)} "
            f"({snapshot.epochs} epochs, {snapshot.seconds:.1f} s)"
        )
        snapshots.append(snapshot)
    return snapshots
