"""Reference models that train offline, by name.

Each entry builds an untrained Keras model and loads its data set from a
package that ships it (no downloads), so a sweep runs on a machine without
internet.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str  # where the data came from, for the manifest


@dataclass(frozen=True)
class ReferenceModel:
    name: str
    description: str
    build: Callable[[int], "object"]   # seed -> untrained keras.Model
    load_data: Callable[[], Dataset]


REFERENCE_MODELS: dict[str, ReferenceModel] = {}


def register_model(model: ReferenceModel) -> ReferenceModel:
    if model.name in REFERENCE_MODELS:
        raise ValueError(f"reference model '{model.name}' is registered twice")
    REFERENCE_MODELS[model.name] = model
    return model


from models import digits  # noqa: E402,F401  (registers its models)
