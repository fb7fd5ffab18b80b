"""Models as users bring them (issue 11): stand-ins built like the published MLPerf Tiny files go through as they are.

Each stand-in (tests/field_models.py) has one property the published files
have and the project's own models did not: a dynamic batch, Keras' default
layer names, BatchNorm folded into Dense and Conv, a Keras 2 `.h5`, an
autoencoder's `y = x`, 1-pixel-wide feature maps. Every test here failed on
the harness before it handled that property.
"""

from __future__ import annotations

import json
import math
import os
import re

import numpy as np
import pandas as pd
import pytest

import field_models
from conftest import run_harness
from harness.config import ConfigError, load_config
from harness.model_source import load_keras_model, resolve_model

pytestmark = pytest.mark.usefixtures("no_leftover_boards")

QUICK = """
[sweep]
targets = [0.0, 0.8]
kernels = ["dense", "csr"]
boards = ["host"]
[prune]
dense_epochs = 6
finetune_epochs = 2
[device]
accuracy_samples = 60
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The stand-ins as files, with their data sets, built in one TensorFlow session."""
    import keras

    out = tmp_path_factory.mktemp("field")
    keras.backend.clear_session()  # default names start afresh, as in the session that wrote a published file
    keras.utils.set_random_seed(0)
    digits = field_models.digits_data()
    cnn = field_models.digits_cnn(keras)
    cnn.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    cnn.fit(digits["x_train"], digits["y_train"], epochs=20, batch_size=32, verbose=0)  # BatchNorm statistics settle
    paths = field_models.save_files(cnn, digits["x_train"], out, "kws_like_ref_model")
    np.savez(out / "digits.npz", **digits)
    np.savez(out / "digits_test.npz", x_test=digits["x_test"], y_test=digits["y_test"])

    autoencoder = field_models.autoencoder(keras)
    autoencoder.save(out / "autoencoder.keras")
    np.savez(out / "anomaly.npz", **field_models.anomaly_data())

    wide = field_models.one_pixel_wide(keras)
    wide.save(out / "wakeword.h5")
    field_models.make_keras2_h5(out / "wakeword.h5")
    np.savez(out / "wakeword.npz", **field_models.wakeword_data())

    float_model = keras.Model(inputs := keras.Input((16,)), keras.layers.Dense(4)(inputs))
    (out / "float.tflite").write_bytes(_float_tflite(float_model))
    (out / "quick.toml").write_text(QUICK)
    return {**paths, "dir": out}


def _float_tflite(model) -> bytes:
    import tensorflow as tf

    from harness.quantize import converter_output_hidden

    with converter_output_hidden():
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def results_of(proc, results_dir) -> tuple[str, pd.DataFrame]:
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = [p for p in results_dir.iterdir() if p.is_dir()]
    return run.name, pd.read_csv(run / "results.csv", keep_default_na=False, na_values=["nan"])


# ---- the published int8 .tflite, as it is --------------------------------------------------------


def test_the_published_tflite_has_a_dynamic_batch_and_shape_arithmetic(files):
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(files["tflite"].read_bytes()), 0)
    signature = model.subgraphs[0].tensors[model.subgraphs[0].inputs[0]].shapeSignature
    codes = {max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes}
    assert list(signature)[0] == -1
    assert schema.BuiltinOperator.SHAPE in codes  # what the stand-in is for: Keras 3's Flatten at batch None


@pytest.mark.parametrize("int8_inputs", [False, True])
def test_published_tflite_runs_unchanged_with_test_data_only(files, tmp_path, int8_inputs):
    data = tmp_path / "test.npz"
    digits = np.load(files["dir"] / "digits_test.npz")
    x_test = digits["x_test"]
    if int8_inputs:  # already quantized with the model's input scale
        from harness.quantize import io_quant_params

        x_test = io_quant_params(files["tflite"].read_bytes())[0].quantize(x_test)
    np.savez(data, x_test=x_test, y_test=digits["y_test"])
    proc = run_harness(
        "sweep",
        "--config",
        files["dir"] / "quick.toml",
        "--model",
        files["tflite"],
        "--data",
        data,
        "--results",
        tmp_path / "results",
    )
    name, frame = results_of(proc, tmp_path / "results")
    assert name.startswith("kws_like_ref_model-")  # named after its model
    assert "the given int8 model as it is" in proc.stdout and "2 sparsity targets" not in proc.stdout
    assert "TensorSpec" not in proc.stdout + proc.stderr
    assert list(frame.kernel) == ["dense", "csr"] and (frame.status == "ok").all()
    assert (frame.output_mismatches == 0).all() and (frame.accuracy_device > 0.5).all()  # chance: 0.1


