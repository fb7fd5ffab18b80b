"""MNIST-1D (Greydanus 2020): 1-D signals of 40 samples, 10 classes, generated locally by the mnist1d
package from its templates (its download path is never used)."""

from __future__ import annotations

import numpy as np

from . import Dataset, ReferenceModel, register_model, softmax_classifier


def load_mnist1d_dataset() -> Dataset:
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())  # 4000 train, 1000 test; the package's fixed seed
    x_train, x_test = (data[k].astype(np.float32)[..., np.newaxis] for k in ("x", "x_test"))
    return Dataset(
        x_train,
        data["y"].astype(np.int64),
        x_test,
        data["y_test"].astype(np.int64),
        source="mnist1d.data.make_dataset (40 samples x 1 channel, 10 classes)",
    )


def build_mnist1d_cnn(seed: int):
    """Conv1D becomes RESHAPE + CONV_2D on conversion, so the compiler runs it with its 2-D kernels."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = keras.layers
    inputs = keras.Input(shape=(40, 1), batch_size=1, name="signal")
    x = inputs
    for block in (1, 2, 3):
        x = layers.Conv1D(32, 5, padding="same", activation="relu", name=f"conv{block}")(x)
        x = layers.MaxPooling1D(2, name=f"pool{block}")(x)
    return softmax_classifier(inputs, x, "mnist1d_cnn")


register_model(
    ReferenceModel(
        name="mnist1d_cnn",
        description="3x Conv1D(5) + MaxPool, Dense 10 on MNIST-1D signals (40 samples)",
        build=build_mnist1d_cnn,
        load_data=load_mnist1d_dataset,
    )
)
