"""Plots of a sweep against sparsity: latency, flash, SRAM and accuracy, dense vs sparse.

Every latency axis names its unit and timing source: on an emulated board a
latency is an instruction count, and the label says so.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

FLASH_PARTS = [("flash_code", "code"), ("flash_weights_dense", "dense weights"),
               ("flash_sparse_values", "sparse values"), ("flash_sparse_indices", "sparse indices"),
               ("flash_sparse_pointers", "sparse pointers"), ("flash_bias_quant", "biases + requant")]


def latency_label(unit: str, source: str) -> str:
    """>>> latency_label("instructions", "qemu-icount-systick")
    'latency (instructions, qemu-icount-systick)'
    """
    return f"latency ({unit}, {source})"


def write_plots(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    ok = frame[frame.status == "ok"]
    if ok.empty:
        return []
    paths = []
    for board, rows in ok.groupby("board"):
        title = f"{rows.model.iloc[0]} on {board}"
        for name, draw in (("latency", _latency), ("flash", _flash), ("sram", _sram), ("accuracy", _accuracy)):
            fig = draw(rows, title)
            path = out_dir / f"{name}-{board}.png"
            fig.savefig(path, dpi=120, bbox_inches="tight")
            plt.close(fig)
            paths.append(path)
    return paths


def _lines(ax, rows: pd.DataFrame, column: str, label_prefix: str = "") -> None:
    for kernel, kernel_rows in rows.groupby("kernel"):
        kernel_rows = kernel_rows.sort_values("target_sparsity")
        x = kernel_rows.target_sparsity * 100
        y = kernel_rows[column]
        ax.plot(x, y, marker="o", label=f"{label_prefix}{kernel}")
        if column == "latency_median":
            ax.fill_between(x, kernel_rows.latency_min, kernel_rows.latency_max, alpha=0.2)


def _latency(rows: pd.DataFrame, title: str):
    unit, source = rows.latency_unit.iloc[0], rows.timing_source.iloc[0]
    fig, (ax, ax_speedup) = plt.subplots(1, 2, figsize=(11, 4))
    _lines(ax, rows, "latency_median")
    ax.set(xlabel="sparsity (%)", ylabel=latency_label(unit, source), title=f"{title}: latency per inference")
    ax.set_ylim(bottom=0)
    ax.legend(title="kernel")
    dense = rows[rows.kernel == "dense"].set_index("target_sparsity").latency_median
    for kernel, kernel_rows in rows[rows.kernel != "dense"].groupby("kernel"):
        kernel_rows = kernel_rows.set_index("target_sparsity").sort_index()
        speedup = dense.reindex(kernel_rows.index) / kernel_rows.latency_median
        ax_speedup.plot(kernel_rows.index * 100, speedup, marker="o", label=kernel)
    ax_speedup.axhline(1.0, color="grey", linestyle="--", linewidth=1)
    ax_speedup.set(xlabel="sparsity (%)", ylabel=f"speedup over dense ({unit} ratio)", title="sparse vs dense")
    if ax_speedup.lines[:-1]:
        ax_speedup.legend(title="kernel")
    return fig


def _flash(rows: pd.DataFrame, title: str):
    kernels = _dense_first(rows.kernel.unique())
    targets = sorted(rows.target_sparsity.unique())
    fig, ax = plt.subplots(figsize=(max(7, len(targets) * len(kernels) * 0.7), 4.5))
    width = 0.8 / len(kernels)
    x = np.arange(len(targets))
    for k, kernel in enumerate(kernels):
        kernel_rows = rows[rows.kernel == kernel].set_index("target_sparsity").reindex(targets)
        bottom = np.zeros(len(targets))
        for column, label in FLASH_PARTS:
            values = kernel_rows[column].fillna(0).to_numpy() / 1024
            ax.bar(x + k * width, values, width, bottom=bottom, label=label if k == 0 else None,
                   color=f"C{[c for c, _ in FLASH_PARTS].index(column)}", edgecolor="white",
                   hatch="//" if kernel != "dense" else None)
            bottom += values
    dense_total = rows[(rows.kernel == "dense")].flash_total
    if not dense_total.empty:
        ax.axhline(dense_total.iloc[0] / 1024, color="black", linestyle="--", linewidth=1, label="dense model")
    ax.set_xticks(x + width * (len(kernels) - 1) / 2,
                  [f"{t * 100:.0f}%\n" + "/".join(kernels) for t in targets])
    ax.set(xlabel="sparsity (bars: " + ", ".join(kernels) + "; hatched = sparse)", ylabel="flash (KiB)",
           title=f"{title}: flash by part")
    ax.legend(fontsize=8, ncols=2)
    return fig


def _dense_first(kernels) -> list[str]:
    return sorted(kernels, key=lambda kernel: (kernel != "dense", kernel))


def _sram(rows: pd.DataFrame, title: str):
    fig, ax = plt.subplots(figsize=(7, 4))
    parts = (("sram_static", "static (.data + .bss)"), ("sram_arena", "activation arena"),
             ("stack_used", "stack high-water"))
    for color, (column, label) in enumerate(parts):
        for kernel in _dense_first(rows.kernel.unique()):
            kernel_rows = rows[rows.kernel == kernel].sort_values("target_sparsity")
            values = kernel_rows[column].where(kernel_rows[column] >= 0)
            ax.plot(kernel_rows.target_sparsity * 100, values / 1024, marker="o", color=f"C{color}",
                    linestyle="-" if kernel == "dense" else "--", label=f"{label}, {kernel}")
    ax.set(xlabel="sparsity (%)", ylabel="SRAM (KiB)", title=f"{title}: SRAM")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return fig


def _accuracy(rows: pd.DataFrame, title: str):
    fig, ax = plt.subplots(figsize=(7, 4))
    first = rows.sort_values("target_sparsity").drop_duplicates("target_sparsity")
    ax.plot(first.target_sparsity * 100, first.accuracy_float, marker="o", label="float (Keras)")
    ax.plot(first.target_sparsity * 100, first.accuracy_int8_host, marker="s", label="int8, TFLite Micro on host")
    for kernel, kernel_rows in rows.groupby("kernel"):
        kernel_rows = kernel_rows.sort_values("target_sparsity")
        ax.plot(kernel_rows.target_sparsity * 100, kernel_rows.accuracy_device, marker="x", linestyle=":",
                label=f"int8 on device, {kernel}")
    ax.set(xlabel="sparsity (%)", ylabel="test accuracy (fraction)", title=f"{title}: accuracy")
    ax.legend(fontsize=8)
    return fig