def test_a_data_set_changed_in_place_is_measured_again_not_taken_from_a_cache(files, tmp_path):
    """Caches are keyed on the data's content, not its path: the same command after the file changed scores
    the new labels (the model cache, the results cache and the run are all new)."""
    data = tmp_path / "test.npz"
    digits = np.load(files["dir"] / "digits_test.npz")
    runs = []
    for number, labels in enumerate((digits["y_test"], (digits["y_test"] + 1) % 10)):  # then: every label wrong
        np.savez(data, x_test=digits["x_test"], y_test=labels)
        results = tmp_path / f"results-{number}"  # a new run each time; the caches are the project's
        proc = run_harness(
            "sweep",
            "--config",
            files["dir"] / "quick.toml",
            "--model",
            files["tflite"],
            "--data",
            data,
            "--kernels",
            "dense",
            "--results",
            results,
        )
        runs.append(results_of(proc, results)[1])
    before, after = runs
    assert before.accuracy_device[0] > 0.5 and after.accuracy_device[0] < 0.1
    assert before.accuracy_int8_host[0] > 0.5 and after.accuracy_int8_host[0] < 0.1  # the import, not cached


def test_a_float_tflite_is_refused_as_float_not_as_dynamic(files, tmp_path):
    proc = run_harness(
        "sweep",
        "--model",
        files["dir"] / "float.tflite",
        "--data",
        files["dir"] / "digits_test.npz",
        "--boards",
        "host",
        "--results",
        tmp_path / "results",
    )
    assert proc.returncode == 2
    assert "is float32, but only int8 models are supported" in proc.stderr
    assert "dynamic" not in proc.stderr and "Traceback" not in proc.stderr


# ---- Keras files of every kind --------------------------------------------------------------------


def test_keras_3_refuses_the_keras_2_h5_and_the_harness_loads_it(files):
    import keras

    with pytest.raises(Exception, match="groups"):
        keras.models.load_model(files["h5"], compile=False)
    names = {kind: [layer.name for layer in load_keras_model(files[kind]).layers] for kind in ("keras", "h5")}
    assert names["keras"] == names["h5"] and "batch_normalization_3" in names["h5"] and "conv2d_1" in names["h5"]


@pytest.mark.parametrize("kind", ["h5", "keras"])
def test_default_names_dynamic_batch_and_folded_batchnorm_prune_and_convert(files, tmp_path, monkeypatch, kind):
    from harness import cache, prepare
    from harness.compiler import read_tflite

    monkeypatch.setattr(cache, "CACHE_DIR", tmp_path / "cache")
    config = load_config(files["dir"] / "quick.toml", model=str(files[kind]), data=str(files["dir"] / "digits.npz"))
    points = prepare.prepare_models(config, resolve_model(config), progress=lambda _: None)
    layers = points[1].layer_sparsity
    assert set(layers) == {"conv2d", "depthwise_conv2d", "conv2d_1", "dense", "dense_1"}
    assert abs(points[1].achieved_sparsity - 0.8) < 1e-3
    graph = read_tflite(points[1].tflite_path.read_bytes())
    assert "SHAPE" not in {op.kind for op in graph.ops} and graph.input.shape[0] == 1  # converted at batch 1
    assert points[1].int8_scores["accuracy"] > 0.5  # chance: 0.1


@pytest.mark.parametrize("verbose", [False, True])
def test_converter_output_of_a_keras_sweep_shows_with_v_only(files, tmp_path, verbose):
    """A Keras model is converted by the sweep (a .tflite is not): its converter prints, on the terminal's
    file descriptors, lines such as 'fully_quantize: 0, inference_type: 6, ...' and the C++ log; only -v shows
    them. Keras' export prints a TensorSpec line per tensor unless told not to: never, -v or not."""
    import keras

    inputs = keras.Input((8, 8, 1))  # batch None: converted through a SavedModel export, as published files are
    model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    rng = np.random.default_rng()  # weights no cache has seen, so this run converts
    model.set_weights([rng.normal(scale=0.1, size=w.shape) for w in model.get_weights()])
    model.save(tmp_path / "fresh.keras")
    # As from a user's shell: other tests set TF_CPP_MIN_LOG_LEVEL in this process, which would hide the C++ log
    # from -v too.
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    proc = run_harness(
        *(["-v"] if verbose else []),
        "sweep",
        "--config",
        files["dir"] / "quick.toml",
        "--model",
        tmp_path / "fresh.keras",
        "--data",
        files["dir"] / "digits.npz",
        "--targets",
        "0",
        "--kernels",
        "dense",
        "--results",
        tmp_path / "results",
        env=env,
    )
    results_of(proc, tmp_path / "results")
    output = proc.stdout + proc.stderr
    assert ("fully_quantize: 0" in output) == verbose
    assert ("Estimated count of arithmetic ops" in output) == verbose
    assert "TensorSpec" not in output


# ---- not only classifiers -------------------------------------------------------------------------


