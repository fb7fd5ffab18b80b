"""How well a model does its task, scored the same way on float, host int8 and device outputs.

- classification: `y` holds one class number per sample; scored by top-1 `accuracy`.
- reconstruction (an autoencoder, `y` = `x` or another target of the output's shape): scored by `mse`, the
  mean squared error of the dequantized output against the target, and, when the data set gives
  `anomaly_test` (1 = anomalous), by `auc`: the ROC AUC of each sample's squared error as its anomaly
  score, as MLPerf Tiny scores its anomaly-detection autoencoder.

The score names are the result columns' prefixes: accuracy_device, mse_device, auc_device, ...
"""

from __future__ import annotations

import numpy as np

CLASSIFICATION = "classification"
RECONSTRUCTION = "reconstruction"
TASKS = (CLASSIFICATION, RECONSTRUCTION)
AUTO = "auto"  # the config's default: the task follows from the targets' shape
SCORES = ("accuracy", "mse", "auc")  # every score's name, the prefix of its result columns


class TaskError(ValueError):
    """Targets that do not fit the task or the model."""


def infer_task(y: np.ndarray, output_shape: tuple[int, ...], asked: str = AUTO) -> str:
    """The task a data set's targets `y` (all samples) ask of a model with `output_shape` (one sample).

    >>> infer_task(np.zeros(5), (10,)), infer_task(np.zeros((5, 640)), (640,))
    ('classification', 'reconstruction')
    """
    if asked != AUTO:
        return asked
    if y.ndim == 1 or _one_hot(y):
        return CLASSIFICATION
    if tuple(y.shape[1:]) == tuple(output_shape) and int(np.prod(output_shape)) > 1:
        return RECONSTRUCTION
    raise TaskError(
        f"targets of shape {tuple(y.shape[1:])} per sample are neither one class number (shape (n,)) "
        f"nor a reconstruction of the model's output {tuple(output_shape)}"
    )


def _one_hot(y: np.ndarray) -> bool:
    return y.ndim == 2 and bool(np.isin(y, (0, 1)).all()) and bool((y.sum(axis=1) == 1).all())


def score(task: str, outputs: np.ndarray, targets: np.ndarray, anomaly: np.ndarray | None = None) -> dict[str, float]:
    """The task's scores of `outputs` (one row per sample, any numeric type: int8 outputs give the same top-1
    as their dequantized values, but reconstruction scores need dequantized ones)."""
    outputs = outputs.reshape(len(outputs), -1)
    if task == CLASSIFICATION:
        return {"accuracy": float(np.mean(outputs.argmax(axis=1) == targets[: len(outputs)]))}
    errors = np.mean((outputs.astype(np.float64) - targets[: len(outputs)].reshape(len(outputs), -1)) ** 2, axis=1)
    scores = {"mse": float(errors.mean())}
    if anomaly is not None:
        scores["auc"] = roc_auc(errors, anomaly[: len(outputs)])
    return scores


def roc_auc(anomaly_scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC; NaN when the samples hold only one class (no ranking to judge)."""
    from sklearn.metrics import roc_auc_score

    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, anomaly_scores))


def headline(scores: dict[str, float]) -> str:
    """The scores in a few words, for progress lines.

    >>> headline({"mse": 0.0123, "auc": 0.91})
    'mse 0.0123, auc 0.910'
    """
    return ", ".join(
        f"{name} {value:.4f}" if name == "mse" else f"{name} {value:.3f}" for name, value in scores.items()
    )
