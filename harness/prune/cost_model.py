"""Predicted instructions of one layer on the board, from its shape, weight format and sparsity.

    model = load_cost_model()
    model.latency(geometry, density=0.1)          # the fastest format's instructions at 90 % sparsity

The prediction is a small linear model per op and format, fitted to the
kernel micro-benchmark (`harness kernels`, its kernels.csv):

    instructions = a + b * MACs + c * nonzero MACs + d * outputs + e * MACs / inner

The five terms are what every kernel here does (a call, a dense inner loop
per MAC, a sparse one per nonzero MAC, a requantization per output, and the
set-up of each inner loop over a window row: a 3-channel convolution pays it
3x as often per MAC as a 9-channel one), so the fit carries over to shapes
never measured, within about 15 % per layer (its worst relative error on the
rows it was fitted to is kept with it, `max_error`). A layer whose own shape
was measured (`--profile MODEL` measures a model's layers) is predicted from
those measurements instead, linearly between the measured densities
(`MeasuredLayer`): the fit does not carry across map sizes and strides as
the convolution kernels cost them (docs/pruning.md).

The ops without weights (pooling, ADD, softmax, ...) do not change with
sparsity; a model's whole latency adds them, each predicted by its kernel
from the elements it reads and writes (`ElementCurve`), fitted to the
per-layer latencies of measured sweeps (their results.csv).

The fitted coefficients live beside this file (cost_curves.json), one entry
per board environment, so the sweep's model cache, keyed by the content of
harness/prune, is keyed by them too: new curves prune anew. A board without
an entry has no cost model (`NoCostCurves`), never another board's.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

CURVES_PATH = Path(__file__).with_name("cost_curves.json")
# Interior pixels a row needs for the depthwise csr kernel to run a channel along it (its RUN_MIN_PIXELS).
DEPTHWISE_RUN_MIN_PIXELS = 8
# TFLite ops the prunable Keras layers become (Conv1D converts to a CONV_2D of height 1).
KERAS_OPS = {
    "Conv1D": "CONV_2D",
    "Conv2D": "CONV_2D",
    "DepthwiseConv2D": "DEPTHWISE_CONV_2D",
    "Dense": "FULLY_CONNECTED",
}


@dataclass(frozen=True)
class LayerGeometry:
    op: str  # the TFLite op: CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED
    weights: int  # kernel weights
    macs: int  # multiply-accumulates of one inference, all weights nonzero
    outputs: int  # output values of one inference
    inner: int = 1  # length of the innermost loop: a window row, kernel width x input channels (CONV_2D, whose
    # kernels copy each window row of a pixel at once), input features (FULLY_CONNECTED); 1 for DEPTHWISE_CONV_2D,
    # whose channels do not mix

    @property
    def macs_per_weight(self) -> float:
        """How often each weight is used in one inference: a convolution's weight once per output pixel."""
        return self.macs / self.weights


def layer_geometry(layer) -> LayerGeometry:
    """A Keras layer's geometry at batch 1, from its kernel and its output shape."""
    kernel = tuple(layer.kernel.shape)
    output = tuple(layer.output.shape)[1:]
    weights, outputs = int(np.prod(kernel)), int(np.prod(output))
    # Each output value takes one MAC per weight feeding its channel: weights / output channels.
    macs = outputs * weights // output[-1]
    op = KERAS_OPS[type(layer).__name__]
    return LayerGeometry(op, weights, macs, outputs, inner_loop(op, kernel[:-1], output[-2] if len(output) > 1 else 1))


def inner_loop(op: str, window: tuple[int, ...], output_width: int = 1) -> int:
    """LayerGeometry.inner from the weights feeding one output value: (input features,) for FULLY_CONNECTED,
    (kernel height, kernel width, input channels) for CONV_2D (Conv1D's (kernel width, input channels): its
    CONV_2D has height 1) and DEPTHWISE_CONV_2D (channels 1), and the width of the output map.

    A depthwise kernel's inner loop is a run of a row's pixels whose windows lie inside the image's columns,
    where the csr kernel keeps a channel's taps in registers, if the row has DEPTHWISE_RUN_MIN_PIXELS of them,
    and otherwise one pixel: rows narrower than that go pixel by pixel, at 1.5x the instructions per MAC
    (all weights kept, in csr: 16x16x16 against 8x8x32 and 25x5x64)."""
    if op == "DEPTHWISE_CONV_2D":
        run = output_width - window[-2] + 1
        return run if run >= DEPTHWISE_RUN_MIN_PIXELS else 1
    return window[-1] if op == "FULLY_CONNECTED" else window[-2] * window[-1]


