"""Compare pruning methods without a board: accuracy against sparsity, training cost, reuse along a path.

    python -m harness.prune_report --config configs/pruning-criteria.toml --out results/pruning-criteria
    python -m harness.prune_report --config configs/digits.toml --model mnist1d_cnn --independent --overhead

Trains, prunes and converts every method of the config's [prune] methods
(the sweep's own stage, with its cache), then writes pruning.csv (one row
per method x target), accuracy-by-method.png (int8 accuracy on the host
against sparsity, one line per method) and summary.md. --independent also
runs every target on its own, to measure what the shared path saves;
--overhead times an epoch with and without masks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import pandas as pd

from harness.config import ConfigError, PruneConfig, SweepConfig, load_config
from harness.model_source import TrainableModel, resolve_model
from harness.prune.masks import PruningError


def study(config: SweepConfig, progress=print) -> pd.DataFrame:
    """One row per (method, target): sparsity asked and achieved (int8), accuracy float and int8, training cost."""
    from harness.prepare import prepare_models

    source = resolve_model(config)
    if not isinstance(source, TrainableModel):
        raise ConfigError(f"{config.model} is an int8 .tflite: there is nothing to prune")
    points = prepare_models(config, source, progress)
    return pd.DataFrame(
        [
            {
                "model": config.model,
                "prune_method": p.method,
                "target_sparsity": p.target,
                "achieved_sparsity": p.achieved_sparsity,
                "accuracy_float": p.float_scores.get("accuracy", float("nan")),
                "accuracy_int8_host": p.int8_scores.get("accuracy", float("nan")),
                "train_epochs": p.train_epochs,
                "train_seconds": p.train_seconds,
                "layer_sparsity": json.dumps(p.layer_sparsity),
            }
            for p in points
        ]
    )


def independent_cost(config: SweepConfig, progress=print) -> pd.DataFrame:
    """Per method: training epochs and seconds of the shared path against one run per target."""
    path = study(config, progress)
    rows = []
    for method, points in path.groupby("prune_method", sort=False):
        alone = [
            study(
                dataclasses.replace(
                    config, targets=(target,), prune=dataclasses.replace(config.prune, methods=(method,))
                ),
                progress,
            )
            for target in points.target_sparsity
        ]
        rows.append(
            {
                "prune_method": method,
                "targets": len(points),
                "path_epochs": int(points.train_epochs.sum()),
                "path_seconds": points.train_seconds.sum(),
                "independent_epochs": int(sum(a.train_epochs.sum() for a in alone)),
                "independent_seconds": sum(a.train_seconds.sum() for a in alone),
            }
        )
    frame = pd.DataFrame(rows)
    frame["saving"] = frame.independent_seconds / frame.path_seconds
    return frame


def mask_overhead(spec, seed: int, epochs: int = 10) -> dict[str, float]:
    """Seconds per training epoch of a model (a models.ReferenceModel) without masks and with every
    prunable kernel masked."""
    from harness.prune.masks import prunable_layers
    from harness.prune.train import MaskedTrainer

    prune = PruneConfig()
    data = spec.load_data()
    best = {}
    for label in ("plain", "masked", "plain", "masked"):  # interleaved, best of two: less noise from the machine
        model = spec.build(seed)
        trainer = MaskedTrainer(model, prunable_layers(model) if label == "masked" else [], prune.learning_rate, seed)
        trainer.fit_epoch(data.x_train, data.y_train, prune.batch_size)  # traces the step: not timed
        started = time.perf_counter()
        for _ in range(epochs):
            trainer.fit_epoch(data.x_train, data.y_train, prune.batch_size)
        best[label] = min(best.get(label, float("inf")), (time.perf_counter() - started) / epochs)
    return best


def plot_accuracy_by_method(frame: pd.DataFrame, path: Path, title: str) -> Path:
    """int8 accuracy on the host against achieved sparsity, one line per pruning method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from harness.report.style import legend_outside

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, rows in frame.groupby("prune_method", sort=False):
        rows = rows.sort_values("achieved_sparsity")
        ax.plot(rows.achieved_sparsity * 100, rows.accuracy_int8_host, marker="o", label=method)
    ax.set(
        xlabel="achieved sparsity of the int8 weights (%)",
        ylabel="accuracy, int8 on the host (TFLite Micro)",
        title=title,
    )
    ax.grid(alpha=0.3)
    legend_outside(ax, fontsize=8)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _summary(
    config: SweepConfig, frame: pd.DataFrame, cost: pd.DataFrame | None, overhead: dict | None, seconds: float
) -> str:
    table = frame.pivot_table(
        index="prune_method", columns="target_sparsity", values="accuracy_int8_host", sort=False
    ).sort_index(axis=1)
    lines = [
        f"# Pruning study: {config.model}, seed {config.seed}",
        "",
        f"int8 accuracy on the host (TFLite Micro), {seconds:.0f} s in all:",
        "",
        table.to_markdown(floatfmt=".3f"),
    ]
    if cost is not None:
        lines += [
            "",
            "Training along one path against one run per target:",
            "",
            cost.to_markdown(index=False, floatfmt=".1f"),
        ]
    if overhead is not None:
        lines += [
            "",
            "Seconds per epoch: "
            + ", ".join(f"{k} {v:.3f}" for k, v in overhead.items())
            + f" (masked / plain = {overhead['masked'] / overhead['plain']:.2f})",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.prune_report", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", required=True, help="sweep TOML; its [prune] methods are compared")
    parser.add_argument("--model", help="another reference model (or .keras file) than the config's")
    parser.add_argument("--out", help="output directory (default: results/pruning-<config name>-<model>)")
    parser.add_argument("--independent", action="store_true", help="also run each target alone (reuse savings)")
    parser.add_argument("--overhead", action="store_true", help="time an epoch with and without masks")
    args = parser.parse_args(argv)
    try:
        return _report(args)
    except (ConfigError, PruningError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _report(args) -> int:
    started = time.perf_counter()
    config = load_config(args.config, model=args.model)
    out = Path(args.out or f"results/pruning-{config.name}-{Path(config.model).stem}")
    out.mkdir(parents=True, exist_ok=True)
    frame = study(config)
    seconds = time.perf_counter() - started
    cost = independent_cost(config) if args.independent else None
    overhead = mask_overhead(resolve_model(config).spec, config.seed) if args.overhead else None
    frame.to_csv(out / "pruning.csv", index=False)
    plot = plot_accuracy_by_method(frame, out / "accuracy-by-method.png", f"{config.model}: {config.name}")
    summary = _summary(config, frame, cost, overhead, seconds)
    (out / "summary.md").write_text(summary)
    print(summary + f"\nwrote {out / 'pruning.csv'}, {plot}, {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
