"""One model being pruned by one method: scores, masks, training and snapshots.

The schedules (schedules.py) only decide when to prune to which sparsity and
how long to train; everything that depends on the criterion, the pattern and
the per-layer settings lives here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from harness.config import PruneConfig
from harness.prune.allocate import budget_sparsity, hardware_keep_counts, part_way
from harness.prune.cost_model import cost_board, layer_geometry, load_cost_model
from harness.prune.masks import (
    PruningError,
    global_keep_counts,
    kept_count,
    least_kept,
    n_of_m_mask,
    prunable_layers,
    top_k_mask,
)
from harness.prune.method import Method
from harness.prune.structured import filter_keep, filter_masks, trace_channels
from harness.prune.train import MaskedTrainer
from harness.scoring import score


@dataclass
class Snapshot:
    method: str
    target: float
    weights: list  # model.get_weights() at this target
    masks: dict[str, np.ndarray]  # layer -> kernel mask
    filters: dict[str, np.ndarray]  # filter pattern: layer -> kept output filters; else empty
    float_scores: dict[str, float]  # the task's scores of the float model (harness/scoring.py)
    layer_targets: dict[str, float]  # layer -> the sparsity asked of it
    layer_sizes: dict[str, int]  # layer -> kernel weights in the unpruned model
    epochs: int  # training epochs spent since the previous snapshot
    seconds: float  # and the time they took, mask updates included


class Pruner:
    def __init__(self, model, data, config: PruneConfig, method: Method, seed: int, board: str | None = None):
        """board: whose cost model a hardware-aware method allocates by (the sweep's board)."""
        self.model, self.data, self.config, self.method = model, data, config, method
        self.layers = prunable_layers(model)
        self._check_layer_names()
        self.trainer = MaskedTrainer(model, self.layers, config.learning_rate, seed, data.task)
        self.rng = np.random.default_rng(seed)
        self.graph = trace_channels(model) if method.pattern == "filter" else None
        by_cost = method.scope == "hardware" or method.criterion == "mac-weighted"
        self.geometries = [layer_geometry(layer) for layer in self.layers] if by_cost else None
        self.cost_model = (
            load_cost_model(cost_board(method.name, [board] if board else [])) if method.scope == "hardware" else None
        )
        self.reset_masks()
        self._epochs, self._since = 0, time.perf_counter()

    # --- what each layer is asked for ---

    def layer_target(self, layer, sparsity: float) -> float:
        if layer.name in self.config.skip or not self._fits_pattern(layer):
            return 0.0
        if self.method.n_of_m is not None:
            return self.method.fixed_target()
        return self.config.layer_targets.get(layer.name, sparsity)

    def floor(self, layer) -> int:
        """The fewest weights the layer keeps: min_weights, and no more pruned than max_layer_sparsity."""
        return least_kept(int(np.prod(layer.kernel.shape)), self.config.min_weights, self.config.max_layer_sparsity)

    def _fits_pattern(self, layer) -> bool:
        n_of_m = self.method.n_of_m
        if n_of_m is not None:  # groups run along the input channels, which a depthwise kernel does not mix
            return type(layer).__name__ != "DepthwiseConv2D" and layer.kernel.shape[-2] % n_of_m[1] == 0
        return self.graph is None or layer.name in self.graph.prunable

    def _check_layer_names(self) -> None:
        names = [layer.name for layer in self.layers]
        for key, chosen in (("skip", self.config.skip), ("layer_targets", self.config.layer_targets)):
            for name in chosen:
                if name not in names:
                    raise PruningError(
                        f"[prune] {key}: model '{self.model.name}' has no prunable layer '{name}' "
                        f"(its prunable layers: {', '.join(names)})"
                    )
        both = set(self.config.skip) & set(self.config.layer_targets)
        if both:
            raise PruningError(f"[prune]: layer '{sorted(both)[0]}' is both in 'skip' and in 'layer_targets'")

    # --- masks ---

    def reset_masks(self) -> None:
        self.masks = [np.ones(layer.kernel.shape, np.float32) for layer in self.layers]
        self.filters = {}
        self._planned: tuple[float, list[int]] | None = None  # head_for: (target, zeros per pooled layer)
        self.trainer.set_masks(self.masks)

    def prune_to(self, sparsity: float) -> None:
        """Tighten the masks to `sparsity`, ranking the current weights by the criterion; pruned weights stay pruned."""
        scores = self._scores()
        if self.method.n_of_m is not None:
            n, m = self.method.n_of_m
            masks = [
                n_of_m_mask(s, n, m) if self.layer_target(layer, sparsity) else mask
                for layer, s, mask in zip(self.layers, scores, self.masks)
            ]
        elif self.graph is not None:
            masks = self._filter_masks(scores, sparsity)
        else:
            masks = self._unstructured_masks(scores, sparsity)
        self.masks = masks
        self.trainer.set_masks(masks)

    def head_for(self, target: float) -> None:
        """A schedule is about to walk to `target` in steps. A hardware-aware method allocates the target's zeros
        now, once, on the weights as they are, and each step moves every layer the same share of its way there.

        Allocating afresh at each step ends elsewhere: each layer's loss is a share of the saliency it has
        left, so a layer pruned at one step looks dearer at the next. On ResNet-8 (docs/pruning.md) two steps
        with no training between them ended at 5.62 M predicted instructions, where one allocation at the
        target is 5.18 M."""
        self._planned = None
        if self.method.scope == "hardware" and target > 0:
            kept = self._pooled_counts(self._scores(), target)
            sizes = [self.masks[i].size for i in self._pooled()]
            self._planned = (target, [size - k for size, k in zip(sizes, kept)])

    def _unstructured_masks(self, scores: list[np.ndarray], sparsity: float) -> list[np.ndarray]:
        counts = [self._kept(layer, sparsity) for layer in self.layers]
        if self.method.scope != "layer":
            for i, count in zip(self._pooled(), self._pooled_counts(scores, sparsity)):
                counts[i] = count
        return [top_k_mask(s, count, mask) for s, count, mask in zip(scores, counts, self.masks)]

    def _pooled_counts(self, scores: list[np.ndarray], sparsity: float) -> list[int]:
        """Survivors per pooled layer at `sparsity`: by the global ranking, the allocation planned by head_for
        (on the way to its target), or a fresh allocation."""
        pooled = self._pooled()
        ranked, previous = [scores[i] for i in pooled], [self.masks[i] for i in pooled]
        floors = [self.floor(self.layers[i]) for i in pooled]
        if self.method.scope == "global":
            return global_keep_counts(ranked, previous, sparsity, floors)
        sizes = [mask.size for mask in previous]
        if self._planned is not None and sparsity <= self._planned[0]:
            now, planned = [int(np.sum(mask == 0)) for mask in previous], self._planned[1]
            total = min(max(sum(sizes) - round(sum(sizes) * (1.0 - sparsity)), sum(now)), sum(planned))
            return [size - zeros for size, zeros in zip(sizes, part_way(now, planned, total))]
        geometries = [self.geometries[i] for i in pooled]
        return hardware_keep_counts(
            ranked, previous, geometries, self.cost_model, sparsity, floors, self.config.tradeoff
        )

    def _kept(self, layer, sparsity: float) -> int:
        """Survivors of a layer pruned to its own target at `sparsity`."""
        return kept_count(int(np.prod(layer.kernel.shape)), self.layer_target(layer, sparsity), self.floor(layer))

    def _pooled(self) -> list[int]:
        """The layers a global ranking or the allocator shares the zeros among: not skipped, no own target."""
        return [
            i
            for i, layer in enumerate(self.layers)
            if layer.name not in self.config.skip and layer.name not in self.config.layer_targets
        ]

    def budget_target(self, budget: float) -> float:
        """latency_budget: the least sparsity of the pooled layers at which the allocation of the current
        weights is predicted to take at most `budget` of all prunable layers' dense latency; the layers outside
        the allocation (skipped, own targets) count at their own targets."""
        pooled = self._pooled()
        dense = sum(float(self.cost_model.latency(g, 1.0)) for g in self.geometries)
        fixed = sum(
            float(self.cost_model.latency(g, self._kept(layer, 0.0) / g.weights))
            for i, (layer, g) in enumerate(zip(self.layers, self.geometries))
            if i not in pooled
        )
        scores = self._scores()
        share = budget_sparsity(
            [scores[i] for i in pooled],
            [self.masks[i] for i in pooled],
            [self.geometries[i] for i in pooled],
            self.cost_model,
            budget * dense - fixed,
            [self.floor(self.layers[i]) for i in pooled],
            self.config.tradeoff,
        )
        if share is None:
            raise PruningError(
                f"{self.method.name}: 'latency_budget' {budget} is out of reach: the most pruning "
                "'max_layer_sparsity' and 'min_weights' allow is predicted above it"
            )
        return share

    def _filter_masks(self, scores: list[np.ndarray], sparsity: float) -> list[np.ndarray]:
        for layer, s in zip(self.layers, scores):
            target = self.layer_target(layer, sparsity)
            if target > 0:
                self.filters[layer.name] = filter_keep(s, target, self.filters.get(layer.name), self.config.min_weights)
        shapes = {layer.name: tuple(layer.kernel.shape) for layer in self.layers}
        masks = filter_masks(self.graph, shapes, self.filters)
        return [masks[layer.name] for layer in self.layers]

    def _scores(self) -> list[np.ndarray]:
        """A score per kernel weight: the higher, the more worth keeping."""
        kernels = [layer.kernel.numpy() for layer in self.layers]
        if self.method.criterion == "magnitude":
            return [np.abs(k) for k in kernels]
        if self.method.criterion == "mac-weighted":  # ranked globally: a weight's |w| per MAC its zero saves
            return [np.abs(k) / g.macs_per_weight for k, g in zip(kernels, self.geometries)]
        if self.method.criterion == "taylor":
            return self.trainer.taylor_saliency(
                self.data.x_train, self.data.y_train, self.config.batch_size, self.config.saliency_batches
            )
        return [self.rng.random(k.shape) for k in kernels]

    # --- training and snapshots ---

    def train(self, epochs: int) -> float:
        loss = float("nan")
        for _ in range(epochs):
            loss = self.trainer.fit_epoch(self.data.x_train, self.data.y_train, self.config.batch_size)
        self._epochs += epochs
        return loss

    def weights(self) -> list[np.ndarray]:
        return [w.copy() for w in self.model.get_weights()]

    def restore(self, weights: list[np.ndarray]) -> None:
        """Set weights (pruned ones stay zero under the current masks) and restart the optimizer."""
        self.model.set_weights(weights)
        self.trainer.set_masks(self.masks)
        self.trainer.reset_optimizer()

    def scores(self) -> dict[str, float]:
        predictions = np.asarray(self.model(self.data.x_test, training=False))
        return score(self.data.task, predictions, self.data.y_test, self.data.anomaly_test)

    def _asked(self, layer, mask: np.ndarray, target: float) -> float:
        """The sparsity a layer was asked for: the allocator chose it for each layer it shares the zeros among."""
        if (
            self.method.scope == "hardware"
            and layer.name not in self.config.skip
            and layer.name not in self.config.layer_targets
            and target > 0
        ):
            return float(1.0 - mask.sum() / mask.size)
        return self.layer_target(layer, target)

    def snapshot(self, target: float) -> Snapshot:
        now = time.perf_counter()
        snapshot = Snapshot(
            method=self.method.name,
            target=target,
            weights=self.weights(),
            masks={layer.name: mask.copy() for layer, mask in zip(self.layers, self.masks)},
            filters={name: keep.copy() for name, keep in self.filters.items()},
            float_scores=self.scores(),
            layer_targets={
                layer.name: self._asked(layer, mask, target) for layer, mask in zip(self.layers, self.masks)
            },
            layer_sizes={layer.name: int(np.prod(layer.kernel.shape)) for layer in self.layers},
            epochs=self._epochs,
            seconds=now - self._since,
        )
        self._epochs, self._since = 0, now
        return snapshot