def test_an_autoencoder_is_scored_by_reconstruction_error_and_anomaly_auc(files, tmp_path):
    proc = run_harness(
        "sweep",
        "--config",
        files["dir"] / "quick.toml",
        "--model",
        files["dir"] / "autoencoder.keras",
        "--data",
        files["dir"] / "anomaly.npz",
        "--results",
        tmp_path / "results",
    )
    _, frame = results_of(proc, tmp_path / "results")
    assert (frame.task == "reconstruction").all() and frame.accuracy_device.isna().all()
    assert (frame.output_mismatches == 0).all()
    for _, row in frame.iterrows():
        assert 0 < row.mse_device < 1 and 0 <= row.auc_device <= 1
        # TFLite Micro on the host and the board give the same bytes, so the same scores (on the board's samples).
        assert math.isclose(row.mse_device, row.mse_int8_host, rel_tol=0.2)
    assert "auc" in proc.stdout and "mse" in proc.stdout


# ---- 1-pixel-wide feature maps, on the emulated board ---------------------------------------------


def test_one_pixel_wide_stack_from_a_keras_2_h5_is_bit_exact_on_the_emulated_m4(files, tmp_path):
    proc = run_harness(
        "sweep",
        "--config",
        files["dir"] / "quick.toml",
        "--model",
        files["dir"] / "wakeword.h5",
        "--data",
        files["dir"] / "wakeword.npz",
        "--boards",
        "mps2_an386",
        "--results",
        tmp_path / "results",
    )
    _, frame = results_of(proc, tmp_path / "results")
    assert (frame.status == "ok").all() and (frame.output_mismatches == 0).all()
    assert (frame.latency_unit == "instructions").all()
    layers = json.loads(frame.layer_sparsity.iloc[-1])  # Keras' default names: 3 depthwise, 3 pointwise, 1 dense
    assert len(layers) == 7 and all(re.fullmatch(r"(depthwise_conv2d|conv2d|dense)(_\d+)?", name) for name in layers)


# ---- the data contract: one line per mistake ------------------------------------------------------


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "model, arrays, message",
    [
        ("tflite", {"x_test": np.zeros((4, 8, 8, 1))}, "lacks y_test"),
        ("tflite", {"x_test": np.zeros((4, 8, 8, 1)), "y_test": np.zeros(3)}, "x_test has 4 samples but y_test has 3"),
        (
            "tflite",
            {"x_test": np.full((4, 8, 8, 1), np.nan), "y_test": np.zeros(4)},
            "x_test holds 256 NaN or infinite",
        ),
        ("tflite", {"x_test": np.zeros((0, 8, 8, 1)), "y_test": np.zeros(0)}, "x_test holds no samples"),
        ("tflite", {"x_test": np.zeros((4, 8, 8)), "y_test": np.zeros(4)}, "x_test samples of shape (8, 8) do not fit"),
        ("tflite", {"x_test": np.zeros((4, 8, 8, 1)), "y_test": np.full(4, 42)}, "y_test holds labels 42..42"),
        (
            "tflite",
            {"x_test": np.zeros((4, 8, 8, 1)), "y_test": np.zeros(4), "anomaly_test": np.zeros(4)},
            "anomaly_test scores a reconstruction task, but this is classification",
        ),
        (
            "h5",
            {
                "x_train": np.zeros((4, 8, 8, 1), np.int8),
                "y_train": np.zeros(4),
                "x_test": np.zeros((2, 8, 8, 1)),
                "y_test": np.zeros(2),
            },
            "x_train is int8: a Keras model is trained and converted from float inputs",
        ),
    ],
)
def test_data_that_does_not_fit_is_one_line_naming_file_and_key(files, tmp_path, model, arrays, message):
    data = _npz(tmp_path / "bad.npz", **arrays)
    config = load_config(None, model=str(files[model]), data=str(data))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        resolve_model(config)
    assert str(data) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: (d / "m.keras", "just some text"), "cannot be loaded by Keras"),
        (lambda d: (d / "m.h5", "just some text"), "cannot be loaded by Keras"),
        (lambda d: (d / "m.tflite", None), "not a valid .tflite model"),
    ],
)
def test_unreadable_model_files_are_one_line_and_exit_2(files, tmp_path, make, message):
    path, text = make(tmp_path)
    if text is None:  # a download cut short
        path.write_bytes(files["tflite"].read_bytes()[:5000])
    else:
        path.write_text(text)
    proc = run_harness(
        "sweep",
        "--model",
        path,
        "--data",
        files["dir"] / "digits.npz",
        "--boards",
        "host",
        "--results",
        tmp_path / "results",
    )
    assert proc.returncode == 2 and message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_text_file_as_data_set_is_one_line(files, tmp_path):
    (tmp_path / "data.npz").write_text("x,y\n1,2\n")
    config = load_config(None, model=str(files["tflite"]), data=str(tmp_path / "data.npz"))
    with pytest.raises(
        ConfigError,
        match=r"data\.npz is not an \.npz \(numpy.s zip archive of named arrays\); "
        r"write it with numpy\.savez",
    ):
        resolve_model(config)