@dataclass(frozen=True)
class Curve:
    op: str
    format: str
    coefficients: tuple[float, ...]  # a, b, c, d, e of the module's formula
    max_error: float  # worst |predicted / measured - 1| over the fitted rows
    rows: int  # how many measured variants it was fitted to

    def predict(self, macs, nonzero_macs, outputs, inner=1):
        a, b, c, d, e = self.coefficients
        macs = np.asarray(macs, np.float64)
        return a + b * macs + c * np.asarray(nonzero_macs, np.float64) + d * outputs + e * macs / inner


@dataclass(frozen=True)
class ElementCurve:
    """An op without weights, by the kernel that runs it:
    instructions = a + b * input elements + c * output elements."""

    kernel: str  # e.g. "max_pool2d_s8"; "alias" for a RESHAPE that copies nothing
    coefficients: tuple[float, float, float]
    max_error: float
    rows: int

    def predict(self, inputs: int, outputs: int) -> float:
        a, b, c = self.coefficients
        return a + b * inputs + c * outputs


@dataclass(frozen=True)
class MeasuredLayer:
    """One layer shape's instructions measured on the board in one format at a few densities: where a model's
    layer has this geometry it is predicted from these, not from its op's fitted curve."""

    shape: str  # as `harness kernels` names it, e.g. "conv3x3-32x32x16-16"
    format: str
    geometry: LayerGeometry
    densities: tuple[float, ...]  # kept weights / weights, ascending
    instructions: tuple[float, ...]

    def predict(self, density):
        """Linear between the measured densities; past the ends, along the nearest segment."""
        x, y = np.asarray(self.densities), np.asarray(self.instructions)
        density = np.asarray(density, np.float64)
        inside = np.interp(density, x, y)
        low = y[0] + (density - x[0]) * (y[1] - y[0]) / (x[1] - x[0])
        high = y[-1] + (density - x[-1]) * (y[-1] - y[-2]) / (x[-1] - x[-2])
        return np.maximum(np.where(density < x[0], low, np.where(density > x[-1], high, inside)), 0.0)


@dataclass(frozen=True)
class CostModel:
    board: str
    unit: str  # "instructions" on an emulated board: never cycles
    source: str  # what the curves were fitted from
    curves: tuple[Curve, ...]
    ops: tuple[ElementCurve, ...] = ()  # the ops without weights
    ops_source: str = ""
    measured: tuple[MeasuredLayer, ...] = ()  # shapes measured as they are, which a matching layer is predicted by

    def element_curve(self, kernel: str) -> ElementCurve | None:
        return next((curve for curve in self.ops if curve.kernel == kernel), None)

    def formats(self, op: str) -> list[str]:
        return [curve.format for curve in self.curves if curve.op == op]

    def latency(self, geometry: LayerGeometry, density, fmt: str | None = None):
        """Predicted instructions at `density` (kept weights / weights; a scalar or an array), in `fmt`,
        or, without it, in the fastest format at each density, as the auto kernel chooses per layer.
        An op the model has no curve for costs the same at every density: its zeros buy nothing."""
        density = np.asarray(density, np.float64)
        curves = [c for c in self.curves if c.op == geometry.op and fmt in (None, c.format)]
        if not curves:
            if fmt is not None:
                raise KeyError(f"cost model has no curve for {geometry.op} in format {fmt}")
            return np.zeros_like(density)
        return np.min([self._predict(c, geometry, density) for c in curves], axis=0)

    def _predict(self, curve: Curve, geometry: LayerGeometry, density):
        measured = next((m for m in self.measured if (m.geometry, m.format) == (geometry, curve.format)), None)
        if measured is not None:
            return measured.predict(density)
        return curve.predict(geometry.macs, geometry.macs * density, geometry.outputs, geometry.inner)

    def measured_shape(self, geometry: LayerGeometry) -> str | None:
        """The measured shape a layer of this geometry is predicted by; None where the fitted curves predict it."""
        return next((m.shape for m in self.measured if m.geometry == geometry), None)

    def to_json(self) -> dict:
        return {
            "unit": self.unit,
            "source": self.source,
            "curves": [asdict(curve) for curve in self.curves],
            "ops_source": self.ops_source,
            "ops": [asdict(curve) for curve in self.ops],
            "measured": [asdict(m) for m in self.measured],
        }

    @classmethod
    def from_json(cls, board: str, values: dict) -> CostModel:
        curves = tuple(
            Curve(c["op"], c["format"], tuple(c["coefficients"]), c["max_error"], c["rows"]) for c in values["curves"]
        )
        ops = tuple(
            ElementCurve(c["kernel"], tuple(c["coefficients"]), c["max_error"], c["rows"])
            for c in values.get("ops", ())
        )
        measured = tuple(
            MeasuredLayer(
                m["shape"], m["format"], LayerGeometry(**m["geometry"]), tuple(m["densities"]), tuple(m["instructions"])
            )
            for m in values.get("measured", ())
        )
        return cls(board, values["unit"], values["source"], curves, ops, values.get("ops_source", ""), measured)


