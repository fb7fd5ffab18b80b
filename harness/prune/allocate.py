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
from harness.prune.masks import check_target, floors_of


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


def hardware_keep_counts(  # noqa: PLR0913 (per-layer arrays and the allocation's settings; the tests call it with synthetic ones)
    scores: Sequence[np.ndarray],
    previous: Sequence[np.ndarray],
    geometries: Sequence[LayerGeometry],
    cost_model: CostModel,
    sparsity: float,
    min_weights: int | Sequence[int],
    tradeoff: float,
) -> list[int]:
    """Per-layer survivor counts for a total of round(N * (1 - sparsity)) over the layers given, as global
    ranking keeps exactly; weights pruned before (previous == 0) stay pruned, every layer keeps min_weights
    (one count for all, or one per layer: masks.least_kept)."""
    check_target(sparsity)
    pool = _Pool(scores, previous, geometries, cost_model, min_weights, tradeoff)
    total = pool.size - round(pool.size * (1.0 - sparsity))
    return pool.keep_counts(total)


def part_way(now: Sequence[int], planned: Sequence[int], total: int) -> list[int]:
    """Zeros per layer with `total` in all, every layer the same share of its way from `now` to `planned` (zeros
    per layer), rounded by largest remainder so the sum is exact; never fewer than `now`, never more than
    `planned`.

    >>> part_way([0, 0, 10], [10, 30, 10], 20)
    [5, 15, 10]
    """
    ways = np.array(planned, np.int64) - np.array(now, np.int64)
    if np.any(ways < 0) or not sum(now) <= total <= sum(planned):
        raise ValueError(f"{total} zeros is not on the way from {list(now)} to {list(planned)}")
    share = (total - sum(now)) / (ways.sum() or 1)
    steps = np.floor(ways * share).astype(np.int64)
    short = total - sum(now) - int(steps.sum())
    steps[np.argsort(-(ways * share - steps), kind="stable")[:short]] += 1
    return [int(n + step) for n, step in zip(now, steps)]


def budget_sparsity(  # noqa: PLR0913 (as hardware_keep_counts', with the budget in place of the sparsity)
    scores: Sequence[np.ndarray],
    previous: Sequence[np.ndarray],
    geometries: Sequence[LayerGeometry],
    cost_model: CostModel,
    budget: float,
    min_weights: int | Sequence[int],
    tradeoff: float,
) -> float | None:
    """The least sparsity of these layers at which their allocation is predicted to take at most `budget`
    (instructions); None when even the most pruning the floors allow is predicted above it.

    Found by bisection on the number of zeros: the allocation's predicted latency falls as zeros are added
    (each is taken only where it lowers the summed cost), up to the saliency's pull at the margin."""
    pool = _Pool(scores, previous, geometries, cost_model, min_weights, tradeoff)
    low, high = pool.before, pool.most
    if pool.latency(pool.keep_counts(high)) > budget:
        return None
    while low < high:
        middle = (low + high) // 2
        if pool.latency(pool.keep_counts(middle)) <= budget:
            high = middle
        else:
            low = middle + 1
    return high / pool.size


class _Pool:
    """The layers sharing the zeros: each one's cost of pruning k more weights (the module's formula), from
    the zeros it has to the most its floor allows."""

    def __init__(self, scores, previous, geometries, cost_model: CostModel, min_weights, tradeoff: float):
        self.sizes = [s.size for s in scores]
        self.size = sum(self.sizes)
        self.geometries, self.cost_model = geometries, cost_model
        self.pruned_before = [int(np.sum(p == 0)) for p in previous]
        self.most_each = [
            max(before, size - floor)
            for size, before, floor in zip(self.sizes, self.pruned_before, floors_of(self.sizes, min_weights))
        ]
        self.before, self.most = sum(self.pruned_before), sum(self.most_each)
        dense = sum(float(cost_model.latency(g, 1.0)) for g in geometries) or 1.0
        self.costs = []
        for s, p, g, size, before, last in zip(
            scores, previous, geometries, self.sizes, self.pruned_before, self.most_each
        ):
            saliency = np.sort(np.where(p.ravel() > 0, np.abs(s.ravel()).astype(np.float64), 0.0))
            lost = np.concatenate([[0.0], np.cumsum(saliency)])[before : last + 1] / (saliency.sum() or 1.0)
            density = (size - np.arange(before, last + 1)) / size
            self.costs.append(cost_model.latency(g, density) / dense + tradeoff * lost / len(scores))

    def keep_counts(self, total: int) -> list[int]:
        """Survivors per layer with `total` zeros in all (clipped to what the pool can have)."""
        total = min(max(total, self.before), self.most)
        extra = allocate(self.costs, total - self.before)
        return [size - before - more for size, before, more in zip(self.sizes, self.pruned_before, extra)]

    def latency(self, counts: list[int]) -> float:
        return sum(
            float(self.cost_model.latency(g, kept / size)) for g, kept, size in zip(self.geometries, counts, self.sizes)
        )
