"""scikit-learn's 8x8 handwritten digits (1797 images that ship inside the wheel): a CNN, an MLP and a
depthwise-separable CNN in the shape of a keyword-spotting model."""

from __future__ import annotations

import numpy as np

from . import Dataset, ReferenceModel, register_model, softmax_classifier

TEST_SAMPLES = 360


def load_digits_dataset() -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]  # pixel values are 0..16
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=TEST_SAMPLES, random_state=0, stratify=y)
    return Dataset(x_train, y_train, x_test, y_test, source="sklearn.datasets.load_digits (8x8, 10 classes)")


def _image_input(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    # batch_size=1: a dynamic batch would add SHAPE/STRIDED_SLICE/PACK ops to the .tflite.
    return keras.Input(shape=(8, 8, 1), batch_size=1, name="image")


def build_digits_cnn(seed: int):
    import keras

    layers = keras.layers
    inputs = _image_input(seed)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="fc1")(x)
    x = layers.Dense(10, name="fc2")(x)
    outputs = layers.Softmax(name="softmax")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def build_digits_mlp(seed: int):
    import keras

    layers = keras.layers
    inputs = _image_input(seed)
    x = layers.Flatten(name="flatten")(inputs)
    x = layers.Dense(128, activation="relu", name="fc1")(x)
    x = layers.Dense(64, activation="relu", name="fc2")(x)
    x = layers.Dense(10, name="fc3")(x)
    outputs = layers.Softmax(name="softmax")(x)
    return keras.Model(inputs, outputs, name="digits_mlp")


def build_digits_dscnn(seed: int):
    """MLPerf Tiny's keyword-spotting DS-CNN, scaled to 8x8 inputs: a conv, then depthwise 3x3 + pointwise
    1x1 blocks with batch norm (folded into the convolutions on conversion), average pool, dense."""
    import keras

    layers = keras.layers
    inputs = _image_input(seed)
    x = layers.Conv2D(32, 3, padding="same", use_bias=False, name="conv1")(inputs)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    for block in (1, 2, 3):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw{block}")(x)
        x = layers.BatchNormalization(name=f"dw{block}_bn")(x)
        x = layers.ReLU(name=f"dw{block}_relu")(x)
        x = layers.Conv2D(32, 1, use_bias=False, name=f"pw{block}")(x)
        x = layers.BatchNormalization(name=f"pw{block}_bn")(x)
        x = layers.ReLU(name=f"pw{block}_relu")(x)
    return softmax_classifier(inputs, layers.AveragePooling2D(8, name="pool")(x), "digits_dscnn")


register_model(
    ReferenceModel(
        name="digits_cnn",
        description="2x Conv2D(3x3) + MaxPool, Dense 64, Dense 10 on 8x8 digits",
        build=build_digits_cnn,
        load_data=load_digits_dataset,
    )
)
register_model(
    ReferenceModel(
        name="digits_mlp",
        description="MLP 64-128-64-10 on 8x8 digits",
        build=build_digits_mlp,
        load_data=load_digits_dataset,
    )
)
register_model(
    ReferenceModel(
        name="digits_dscnn",
        description="keyword-spotting-shaped DS-CNN (Conv2D, 3x depthwise + pointwise, average pool, Dense) "
        "on 8x8 digits (no speech data ships in a package)",
        build=build_digits_dscnn,
        load_data=load_digits_dataset,
    )
)
