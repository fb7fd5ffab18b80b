"""The auto kernel: a weight format for each layer, chosen from latencies measured on the board.

The sweep measures every single format first; a layer's latency in a format
is then read from that format's row (`ResultRow.layer_latency`) and its
weight bytes from that format's compiled model. Per layer the chooser takes
the fastest format; equal latencies go to fewer bytes, then to dense. The
model's weights (values + indices + pointers of every layer) must stay no
larger than its dense int8 weights: that is the flash budget unless the user
sets another. So one small layer may take a format larger than its dense
weights (a first convolution pruned less than the rest: 206 B of csr for
144 B dense) when the other layers save more than that. This is sound where
per-layer latencies add up and a layer's latency
depends only on its own kernel and data: so on QEMU with -icount, where the
data are the same in every format because every format's outputs are
bit-exact. (Nearly: a model that reuses its input's bytes runs its later
timed inferences on what the memory plan left there, which moves counts by
a few hundredths of a percent; docs/kernels.md.)

Over the flash budget (bytes of weights of the whole model; biases and
requantization tables are the same in every format and not counted) the
fastest choice is shrunk greedily: while it is over the budget, one layer switches to a smaller format, the switch
that saves the most bytes per unit of latency it adds. Greedy is not always
optimal (the exact problem is a knapsack), but each step is easy to follow,
and a model has few layers. It can end slower than dense (seen on ResNet-8
at 50 %: 24.84 M predicted against dense's 24.45 M), so a last rule makes
the choice never slower than all-dense by construction: when the shrunk
choice's predicted latency is above dense's and dense fits the budget, every
layer goes dense.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.compiler import CompiledModel

AUTO = "auto"  # the kernel name users give; every other kernel name is a weight format
DENSE = "dense"


class ChooserError(ValueError):
    """The auto kernel cannot choose: a candidate was not measured, or the flash budget cannot be met."""


@dataclass(frozen=True)
class Option:
    """One layer in one weight format."""

    format: str
    latency: float  # measured, in the board's latency unit
    bytes: int  # weights in flash: values + indices + pointers


@dataclass(frozen=True)
class LayerOptions:
    name: str  # "0:CONV_2D", as in ResultRow.layer_latency
    index: int  # op index, as compile_tflite's layer_kernels takes it
    options: tuple[Option, ...]  # dense among them

    @property
    def dense(self) -> Option:
        return next(option for option in self.options if option.format == DENSE)


@dataclass(frozen=True)
class LayerChoice:
    layer: LayerOptions
    chosen: Option

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def index(self) -> int:
        return self.layer.index

    @property
    def dense(self) -> Option:
        return self.layer.dense


@dataclass(frozen=True)
class Choice:
    layers: tuple[LayerChoice, ...]
    flash_budget: int  # bytes of weights: the user's, or the dense model's

    @property
    def formats(self) -> dict[int, str]:
        """op index -> format, for compile_tflite(layer_kernels=...)."""
        return {layer.index: layer.chosen.format for layer in self.layers}

    @property
    def latency(self) -> float:
        return sum(layer.chosen.latency for layer in self.layers)

    @property
    def bytes(self) -> int:
        return sum(layer.chosen.bytes for layer in self.layers)

    @property
    def dense_latency(self) -> float:
        return sum(layer.dense.latency for layer in self.layers)

    @property
    def dense_bytes(self) -> int:
        return sum(layer.dense.bytes for layer in self.layers)

    def describe(self) -> str:
        """One line: each layer's format, and the layers' predicted latency and weight bytes against dense.

        >>> options = LayerOptions("0:CONV_2D", 0, (Option("dense", 100, 90), Option("csr", 60, 40)))
        >>> Choice((LayerChoice(options, options.options[1]),), 90).describe()
        '0:CONV_2D csr; layers with weights: 60 (dense 100), 40 B of weights (dense 90 B, budget 90 B)'
        """
        formats = ", ".join(f"{layer.name} {layer.chosen.format}" for layer in self.layers)
        return (
            f"{formats}; layers with weights: {self.latency:,.0f} (dense {self.dense_latency:,.0f}), "
            f"{self.bytes:,} B of weights (dense {self.dense_bytes:,} B, budget {self.flash_budget:,} B)"
        )

    def to_json(self) -> dict:
        """Per layer the chosen format and every option's latency and bytes, as the run's log records it."""
        return {
            layer.name: {
                "chosen": layer.chosen.format,
                "options": {
                    option.format: {"latency": option.latency, "bytes": option.bytes} for option in layer.layer.options
                },
            }
            for layer in self.layers
        }


def choose(layers: Sequence[LayerOptions], flash_budget: int | None = None) -> Choice:
    """The fastest format per layer, shrunk to the flash budget (by default the dense model's weight bytes)."""
    for layer in layers:
        if not any(option.format == DENSE for option in layer.options):
            raise ChooserError(f"layer {layer.name}: no dense option to compare the others with")
    if flash_budget is None:
        flash_budget = sum(layer.dense.bytes for layer in layers)
    chosen = _shrink(layers, [min(layer.options, key=_preference) for layer in layers], flash_budget)
    dense = [layer.dense for layer in layers]
    if _latency(chosen) > _latency(dense) and sum(option.bytes for option in dense) <= flash_budget:
        chosen = dense
    return Choice(tuple(LayerChoice(layer, option) for layer, option in zip(layers, chosen)), flash_budget)


def _latency(options: Sequence[Option]) -> float:
    return sum(option.latency for option in options)


def _preference(option: Option) -> tuple:
    """Fastest first; among equals, fewer bytes, then dense, then by name (so the choice never depends on order)."""
    return option.latency, option.bytes, option.format != DENSE, option.format


def _shrink(layers: Sequence[LayerOptions], chosen: list[Option], budget: int) -> list[Option]:
    smallest = [min(layer.options, key=lambda option: (option.bytes, _preference(option))) for layer in layers]
    if sum(option.bytes for option in smallest) > budget:
        formats = ", ".join(
            f"{layer.name} {option.format} {option.bytes:,} B" for layer, option in zip(layers, smallest)
        )
        raise ChooserError(
            f"flash budget of {budget:,} B of weights cannot be met: the smallest choice takes "
            f"{sum(option.bytes for option in smallest):,} B ({formats})"
        )
    chosen = list(chosen)
    while sum(option.bytes for option in chosen) > budget:
        # Every smaller option is slower than the current one: the fastest choice prefers fewer bytes among
        # equals, and a move to an option that a smaller, no slower one dominates never has the best ratio.
        switches = [
            (i, option) for i, layer in enumerate(layers) for option in layer.options if option.bytes < chosen[i].bytes
        ]
        i, option = max(switches, key=lambda switch: _bytes_per_latency(chosen[switch[0]], switch[1]))
        chosen[i] = option
    return chosen


def _bytes_per_latency(current: Option, smaller: Option) -> float:
    return (current.bytes - smaller.bytes) / (smaller.latency - current.latency)


def layer_options(
    variants: Mapping[str, CompiledModel], latencies: Mapping[str, Mapping[str, float]]
) -> list[LayerOptions]:
    """Every layer with weights, with one option per format it runs in.

    variants: format -> the model compiled in that format; latencies: format
    -> that variant's measured layer latencies ("0:CONV_2D" -> latency). A
    layer that has no kernel in a format (it ran dense in that variant) has
    no option in it.
    """
    if DENSE not in variants:
        raise ChooserError(f"the auto kernel needs the dense variant as its reference; got {', '.join(variants)}")
    missing = [fmt for fmt in variants if fmt not in latencies]
    if missing:
        raise ChooserError(f"no measured layer latencies for {', '.join(missing)}")
    by_index = {fmt: {layer.index: layer for layer in compiled.layers} for fmt, compiled in variants.items()}
    layers = []
    for dense_layer in variants[DENSE].layers:
        if not dense_layer.format:
            continue
        name = f"{dense_layer.index}:{dense_layer.op}"
        options = []
        for fmt in variants:
            layer = by_index[fmt][dense_layer.index]
            if layer.format != fmt:
                continue
            if name not in latencies[fmt]:
                raise ChooserError(f"the {fmt} variant's measured layer latencies have no layer {name}")
            options.append(Option(fmt, float(latencies[fmt][name]), layer.weight_bytes.total))
        layers.append(LayerOptions(name, dense_layer.index, tuple(options)))
    return layers
