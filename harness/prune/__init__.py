"""Prune a Keras model to a sweep of sparsity targets along one path.

Targets are visited in ascending order: the model is trained dense once, then
each target continues from the previous one's weights and masks, with the
sparsity raised on the Zhu & Gupta cubic schedule over the first half of the
fine-tuning epochs and held for the second half. One path serves every
target, so adding a target costs one fine-tune, not a full training run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from harness.config import PruneConfig
from harness.prune.masks import PruningError, magnitude_mask, polynomial_sparsity, prunable_layers
from harness.prune.train import MaskedTrainer

__all__ = ["PruningError", "Snapshot", "prune_sweep"]


@dataclass
class Snapshot:
    target: float
    weights: list                    # model.get_weights() at this target
    float_accuracy: float
    layer_sparsity: dict[str, float]  # layer name -> achieved fraction of zero kernel weights
    seconds: float                   # training time spent reaching this snapshot from the previous one


def prune_sweep(model, data, targets, config: PruneConfig, seed: int,
                progress: Callable[[str], None] = print) -> list[Snapshot]:
    import time

    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    layers = prunable_layers(model)
    trainer = MaskedTrainer(model, layers, config.learning_rate, seed)
    snapshots = []

    started = time.perf_counter()
    for epoch in range(config.dense_epochs):
        loss = trainer.fit_epoch(data.x_train, data.y_train, config.batch_size)
    progress(f"trained dense model: {config.dense_epochs} epochs, loss {loss:.3f}, "
             f"accuracy {_accuracy(model, data):.3f} ({time.perf_counter() - started:.1f} s)")

    masks = [np.ones(layer.kernel.shape, np.float32) for layer in layers]
    current = 0.0
    for target in sorted(targets):
        started = time.perf_counter()
        if target > current:
            ramp = max(1, config.finetune_epochs // 2)
            for epoch in range(config.finetune_epochs):
                sparsity = polynomial_sparsity(current, target, epoch + 1, ramp)
                masks = [magnitude_mask(layer.kernel.numpy(), sparsity, mask) for layer, mask in zip(layers, masks)]
                trainer.set_masks(masks)
                trainer.fit_epoch(data.x_train, data.y_train, config.batch_size)
            current = target
        snapshot = Snapshot(
            target=target,
            weights=[w.copy() for w in model.get_weights()],
            float_accuracy=_accuracy(model, data),
            layer_sparsity={layer.name: float(np.mean(layer.kernel.numpy() == 0)) for layer in layers},
            seconds=time.perf_counter() - started,
        )
        progress(f"sparsity {target:.2f}: float accuracy {snapshot.float_accuracy:.3f} ({snapshot.seconds:.1f} s)")
        snapshots.append(snapshot)
    return snapshots


def _accuracy(model, data) -> float:
    predictions = np.asarray(model(data.x_test, training=False))
    return float(np.mean(np.argmax(predictions, axis=1) == data.y_test))
