"""Where a sweep's model comes from: a reference model by name, a user's Keras file, or an int8 .tflite.

A Keras model (`.keras`, or legacy HDF5 `.h5` / `.hdf5` as Keras 2 wrote
them) is pruned and converted like a reference model; a `.tflite` is taken
as it is (already pruned and quantized), so pruning is skipped.

The data set is an `.npz` (README, "Your own model and data"):
- `x_test`, `y_test`: always. `y_test` holds one class number per sample
  (classification), or one target of the model's output shape per sample,
  usually `x_test` itself (reconstruction, an autoencoder). The config's
  `task` says which where the shape cannot.
- `x_train`, `y_train`: for a Keras model only (it is trained and pruned).
- `anomaly_test` (optional, reconstruction): 1 where a test sample is
  anomalous, else 0; the sweep then scores the anomaly AUC.
- `x_test` may be float (quantized with the model's input scale) or, for a
  `.tflite`, already int8.
Every mismatch is one ConfigError naming the file and the key, raised
before anything is trained or built.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from harness.config import ConfigError, PruneConfig, SweepConfig, did_you_mean
from harness.models import REFERENCE_MODELS, Dataset, ReferenceModel
from harness.scoring import AUTO, CLASSIFICATION, RECONSTRUCTION, TaskError, infer_task

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TEST_KEYS = ("x_test", "y_test")
TRAIN_KEYS = ("x_train", "y_train")
OPTIONAL_KEYS = ("anomaly_test",)


@dataclass(frozen=True)
class TrainableModel:
    """A Keras model to train and prune: a reference model or a user's Keras file with an .npz data set."""

    spec: ReferenceModel
    digest: str  # identifies the model and data for caching


@dataclass(frozen=True)
class TfliteModel:
    path: Path
    data: Dataset
    digest: str  # of the model file and the data set's content


def resolve_model(config: SweepConfig) -> TrainableModel | TfliteModel:
    """The sweep's model and data, checked against each other."""
    name = config.model
    if name in REFERENCE_MODELS:
        if config.data:
            raise ConfigError(f"reference model '{name}' brings its own data: remove 'data = \"{config.data}\"'")
        spec = REFERENCE_MODELS[name]
        if config.prune.skip or config.prune.layer_targets:
            _check_layer_names(spec.build(config.seed), config.prune, f"reference model '{name}'")
        return _reference(spec, config.task)
    path = Path(name)
    if path.suffix not in (*KERAS_SUFFIXES, ".tflite"):
        raise ConfigError(
            f"unknown model '{name}': give a reference model ({', '.join(REFERENCE_MODELS)}), "
            f"a Keras file ({', '.join(KERAS_SUFFIXES)}) or an int8 .tflite file"
        )
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist")
    if not config.data:
        keys = TEST_KEYS if path.suffix == ".tflite" else TRAIN_KEYS + TEST_KEYS
        raise ConfigError(f"model {path} needs a data set: --data my.npz with {', '.join(keys)}")
    data_path = Path(config.data)
    if path.suffix == ".tflite":
        graph = _read_tflite(path)
        arrays = load_npz(data_path, TEST_KEYS)
        data = check_data(
            arrays,
            data_path,
            f"model {path}",
            graph.input.shape[1:],
            graph.output.shape[1:],
            config.task,
            int8_inputs=True,
        )
        return TfliteModel(path, data, _digest(path, data_path, config.task))
    model = load_keras_model(path)
    _check_layer_names(model, config.prune, f"model {path}")
    data = check_keras_data(model, load_npz(data_path, TRAIN_KEYS + TEST_KEYS), data_path, f"model {path}", config.task)
    spec = ReferenceModel(
        name=path.stem, description=str(path), build=lambda seed: load_keras_model(path), load_data=lambda: data
    )
    return TrainableModel(spec, digest=_digest(path, data_path, config.task))


def _read_tflite(path: Path):
    from harness.compiler import CompileError, read_tflite

    try:
        return read_tflite(path.read_bytes())
    except CompileError as err:
        raise ConfigError(f"model {path}: {err}") from None


def _check_layer_names(model, prune: PruneConfig, model_name: str) -> None:
    """The layers [prune] names, against the model's prunable ones, before any training."""
    from harness.prune.masks import prunable_layers

    names = [layer.name for layer in prunable_layers(model)]
    for key, chosen in (("skip", prune.skip), ("layer_targets", prune.layer_targets)):
        for name in chosen:
            if name not in names:
                raise ConfigError(
                    f"[prune] {key}: {model_name} has no prunable layer '{name}'"
                    f"{did_you_mean(name, names)}; its prunable layers: {', '.join(names)}"
                )
    if both := sorted(set(prune.skip) & set(prune.layer_targets)):
        raise ConfigError(f"[prune]: layer '{both[0]}' is both in 'skip' and in 'layer_targets': keep one")