class NoCostCurves(LookupError):
    """A board the committed cost curves do not cover."""


def fit_cost_model(rows: list[dict], source: str) -> CostModel:
    """One curve per op and format, by least squares on the relative error (a small layer's few
    instructions count as much as a large one's many) with no negative term, from kernels.csv rows
    that ran and matched; and every shape's rows as measured (MeasuredLayer)."""
    rows = [r for r in rows if r["status"] == "ok" and r["pattern"] == "unstructured"]
    boards, units = {r["board"] for r in rows}, {r["unit"] for r in rows}
    if len(boards) != 1 or len(units) != 1:
        raise ValueError(
            f"cost curves come from one board in one unit; the rows have {sorted(boards)}, {sorted(units)}"
        )
    curves = []
    for op, fmt in sorted({(r["op"], r["layer_format"]) for r in rows}):
        chosen = [r for r in rows if (r["op"], r["layer_format"]) == (op, fmt)]
        features = np.array([[1.0, float(r["macs"]), float(r["nonzero_macs"]), *_outputs_and_loops(r)] for r in chosen])
        measured = np.array([float(r["instructions"]) for r in chosen])
        coefficients = _nonnegative_fit(features / measured[:, None], np.ones(len(chosen)))
        error = float(np.max(np.abs(features @ coefficients / measured - 1.0)))
        curves.append(Curve(op, fmt, tuple(float(c) for c in coefficients), round(error, 4), len(chosen)))
    return CostModel(boards.pop(), units.pop(), source, tuple(curves), measured=measured_layers(rows))


def measured_layers(rows: list[dict]) -> tuple[MeasuredLayer, ...]:
    """Each shape and format of kernels.csv rows measured at two densities or more, as measured."""
    from harness.kernel_bench.shapes import parse_shape

    points: dict[tuple[str, str], dict[float, float]] = {}
    for r in rows:
        density = float(r["nonzero_macs"]) / float(r["macs"])
        points.setdefault((r["shape"], r["layer_format"]), {})[density] = float(r["instructions"])
    return tuple(
        MeasuredLayer(
            shape, fmt, geometry_of_shape(parse_shape(shape)), tuple(sorted(at)), tuple(at[d] for d in sorted(at))
        )
        for (shape, fmt), at in points.items()
        if len(at) >= 2
    )


def geometry_of_shape(shape) -> LayerGeometry:
    """The LayerGeometry of a micro-benchmark shape (harness/kernel_bench/shapes.py LayerShape), as
    layer_geometry gives it for the Keras layer the shape builds."""
    if shape.op == "FULLY_CONNECTED":
        inputs = shape.input_shape[0]
        return LayerGeometry(shape.op, inputs * shape.outputs, inputs * shape.outputs, shape.outputs, inputs)
    height, width = shape.output_map()
    channels = shape.input_shape[-1]
    window = (*shape.kernel, channels)
    out_channels = shape.outputs or channels
    per_output = int(np.prod(window)) if shape.op == "CONV_2D" else int(np.prod(shape.kernel))
    outputs = height * width * out_channels
    weights = per_output * out_channels
    return LayerGeometry(shape.op, weights, outputs * per_output, outputs, inner_loop(shape.op, window, width))


