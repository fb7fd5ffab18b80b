"""One single-layer int8 model per (shape, pruning), with test inputs and TFLite Micro's outputs for them.

The layer's weights are Keras' initial ones (the kernels' speed does not
depend on training), pruned by magnitude, with nonzero biases so the bias
path is exercised. Conversion is the sweep's (harness.quantize), with a
random representative dataset. Everything is cached by content: TensorFlow
is imported only for points not made before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from harness import cache
from harness.kernel_bench.shapes import LayerShape, Pruning, check_pattern_fits
from harness.prepare import ModelPoint, point_from_json

TEST_INPUTS = 3  # random inputs whose device outputs must equal TFLite Micro's, per variant
REPRESENTATIVE = 64
_CODE = ["harness/kernel_bench/models.py", "harness/kernel_bench/shapes.py", "harness/prune", "harness/quantize.py"]


def bench_point(shape: LayerShape, pruning: Pruning, seed: int, progress: Callable[[str], None]) -> ModelPoint:
    """The model point for a shape and pruning, made once and then taken from the cache."""
    from importlib.metadata import version

    check_pattern_fits(shape, pruning)
    key = cache.content_hash(
        shape.name, pruning.label, str(seed), cache.source_digest(_CODE), version("tensorflow-cpu")
    )
    entry = cache.folder("kernel-bench") / key
    if not (entry / "point.json").exists():
        progress(f"models: {shape.name} pruned to {pruning.label}: building and converting to int8")
        with cache.atomic_folder(entry) as out:  # a killed run leaves no half-made point
            _make_point(shape, pruning, seed, out)
    return point_from_json(json.loads((entry / "point.json").read_text()), entry)


def _make_point(shape: LayerShape, pruning: Pruning, seed: int, out: Path) -> None:
    from harness import quantize
    from harness.compiler import read_tflite
    from harness.prune.export import WEIGHTED_OPS

    rng = np.random.default_rng(seed)
    model = _pruned_model(shape, pruning, seed, rng)
    tflite = quantize.to_int8_tflite(model, rng.normal(size=(REPRESENTATIVE, *shape.input_shape)).astype(np.float32))
    graph = read_tflite(tflite)
    weighted = [op for op in graph.ops if op.kind in WEIGHTED_OPS]
    if [op.kind for op in weighted] != [shape.op]:
        raise RuntimeError(
            f"shape '{shape.name}' converted to ops {[op.kind for op in graph.ops]}, expected one {shape.op}"
        )
    weights = weighted[0].inputs[1].data
    achieved = 1.0 - np.count_nonzero(weights) / weights.size
    inputs = rng.integers(-128, 128, size=(TEST_INPUTS, *shape.input_shape), dtype=np.int8)
    reference = quantize.run_tflite_micro(tflite, inputs)
    (out / "model.tflite").write_bytes(tflite)
    np.save(out / "inputs.npy", inputs)
    np.save(out / "reference.npy", reference)
    # No labels exist for random inputs; TFLite Micro's top class stands in, so "accuracy" is agreement with it.
    np.save(out / "labels.npy", reference.argmax(axis=1))
    point = {
        "method": f"{shape.name} {pruning.label}",
        "target": pruning.sparsity,
        "achieved_sparsity": achieved,
        "layer_sparsity": {"layer": {"target": pruning.sparsity, "achieved": achieved, "weights": weights.size}},
        "train_epochs": 0,
        "train_seconds": 0.0,
        "tflite_path": "model.tflite",
        "task": "classification",
        "float_scores": {},
        "int8_scores": {},
        "inputs_path": "inputs.npy",
        "labels_path": "labels.npy",
        "reference_path": "reference.npy",
    }
    (out / "point.json").write_text(json.dumps(point, indent=1))


def _pruned_model(shape: LayerShape, pruning: Pruning, seed: int, rng: np.random.Generator):
    import keras

    from harness.prune.export import survivors_stay_nonzero
    from harness.prune.masks import kept_count, n_of_m_mask, top_k_mask

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=shape.input_shape, batch_size=1)  # a dynamic batch would add ops
    layer = shape.keras_layer()
    model = keras.Model(inputs, layer(inputs))
    kernel, bias = layer.get_weights()
    scores = np.abs(kernel)
    if pruning.pattern:
        mask = n_of_m_mask(scores, *pruning.pattern)
    else:
        mask = top_k_mask(scores, kept_count(kernel.size, pruning.sparsity))
    depthwise = shape.op == "DEPTHWISE_CONV_2D"
    layer.set_weights(
        [
            survivors_stay_nonzero(kernel * mask, mask, depthwise),
            rng.normal(scale=0.1, size=bias.shape).astype(bias.dtype),
        ]
    )
    return model
