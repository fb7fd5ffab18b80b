"""The figures of docs/models.md: the MLPerf Tiny architectures entered as a user would, swept on the emulated M4.

    .venv/bin/python tests/bench_field_models.py OUT_DIR [MODEL ...]

Each architecture of models/tinyml.py is rebuilt the way the published files
are (tests/field_models.py: batch None, Keras' default layer names, the
BatchNorm it already has), and saved as a Keras-2-style `.h5`, a `.keras`
and its published-style int8 `.tflite`. Then, through the real command line:
the `.h5` is swept over 0-90 % with dense, csr and auto; the `.keras` at
90 % with dense and csr; the `.tflite` as it is with dense and csr. The
summary (OUT_DIR/summary.md) gives per model the dense instructions per
inference and per MAC, the worst dense layer's instructions per MAC, arena,
flash, the best speedup at 90 % and the break-even sparsity.

The data are the synthetic stand-ins of models/tinyml.py and training is
short: accuracies are meaningless; latency, flash and SRAM are not.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import field_models  # noqa: E402

PROJECT_DIR = Path(__file__).resolve().parents[1]
MODELS = ("kws_ds_cnn", "ic_resnet8", "vww_mobilenet_v1", "ad_fc_autoencoder", "streaming_wakeword")
TARGETS = (0.0, 0.5, 0.7, 0.9)
SAMPLES = 16


def config(path: Path, targets, kernels) -> Path:
    path.write_text(f"""
[sweep]
targets = {json.dumps(list(targets))}
kernels = {json.dumps(list(kernels))}
boards = ["mps2_an386"]
[prune]
dense_epochs = 2
finetune_epochs = 1
[device]
warmup = 1
runs = 3
accuracy_samples = {SAMPLES}
timeout_s = 120.0
""")
    return path


def write_files(name: str, out: Path) -> tuple[dict[str, Path], Path]:
    import keras

    from harness.models import REFERENCE_MODELS

    spec = REFERENCE_MODELS[name]
    data = spec.load_data()
    model = field_models.as_published(spec.build(0))
    field_models.calibrate_batchnorm(model, data.x_train[:128])
    paths = field_models.save_files(model, data.x_train, out, name)
    arrays = {
        "x_train": data.x_train,
        "y_train": data.y_train,
        "x_test": data.x_test[:SAMPLES],
        "y_test": data.y_test[:SAMPLES],
    }
    if data.anomaly_test is not None:
        arrays["anomaly_test"] = data.anomaly_test[:SAMPLES]
    np.savez(out / f"{name}.npz", **arrays)
    keras.backend.clear_session()
    return paths, out / f"{name}.npz"


def sweep(model: Path, data: Path, cfg: Path, results: Path, log: Path) -> Path:
    started = time.perf_counter()
    with open(log, "a") as out:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness",
                "sweep",
                "--config",
                cfg,
                "--model",
                model,
                "--data",
                data,
                "--results",
                results,
            ],
            cwd=PROJECT_DIR,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    print(f"{model.name}: exit {proc.returncode} in {time.perf_counter() - started:.0f} s", flush=True)
    runs = sorted(results.glob(f"{model.stem}-*"), key=lambda p: p.stat().st_mtime)
    return runs[-1]


def summarize(name: str, run: Path) -> dict:
    from harness.compiler import compile_tflite

    frame = pd.read_csv(run / "results.csv")
    ok = frame[frame.status == "ok"]
    dense0 = ok[(ok.kernel == "dense") & (ok.target_sparsity == 0.0)].iloc[0]
    compiled = compile_tflite(_newest_dense_point(), run / "dense-compiled", kernel="dense")
    macs = {f"{layer.index}:{layer.op}": layer.macs for layer in compiled.layers}
    latency = json.loads(dense0.layer_latency)
    per_mac = {layer: latency[layer] / macs[layer] for layer in latency if macs.get(layer)}
    worst = max(per_mac, key=per_mac.get)
    speedups = {}
    for kernel in ("csr", "auto"):
        rows = ok[ok.kernel == kernel].set_index("target_sparsity").latency_median
        dense = ok[ok.kernel == "dense"].set_index("target_sparsity").latency_median
        speedups[kernel] = (dense.reindex(rows.index) / rows).dropna()
    best90 = max(speedups, key=lambda k: speedups[k].get(0.9, 0))
    return {
        "model": name,
        "MACs": sum(macs.values()),
        "dense instructions": dense0.latency_median,
        "instructions/MAC": dense0.latency_median / sum(macs.values()),
        "worst dense layer": f"{worst} {per_mac[worst]:.2f}",
        "arena B": dense0.sram_arena,
        "flash B (dense)": dense0.flash_total,
        "speedup at 90 %": f"{speedups[best90].get(0.9, float('nan')):.2f}x ({best90})",
        "break-even (csr)": _break_even(speedups["csr"]),
        "break-even (auto)": _break_even(speedups["auto"]),
        "rows": f"{len(ok)} ok of {len(frame)}",
    }


def _newest_dense_point() -> bytes:
    """The 0 % int8 model of the sweep that just ran: the newest in the models cache (MACs per layer)."""
    candidates = sorted(
        (PROJECT_DIR / ".cache" / "models").glob("*/*-sparsity-0.000.tflite"), key=lambda p: p.stat().st_mtime
    )
    return candidates[-1].read_bytes()


def _break_even(speedup: pd.Series) -> str:
    """The sparsity from which the kernel stays at least as fast as dense, interpolated."""
    slower = speedup[speedup < 1.0]
    if slower.empty:
        return f"≤ {speedup.index.min():.0%}"
    last = slower.index.max()
    after = speedup[speedup.index > last]
    if after.empty:
        return f"> {last:.0%}"
    x1, y1 = after.index[0], after.iloc[0]
    y0 = speedup[last]
    return f"≈ {last + (1.0 - y0) * (x1 - last) / (y1 - y0):.0%}"


def main(out: Path, names: tuple[str, ...]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results, log = out / "results", out / "sweeps.log"
    h5_config = config(out / "h5.toml", TARGETS, ("dense", "csr", "auto"))
    point_config = config(out / "point.toml", (0.9,), ("dense", "csr"))
    rows = []
    for name in names:
        paths, data = write_files(name, out)
        run = sweep(paths["h5"], data, h5_config, results, log)
        rows.append(summarize(name, run))
        for kind in ("keras", "tflite"):
            other = sweep(paths[kind], data, point_config, results, log)
            frame = pd.read_csv(other / "results.csv")
            rows[-1][f".{kind}"] = (
                f"{(frame.status == 'ok').sum()} of {len(frame)} ok, "
                f"{int(frame.output_mismatches.clip(lower=0).sum())} outputs differ from TFLM"
            )
        pd.DataFrame(rows).to_markdown(out / "summary.md", index=False)
        print(pd.DataFrame(rows).to_string(), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), tuple(sys.argv[2:]) or MODELS)
