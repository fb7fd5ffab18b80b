"""The cost model's latency of a whole compiled model, layer by layer, to record beside the measured one.

    total, per_layer = predict_latency(load_cost_model("mps2_an386"), layers_of_compiled(compiled))

A layer with weights is predicted by its op's curve in its format (cost_model.py);
an op without weights (pooling, ADD, reshape, softmax, ...) by its kernel's
curve in elements, which sparsity does not change. A layer the model has no
curve for is None, and then so is the whole model's total: a partial sum
would look like a prediction and be none.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from harness.prune.cost_model import CostModel, LayerGeometry, NoCostCurves, inner_loop, load_cost_model

# Result columns the prediction fills: not measured, so no part of what makes a measured point the same.
PREDICTION_COLUMNS = ("predicted_latency", "layer_predicted_latency")


@dataclass(frozen=True)
class LayerWork:
    """One layer of a compiled model as the cost model sees it."""

    name: str  # as the board names it: "0:CONV_2D"
    op: str
    kernel: str  # the C kernel that runs it, e.g. "conv2d_csr_s8"; "alias" for a RESHAPE that copies nothing
    format: str  # weight format; "" for an op without weights
    weights: int
    macs: int
    nonzero_macs: int
    inputs: int  # elements read (every computed input)
    outputs: int  # elements written
    inner: int  # length of the innermost loop (cost_model.LayerGeometry)


def _elements(shape) -> int:
    return math.prod(shape) if len(shape) else 0


def _layer(  # noqa: PLR0913 (the fields of one LayerWork, read from a compiled layer or a stored row)
    name: str, op: str, kernel: str, fmt: str, weight_shape, macs: int, nonzero_macs: int, input_shapes, output_shape
) -> LayerWork:
    # Weights are OHWI (convolutions) or (out, in): what feeds one output value follows the first axis.
    width = output_shape[-2] if len(output_shape) > 2 else 1
    inner = inner_loop(op, tuple(weight_shape[1:]), width) if len(weight_shape) else 1
    return LayerWork(
        name,
        op,
        kernel,
        fmt,
        _elements(weight_shape),
        macs,
        nonzero_macs,
        sum(_elements(s) for s in input_shapes),
        _elements(output_shape),
        inner,
    )


def layers_of_compiled(compiled) -> list[LayerWork]:
    return [
        _layer(
            name,
            layer.op,
            layer.kernel,
            layer.format,
            layer.weight_shape,
            layer.macs,
            layer.nonzero_macs,
            layer.input_shapes,
            layer.output_shape,
        )
        for name, layer in zip(compiled.layer_names, compiled.layers)
    ]


def layers_of_row(row: Mapping) -> list[LayerWork]:
    """The layers of a results.csv row, from its layer_macs and layer_flash."""
    flash = {layer["layer"]: layer for layer in json.loads(row["layer_flash"])}
    return [
        _layer(
            layer["layer"],
            layer["op"],
            flash[layer["layer"]]["kernel"],
            flash[layer["layer"]]["format"],
            layer["weights"],
            layer["macs"],
            layer["nonzero_macs"],
            layer["inputs"],
            layer["output"],
        )
        for layer in json.loads(row["layer_macs"])
    ]


def predict_layer(model: CostModel, layer: LayerWork) -> float | None:
    if not layer.weights:
        curve = model.element_curve(layer.kernel)
        return None if curve is None else curve.predict(layer.inputs, layer.outputs)
    geometry = LayerGeometry(layer.op, layer.weights, layer.macs, layer.outputs, layer.inner)
    try:
        return float(model.latency(geometry, layer.nonzero_macs / layer.macs, layer.format))
    except KeyError:  # no curve for this op in this format
        return None


def predict_latency(model: CostModel, layers: list[LayerWork]) -> tuple[float, dict[str, float | None]]:
    """The whole model's predicted latency (NaN unless every layer has a curve) and each layer's."""
    per_layer = {layer.name: predict_layer(model, layer) for layer in layers}
    known = [value for value in per_layer.values() if value is not None]
    return (sum(known) if len(known) == len(per_layer) else float("nan")), per_layer


def record_prediction(row, compiled) -> None:
    """Fill a result row's prediction columns for its board; left empty (NaN) for a board without curves."""
    try:
        model = load_cost_model(row.board)
    except NoCostCurves:
        return
    total, per_layer = predict_latency(model, layers_of_compiled(compiled))
    row.predicted_latency = round(total, 1)
    row.layer_predicted_latency = json.dumps(
        {name: None if v is None else round(v, 1) for name, v in per_layer.items()}
    )
