"""From a snapshot to the Keras model that is converted to int8, and the sparsity the int8 weights show.

Masks must survive int8 conversion exactly: a pruned weight is a float zero
and stays an int8 zero, but a surviving weight smaller than half a
quantization step would round to zero too. Such survivors are set to one
step (the smallest nonzero int8 value), which moves them by less than the
rounding of conversion does.
"""
from __future__ import annotations

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
    weights = [op.inputs[1].data for op in graph.ops if op.kind in WEIGHTED_OPS]
    sizes = snapshot.layer_sizes
    if len(weights) != len(sizes):
        raise PruningError(f"the int8 model has {len(weights)} weighted ops but the Keras model has {len(sizes)} "
                           f"prunable layers ({', '.join(sizes)}): cannot tell their sparsity apart")
    table = {}
    for (name, size), w in zip(sizes.items(), weights):
        if w.size > size or (not snapshot.filters and w.size != size):
            raise PruningError(f"int8 weights of {w.size} values do not match layer '{name}' ({size} weights)")
        table[name] = {"target": snapshot.layer_targets[name],
                       "achieved": 1.0 - int(np.count_nonzero(w)) / size, "weights": size}
    return table


def total_sparsity(layer_sparsity: dict[str, dict[str, float]]) -> float:
    """The achieved sparsity over all layers of an int8_layer_sparsity() table, weighted by their sizes."""
    weights = sum(layer["weights"] for layer in layer_sparsity.values())
    return sum(layer["achieved"] * layer["weights"] for layer in layer_sparsity.values()) / weights
