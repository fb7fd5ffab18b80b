"""int8 .tflite models for the compiler tests, converted once and cached on disk.

Each spec builds a Keras 3 model around the ops under test, zeroes its
smallest weights to a target sparsity and converts it with TFLiteConverter
(representative dataset, int8 input and output). The four MLPerf Tiny
reference architectures (models/tinyml.py) come untrained, with their
BatchNormalization statistics calibrated on their synthetic data the way
training would leave them, so activations keep realistic ranges. TensorFlow
takes 5-12 s to import, so it is imported only when some model is missing
from the cache, and then every missing model is built in that one session.
The cache key covers this file, the models' sources and the TensorFlow
version.
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np

from field_models import calibrate_batchnorm

REPO = Path(__file__).resolve().parents[1]
CACHE_DIR = Path(os.environ.get("HARNESS_TEST_CACHE", Path(tempfile.gettempdir()) / "harness-test-cache")) / "tflite"
RANDOM_SAMPLES = 300
REFERENCE_SAMPLES = 24  # MobileNet takes 7.5 M MACs per inference: a few test inputs suffice
REPRESENTATIVE_SAMPLES = 100
REFERENCE_SPARSITY = 0.8


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable  # keras module -> untrained keras.Model
    sparsity: float = 0.0  # fraction of each kernel's weights zeroed, smallest magnitude first
    empty_channel: bool = False  # also zero output channel 0 of every kernel (an empty CSR row)
    per_channel: bool = True  # False: per-tensor weight scales
    quantize: str = "int8"  # "int8"; "float" and "int16x8" make models the compiler must refuse
    digits: bool = False  # train on scikit-learn's digits first; test on its images
    reference: bool = False  # the models/ registry entry of this name, on its synthetic data set


def _digits_cnn(keras):
    from harness.models.digits import build_digits_cnn

    return build_digits_cnn(seed=0)


def _registered(name: str) -> Callable:
    def build(keras):
        from harness.models import REFERENCE_MODELS

        return REFERENCE_MODELS[name].build(0)

    return build


def _conv_geometry(keras):
    layers = keras.layers
    inputs = keras.Input((11, 9, 3), batch_size=1)
    x = layers.Conv2D(8, (3, 2), strides=2, padding="valid", activation="relu6")(inputs)
    x = layers.Conv2D(6, 3, padding="same", dilation_rate=2, activation="relu")(x)
    x = layers.Conv2D(5, (2, 3), strides=(1, 2), padding="same")(x)
    x = layers.Conv2D(4, 1)(x)
    return keras.Model(inputs, x)


def _depthwise(keras):
    layers = keras.layers
    inputs = keras.Input((10, 10, 4), batch_size=1)
    x = layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same", activation="relu")(inputs)
    x = layers.DepthwiseConv2D(3, strides=2, padding="valid", activation="relu6")(x)
    x = layers.DepthwiseConv2D(3, dilation_rate=2, padding="same")(x)
    return keras.Model(inputs, x)


def _pooling(keras):
    layers = keras.layers
    inputs = keras.Input((9, 9, 3), batch_size=1)
    x = layers.AveragePooling2D(3, strides=2, padding="same")(inputs)
    x = layers.MaxPooling2D(2, strides=1, padding="same")(x)
    x = layers.AveragePooling2D(2, padding="valid")(x)
    x = layers.MaxPooling2D(2, strides=1, padding="valid")(x)
    return keras.Model(inputs, x)


def _pooling_wide(keras):
    # AVERAGE_POOL_2D over 7 channels (4 a word on DSP cores, 3 one by one): windows of 256 values (the most the
    # packed path sums), of 289 (past it), of 9, and partial windows at a SAME border; all four side by side.
    layers = keras.layers
    inputs = keras.Input((17, 17, 7), batch_size=1)
    windows = [
        layers.AveragePooling2D(16, strides=1)(inputs),
        layers.AveragePooling2D(17)(inputs),
        layers.AveragePooling2D(3, strides=8)(inputs),
        layers.AveragePooling2D(9)(layers.AveragePooling2D(3, strides=2, padding="same")(inputs)),
    ]
    return keras.Model(inputs, layers.Concatenate()([layers.Flatten()(w) for w in windows]))


def _mlp_wide(keras):
    layers = keras.layers
    inputs = keras.Input((300,), batch_size=1)  # rows longer than 256: 16-bit column indices
    x = layers.Dense(40, activation="relu")(inputs)
    x = layers.Dense(24, activation="relu6")(x)
    x = layers.Dense(10)(x)
    return keras.Model(inputs, layers.Softmax()(x))


def _dense_on_rows(keras):
    layers = keras.layers
    inputs = keras.Input((4, 4, 2), batch_size=1)
    x = layers.Reshape((8, 4))(inputs)
    x = layers.Dense(6, activation="relu")(x)  # FULLY_CONNECTED over 8 rows
    x = layers.Flatten()(x)
    return keras.Model(inputs, layers.Dense(3)(x))


def _softmax_wide(keras):
    layers = keras.layers
    inputs = keras.Input((32,), batch_size=1)
    return keras.Model(inputs, layers.Softmax()(layers.Dense(200)(inputs)))


def _tensor_ops(keras):
    # ADD (same shape, fused ReLU, and broadcast), CONCATENATION on two axes, PAD, MEAN with and
    # without keep_dims, MUL (broadcast and same shape), LOGISTIC.
    layers = keras.layers
    inputs = keras.Input((6, 6, 4), batch_size=1)
    a = layers.Conv2D(4, 3, padding="same")(inputs)
    x = layers.ReLU()(layers.Add()([a, inputs]))
    x = layers.Concatenate(axis=1)([x, a])
    x = layers.ZeroPadding2D(((1, 0), (2, 1)))(layers.Rescaling(1.5, offset=0.25)(x))  # MUL, ADD by constants
    x = layers.Concatenate()([layers.Conv2D(3, 1)(x), layers.Conv2D(5, 1, activation="relu")(x)])
    mean = layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = layers.Add()([layers.Multiply()([x, mean]), mean])
    x = layers.GlobalAveragePooling2D()(layers.Multiply()([x, x]))
    return keras.Model(inputs, layers.Dense(3, activation="sigmoid")(x))


def _one_dense(keras):
    inputs = keras.Input((1,), batch_size=1)
    return keras.Model(inputs, keras.layers.Dense(16)(inputs))


def _one_depthwise(keras):
    inputs = keras.Input((6, 6, 4), batch_size=1)
    return keras.Model(inputs, keras.layers.DepthwiseConv2D(3, padding="same")(inputs))


def _one_conv(keras):
    inputs = keras.Input((1, 1, 1), batch_size=1)
    return keras.Model(inputs, keras.layers.Conv2D(16, 1)(inputs))


def _tiny_mlp(keras):
    inputs = keras.Input((16,), batch_size=1)
    return keras.Model(inputs, keras.layers.Dense(4)(inputs))


def _tanh_mlp(keras):
    inputs = keras.Input((16,), batch_size=1)
    return keras.Model(inputs, keras.layers.Dense(4, activation="tanh")(inputs))


def _published_style_cnn(keras):
    """As the published MLPerf Tiny files are built: batch None (-1 in every shape signature, and a Flatten
    that converts to SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE), Keras' default layer names, BatchNorm after
    each convolution and hidden Dense layer (folded by the converter)."""
    layers = keras.layers
    inputs = keras.Input((8, 8, 2))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(8, 3, padding="same")(inputs)))
    x = layers.ReLU()(layers.BatchNormalization()(layers.DepthwiseConv2D(3, padding="same")(x)))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(12, 1)(x)))
    x = layers.ReLU()(layers.BatchNormalization()(layers.Dense(16)(layers.Flatten()(x))))
    return keras.Model(inputs, layers.Dense(10, activation="softmax")(x))


def activation_clamps(keras):
    """Every optimized kernel family under a fused activation narrower than int8, as a model whose ReLU and ReLU6
    branches are concatenated with linear ones (Inception/DenseNet style): the converter gives a concatenation's
    inputs its output's scale and zero point, which then hold negative values, so ReLU's clamp starts above -128
    and ReLU6's below 127 once some branch reaches past 6. Conv 3x3 on 5 channels (the tile gather's bytewise
    tail) and on 16, conv 1x1, depthwise 3x3, FULLY_CONNECTED on 160 inputs and on 8."""
    keras.utils.set_random_seed(0)  # the ranges above depend on the initial weights: the same on every rebuild
    layers = keras.layers
    inputs = keras.Input((8, 8, 5), batch_size=1)
    linear = layers.Conv2D(4, 1)(inputs)
    x = layers.Concatenate()([layers.Conv2D(7, 3, padding="same", activation="relu6")(inputs), inputs, linear])
    x = layers.Concatenate()([layers.Conv2D(8, 3, padding="same", activation="relu6")(x), layers.Conv2D(4, 1)(x)])
    x = layers.Concatenate()([layers.Conv2D(8, 1, activation="relu")(x), x])
    x = layers.Concatenate()([layers.ReLU(max_value=6.0)(layers.DepthwiseConv2D(3, padding="same")(x)), x])
    x = layers.Flatten()(layers.AveragePooling2D(4)(x))
    wide = layers.Dense(8, activation="relu6")(x)
    narrow = layers.Dense(12, activation="relu6")(wide)
    return keras.Model(inputs, layers.Concatenate()([narrow, wide, layers.Dense(8)(x)]))


def _float_dynamic_batch(keras):
    inputs = keras.Input((16,))  # as a published float file: batch -1 in the signature
    return keras.Model(inputs, keras.layers.Dense(4)(inputs))


def _dynamic_time(keras):
    inputs = keras.Input((None, 8), batch_size=1)
    return keras.Model(inputs, keras.layers.Dense(4)(inputs))


SPECS = {
    spec.name: spec
    for spec in [
        ModelSpec("digits_cnn_s0", _digits_cnn, digits=True),
        ModelSpec("digits_cnn_s50", _digits_cnn, sparsity=0.5, digits=True),
        ModelSpec("digits_cnn_s90", _digits_cnn, sparsity=0.9, digits=True),
        ModelSpec("conv_geometry", _conv_geometry, sparsity=0.6, empty_channel=True),
        ModelSpec("conv_per_tensor", _conv_geometry, sparsity=0.5, per_channel=False),
        ModelSpec("depthwise", _depthwise, sparsity=0.5, empty_channel=True),
        ModelSpec("pooling", _pooling),
        ModelSpec("pooling_wide", _pooling_wide),
        ModelSpec("mlp_wide", _mlp_wide, sparsity=0.7, empty_channel=True),
        ModelSpec("mlp_per_tensor", _mlp_wide, sparsity=0.3, per_channel=False),
        ModelSpec("dense_on_rows", _dense_on_rows, sparsity=0.5),
        ModelSpec("softmax_wide", _softmax_wide),
        ModelSpec("tensor_ops", _tensor_ops, sparsity=0.3),
        ModelSpec("one_dense", _one_dense),  # rounding probes: see test_compiler
        ModelSpec("one_dense_per_tensor", _one_dense, per_channel=False),
        ModelSpec("one_conv", _one_conv),
        ModelSpec("one_depthwise", _one_depthwise),  # input and output of one size: may they overlap?
        *(
            ModelSpec(name, _registered(name), sparsity=REFERENCE_SPARSITY, reference=True)
            for name in ("kws_ds_cnn", "ic_resnet8", "vww_mobilenet_v1", "ad_fc_autoencoder", "streaming_wakeword")
        ),
        ModelSpec("dynamic_batch", _published_style_cnn, sparsity=0.5),
        ModelSpec("float_model", _float_dynamic_batch, quantize="float"),
        ModelSpec("int16_model", _tiny_mlp, quantize="int16x8"),
        ModelSpec("tanh_model", _tanh_mlp),
        ModelSpec("dynamic_time", _dynamic_time),
    ]
}
ERROR_MODELS = ("float_model", "int16_model", "tanh_model", "dynamic_time")
RUNNABLE_MODELS = tuple(name for name in SPECS if name not in ERROR_MODELS)
REFERENCE_MODELS = tuple(name for name, spec in SPECS.items() if spec.reference)


def load_models() -> dict[str, bytes]:
    """Every spec's .tflite bytes, building those missing from the cache in one TensorFlow session."""
    paths = {name: CACHE_DIR / f"{name}-{_cache_key(name)}.tflite" for name in SPECS}
    missing = [name for name, path in paths.items() if not path.exists()]
    if missing:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        for name, tflite in _build(missing).items():
            tmp = paths[name].with_suffix(".tmp")
            tmp.write_bytes(tflite)
            tmp.replace(paths[name])  # atomic: a crash never leaves half a model in the cache
    return {name: path.read_bytes() for name, path in paths.items()}


