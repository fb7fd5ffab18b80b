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


def int8_layer_sparsity(tflite: bytes, snapshot: Snapshot, exported) -> dict[str, dict[str, float]]:
    """layer -> {target, achieved, weights}: achieved is measured on the int8 weights, as the share of
    the unpruned layer's `weights` that are zero (a filter-pruned layer's removed weights count as zeros).

    exported is the Keras model that was converted (export_model's result).
    """
    from harness.compiler import read_tflite

    graph = read_tflite(tflite)
    weights = [op.inputs[1].data for op in graph.ops if op.kind in WEIGHTED_OPS]
    sizes = snapshot.layer_sizes
    table = {}
    for name, w in pair_layers_with_weights(prunable_layers(exported), weights).items():
        size = sizes[name]
        if w.size > size or (not snapshot.filters and w.size != size):
            raise PruningError(f"int8 weights of layer '{name}' ({w.size} values) do not match its {size} weights")
        table[name] = {
            "target": snapshot.layer_targets[name],
            "achieved": 1.0 - int(np.count_nonzero(w)) / size,
            "weights": size,
        }
    return table


# Share of a layer's nonzero weights whose int8 value it predicts within one step, for a pair to count.
MATCH_THRESHOLD = 0.9


def pair_layers_with_weights(layers: list, tensors: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Keras layer name -> the int8 weight tensor that holds its kernel.

    Names do not survive conversion: Keras' default names collide with the
    suffixes the converter adds ("conv2d_1" is the tensor of layer "conv2d"
    and a layer of its own), and a kernel followed by BatchNormalization is
    folded into a tensor named after the BatchNorm. Order does not either:
    the converter moves a ResNet's shortcut convolution ahead of its block.
    Values do: each output channel of the int8 tensor is the layer's kernel
    channel times one factor (the quantization step, and the scale of a
    folded BatchNorm, whose sign may flip it), rounded. So a layer goes with
    the tensor of its shape whose channels it predicts best, each channel
    scaled by its least-squares factor. (The factor is not always
    127 / max|w|: seen on a BatchNorm-folded 1x1 convolution pruned to 70 %,
    whose largest int8 weights were about 37.)
    """
    scores = sorted(
        ((_agreement(layer, tensor), i, j) for i, layer in enumerate(layers) for j, tensor in enumerate(tensors)),
        reverse=True,
    )
    pairs, taken = {}, set()
    for score, i, j in scores:
        if score < MATCH_THRESHOLD:
            break
        if layers[i].name not in pairs and j not in taken:
            pairs[layers[i].name] = tensors[j]
            taken.add(j)
    unpaired = [layer for layer in layers if layer.name not in pairs]
    if unpaired:
        described = ", ".join(
            f"'{layer.name}' ({type(layer).__name__}, kernel {list(layer.kernel.shape)})" for layer in unpaired
        )
        shapes = ", ".join(str(list(t.shape)) for t in tensors)
        raise PruningError(
            f"no int8 weight tensor holds the kernel of layer(s) {described}; the converted "
            f"model's weight tensors have shapes {shapes}"
        )
    return pairs


def _agreement(layer, tensor: np.ndarray) -> float:
    """Share of the nonzero weights (in the layer or the tensor) that the layer's kernel predicts within one step."""
    kernel, channel_axis = _as_tflite(layer)
    if kernel.shape != tensor.shape:
        return 0.0
    channels = kernel.shape[channel_axis]
    k = np.moveaxis(kernel.astype(np.float64), channel_axis, 0).reshape(channels, -1)
    q = np.moveaxis(tensor.astype(np.float64), channel_axis, 0).reshape(channels, -1)
    nonzero = (k != 0) | (q != 0)
    if not nonzero.any():
        return 1.0
    energy = np.sum(k * k, axis=1)
    factor = np.sum(k * q, axis=1) / np.where(energy > 0, energy, 1.0)
    return float(np.mean(np.abs(np.round(factor[:, np.newaxis] * k) - q)[nonzero] <= 1))


def _as_tflite(layer) -> tuple[np.ndarray, int]:
    """The layer's kernel in the int8 tensor's layout, and that layout's output channel axis."""
    kernel = np.asarray(layer.kernel.numpy())
    kind = type(layer).__name__
    if kind == "Dense":  # [in, out] -> [out, in]
        return kernel.T, 0
    if kind == "Conv1D":  # [k, in, out] -> [out, 1, k, in]
        return kernel.transpose(2, 0, 1)[:, np.newaxis], 0
    if kind == "DepthwiseConv2D":  # [kh, kw, in, multiplier] -> [1, kh, kw, in * multiplier]
        kh, kw, channels, multiplier = kernel.shape
        return kernel.reshape(1, kh, kw, channels * multiplier), 3
    return kernel.transpose(3, 0, 1, 2), 0  # Conv2D: [kh, kw, in, out] -> [out, kh, kw, in]


def total_sparsity(layer_sparsity: dict[str, dict[str, float]]) -> float:
    """The achieved sparsity over all layers of an int8_layer_sparsity() table, weighted by their sizes."""
    weights = sum(layer["weights"] for layer in layer_sparsity.values())
    return sum(layer["achieved"] * layer["weights"] for layer in layer_sparsity.values()) / weights