def _reference(spec: ReferenceModel, task: str) -> TrainableModel:
    def load_data() -> Dataset:
        data = spec.load_data()
        if task not in (AUTO, data.task):
            raise ConfigError(f"reference model '{spec.name}' is a {data.task} model: remove 'task = \"{task}\"'")
        return data

    return TrainableModel(replace(spec, load_data=load_data), digest=spec.name)


def _digest(*parts: Path | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.read_bytes() if isinstance(part, Path) else part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


# --- Keras files --------------------------------------------------------------------------------

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def load_keras_model(path: Path):
    """A Keras model from .keras or legacy HDF5, through the Keras 2 compatibility step (keras2_compat), with
    a layer to prune."""
    # Keras names a file that is no zip archive "not found", and an HDF5 library error for the rest: the
    # file's first bytes say plainly what it is not.
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ConfigError(
            f"model {path} cannot be loaded by Keras: it is not a .keras file (a zip archive, as "
            "model.save('m.keras') writes)"
        )
    if path.suffix != ".keras" and path.read_bytes()[: len(HDF5_SIGNATURE)] != HDF5_SIGNATURE:
        raise ConfigError(
            f"model {path} cannot be loaded by Keras: it is not an HDF5 file (as "
            "model.save('m.h5') writes); a Keras 3 model is saved as .keras"
        )
    import keras

    from harness.prune.masks import prunable_layers

    try:
        model = keras.models.load_model(path, compile=False, custom_objects=keras2_compat())
    except Exception as err:  # Keras raises anything from OSError to TypeError for a file it cannot read
        cause = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"model {path} cannot be loaded by Keras {keras.__version__}: {cause}") from None
    prunable_layers(model)  # before any training: a model with no layer to prune is refused by name
    return model


def keras2_compat() -> dict:
    """Layers that Keras 2 saved with a config Keras 3 rejects for a known, harmless reason, and their mends.

    - DepthwiseConv2D: Keras 2 (TF 2.3-2.15) wrote `groups: 1` into every
      depthwise layer's config, and Keras 3 refuses the unknown key
      ("Unrecognized keyword arguments passed to DepthwiseConv2D:
      {'groups': 1}"). A depthwise convolution has one group per input
      channel whatever that key says, so it is dropped; any other value is
      refused with the cause.
    """
    import keras

    class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
        def __init__(self, *args, groups: int = 1, **kwargs):
            if groups != 1:
                raise ValueError(f"DepthwiseConv2D with groups={groups}: Keras 3 has no such layer")
            super().__init__(*args, **kwargs)

    return {"DepthwiseConv2D": DepthwiseConv2D}


