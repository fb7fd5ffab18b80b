"""Stage: prepare the models: prune and convert a trainable model, or take a given int8 .tflite as it is.

Per pruning method, the model is trained and pruned along one path and each
snapshot converted to int8, with TFLite Micro's outputs for the test inputs
(the reference every measured point is checked against). The result is a
list of ModelPoint records, cached by content: an identical re-run trains
nothing, and adding a method to a sweep trains only that method.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from harness import cache
from harness.config import SweepConfig
from harness.model_source import TfliteModel, TrainableModel
from harness.prune.cost_model import cost_board
from harness.runlog import Say
from harness.scoring import headline, score

__all__ = ["ModelPoint", "point_from_json", "point_to_json", "prepare_models"]


@dataclass(frozen=True)
class ModelPoint:
    """One pruned, int8-quantized model and what the host knows about it."""

    method: str  # pruning method, e.g. "magnitude/gradual"; "none" for a given .tflite
    target: float
    achieved_sparsity: float  # on the int8 weights: zero or removed share of the pruned layers' weights
    layer_sparsity: dict  # layer -> {"target", "achieved", "weights"}, achieved on the int8 weights
    train_epochs: int  # training spent reaching this point from the previous one on the path
    train_seconds: float  # (the first point's includes the dense training)
    tflite_path: Path
    task: str  # harness/scoring.py: what the scores measure
    float_scores: dict  # e.g. {"accuracy": 0.98}, {"mse": 0.01, "auc": 0.9}; {} for a given .tflite
    int8_scores: dict  # TFLite Micro's interpreter on the host
    inputs_path: Path  # int8 test inputs (shared by all points)
    labels_path: Path  # targets: class numbers, or what the outputs reconstruct
    reference_path: Path  # TFLite Micro's outputs for those inputs
    anomaly_path: Path | None = None  # reconstruction: 1 per anomalous test sample

    @property
    def data_paths(self) -> list[Path]:
        """The files the point is measured with."""
        return [
            path
            for path in (self.inputs_path, self.labels_path, self.reference_path, self.anomaly_path)
            if path is not None
        ]


def point_to_json(point: ModelPoint) -> dict:
    """The point as JSON, its files named relative to the folder that holds them."""
    return {k: (v.name if isinstance(v, Path) else v) for k, v in point.__dict__.items()}


def point_from_json(values: dict, folder: Path) -> ModelPoint:
    """A point from point_to_json's form, its files in folder."""
    return ModelPoint(**{k: (folder / v if k.endswith("_path") and v is not None else v) for k, v in values.items()})


def prepare_models(config: SweepConfig, source: TrainableModel | TfliteModel, progress: Say) -> list[ModelPoint]:
    """Per pruning method: train and prune along one path, convert each snapshot to int8; cached by content.

    Each method has its own cache entry, so adding a method to a sweep retrains only that method.
    """
    # A cache entry written for another ModelPoint record would not load: the record is part of the key.
    record = ",".join(f.name for f in fields(ModelPoint))
    if isinstance(source, TfliteModel):
        key = cache.content_hash(
            source.digest, record, cache.source_digest(["harness/quantize.py", "harness/scoring.py"])
        )
        return _cached_points(key, lambda out: _import_tflite(source, out, progress), progress)
    code = cache.source_digest(["harness/prune", "harness/quantize.py", "harness/scoring.py", "models"]) + record
    prune = {k: v for k, v in config.to_dict()["prune"].items() if k != "methods"}
    boards = {method: cost_board(method, config.boards) for method in config.prune.methods}  # before any training
    points = []
    for method in config.prune.methods:
        keyed = {
            "model": source.digest,
            "seed": config.seed,
            "prune": prune,
            "method": method,
            "targets": sorted(config.targets),
        } | ({"board": boards[method]} if boards[method] else {})
        key = cache.content_hash(json.dumps(keyed), code)
        points += _cached_points(
            key, lambda out, m=method: _prune_and_convert(source, config, m, boards[m], out, progress), progress
        )
    return points


