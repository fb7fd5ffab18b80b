"""Prune a Keras model to a sweep of sparsity targets, by one method along one path.

    snapshots = prune_sweep(model, data, [0.0, 0.5, 0.9], config, parse_method("magnitude/gradual"), seed=0)

The model is trained dense once; the method's schedule then visits the
targets in ascending order and snapshots the model at each, so adding a
target costs a fine-tune, not a training run (see schedules.py).
"""
from __future__ import annotations

from typing import Callable

from harness.config import PruneConfig
from harness.prune.export import export_model, int8_layer_sparsity, total_sparsity
from harness.prune.masks import PruningError, check_target
from harness.prune.method import Method, parse_method
from harness.prune.pruner import Pruner, Snapshot
from harness.prune.schedules import SCHEDULES
from harness.scoring import headline

__all__ = ["PruningError", "Snapshot", "Method", "parse_method", "prune_sweep", "export_model",
           "int8_layer_sparsity", "total_sparsity"]


def _path_targets(targets, method: Method) -> list[float]:
    """The targets a method visits, ascending: an N:M pattern has one sparsity of its own (and the dense point)."""
    for target in targets:
        check_target(target)
    fixed = method.fixed_target()
    chosen = set(targets) if fixed is None else {t for t in targets if t == 0.0} | {fixed}
    return sorted(chosen)


def prune_sweep(model, data, targets, config: PruneConfig, method: Method, seed: int,
                progress: Callable[[str], None] = print) -> list[Snapshot]:
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    targets = _path_targets(targets, method)
    pruner = Pruner(model, data, config, method, seed)
    early = pruner.weights()  # lottery ticket: survivors rewind to these
    pruner.train(config.rewind_epoch)
    if config.rewind_epoch:
        early = pruner.weights()
    loss = pruner.train(config.dense_epochs - config.rewind_epoch)
    progress(f"{method.name}: trained dense model, {config.dense_epochs} epochs, loss {loss:.3f}")
    snapshots = []
    for snapshot in SCHEDULES[method.schedule](pruner, targets, config, early):
        progress(f"{method.name} sparsity {snapshot.target:.2f}: float {headline(snapshot.float_scores)} "
                 f"({snapshot.epochs} epochs, {snapshot.seconds:.1f} s)")
        snapshots.append(snapshot)
    return snapshots
