"""Predicted instructions of one layer on the board, from its shape, weight format and sparsity.

    model = load_cost_model()
    model.latency(geometry, density=0.1)          # the fastest format's instructions at 90 % sparsity

The prediction is a small linear model per op and format, fitted to the
kernel micro-benchmark (`harness kernels`, its kernels.csv):

    instructions = a + b * MACs + c * nonzero MACs + d * outputs

A fitted model rather than the measured curves looked up by shape, because a
model's layers are never the shapes measured: the four terms are what every
kernel here does (a call, a dense inner loop per MAC, a sparse one per
nonzero MAC, a requantization per output), so the fit carries over to other
shapes of the same op. Its worst relative error on the rows it was fitted to
is kept with it (`max_error`).

The fitted coefficients live beside this file (cost_curves.json), so the
sweep's model cache, keyed by the content of harness/prune, is keyed by them
too: new curves prune anew.
"""
from __future__ import annotations

import csv
import itertools
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

CURVES_PATH = Path(__file__).with_name("cost_curves.json")
# TFLite ops the prunable Keras layers become (Conv1D converts to a CONV_2D of height 1).
KERAS_OPS = {"Conv1D": "CONV_2D", "Conv2D": "CONV_2D", "DepthwiseConv2D": "DEPTHWISE_CONV_2D",
             "Dense": "FULLY_CONNECTED"}


@dataclass(frozen=True)
class LayerGeometry:
    op: str       # the TFLite op: CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED
    weights: int  # kernel weights
    macs: int     # multiply-accumulates of one inference, all weights nonzero
    outputs: int  # output values of one inference

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
    return LayerGeometry(KERAS_OPS[type(layer).__name__], weights, macs, outputs)


@dataclass(frozen=True)
class Curve:
    op: str
    format: str
    coefficients: tuple[float, float, float, float]  # a, b, c, d of the module's formula
    max_error: float                                 # worst |predicted / measured - 1| over the fitted rows
    rows: int                                        # how many measured variants it was fitted to

    def predict(self, macs, nonzero_macs, outputs):
        a, b, c, d = self.coefficients
        return a + b * np.asarray(macs, np.float64) + c * np.asarray(nonzero_macs, np.float64) + d * outputs


@dataclass(frozen=True)
class CostModel:
    board: str
    unit: str       # "instructions" on an emulated board: never cycles
    source: str     # what the curves were fitted from
    curves: tuple[Curve, ...]

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
        predictions = [c.predict(geometry.macs, geometry.macs * density, geometry.outputs) for c in curves]
        return np.min(predictions, axis=0)

    def to_json(self) -> dict:
        return {"board": self.board, "unit": self.unit, "source": self.source,
                "curves": [asdict(curve) for curve in self.curves]}

    @classmethod
    def from_json(cls, values: dict) -> CostModel:
        curves = tuple(Curve(c["op"], c["format"], tuple(c["coefficients"]), c["max_error"], c["rows"])
                       for c in values["curves"])
        return cls(values["board"], values["unit"], values["source"], curves)


def fit_cost_model(rows: list[dict], source: str) -> CostModel:
    """One curve per op and format, by least squares on the relative error (a small layer's few
    instructions count as much as a large one's many) with no negative term, from kernels.csv rows
    that ran and matched."""
    rows = [r for r in rows if r["status"] == "ok" and r["pattern"] == "unstructured"]
    boards, units = {r["board"] for r in rows}, {r["unit"] for r in rows}
    if len(boards) != 1 or len(units) != 1:
        raise ValueError(f"cost curves come from one board in one unit; the rows have {sorted(boards)}, {sorted(units)}")
    curves = []
    for op, fmt in sorted({(r["op"], r["layer_format"]) for r in rows}):
        chosen = [r for r in rows if (r["op"], r["layer_format"]) == (op, fmt)]
        features = np.array([[1.0, float(r["macs"]), float(r["nonzero_macs"]), _outputs(r)]
                             for r in chosen])
        measured = np.array([float(r["instructions"]) for r in chosen])
        coefficients = _nonnegative_fit(features / measured[:, None], np.ones(len(chosen)))
        error = float(np.max(np.abs(features @ coefficients / measured - 1.0)))
        curves.append(Curve(op, fmt, tuple(float(c) for c in coefficients), round(error, 4), len(chosen)))
    return CostModel(boards.pop(), units.pop(), source, tuple(curves))


def _nonnegative_fit(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least squares with every coefficient >= 0: no kernel gets faster with more MACs or outputs, and
    a negative term fitted to a few large shapes predicts a small layer below zero. Exact, by trying
    every subset of the four terms."""
    best, best_residual = np.zeros(features.shape[1]), float(np.sum(target ** 2))
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


def _outputs(row: dict) -> float:
    """Output values of a micro-benchmark layer, from its shape's name (SAME padding, stride 1)."""
    from harness.kernel_bench.shapes import parse_shape

    shape = parse_shape(row["shape"])
    if shape.op == "FULLY_CONNECTED":
        return float(shape.outputs)
    height, width, channels = shape.input_shape
    if shape.padding == "valid":
        height, width = height - shape.kernel[0] + 1, width - shape.kernel[1] + 1
    return float(height * width * (shape.outputs or channels))


def read_kernels_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def load_cost_model(path: Path = CURVES_PATH) -> CostModel:
    return _load(path.read_text())


@lru_cache(maxsize=4)
def _load(text: str) -> CostModel:
    return CostModel.from_json(json.loads(text))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m harness.prune.cost_model",
                                     description="fit the pruning cost model to a `harness kernels` run")
    parser.add_argument("kernels_csv", type=Path, help="kernels.csv of a `harness kernels` run")
    parser.add_argument("--out", type=Path, default=CURVES_PATH)
    args = parser.parse_args(argv)
    rows = read_kernels_csv(args.kernels_csv)
    shapes = ", ".join(dict.fromkeys(r["shape"] for r in rows))
    sparsities = ", ".join(dict.fromkeys(r["pruning"] for r in rows))
    model = fit_cost_model(rows, source=f"harness kernels: {shapes} at {sparsities}")
    args.out.write_text(json.dumps(model.to_json(), indent=1) + "\n")
    for curve in model.curves:
        print(f"{curve.op} {curve.format}: {curve.rows} rows, worst error {curve.max_error:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