def _nonnegative_fit(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least squares with every coefficient >= 0: no kernel gets faster with more MACs or outputs, and
    a negative term fitted to a few large shapes predicts a small layer below zero. Exact, by trying
    every subset of the terms."""
    best, best_residual = np.zeros(features.shape[1]), float(np.sum(target**2))
    for subset in itertools.product((False, True), repeat=features.shape[1]):
        if not any(subset):
            continue
        chosen = np.flatnonzero(subset)
        fitted = np.linalg.lstsq(features[:, chosen], target, rcond=None)[0]
        residual = float(np.sum((features[:, chosen] @ fitted - target) ** 2))
        if (fitted >= 0).all() and residual < best_residual:
            best, best_residual = np.zeros(features.shape[1]), residual
            best[chosen] = fitted
    return best


def _outputs_and_loops(row: dict) -> tuple[float, float]:
    """Output values and inner loops (MACs / inner) of a micro-benchmark layer, from its shape's name."""
    from harness.kernel_bench.shapes import parse_shape

    geometry = geometry_of_shape(parse_shape(row["shape"]))
    return float(geometry.outputs), float(row["macs"]) / geometry.inner


def fit_element_curves(layers: list[tuple[str, int, int, float]]) -> tuple[ElementCurve, ...]:
    """One curve per kernel of the ops without weights, from (kernel, input elements, output elements, measured)
    per layer, by the same nonnegative least squares on the relative error as the layers with weights."""
    curves = []
    for kernel in sorted({layer[0] for layer in layers}):
        chosen = [layer for layer in layers if layer[0] == kernel]
        features = np.array([[1.0, float(inputs), float(outputs)] for _, inputs, outputs, _ in chosen])
        measured = np.array([max(float(m), 1.0) for *_, m in chosen])
        coefficients = _nonnegative_fit(features / measured[:, None], np.ones(len(chosen)))
        error = float(np.max(np.abs(features @ coefficients / measured - 1.0)))
        curves.append(ElementCurve(kernel, tuple(float(c) for c in coefficients), round(error, 4), len(chosen)))
    return tuple(curves)


def refit_command(board: str) -> str:
    """What makes a board's curves (docs/pruning.md, "Refitting the cost curves")."""
    return f"harness cost-model --measure {board}"


def boards_with_curves(path: Path = CURVES_PATH) -> list[str]:
    return sorted(json.loads(path.read_text()))


def load_curves(path: Path = CURVES_PATH) -> dict[str, CostModel]:
    """Every board's cost model in a curves file, by board. Shared between callers: copy it to change it."""
    return _load(path.read_text())


def load_cost_model(board: str, path: Path = CURVES_PATH) -> CostModel:
    """The board's cost model; NoCostCurves names the board and how to make its curves when it has none."""
    model = load_curves(path).get(board)
    if model is None:
        raise NoCostCurves(
            f"no cost curves for board '{board}' in {path.name} (boards with curves: "
            f"{', '.join(boards_with_curves(path))}); make them: {refit_command(board)}"
        )
    return model


def cost_board(method: str, boards) -> str | None:
    """The board whose cost model a pruning method allocates by: None for a method that needs none. A
    hardware-aware method needs the sweep to have one board, with curves (a PruningError says what is missing)."""
    from harness.prune.masks import PruningError
    from harness.prune.method import parse_method

    if parse_method(method).scope != "hardware":
        return None
    boards = list(dict.fromkeys(boards))
    if len(boards) != 1:
        raise PruningError(
            f"{method} allocates by one board's cost curves; the sweep has "
            f"{', '.join(boards) or 'no board'}: run one sweep per board"
        )
    try:
        load_cost_model(boards[0])
    except NoCostCurves as err:
        raise PruningError(f"{method}: {err}") from None
    return boards[0]


@lru_cache(maxsize=4)
def _load(text: str) -> dict[str, CostModel]:
    return {board: CostModel.from_json(board, values) for board, values in json.loads(text).items()}
