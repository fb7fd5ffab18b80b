"""Binary weight masks for unstructured pruning.

A mask keeps an exact number of weights per layer, so the achieved sparsity
equals the target to within one weight, whatever ties the weights contain.
"""
from __future__ import annotations

import numpy as np

PRUNABLE_LAYER_TYPES = ("Conv2D", "DepthwiseConv2D", "Dense")


class PruningError(ValueError):
    """A model or target that cannot be pruned as asked."""


def prunable_layers(model) -> list:
    """Layers whose kernel is pruned: Conv2D, DepthwiseConv2D and Dense, in model order."""
    layers = [layer for layer in model.layers if type(layer).__name__ in PRUNABLE_LAYER_TYPES]
    if not layers:
        kinds = sorted({type(layer).__name__ for layer in model.layers})
        raise PruningError(
            f"model '{model.name}' has no prunable layers (looked for {', '.join(PRUNABLE_LAYER_TYPES)}; "
            f"it has {', '.join(kinds)})")
    return layers


def kept_count(size: int, sparsity: float) -> int:
    """How many of `size` weights survive at `sparsity`; at least one, so a layer never vanishes."""
    if not 0.0 <= sparsity < 1.0:
        raise PruningError(f"sparsity {sparsity} is outside [0, 1)")
    return max(1, int(round(size * (1.0 - sparsity))))


def magnitude_mask(weights: np.ndarray, sparsity: float, previous: np.ndarray | None = None) -> np.ndarray:
    """Keep the largest-magnitude weights; weights pruned before stay pruned.

    Ties are broken by position (a stable sort), so the same weights give the same mask.
    """
    flat = np.abs(weights).ravel().astype(np.float64)
    if previous is not None:
        flat = np.where(previous.ravel() > 0, flat, -1.0)  # already pruned: rank below every survivor
    keep = kept_count(flat.size, sparsity)
    order = np.argsort(-flat, kind="stable")
    mask = np.zeros(flat.size, dtype=np.float32)
    mask[order[:keep]] = 1.0
    return mask.reshape(weights.shape)


def polynomial_sparsity(start: float, end: float, step: int, steps: int) -> float:
    """Zhu & Gupta (2017): s_t = s_f + (s_i - s_f) * (1 - t/n)^3, for t in [0, n]."""
    if steps <= 0:
        return end
    progress = min(max(step / steps, 0.0), 1.0)
    return end + (start - end) * (1.0 - progress) ** 3