def sample_inputs(name: str, shape: tuple[int, ...], scale: float, zero_point: int) -> np.ndarray:
    """int8 test inputs for a model input of this shape and quantization, one flat sample per row.

    Digits models get every scikit-learn digits image, reference models the
    first test samples of their data set; the others uniform random bytes.
    """
    if SPECS[name].digits or SPECS[name].reference:
        samples = _digits_images() if SPECS[name].digits else reference_data(name).x_test[:REFERENCE_SAMPLES]
        samples = samples.reshape(-1, int(np.prod(shape)))
        return np.clip(np.round(samples / scale) + zero_point, -128, 127).astype(np.int8)
    return np.random.default_rng(1).integers(-128, 128, (RANDOM_SAMPLES, int(np.prod(shape))), dtype=np.int8)


def _cache_key(name: str) -> str:
    digest = hashlib.sha256(name.encode() + version("tensorflow-cpu").encode())
    for source in (Path(__file__), REPO / "models" / "digits.py", REPO / "models" / "tinyml.py"):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:12]


@functools.cache
def reference_data(name: str):
    """The synthetic data set (models.Dataset) of a reference model."""
    from harness.models import REFERENCE_MODELS

    return REFERENCE_MODELS[name].load_data()


def _digits_images() -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().images / 16.0).astype(np.float32)[..., np.newaxis]  # pixels are 0..16


