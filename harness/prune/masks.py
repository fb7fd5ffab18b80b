"""Binary weight masks: which weights of a layer survive, given a score per weight.

A mask keeps an exact number of weights, so the achieved sparsity equals the
target to within one weight whatever ties the scores contain. Weights pruned
earlier on a path stay pruned: they rank below every survivor.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PRUNABLE_LAYER_TYPES = ("Conv1D", "Conv2D", "DepthwiseConv2D", "Dense")


class PruningError(ValueError):
    """A model, target or setting that cannot be pruned as asked."""


def prunable_layers(model) -> list:
    """Layers whose kernel can be pruned, in model order."""
    layers = [layer for layer in model.layers if type(layer).__name__ in PRUNABLE_LAYER_TYPES]
    if not layers:
        kinds = sorted({type(layer).__name__ for layer in model.layers})
        raise PruningError(
            f"model '{model.name}' has no prunable layers (looked for {', '.join(PRUNABLE_LAYER_TYPES)}; "
            f"it has {', '.join(kinds)})"
        )
    return layers


def check_target(sparsity: float) -> None:
    if not 0.0 <= sparsity < 1.0:
        raise PruningError(f"sparsity {sparsity} is outside [0, 1)")


def kept_count(size: int, sparsity: float, min_weights: int = 1) -> int:
    """How many of `size` weights survive at `sparsity`: never fewer than min_weights, so a layer never vanishes."""
    check_target(sparsity)
    return min(size, max(min_weights, int(round(size * (1.0 - sparsity)))))


def _ranked(scores: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
    flat = scores.ravel().astype(np.float64)
    if previous is not None:
        flat = np.where(previous.ravel() > 0, flat, -np.inf)
    return flat


def top_k_mask(scores: np.ndarray, keep: int, previous: np.ndarray | None = None) -> np.ndarray:
    """Keep the `keep` highest scores; ties go to the earlier position (a stable sort), so a seed fixes the mask."""
    order = np.argsort(-_ranked(scores, previous), kind="stable")
    mask = np.zeros(scores.size, dtype=np.float32)
    mask[order[:keep]] = 1.0
    return mask.reshape(scores.shape)


def least_kept(size: int, min_weights: int, max_sparsity: float = 1.0) -> int:
    """The fewest of a layer's `size` weights it may keep: min_weights, and enough that at most max_sparsity of
    them are pruned.

    >>> least_kept(144, 1, 0.95), least_kept(144, 20, 0.95), least_kept(10, 50)
    (8, 20, 10)
    """
    return min(size, max(min_weights, size - int(np.floor(size * max_sparsity + 1e-9))))


def floors_of(sizes: Sequence[int], min_weights: int | Sequence[int]) -> list[int]:
    """Each layer's least kept count: one min_weights for all, or one per layer; never more than the layer has."""
    each = [min_weights] * len(sizes) if isinstance(min_weights, int) else list(min_weights)
    return [min(size, floor) for size, floor in zip(sizes, each)]


def global_keep_counts(
    scores: list[np.ndarray], previous: list[np.ndarray | None], sparsity: float, min_weights: int | Sequence[int]
) -> list[int]:
    """Per-layer survivor counts when all layers' scores are ranked together (global pruning).

    Each layer first keeps its min_weights best (one count for all, or one per layer: least_kept); the rest
    of the budget goes to the best scores of any layer. The total is exact: round(N * (1 - sparsity)).
    """
    check_target(sparsity)
    ranked = [np.sort(_ranked(s, p))[::-1] for s, p in zip(scores, previous)]
    floors = floors_of([r.size for r in ranked], min_weights)
    total = max(sum(floors), int(round(sum(r.size for r in ranked) * (1.0 - sparsity))))
    pool = np.concatenate([r[f:] for r, f in zip(ranked, floors)])
    owner = np.concatenate([np.full(r.size - f, i) for i, (r, f) in enumerate(zip(ranked, floors))])
    chosen = owner[np.argsort(-pool, kind="stable")[: total - sum(floors)]]
    return [f + int(np.sum(chosen == i)) for i, f in enumerate(floors)]


def n_of_m_mask(scores: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep the n best of every m consecutive weights along the input dimension (axis -2 of a Keras kernel)."""
    along_input = np.moveaxis(scores, -2, -1)
    groups = along_input.reshape(*along_input.shape[:-1], -1, m)
    order = np.argsort(-groups, axis=-1, kind="stable")
    mask = np.zeros(groups.shape, np.float32)
    np.put_along_axis(mask, order[..., :n], 1.0, axis=-1)
    return np.moveaxis(mask.reshape(along_input.shape), -1, -2)


def polynomial_sparsity(start: float, end: float, step: int, steps: int) -> float:
    """Zhu & Gupta (2017): s_t = s_f + (s_i - s_f) * (1 - t/n)^3, for t in [0, n]."""
    if steps <= 0:
        return end
    progress = min(max(step / steps, 0.0), 1.0)
    return end + (start - end) * (1.0 - progress) ** 3