def _cached_points(key: str, make: Callable[[Path], list[ModelPoint]], progress: Say) -> list[ModelPoint]:
    entry = cache.folder("models") / key
    index = entry / "points.json"
    if index.exists():
        progress(f"models: cached ({entry})")
        return [point_from_json(p, entry) for p in json.loads(index.read_text())]
    with cache.atomic_folder(entry) as out:  # a failed import leaves nothing behind
        points = make(out)
        (out / "points.json").write_text(json.dumps([point_to_json(p) for p in points], indent=1))
    return [point_from_json(point_to_json(p), entry) for p in points]


def _prune_and_convert(
    source: TrainableModel, config: SweepConfig, method_name: str, board: str | None, out: Path, progress: Say
) -> list[ModelPoint]:
    progress(f"models: {method_name}: importing TensorFlow, training and pruning (the first run of a config only)")
    from harness import quantize
    from harness.prune import export_model, int8_layer_sparsity, parse_method, prune_sweep, total_sparsity

    data = source.spec.load_data()
    model = source.spec.build(config.seed)
    method = parse_method(method_name)
    points = []
    for snapshot in prune_sweep(model, data, config.targets, config.prune, method, config.seed, progress, board):
        exported = export_model(model, snapshot)
        tflite = quantize.to_int8_tflite(exported, data.x_train)
        layers = int8_layer_sparsity(tflite, snapshot, exported)
        points.append(
            ModelPoint(
                method=method.name,
                target=snapshot.target,
                achieved_sparsity=total_sparsity(layers),
                layer_sparsity=layers,
                train_epochs=snapshot.epochs,
                train_seconds=snapshot.seconds,
                float_scores=snapshot.float_scores,
                **_save_point(out, f"{method.name}-sparsity-{snapshot.target:.3f}", tflite, data),
            )
        )
        progress(f"{method.name} sparsity {snapshot.target:.2f}: int8 on the host {headline(points[-1].int8_scores)}")
    return points


def _import_tflite(source: TfliteModel, out: Path, progress: Say) -> list[ModelPoint]:
    from harness.compiler import read_tflite

    tflite = source.path.read_bytes()
    sparsity = read_tflite(tflite).weight_sparsity()
    progress(f"models: {source.path} taken as it is (int8, {sparsity:.1%} of its weights are zero)")
    return [
        ModelPoint(
            method="none",
            target=round(sparsity, 3),
            achieved_sparsity=sparsity,
            layer_sparsity={},
            train_epochs=0,
            train_seconds=0.0,
            float_scores={},
            **_save_point(out, f"given-sparsity-{sparsity:.3f}", tflite, source.data),
        )
    ]


def _save_point(out: Path, name: str, tflite: bytes, data) -> dict:
    """Write one model point's files: the .tflite, the int8 test inputs (data.x_test quantized with the model's
    input scale, or taken as they are when already int8), the targets and TFLite Micro's outputs. Returns the
    ModelPoint fields they give: the paths, the task and its scores on the host."""
    from harness import quantize

    name = name.replace("/", "-").replace(":", "of")  # a method name becomes part of a file name
    input_quant, output_quant = quantize.io_quant_params(tflite)
    inputs = data.x_test if data.x_test.dtype == np.int8 else input_quant.quantize(data.x_test)
    np.save(out / f"{name}.inputs.npy", inputs)
    np.save(out / "labels.npy", data.y_test)
    anomaly_path = None
    if data.anomaly_test is not None:
        anomaly_path = out / "anomaly.npy"
        np.save(anomaly_path, data.anomaly_test)
    reference = quantize.run_tflite_micro(tflite, inputs)
    np.save(out / f"{name}.reference.npy", reference)
    (out / f"{name}.tflite").write_bytes(tflite)
    return {
        "tflite_path": out / f"{name}.tflite",
        "inputs_path": out / f"{name}.inputs.npy",
        "labels_path": out / "labels.npy",
        "reference_path": out / f"{name}.reference.npy",
        "anomaly_path": anomaly_path,
        "task": data.task,
        "int8_scores": score(data.task, output_quant.dequantize(reference), data.y_test, data.anomaly_test),
    }