def _build(names: list[str]) -> dict[str, bytes]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    digits_weights = None
    built = {}
    for name in names:
        spec = SPECS[name]
        model = spec.build(keras)
        if spec.digits:
            if digits_weights is None:
                digits_weights = _train_digits(model)
            model.set_weights(digits_weights)
            representative = _digits_images()[:REPRESENTATIVE_SAMPLES]
        elif spec.reference:
            representative = reference_data(name).x_train[:REPRESENTATIVE_SAMPLES]
        else:
            _randomize_biases(model)
            representative = (
                np.random.default_rng(2)
                .uniform(-1, 1, (REPRESENTATIVE_SAMPLES, *(d or 4 for d in model.input_shape[1:])))
                .astype(np.float32)
            )
        _prune(model, spec)
        if spec.reference:
            calibrate_batchnorm(model, representative)
        built[name] = _convert(tf, model, spec, representative)
    return built


def _train_digits(model) -> list:
    from sklearn.datasets import load_digits

    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(_digits_images(), load_digits().target, epochs=8, batch_size=32, verbose=0)
    return model.get_weights()


def _randomize_biases(model) -> None:
    # Keras starts biases at zero; random ones exercise the bias path.
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if getattr(layer, "use_bias", False):
            layer.bias.assign(rng.normal(0, 0.2, layer.bias.shape).astype(np.float32))


