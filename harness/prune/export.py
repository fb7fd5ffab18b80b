"""From a snapshot to the Keras model that is converted to int8, and the sparsity the int8 weights show.

Masks must survive int8 conversion exactly: a pruned weight is a float zero
and stays an int8 zero, but a surviving weight smaller than half a
quantization step would round to zero too. Such survivors are set to one
step (the smallest nonzero int8 value), which moves them by less than the
rounding of conversion does.
"""
from __future__ import annotations

import re

import numpy as np

from harness.prune.masks import PruningError, prunable_layers
from harness.prune.pruner import Snapshot
from harness.prune.structured import compact, trace_channels

# The int8 ops that hold a pruned kernel (as input 1), in execution order.
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def export_model(model, snapshot: Snapshot):
    """`model` with the snapshot's weights, survivors kept nonzero in int8; a smaller copy for filter pruning."""
    model.set_weights(snapshot.weights)
    for layer in prunable_layers(model):
        depthwise = type(layer).__name__ == "DepthwiseConv2D"
        layer.kernel.assign(survivors_stay_nonzero(layer.kernel.numpy(), snapshot.masks[layer.name], depthwise))
    if snapshot.filters:
        return compact(model, trace_channels(model), snapshot.filters)
    return model


def survivors_stay_nonzero(kernel: np.ndarray, mask: np.ndarray, depthwise: bool) -> np.ndarray:
    """Raise surviving weights that would quantize to 0 to one int8 step of their channel.

    The converter quantizes kernels symmetrically per output channel (the last
    Keras axis; both last axes for a depthwise kernel), with step max|w| / 127.
    """
    channels = kernel.shape[-2] * kernel.shape[-1] if depthwise else kernel.shape[-1]
    flat = kernel.reshape(-1, channels)
    step = np.abs(flat).max(axis=0) / 127.0
    tiny = (mask.reshape(flat.shape) > 0) & (np.abs(flat) < 0.51 * step)
    raised = np.where(tiny, np.where(flat < 0, -step, step), flat)
    return raised.reshape(kernel.shape).astype(kernel.dtype)


def int8_layer_sparsity(tflite: bytes, snapshot: Snapshot) -> dict[str, dict[str, float]]:
    """layer -> {target, achieved, weights}: achieved is measured on the int8 weights, as the share of
    the unpruned layer's `weights` that are zero (a filter-pruned layer's removed weights count as zeros)."""
    from harness.compiler import read_tflite

    graph = read_tflite(tflite)
    weights = {op.inputs[1].name: op.inputs[1].data for op in graph.ops if op.kind in WEIGHTED_OPS}
    sizes = snapshot.layer_sizes
    table = {}
    for name, tensor in _pair_by_name(list(weights), list(sizes)).items():
        w, size = weights[tensor], sizes[name]
        if w.size > size or (not snapshot.filters and w.size != size):
            raise PruningError(f"int8 weights '{tensor}' ({w.size} values) do not match layer '{name}' "
                               f"({size} weights)")
        table[name] = {"target": snapshot.layer_targets[name],
                       "achieved": 1.0 - int(np.count_nonzero(w)) / size, "weights": size}
    return table


def _pair_by_name(tensors: list[str], layers: list[str]) -> dict[str, str]:
    """Keras layer -> the int8 weight tensor named after it.

    The converter may reorder ops (a ResNet's shortcut convolution runs
    before the block it bypasses), so order says nothing; names do. Keras 3
    names a kernel "<model>_1/<layer>_1/convolution"; a name segment is the
    layer's name with or without that numeric suffix.
    """
    def layer_of(tensor: str) -> str | None:
        segments = tensor.split(";")[0].split("/")
        for candidates in (segments, [re.sub(r"_\d+$", "", segment) for segment in segments]):
            found = [segment for segment in candidates if segment in layers]
            if found:
                return found[-1]
        return None

    pairs = {}
    for tensor in tensors:
        layer = layer_of(tensor)
        if layer is None or layer in pairs:
            problem = "names no prunable layer" if layer is None else f"names layer '{layer}' again"
            raise PruningError(f"int8 weight tensor '{tensor}' {problem}: cannot tell which layer it holds "
                               f"(prunable layers: {', '.join(layers)})")
        pairs[layer] = tensor
    missing = [layer for layer in layers if layer not in pairs]
    if missing:
        raise PruningError(f"no int8 weight tensor is named after layer(s) {', '.join(missing)}")
    return pairs


def total_sparsity(layer_sparsity: dict[str, dict[str, float]]) -> float:
    """The achieved sparsity over all layers of an int8_layer_sparsity() table, weighted by their sizes."""
    weights = sum(layer["weights"] for layer in layer_sparsity.values())
    return sum(layer["achieved"] * layer["weights"] for layer in layer_sparsity.values()) / weights
