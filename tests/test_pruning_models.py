"""Where models come from: the reference models, a user's .keras with an .npz data set, an int8 .tflite;
and the clear errors for input that does not fit."""

import numpy as np
import pytest

from conftest import run_harness
from harness.config import ConfigError, load_config
from harness.model_source import TfliteModel, TrainableModel, resolve_model
from harness.models import REFERENCE_MODELS


@pytest.mark.parametrize("name", ["digits_cnn", "digits_mlp", "digits_dscnn", "mnist1d_cnn"])
def test_reference_model_fits_its_data_converts_and_compiles(name, tmp_path):
    from harness.compiler import compile_tflite
    from harness.model_source import check_keras_data
    from harness.quantize import to_int8_tflite

    spec = REFERENCE_MODELS[name]
    data, model = spec.load_data(), spec.build(0)
    arrays = {"x_train": data.x_train, "y_train": data.y_train, "x_test": data.x_test, "y_test": data.y_test}
    assert check_keras_data(model, arrays, name, name, "auto").task == "classification"
    assert len(data.x_test) >= 300 and len(np.unique(data.y_train)) == 10
    compiled = compile_tflite(to_int8_tflite(model, data.x_train[:20]), tmp_path, kernel="csr")
    assert compiled.layers


@pytest.fixture(scope="module")
def user_files(tmp_path_factory):
    """A small user model saved as .keras, the digits as .npz, and the model converted to int8 .tflite."""
    import keras

    from harness.quantize import to_int8_tflite

    out = tmp_path_factory.mktemp("user")
    data = REFERENCE_MODELS["digits_cnn"].load_data()
    np.savez(out / "digits.npz", x_train=data.x_train, y_train=data.y_train, x_test=data.x_test, y_test=data.y_test)
    inputs = keras.Input((8, 8, 1), batch_size=1)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(x), name="user_cnn")  # logits, no softmax
    model.save(out / "user.keras")
    (out / "user.tflite").write_bytes(to_int8_tflite(model, data.x_train[:20]))
    return out


def quick_config(tmp_path, model, data, methods='["magnitude/gradual"]'):
    config = tmp_path / "user.toml"
    config.write_text(
        f'[sweep]\nmodel = "{model}"\ndata = "{data}"\ntargets = [0.0, 0.8]\n'
        f"[prune]\nmethods = {methods}\ndense_epochs = 5\nfinetune_epochs = 4\n"
    )
    return load_config(config)


def test_user_keras_model_is_trained_pruned_and_converted(user_files, tmp_path, monkeypatch):
    from harness import cache, prepare

    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path / "cache")
    config = quick_config(
        tmp_path,
        user_files / "user.keras",
        user_files / "digits.npz",
        '["magnitude/gradual", "magnitude/one-shot/2:4"]',
    )
    source = resolve_model(config)
    assert isinstance(source, TrainableModel)
    points = prepare.prepare_models(config, source, progress=lambda _: None)
    assert [(p.method, p.target) for p in points] == [
        ("magnitude/gradual", 0.0),
        ("magnitude/gradual", 0.8),
        ("magnitude/one-shot/2:4", 0.0),
        ("magnitude/one-shot/2:4", 0.5),
    ]
    assert abs(points[1].achieved_sparsity - 0.8) < 1e-3
    assert set(points[1].layer_sparsity) == {"conv", "logits"}
    assert points[0].int8_scores["accuracy"] > 0.8  # trained from logits: the loss saw there is no softmax
    again = prepare.prepare_models(config, source, progress=lambda _: None)
    assert [p.int8_scores for p in again] == [p.int8_scores for p in points]  # from the cache


def test_int8_tflite_is_taken_as_it_is(user_files, tmp_path, monkeypatch):
    from harness import cache, prepare

    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path / "cache")
    config = quick_config(tmp_path, user_files / "user.tflite", user_files / "digits.npz")
    source = resolve_model(config)
    assert isinstance(source, TfliteModel)
    (point,) = prepare.prepare_models(config, source, progress=lambda _: None)
    assert point.method == "none" and point.train_epochs == 0 and point.layer_sparsity == {}


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x_train": np.zeros((4, 8, 8)), "x_test": np.zeros((2, 8, 8))}, "samples of shape (8, 8) do not fit model"),
        ({"y_train": np.full(4, 12)}, "y_train holds labels 12..12, but model"),
        ({"y_test": np.full((2, 3), 0.5)}, "y_test: targets of shape (3,) per sample are neither one class number"),
        (
            {"y_train": np.full(4, 0.5)},
            "y_train must hold one class number per sample, shape (n,) (or one-hot rows); "
            "got shape (4,) with fractional values",
        ),
    ],
)
def test_data_that_does_not_fit_the_model_is_named(user_files, tmp_path, arrays, message):
    data = {
        "x_train": np.zeros((4, 8, 8, 1)),
        "y_train": np.zeros(4),
        "x_test": np.zeros((2, 8, 8, 1)),
        "y_test": np.zeros(2),
        **arrays,
    }
    np.savez(tmp_path / "bad.npz", **data)
    config = quick_config(tmp_path, user_files / "user.keras", tmp_path / "bad.npz")
    with pytest.raises(ConfigError) as err:
        resolve_model(config).spec.build(0)
    assert message in str(err.value)


def test_model_without_prunable_layers_is_one_clear_error(user_files, tmp_path):
    import keras

    inputs = keras.Input((8, 8, 1), batch_size=1)
    model = keras.Model(inputs, keras.layers.Softmax()(keras.layers.Flatten()(inputs)), name="no_weights")
    model.save(tmp_path / "none.keras")
    proc = run_harness(
        "sweep",
        "--model",
        tmp_path / "none.keras",
        "--data",
        user_files / "digits.npz",
        "--boards",
        "host",
        "--results",
        tmp_path / "results",
    )
    assert proc.returncode == 2, proc.stderr
    assert "error: model 'no_weights' has no prunable layers" in proc.stderr
    assert "Traceback" not in proc.stderr
