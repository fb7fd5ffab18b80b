"""Stand-ins for the model files users bring: built the way the published MLPerf Tiny files are built.

Published files differ from the models this project trains in ways that
matter to the harness (../shared/notes/field-models.md):
- the input's batch is None, so every tensor's shape signature starts with
  -1 and a Keras 3 Flatten converts to SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE;
- layers have Keras' default names (`conv2d`, `conv2d_1`, `batch_normalization_3`),
  which collide with the suffixes the converter adds;
- every Conv/Dense is followed by BatchNormalization, which the converter
  folds into a weight tensor named after the BatchNorm;
- the Keras files are legacy HDF5 written by Keras 2, whose
  DepthwiseConv2D config carries `groups: 1`, which Keras 3 refuses.

`as_published` turns any functional Keras model into that form; `save_files`
writes the three files a user would have: `.keras`, a Keras-2-style `.h5` and
the int8 `.tflite` converted the way the published ones were (dynamic batch).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def as_published(model):
    """A copy with batch None and Keras' default layer names, and the same weights."""
    import keras

    def default_named(layer):
        config = layer.get_config()
        config.pop("name")
        return type(layer).from_config(config)

    inputs = keras.Input(shape=model.inputs[0].shape[1:])
    copy = keras.models.clone_model(model, input_tensors=inputs, clone_function=default_named)
    copy.set_weights(model.get_weights())
    return copy


def save_files(model, x_representative: np.ndarray, directory: Path, stem: str) -> dict[str, Path]:
    """The model as `.keras`, as a Keras-2-style `.h5`, and as the published int8 `.tflite`."""
    paths = {
        kind: directory / f"{stem}{suffix}"
        for kind, suffix in (("keras", ".keras"), ("h5", ".h5"), ("tflite", ".tflite"))
    }
    model.save(paths["keras"])
    model.save(paths["h5"])
    make_keras2_h5(paths["h5"])
    paths["tflite"].write_bytes(published_tflite(model, x_representative))
    return paths


def make_keras2_h5(path: Path) -> None:
    """Give an .h5 written by Keras 3 what Keras 2 (TF 2.3-2.15) wrote: its version, and `groups: 1` in every
    DepthwiseConv2D config (the key Keras 3 rejects)."""
    import h5py

    with h5py.File(path, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "DepthwiseConv2D":
                layer["config"]["groups"] = 1
        h5.attrs["model_config"] = json.dumps(config)
        h5.attrs["keras_version"] = "2.11.0"


def published_tflite(model, x_representative: np.ndarray) -> bytes:
    """Converted as the MLPerf Tiny files were: from the Keras model as it is (batch -1), int8 in and out."""
    import tensorflow as tf

    from harness.quantize import converter_output_hidden

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [sample[np.newaxis].astype(np.float32)] for sample in x_representative[:100]
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    with converter_output_hidden():
        return converter.convert()


def calibrate_batchnorm(model, x: np.ndarray, seed: int = 5) -> None:
    """BatchNorm layers with a random scale and offset near 1 and 0 and the statistics of their inputs on x,
    as training would leave them: untouched, the activations of an untrained deep network shrink layer by
    layer until the softmax scale is too small for TFLite Micro. Momentum is restored after the one
    training-mode pass, so a model trained later (from a saved file) keeps Keras' default."""
    import keras

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(rng.uniform(0.5, 1.5, layer.gamma.shape).astype(np.float32))
            layer.beta.assign(rng.normal(0, 0.2, layer.beta.shape).astype(np.float32))
            layer.momentum = 0.0
    model(x, training=True)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.99


# ---- small models with each property, for the tests ---------------------------------------------


def digits_cnn(keras):
    """Conv, depthwise, pointwise and Dense layers, each with BatchNorm, on the 8x8 digits; default names."""
    layers = keras.layers
    inputs = keras.Input((8, 8, 1))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(8, 3, padding="same")(inputs)))
    x = layers.ReLU()(layers.BatchNormalization()(layers.DepthwiseConv2D(3, padding="same")(x)))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(16, 1)(x)))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Dense(32)(layers.Flatten()(x))))
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))


def autoencoder(keras):
    """An FC autoencoder like MLPerf Tiny's: Dense + BatchNorm + ReLU blocks, 64 -> 8 -> 64."""
    layers = keras.layers
    inputs = keras.Input((64,))
    x = inputs
    for units in (32, 8, 32):
        x = layers.ReLU()(layers.BatchNormalization()(layers.Dense(units)(x)))
    return keras.Model(inputs, layers.Dense(64)(x))


def one_pixel_wide(keras):
    """A streaming wake-word-shaped stack: depthwise (k x 1) and pointwise convolutions on [30, 1, 16]."""
    layers = keras.layers
    inputs = keras.Input((30, 1, 16))
    x = inputs
    for length, filters in ((3, 24), (5, 16), (10, 16)):
        x = layers.DepthwiseConv2D((length, 1), use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(filters, 1, use_bias=False)(x)))
    return keras.Model(inputs, layers.Dense(3)(layers.Flatten()(x)))


def digits_data() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    return {"x_train": x[:1400], "y_train": digits.target[:1400], "x_test": x[1400:], "y_test": digits.target[1400:]}


def anomaly_data() -> dict[str, np.ndarray]:
    """Digits as 64 values: the autoencoder learns digits 0-4; 5-9 in the test set are the anomalies."""
    data = digits_data()
    flat = {key: value.reshape(len(value), -1) for key, value in data.items() if key.startswith("x")}
    normal = flat["x_train"][data["y_train"] < 5]
    return {
        "x_train": normal,
        "y_train": normal,
        "x_test": flat["x_test"],
        "y_test": flat["x_test"],
        "anomaly_test": (data["y_test"] >= 5).astype(np.int64),
    }


def wakeword_data(seed: int = 0) -> dict[str, np.ndarray]:
    """3 classes of smooth [30, 1, 16] templates plus noise."""
    rng = np.random.default_rng(seed)
    templates = np.repeat(rng.normal(0, 1, (3, 6, 1, 16)), 5, axis=1)
    labels = np.arange(420) % 3
    x = (templates[labels] + rng.normal(0, 0.5, (420, 30, 1, 16))).astype(np.float32)
    return {"x_train": x[:300], "y_train": labels[:300], "x_test": x[300:], "y_test": labels[300:]}
