"""Hardware-aware allocation: how many of each layer's weights to prune, for the fewest predicted
instructions at the least saliency lost, with the model's total number of zeros fixed.

Each layer's cost of pruning k more of its weights is

    cost_i(k) = latency_i(k) / latency of all pooled layers dense  +  tradeoff * lost_i(k) / layers

latency_i from the cost model (cost_model.py) in the layer's fastest format at
that density; lost_i the share of the layer's own saliency (|w| or Taylor) in
its k lowest-ranked weights, the ones its mask drops. `allocate` minimizes the
sum over layers with the zeros' total fixed: on each layer's lower convex hull
the cheapest next weight is a marginal cost, and taking the hull segments of
all layers in order of that cost is the Lagrangian optimum (docs/pruning.md,
"Hardware-aware allocation").
"""
from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from harness.prune.cost_model import CostModel, LayerGeometry
from harness.prune.masks import check_target


def lower_hull(costs: np.ndarray) -> list[int]:
    """Indices of the lower convex hull of the points (j, costs[j]), left to right, collinear points dropped,
    so the slopes between consecutive vertices strictly increase.

    >>> lower_hull(np.array([0.0, 1.0, 0.5, 1.5]))
    [0, 2, 3]
    """
    hull: list[int] = []
    for j, y in enumerate(costs):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # b stays only when it lies strictly below the line from a to j
            if (costs[b] - costs[a]) * (j - a) < (y - costs[a]) * (b - a):
                break
            hull.pop()
        hull.append(j)
    return hull


def allocate(costs: Sequence[np.ndarray], total: int) -> list[int]:
    """How many weights each layer prunes: costs[i][j] is layer i's cost with j weights pruned (j from 0);
    the counts sum to `total` exactly and minimize the summed cost over the layers' lower convex hulls.

    Segments of every hull are taken cheapest marginal cost first (ties: the earlier layer); the last
    one taken may be taken in part, so at most one layer ends between two vertices of its hull.
    """
    capacity = sum(len(c) - 1 for c in costs)
    if not 0 <= total <= capacity:
        raise ValueError(f"{total} weights to prune, but the layers can lose 0 to {capacity}")
    segments = []
    for layer, layer_costs in enumerate(costs):
        hull = lower_hull(np.asarray(layer_costs, np.float64))
        segments += [((layer_costs[b] - layer_costs[a]) / (b - a), layer, b - a) for a, b in pairwise(hull)]
    segments.sort(key=lambda segment: segment[:2])
    counts, remaining = [0] * len(costs), total
    for _, layer, length in segments:
        if remaining == 0:
            break
        taken = min(length, remaining)
        counts[layer] += taken
        remaining -= taken
    return counts


def hardware_keep_counts(scores: Sequence[np.ndarray], previous: Sequence[np.ndarray], geometries: Sequence[LayerGeometry],
                         cost_model: CostModel, sparsity: float, min_weights: int, tradeoff: float = 1.0) -> list[int]:
    """Per-layer survivor counts for a total of round(N * (1 - sparsity)) over the layers given, as global
    ranking keeps exactly; weights pruned before (previous == 0) stay pruned, every layer keeps min_weights."""
    check_target(sparsity)
    sizes = [s.size for s in scores]
    pruned_before = [int(np.sum(p == 0)) for p in previous]
    most = [max(before, size - min(size, min_weights)) for size, before in zip(sizes, pruned_before)]
    dense = sum(float(cost_model.latency(g, 1.0)) for g in geometries) or 1.0
    costs = []
    for s, p, g, size, before, last in zip(scores, previous, geometries, sizes, pruned_before, most):
        saliency = np.sort(np.where(p.ravel() > 0, np.abs(s.ravel()).astype(np.float64), 0.0))
        lost = np.concatenate([[0.0], np.cumsum(saliency)])[before:last + 1] / (saliency.sum() or 1.0)
        density = (size - np.arange(before, last + 1)) / size
        costs.append(cost_model.latency(g, density) / dense + tradeoff * lost / len(scores))
    total = sum(sizes) - int(round(sum(sizes) * (1.0 - sparsity)))
    total = min(max(total, sum(pruned_before)), sum(most))
    extra = allocate(costs, total - sum(pruned_before))
    return [size - before - more for size, before, more in zip(sizes, pruned_before, extra)]
