"""Reference models that train offline, by name.

Each entry builds an untrained Keras model and loads its data set from a
package that ships it (no downloads), so a sweep runs on a machine without
internet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # where the data came from, for the manifest
    anomaly_test: np.ndarray | None = None  # reconstruction only: 1 where a test sample is anomalous, else 0
    task: str = "classification"  # or "reconstruction": y is a target of the output's shape (harness/scoring.py)


@dataclass(frozen=True)
class ReferenceModel:
    name: str
    description: str
    build: Callable[[int], object]  # seed -> untrained keras.Model
    load_data: Callable[[], Dataset]


REFERENCE_MODELS: dict[str, ReferenceModel] = {}


def register_model(model: ReferenceModel) -> ReferenceModel:
    if model.name in REFERENCE_MODELS:
        raise ValueError(f"reference model '{model.name}' is registered twice")
    REFERENCE_MODELS[model.name] = model
    return model


def softmax_classifier(inputs, features, name: str, classes: int = 10):
    """The model from `inputs` to `features`, flattened, a Dense layer "fc" of `classes` and a softmax."""
    import keras

    x = keras.layers.Flatten(name="flatten")(features)
    x = keras.layers.Dense(classes, name="fc")(x)
    return keras.Model(inputs, keras.layers.Softmax(name="softmax")(x), name=name)


from . import digits, mnist1d, tinyml  # noqa: E402,F401  (register their models)
