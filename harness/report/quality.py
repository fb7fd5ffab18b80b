"""The task's metric, the one number per variant that says how good it is: which columns hold it, how to name
it, which way is better, and what bound the key figures hold it to.

Classification is scored by accuracy. Reconstruction (an autoencoder) is scored by the ROC AUC of its error as
an anomaly score when the data had anomaly labels, else by the mean squared error of its output. Results of an
older harness have no task column and are classification.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.scoring import RECONSTRUCTION

# Where each metric is measured, as its columns' suffixes.
SOURCES = ("float", "int8_host", "device")


@dataclass(frozen=True)
class Quality:
    name: str  # in text: "accuracy", "AUC", "MSE"
    prefix: str  # its columns: <prefix>_float, <prefix>_int8_host, <prefix>_device
    axis_label: str  # the y axis of a plot of it, from any source
    device_label: str  # the axis of it on the device, with which way is better
    description: str  # one phrase saying what it measures
    higher_is_better: bool
    percent: bool  # a fraction, shown as a percentage
    default_margin: float  # the default bound: the dense model's value, this much worse (see default_bound)

    def column(self, source: str) -> str:
        return f"{self.prefix}_{source}"

    @property
    def device(self) -> str:
        return self.column("device")

    @property
    def title(self) -> str:
        return self.name[0].upper() + self.name[1:]

    @property
    def bound_name(self) -> str:
        """What the key figures hold a variant to: a floor for a score, a ceiling for an error."""
        return f"{self.name} {self._bound}"

    @property
    def bound_title(self) -> str:
        return f"{self.title} {self._bound}"

    @property
    def _bound(self) -> str:
        return "floor" if self.higher_is_better else "ceiling"

    @property
    def takes_user_floor(self) -> bool:
        """--accuracy-floor is a fraction of samples right: it means something for a score in [0, 1], not an error."""
        return self.higher_is_better

    def format(self, value: float) -> str:
        if not np.isfinite(value):
            return "n/a"
        return f"{value:.1%}" if self.percent else f"{value:.4g}"

    def meets(self, values: pd.Series, bound: float) -> pd.Series:
        return values >= bound if self.higher_is_better else values <= bound

    def default_bound(self, dense: float) -> float:
        """An absolute drop below a score, never below the score's least value (a dense model that scores 0 gets a
        floor of 0, not -1%); a relative rise above an error, whose scale depends on the data."""
        if self.higher_is_better:
            return max(dense - self.default_margin, 0.0)
        return dense * (1.0 + self.default_margin)

    def default_bound_text(self) -> str:
        if self.higher_is_better:
            drop = f"{self.default_margin:.0%}" if self.percent else f"{self.default_margin:g}"
            return f"{self.name} on the device at most {drop} below the dense model (default)"
        return f"{self.name} on the device at most {self.default_margin:.0%} above the dense model's (default)"

    def benefit(self, values: np.ndarray) -> np.ndarray:
        """The values turned so that higher is better, for a Pareto front."""
        values = np.asarray(values, float)
        return values if self.higher_is_better else -values


ACCURACY = Quality(
    "accuracy",
    "accuracy",
    "test accuracy (% correct)",
    "test accuracy on the device (% correct, higher is better)",
    "accuracy: the share of test samples classified right",
    True,
    True,
    0.01,
)
AUC = Quality(
    "AUC",
    "auc",
    "anomaly-detection AUC (ROC, 1: perfect, 0.5: chance)",
    "AUC on the device (ROC, higher is better)",
    "AUC: the ROC area of each sample's reconstruction error taken as its anomaly score",
    True,
    False,
    0.01,
)
MSE = Quality(
    "MSE",
    "mse",
    "reconstruction MSE (lower is better)",
    "MSE on the device (lower is better)",
    "MSE: the mean squared error of the dequantized output against the input",
    False,
    False,
    0.05,
)


def quality_of(rows: pd.DataFrame) -> Quality:
    """The metric these rows (one model's) are scored by."""
    if not (rows.task == RECONSTRUCTION).any():
        return ACCURACY
    return AUC if np.isfinite(rows.auc_device.to_numpy(float)).any() else MSE


def task_columns() -> set[str]:
    """The columns an older harness, which only classified, had no use for."""
    return {"task"} | {quality.column(source) for quality in (AUC, MSE) for source in SOURCES}