def _kernel_name(layer) -> str | None:
    for attr in ("depthwise_kernel", "kernel"):
        if hasattr(layer, attr):
            return attr
    return None


def _prune(model, spec: ModelSpec) -> None:
    for layer in model.layers:
        attr = _kernel_name(layer)
        if attr is None:
            continue
        weights = np.array(getattr(layer, attr).numpy())
        if spec.sparsity:
            threshold = np.quantile(np.abs(weights), spec.sparsity)
            weights[np.abs(weights) <= threshold] = 0.0
        if spec.empty_channel:
            # Output channel 0: the last axis of a Keras kernel, but a depthwise kernel is
            # [KH, KW, C_IN, multiplier] and its output channel 0 is input channel 0's first.
            if attr == "depthwise_kernel":
                weights[..., 0, 0] = 0.0
            else:
                weights[..., 0] = 0.0
        getattr(layer, attr).assign(weights)


def _convert(tf, model, spec: ModelSpec, representative: np.ndarray) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if spec.quantize == "float":
        return converter.convert()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([sample[np.newaxis]] for sample in representative)
    if spec.quantize == "int16x8":
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        converter.inference_input_type = converter.inference_output_type = tf.int16
    else:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    if not spec.per_channel:
        converter._experimental_disable_per_channel = True
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
    return converter.convert()


def convert_cached(
    prefix: str,
    test_file: Path,
    specs: dict[str, ModelSpec],
    prepare: Callable[[object, ModelSpec], None] = lambda model, spec: None,
) -> dict[str, bytes]:
    """A test file's own models (biases randomized, then `prepare`d), converted once and kept in CACHE_DIR,
    keyed on that file, this one and TensorFlow's version."""
    digest = hashlib.sha256(
        Path(test_file).read_bytes() + Path(__file__).read_bytes() + version("tensorflow-cpu").encode()
    ).hexdigest()[:12]
    paths = {name: CACHE_DIR / f"{prefix}-{name}-{digest}.tflite" for name in specs}
    missing = [name for name, path in paths.items() if not path.exists()]
    if missing:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
        import tensorflow as tf

        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        for name in missing:
            spec = specs[name]
            model = spec.build(keras)
            _randomize_biases(model)
            prepare(model, spec)
            representative = (
                np.random.default_rng(2)
                .uniform(-1, 1, (REPRESENTATIVE_SAMPLES, *model.input_shape[1:]))
                .astype(np.float32)
            )
            tmp = paths[name].with_suffix(".tmp")
            tmp.write_bytes(_convert(tf, model, spec, representative))
            tmp.replace(paths[name])
    return {name: path.read_bytes() for name, path in paths.items()}
