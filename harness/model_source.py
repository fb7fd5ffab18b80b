"""Where a sweep's model comes from: a reference model by name, a user's .keras file, or an int8 .tflite.

A .keras model is pruned and converted like a reference model; a .tflite is
taken as it is (already pruned and quantized), so pruning is skipped.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.config import ConfigError, SweepConfig
from models import REFERENCE_MODELS, Dataset, ReferenceModel

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class TrainableModel:
    """A Keras model to train and prune: a reference model or a user's .keras with an .npz data set."""
    spec: ReferenceModel
    digest: str  # identifies the model and data for caching


@dataclass(frozen=True)
class TfliteModel:
    path: Path
    data: Dataset


def resolve_model(config: SweepConfig) -> TrainableModel | TfliteModel:
    name = config.model
    if name in REFERENCE_MODELS:
        if config.data:
            raise ConfigError(f"reference model '{name}' brings its own data: remove 'data = \"{config.data}\"'")
        return TrainableModel(REFERENCE_MODELS[name], digest=name)
    path = Path(name)
    if path.suffix not in (".keras", ".tflite"):
        raise ConfigError(f"unknown model '{name}': give a reference model ({', '.join(REFERENCE_MODELS)}), "
                          "a .keras file or an int8 .tflite file")
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist")
    if not config.data:
        raise ConfigError(f"model {path} needs a data set: --data my.npz with {', '.join(NPZ_KEYS)}")
    data = load_npz(Path(config.data))
    if path.suffix == ".tflite":
        return TfliteModel(path, data)

    def load_keras(seed: int):
        import keras

        model = keras.models.load_model(path, compile=False)
        check_data_fits(model, data, f"data set {config.data}", f"model {path}")
        return model

    import hashlib
    digest = hashlib.sha256(path.read_bytes() + Path(config.data).read_bytes()).hexdigest()
    spec = ReferenceModel(name=path.stem, description=str(path), build=load_keras, load_data=lambda: data)
    return TrainableModel(spec, digest=digest)


def check_data_fits(model, data: Dataset, data_name: str, model_name: str) -> None:
    """Samples of the model's input shape, labels among its outputs (classes 0..outputs-1)."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConfigError(f"{model_name} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
                          "one of each is supported")
    expected = tuple(model.inputs[0].shape[1:])
    if data.x_train.shape[1:] != expected:
        raise ConfigError(f"{data_name}: samples of shape {data.x_train.shape[1:]} do not fit "
                          f"{model_name}, whose input is {expected}")
    classes = model.outputs[0].shape[-1]
    for split, labels in (("y_train", data.y_train), ("y_test", data.y_test)):
        if labels.size and (labels.min() < 0 or labels.max() >= classes):
            raise ConfigError(f"{data_name}: {split} holds labels {labels.min()}..{labels.max()}, but {model_name} "
                              f"has {classes} outputs (classes 0..{classes - 1})")


def load_npz(path: Path) -> Dataset:
    if not path.is_file():
        raise ConfigError(f"data set {path} does not exist")
    with np.load(path) as npz:
        missing = [key for key in NPZ_KEYS if key not in npz]
        if missing:
            raise ConfigError(f"data set {path} lacks {', '.join(missing)} (needs {', '.join(NPZ_KEYS)})")
        arrays = {key: npz[key] for key in NPZ_KEYS}
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if len(x) != len(y):
            raise ConfigError(f"data set {path}: x_{split} has {len(x)} samples but y_{split} has {len(y)}")
        if y.ndim != 1 or not np.array_equal(y, np.round(y)):
            raise ConfigError(f"data set {path}: y_{split} must hold one class number per sample, shape (n,); "
                              f"got shape {y.shape}" + ("" if y.ndim != 1 else " with fractional values"))
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise ConfigError(f"data set {path}: x_train samples {arrays['x_train'].shape[1:]} and "
                          f"x_test samples {arrays['x_test'].shape[1:]} differ in shape")
    return Dataset(arrays["x_train"].astype(np.float32), arrays["y_train"].astype(np.int64),
                   arrays["x_test"].astype(np.float32), arrays["y_test"].astype(np.int64), source=str(path))
