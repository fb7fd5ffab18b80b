"""Schedules: when to prune to which sparsity, and how long to train in between.

Each schedule walks the targets in ascending order and yields one snapshot per
target, so a sweep of many targets shares the dense training (all schedules)
and the pruning path itself (gradual, iterative, lottery ticket).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from harness.config import PruneConfig
from harness.prune.masks import polynomial_sparsity
from harness.prune.pruner import Pruner, Snapshot

Schedule = Callable[[Pruner, list[float], PruneConfig, list], Iterator[Snapshot]]


def one_shot(pruner: Pruner, targets: list[float], config: PruneConfig, early: list) -> Iterator[Snapshot]:
    """Each target from the dense model: prune at once, then fine-tune."""
    dense = pruner.weights()
    for target in targets:
        if target > 0:
            pruner.reset_masks()
            pruner.restore(dense)
            pruner.prune_to(target)
            pruner.train(config.finetune_epochs)
        yield pruner.snapshot(target)


def gradual(pruner: Pruner, targets: list[float], config: PruneConfig, early: list) -> Iterator[Snapshot]:
    """Zhu & Gupta: from the previous target, raise the sparsity on a cubic over the first half of the
    fine-tuning epochs (masks updated every epoch), hold it for the second half."""
    current = 0.0
    ramp = max(1, config.finetune_epochs // 2)
    for target in targets:
        if target > current:
            pruner.head_for(target)
            for step in range(1, ramp + 1):
                pruner.prune_to(polynomial_sparsity(current, target, step, ramp))
                pruner.train(min(1, config.finetune_epochs))
            pruner.train(max(0, config.finetune_epochs - ramp))
            current = target
        yield pruner.snapshot(target)


def iterative(pruner: Pruner, targets: list[float], config: PruneConfig, early: list) -> Iterator[Snapshot]:
    """Prune round_fraction of the remaining weights, fine-tune round_epochs, repeat; the round that
    reaches a target is cut to land on it exactly and fine-tunes finetune_epochs."""
    current = 0.0
    for target in targets:
        pruner.head_for(target)
        while current < target:
            current = _next_round(current, target, config.round_fraction)
            pruner.prune_to(current)
            pruner.train(config.finetune_epochs if current == target else config.round_epochs)
        yield pruner.snapshot(target)


def lottery(pruner: Pruner, targets: list[float], config: PruneConfig, early: list) -> Iterator[Snapshot]:
    """Lottery ticket (Frankle & Carbin; with rewinding, Frankle et al. 2020): iterative magnitude
    pruning where after each round the survivors go back to their early values (`early`: the initial
    weights, or those after rewind_epoch dense epochs) and retrain for finetune_epochs."""
    current = 0.0
    for target in targets:
        pruner.head_for(target)
        while current < target:
            current = _next_round(current, target, config.round_fraction)
            pruner.prune_to(current)
            pruner.restore(early)
            pruner.train(config.finetune_epochs)
        yield pruner.snapshot(target)


def _next_round(current: float, target: float, fraction: float) -> float:
    return min(target, 1.0 - (1.0 - current) * (1.0 - fraction))


SCHEDULES: dict[str, Schedule] = {"one-shot": one_shot, "gradual": gradual, "iterative": iterative, "lottery": lottery}
