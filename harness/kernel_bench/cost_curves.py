"""`harness cost-model`: measure a board's micro-benchmark shapes and fit its pruning cost curves to them
(harness/prune/cost_curves.json; docs/pruning.md, "Refitting the cost curves").

    harness cost-model --measure mps2_an386 --profile ic_resnet8   # `harness kernels` over BENCH_SHAPES, then fit
    harness cost-model results/kernels-x/kernels.csv                 # fit a run made otherwise

The model the curves make, and how they are fitted, are harness/prune/cost_model.py's. This command lives
outside harness/prune, whose code keys the sweep's model cache: changing it prunes no model anew.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from harness import paths
from harness.prune.cost_model import CURVES_PATH, fit_cost_model, fit_element_curves, load_curves

# The micro-benchmark shapes the committed curves are fitted to: each op's call, per-MAC, per-nonzero-MAC,
# per-output and per-inner-loop terms need shapes that vary them apart (CONV_2D: rows of 1 to 64 bytes, maps of
# 4x4 to 32x32), and the models' own layers the small shapes did not predict (docs/pruning.md): DS-CNN's
# strided first convolution (10x4 window on one channel), its depthwise and pointwise layers on 25x5x64,
# ResNet-8's 3x3 convolution on its 32x32 map, its strided 3x3 and 1x1 (shortcut) ones and its last 3x3.
BENCH_SHAPES = (
    "fc-512x64",
    "fc-64x16",
    "conv3x3-8x8x1-16",
    "conv3x3-4x4x16-32",
    "conv3x3-32x32x16-16",
    "conv1x1-16x16x16-32",
    "conv3x3-16x16x3-16",
    "dw3x3-16x16x16",
    "dw3x3-8x8x32",
    "dw3x3-25x5x64",
    "conv10x4-49x10x1-64-s2",
    "conv1x1-25x5x64-64",
    "conv3x3-8x8x64-64",
    "conv3x3-32x32x16-32-s2",
    "conv1x1-16x16x32-64-s2",
)
BENCH_SPARSITIES = "0,0.5,0.8,0.9,0.95"


def bench_arguments(board: str, out: Path, shapes) -> list[str]:
    """The `harness kernels` arguments that measure `shapes` on `board` into `out`."""
    return [
        "kernels",
        "--board",
        board,
        "--shapes",
        ",".join(shapes),
        "--sparsities",
        BENCH_SPARSITIES,
        "--formats",
        "csr",
        "--out",
        str(out),
    ]


def _parser():
    parser = argparse.ArgumentParser(
        prog="harness cost-model",
        description="fit a board's pruning cost model to a `harness kernels` run "
        "(and its ops without weights to sweeps' per-layer latencies)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("kernels_csv", type=Path, nargs="?", help="kernels.csv of a `harness kernels` run")
    source.add_argument(
        "--measure",
        metavar="BOARD",
        help="run `harness kernels` over the curves' shapes (BENCH_SHAPES) on BOARD into "
        "results/kernels-curves-BOARD first, and fit its kernels.csv",
    )
    parser.add_argument(
        "--profile",
        nargs="+",
        default=(),
        metavar="MODEL",
        help="with --measure: measure these models' layer shapes too (reference model names or Keras files), "
        "so their layers are predicted from their own measurements, not from the fitted curves",
    )
    parser.add_argument(
        "--ops",
        type=Path,
        nargs="+",
        default=(),
        metavar="RESULTS_CSV",
        help="results.csv of sweeps on the same board: refit the ops without weights from their "
        "per-layer latencies (default: keep the board's current ones)",
    )
    parser.add_argument("--out", type=Path, default=CURVES_PATH)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.profile and not args.measure:
        parser.error("--profile needs --measure BOARD: the board to measure the models' layers on")
    if args.measure:
        profiled = [shape for shape in profile_shapes(args.profile) if shape not in BENCH_SHAPES]
        rows = read_kernels_csv(_measure(args.measure, (*BENCH_SHAPES, *profiled)))
    else:
        rows = read_kernels_csv(args.kernels_csv)
    shapes = ", ".join(dict.fromkeys(r["shape"] for r in rows))
    sparsities = ", ".join(dict.fromkeys(r["pruning"] for r in rows))
    model = fit_cost_model(rows, f"harness kernels: {shapes} at {sparsities}")
    boards = dict(load_curves(args.out)) if args.out.exists() else {}
    earlier = boards.get(model.board)
    if args.ops:
        model = dataclasses.replace(
            model,
            ops=fit_element_curves(_element_layers(args.ops, model.board)),
            ops_source="per-layer latencies of " + ", ".join(str(p) for p in args.ops),
        )
    elif earlier is not None:
        model = dataclasses.replace(model, ops=earlier.ops, ops_source=earlier.ops_source)
    boards[model.board] = model
    args.out.write_text(json.dumps({board: m.to_json() for board, m in sorted(boards.items())}, indent=1) + "\n")
    for curve in model.curves:
        print(f"{model.board} {curve.op} {curve.format}: {curve.rows} rows, worst error {curve.max_error:.1%}")
    for curve in model.ops:
        print(f"{model.board} {curve.kernel}: {curve.rows} shapes, worst error {curve.max_error:.1%}")
    print(f"{model.board}: {len(model.measured)} shapes and formats measured as they are")
    return 0


def profile_shapes(models) -> list[str]:
    """The micro-benchmark shapes of the prunable layers of `models` (reference model names or Keras files),
    each once; a layer with no such shape is named, and left to the fitted curves."""
    from harness.config import ConfigError
    from harness.kernel_bench.shapes import shape_of_layer
    from harness.model_source import REFERENCE_MODELS, load_keras_model
    from harness.prune.masks import prunable_layers

    shapes = []
    for name in models:
        if name not in REFERENCE_MODELS and not Path(name).is_file():
            raise ConfigError(f"--profile {name}: no reference model ({', '.join(REFERENCE_MODELS)}) or file")
        model = REFERENCE_MODELS[name].build(0) if name in REFERENCE_MODELS else load_keras_model(Path(name))
        for layer in prunable_layers(model):
            if (shape := shape_of_layer(layer)) is None:
                print(f"{name}: layer '{layer.name}' has no micro-benchmark shape; the fitted curves predict it")
            else:
                shapes.append(shape)
    return list(dict.fromkeys(shapes))


def _measure(board: str, shapes) -> Path:
    """Run the micro-benchmark over `shapes` on `board`; its kernels.csv (the run's own results cache keeps
    what is measured already)."""
    out = paths.results_dir() / f"kernels-curves-{board}"
    run = subprocess.run([sys.executable, "-m", "harness", *bench_arguments(board, out, shapes)])
    if run.returncode:
        raise SystemExit(run.returncode)  # `harness kernels` has said why (an unknown board, a failed build)
    return out / "kernels.csv"


def _element_layers(results_csvs, board: str) -> list[tuple[str, int, int, float]]:
    """(kernel, input elements, output elements, median measured) of every distinct op without weights in the
    measured rows of `board`."""
    from harness.prune.predict import layers_of_row

    measured: dict[tuple[str, int, int], list[float]] = {}
    for path in results_csvs:
        for row in read_kernels_csv(path):
            if row["status"] != "ok" or row["board"] != board:
                continue
            latency = json.loads(row["layer_latency"])
            for layer in layers_of_row(row):
                if not layer.weights:
                    measured.setdefault((layer.kernel, layer.inputs, layer.outputs), []).append(latency[layer.name])
    return [(*key, float(np.median(values))) for key, values in measured.items()]


def read_kernels_csv(path: Path) -> list[dict]:
    """A CSV's rows as dicts: kernels.csv, or a sweep's results.csv."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