def check_keras_data(model, arrays: dict[str, np.ndarray], data_path: Path, model_name: str, task: str) -> Dataset:
    """The data set checked against a Keras model with one input and one output."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConfigError(
            f"{model_name} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; one of each is supported"
        )
    return check_data(
        arrays,
        data_path,
        model_name,
        tuple(model.inputs[0].shape[1:]),
        tuple(model.outputs[0].shape[1:]),
        task,
        int8_inputs=False,
    )


# --- the data set -------------------------------------------------------------------------------


def load_npz(path: Path, needed: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The needed arrays (and the optional ones present) of an .npz, or one error naming what is wrong."""
    if not path.is_file():
        raise ConfigError(f"data set {path} does not exist")
    if not zipfile.is_zipfile(path):  # np.load would take an .npy as one array, and a text file for a pickle
        raise ConfigError(
            f"data set {path} is not an .npz (numpy's zip archive of named arrays); write it with "
            "numpy.savez(path, x_test=..., y_test=...)"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [key for key in needed if key not in npz]
            if missing:
                raise ConfigError(
                    f"data set {path} lacks {', '.join(missing)} (needs {', '.join(needed)}; "
                    "README: 'Your own model and data')"
                )
            return {key: npz[key] for key in (*needed, *OPTIONAL_KEYS) if key in npz}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(
            f"data set {path} is not a readable .npz ({str(err).splitlines()[0]}); write it with "
            "numpy.savez(path, x_test=..., y_test=...)"
        ) from None


def check_data(  # noqa: PLR0913 (the data and everything its checks compare it with, each named in the errors)
    arrays: dict[str, np.ndarray],
    path: Path,
    model_name: str,
    input_shape: tuple[int, ...],
    output_shape: tuple[int, ...],
    task: str,
    int8_inputs: bool,
) -> Dataset:
    """The arrays as a Dataset for a model of these input and output shapes (one sample, no batch)."""
    where = f"data set {path}"
    splits = [split for split in ("train", "test") if f"x_{split}" in arrays]
    for split in splits:
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim == 0 or y.ndim == 0:
            raise ConfigError(
                f"{where}: x_{split} and y_{split} must hold one row per sample; got shapes {x.shape} and {y.shape}"
            )
        if len(x) == 0:
            raise ConfigError(f"{where}: x_{split} holds no samples")
        if len(x) != len(y):
            raise ConfigError(f"{where}: x_{split} has {len(x)} samples but y_{split} has {len(y)}")
        if tuple(x.shape[1:]) != tuple(input_shape):
            raise ConfigError(
                f"{where}: x_{split} samples of shape {tuple(x.shape[1:])} do not fit {model_name}, "
                f"whose input is {tuple(input_shape)}"
            )
        _check_numbers(x, f"{where}: x_{split}", int8_ok=int8_inputs and split == "test")
    try:
        task = infer_task(arrays["y_test"], output_shape, task)
    except TaskError as err:
        raise ConfigError(f'{where}: y_test: {err}; set task = "classification" or "reconstruction"') from None
    for split in splits:
        arrays[f"y_{split}"] = _check_targets(
            arrays[f"y_{split}"], task, output_shape, f"{where}: y_{split}", model_name
        )
    anomaly = arrays.get("anomaly_test")
    if anomaly is not None:
        if task != RECONSTRUCTION:
            raise ConfigError(f"{where}: anomaly_test scores a reconstruction task, but this is {task}: remove it")
        if anomaly.shape != (len(arrays["x_test"]),) or not np.isin(anomaly, (0, 1)).all():
            raise ConfigError(
                f"{where}: anomaly_test must hold 0 or 1 per test sample, shape "
                f"({len(arrays['x_test'])},); got shape {anomaly.shape}"
            )
    empty = np.zeros((0, *input_shape), np.float32)
    x_test = arrays["x_test"]
    return Dataset(
        arrays.get("x_train", empty).astype(np.float32),
        arrays.get("y_train", np.zeros(0, np.int64)),
        x_test if x_test.dtype == np.int8 else x_test.astype(np.float32),
        arrays["y_test"],
        source=str(path),
        anomaly_test=None if anomaly is None else anomaly.astype(np.int64),
        task=task,
    )


def _check_numbers(x: np.ndarray, what: str, int8_ok: bool) -> None:
    if x.dtype == np.int8 and int8_ok:
        return
    if not np.issubdtype(x.dtype, np.floating) and not np.issubdtype(x.dtype, np.integer):
        raise ConfigError(f"{what} is of type {x.dtype}; give numbers (float, or int8 already quantized)")
    if x.dtype == np.int8:
        raise ConfigError(f"{what} is int8: a Keras model is trained and converted from float inputs; give floats")
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        raise ConfigError(f"{what} holds {int(np.sum(~np.isfinite(x)))} NaN or infinite values")


def _check_targets(y: np.ndarray, task: str, output_shape: tuple[int, ...], what: str, model_name: str) -> np.ndarray:
    if task == RECONSTRUCTION:
        if tuple(y.shape[1:]) != tuple(output_shape):
            raise ConfigError(
                f"{what}: reconstruction targets of shape {tuple(y.shape[1:])} do not fit "
                f"{model_name}, whose output is {tuple(output_shape)}"
            )
        _check_numbers(y, what, int8_ok=False)
        return y.astype(np.float32)
    classes = int(np.prod(output_shape))
    if y.ndim == 2 and y.shape[1] == classes and infer_task(y, output_shape) == CLASSIFICATION:
        y = y.argmax(axis=1)  # one-hot rows
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.number) or not np.array_equal(y, np.round(y)):
        raise ConfigError(
            f"{what} must hold one class number per sample, shape (n,) (or one-hot rows); "
            f"got shape {y.shape}" + ("" if y.ndim != 1 else " with fractional values")
        )
    if y.min() < 0 or y.max() >= classes:
        raise ConfigError(
            f"{what} holds labels {int(y.min())}..{int(y.max())}, but {model_name} has {classes} "
            f"outputs (classes 0..{classes - 1})"
        )
    return y.astype(np.int64)


__all__ = [
    "TrainableModel",
    "TfliteModel",
    "resolve_model",
    "load_keras_model",
    "keras2_compat",
    "check_data",
    "check_keras_data",
    "load_npz",
    "CLASSIFICATION",
    "RECONSTRUCTION",
]
