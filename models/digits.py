"""scikit-learn's 8x8 handwritten digits: 1797 images that ship inside the wheel."""
from __future__ import annotations

import numpy as np

from models import Dataset, ReferenceModel, register_model

TEST_SAMPLES = 360


def load_digits_dataset() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]  # pixel values are 0..16
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SAMPLES, random_state=0, stratify=y)
    return Dataset(x_train, y_train, x_test, y_test, source="sklearn.datasets.load_digits (8x8, 10 classes)")


def build_digits_cnn(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    # batch_size=1: a dynamic batch would add SHAPE/STRIDED_SLICE/PACK ops to the .tflite.
    inputs = keras.Input(shape=(8, 8, 1), batch_size=1, name="image")
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="fc1")(x)
    x = layers.Dense(10, name="fc2")(x)
    outputs = layers.Softmax(name="softmax")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


register_model(ReferenceModel(
    name="digits_cnn",
    description="2x Conv2D(3x3) + MaxPool, Dense 64, Dense 10 on 8x8 digits",
    build=build_digits_cnn,
    load_data=load_digits_dataset,
))
