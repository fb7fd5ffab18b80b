"""Structured (filter) pruning: drop whole output channels, then rebuild a smaller dense model.

While training, a dropped filter is masked in its own kernel (the output
channel) and in every kernel that reads it (the input channel), so the
channel is dead and removing it later changes no output. Tracing which layer
reads which channels needs a chain of layers; channels pass unchanged through
pooling, batch norm, activations, dropout and depthwise convolutions, and
Flatten repeats them once per spatial position (channels last).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.prune.masks import PruningError, top_k_mask

CHANNEL_PRESERVING = (
    "MaxPooling1D",
    "MaxPooling2D",
    "AveragePooling1D",
    "AveragePooling2D",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "BatchNormalization",
    "Activation",
    "ReLU",
    "Dropout",
)


@dataclass(frozen=True)
class ChannelSource:
    """The input channels of a layer are the output filters of `layer`, repeated `tile` times (after a Flatten)."""

    layer: str
    tile: int = 1

    def select(self, keep: dict[str, np.ndarray]) -> np.ndarray | None:
        return np.tile(keep[self.layer], self.tile) if self.layer in keep else None


@dataclass(frozen=True)
class ChannelGraph:
    prunable: tuple[str, ...]  # layers whose filters may be dropped (not the output layer)
    sources: dict[str, ChannelSource]  # layer -> whose filters its input channels are


def trace_channels(model) -> ChannelGraph:
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    for previous, layer in zip(layers, layers[1:]):
        if layer.input is not previous.output:
            raise PruningError(
                f"filter pruning needs a model that is a chain of layers; '{layer.name}' does not "
                f"take the output of '{previous.name}'"
            )
    sources: dict[str, ChannelSource] = {}
    prunable: list[str] = []
    current: ChannelSource | None = None
    for layer in layers:
        kind = type(layer).__name__
        if current is not None:
            sources[layer.name] = current
        if kind in ("Conv1D", "Conv2D", "Dense"):
            if current is not None:
                prunable.append(current.layer)  # its filters are read by a kernel we can mask: droppable
            current = ChannelSource(layer.name)
        elif kind == "Flatten" and current is not None:
            current = ChannelSource(current.layer, int(np.prod(layer.input.shape[1:-1])))
        elif kind == "DepthwiseConv2D" and layer.depth_multiplier == 1 or kind in CHANNEL_PRESERVING:
            continue
        else:
            current = None  # channels go where they cannot be traced: the filters before stay
    return ChannelGraph(tuple(prunable), sources)


def filter_keep(scores: np.ndarray, sparsity: float, previous: np.ndarray | None, min_weights: int) -> np.ndarray:
    """Which output filters survive, as a bool per filter.

    A dropped filter also empties an input channel of the next layer, so a
    layer between two pruned layers loses about 1 - (1 - f)^2 of its weights
    at filter fraction f; f = 1 - sqrt(1 - sparsity) brings those to the target.
    """
    filters = scores.shape[-1]
    fan_in = scores.size // filters
    per_filter = scores.reshape(-1, filters).sum(axis=0)
    keep = max(-(-min_weights // fan_in), int(round(filters * np.sqrt(1.0 - sparsity))))
    return top_k_mask(per_filter, min(filters, keep), previous).astype(bool)


def filter_masks(graph: ChannelGraph, kernels: dict[str, tuple], keep: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Kernel masks (Keras layout, output channels last, input channels second to last) for the kept filters."""
    masks = {}
    for name, shape in kernels.items():
        mask = np.ones(shape, np.float32)
        if name in keep:
            mask *= keep[name]
        inputs = graph.sources[name].select(keep) if name in graph.sources else None
        if inputs is not None:
            mask *= inputs[:, np.newaxis]
        masks[name] = mask
    return masks


def compact(model, graph: ChannelGraph, keep: dict[str, np.ndarray]):
    """A smaller dense copy of `model` without the dropped filters; it computes the same outputs."""
    import keras

    config = model.get_config()
    for layer_config in config["layers"]:
        layer_config.pop("build_config", None)  # it records the old input widths; layers rebuild from their inputs
        name = layer_config["config"]["name"]
        if name in keep:
            width = "units" if layer_config["class_name"] == "Dense" else "filters"
            layer_config["config"][width] = int(keep[name].sum())
    small = keras.Model.from_config(config)
    for layer in model.layers:
        weights = layer.get_weights()
        inputs = graph.sources[layer.name].select(keep) if layer.name in graph.sources else None
        if weights and inputs is not None:
            weights = _slice_inputs(type(layer).__name__, weights, inputs)
        if layer.name in keep:
            kernel, *bias = weights
            weights = [kernel[..., keep[layer.name]], *(b[keep[layer.name]] for b in bias)]
        small.get_layer(layer.name).set_weights(weights)
    return small


def _slice_inputs(kind: str, weights: list[np.ndarray], inputs: np.ndarray) -> list[np.ndarray]:
    if kind == "BatchNormalization":
        return [w[inputs] for w in weights]
    if kind == "DepthwiseConv2D":  # one filter per input channel: its bias goes with it
        kernel, *bias = weights
        return [kernel[..., inputs, :], *(b[inputs] for b in bias)]
    kernel, *bias = weights
    return [kernel[..., inputs, :], *bias]
