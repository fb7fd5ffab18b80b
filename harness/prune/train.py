"""Masked training on Keras 3: masks are re-applied inside the compiled train step.

Applying them from a per-batch Python callback doubles the epoch time on small
models; inside the tf.function it costs one multiply per weight.
"""

from __future__ import annotations

import numpy as np

from harness.scoring import CLASSIFICATION


class MaskedTrainer:
    """Trains a model whose pruned kernels stay zero; with no layers it is a plain trainer (the baseline)."""

    def __init__(self, model, layers, learning_rate: float, seed: int, task: str = CLASSIFICATION):
        import keras
        import tensorflow as tf

        self.model = model
        self.kernels = [layer.kernel for layer in layers]
        self.masks = [tf.Variable(np.ones(k.shape, np.float32), trainable=False) for k in self.kernels]
        self.optimizer = keras.optimizers.Adam(learning_rate)
        self.optimizer.build(model.trainable_variables)
        if task == CLASSIFICATION:  # a user's model may end in logits rather than probabilities
            self.loss = keras.losses.SparseCategoricalCrossentropy(from_logits=not _ends_in_softmax(model))
        else:
            self.loss = keras.losses.MeanSquaredError()
        self.rng = np.random.default_rng(seed)

        @tf.function(reduce_retracing=True)
        def train_step(x, y):
            with tf.GradientTape() as tape:
                loss = self.loss(y, self.model(x, training=True))
            variables = self.model.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            for kernel, mask in zip(self.kernels, self.masks):
                kernel.assign(kernel * mask)
            return loss

        @tf.function(reduce_retracing=True)
        def taylor_step(x, y):
            with tf.GradientTape() as tape:
                loss = self.loss(y, self.model(x, training=False))
            return [tf.abs(k * g) for k, g in zip(self.kernels, tape.gradient(loss, self.kernels))]

        self._train_step = train_step
        self._taylor_step = taylor_step

    def set_masks(self, masks: list[np.ndarray]) -> None:
        for variable, kernel, mask in zip(self.masks, self.kernels, masks):
            variable.assign(mask)
            kernel.assign(kernel.numpy() * mask)

    def reset_optimizer(self) -> None:
        """Forget Adam's moments and step count: a rewound or restarted model trains from a clean state."""
        for variable in self.optimizer.variables:
            if variable is not self.optimizer.learning_rate:  # the learning rate is a variable too: keep it
                variable.assign(np.zeros(variable.shape, variable.dtype))

    def fit_epoch(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> float:
        losses = [float(self._train_step(x[idx], y[idx])) for idx in self._batches(len(x), batch_size)]
        return float(np.mean(losses))

    def taylor_saliency(self, x: np.ndarray, y: np.ndarray, batch_size: int, batches: int) -> list[np.ndarray]:
        """First-order Taylor saliency |w * dL/dw| per kernel weight, summed over `batches` training batches."""
        total = [np.zeros(k.shape, np.float64) for k in self.kernels]
        for idx in self._batches(len(x), batch_size)[:batches]:
            for acc, value in zip(total, self._taylor_step(x[idx], y[idx])):
                acc += value.numpy()
        return total

    def _batches(self, count: int, batch_size: int) -> list[np.ndarray]:
        # Full batches only: one traced shape, and the model's batch dimension is
        # fixed at 1 for conversion, so the training copy is built batch-free.
        order = self.rng.permutation(count)
        return [order[start : start + batch_size] for start in range(0, count - batch_size + 1, batch_size)]


def _ends_in_softmax(model) -> bool:
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    return type(last).__name__ == "Softmax" or getattr(activation, "__name__", "") == "softmax"
