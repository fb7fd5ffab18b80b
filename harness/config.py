"""Sweep configuration: a small TOML file, validated before any work starts.

Every key is checked; a typo is reported with the file, the table and the
nearest known key, so a sweep never runs with a silently ignored setting.
"""
from __future__ import annotations

import dataclasses
import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness.chooser import AUTO
from harness.compiler import KERNEL_FORMATS
from harness.scoring import AUTO as AUTO_TASK
from harness.scoring import TASKS


class ConfigError(ValueError):
    """A sweep configuration that cannot be run as written."""


# Every weight format, and the auto kernel that picks one of them per layer (harness/chooser.py).
KERNELS = (*KERNEL_FORMATS, AUTO)


@dataclass(frozen=True)
class PruneConfig:
    # "criterion/schedule[/pattern]", see harness/prune/method.py; several methods are compared in one sweep
    methods: tuple[str, ...] = ("global-magnitude/gradual",)
    dense_epochs: int = 40
    finetune_epochs: int = 30     # per target (one-shot, gradual, iterative); per round (lottery ticket)
    round_fraction: float = 0.2   # iterative, lottery ticket: share of the remaining weights pruned per round
    round_epochs: int = 2         # iterative: fine-tuning after a round that reaches no target
    rewind_epoch: int = 0         # lottery ticket: survivors rewind to their weights after this many dense epochs
    saliency_batches: int = 16    # taylor: training batches whose |w * dL/dw| is summed
    skip: tuple[str, ...] = ()    # layers kept dense, e.g. ["conv1", "fc2"]
    layer_targets: dict = field(default_factory=dict)  # layer -> its own sparsity at every point, e.g. {fc1 = 0.95}
    min_weights: int = 1          # weights every pruned layer keeps at least
    batch_size: int = 32
    learning_rate: float = 2e-3


@dataclass(frozen=True)
class DeviceConfig:
    warmup: int = 2
    runs: int = 5
    accuracy_samples: int = 360  # held-out samples streamed to the board; 0 means all
    timeout_s: float = 20.0
    port: str = ""  # serial URL or device; empty: the board's default (emulators pick a free TCP port)


@dataclass(frozen=True)
class FarmConfig:
    """A labgrid board farm to measure on instead of local boards (docs/farm.md)."""
    address: str = ""          # the coordinator, HOST[:PORT]; empty: local boards (or LG_COORDINATOR with --farm)
    points_per_turn: int = 8   # points measured on a place before it is given back so others get a turn


@dataclass(frozen=True)
class SweepConfig:
    name: str = "digits-cnn"
    model: str = "digits_cnn"
    data: str = ""
    task: str = "auto"            # "classification", "reconstruction", or "auto": from the targets' shape
    targets: tuple[float, ...] = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
    kernels: tuple[str, ...] = KERNELS
    boards: tuple[str, ...] = ("mps2_an386",)
    seed: int = 0
    flash_budget: int = 0         # auto kernel: bytes of weights (values + indices + pointers) a model may take; 0: dense's
    prune: PruneConfig = field(default_factory=PruneConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    farm: FarmConfig = field(default_factory=FarmConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_TABLES = {"sweep": SweepConfig, "prune": PruneConfig, "device": DeviceConfig, "farm": FarmConfig}


def load_config(path: str | Path | None, **overrides) -> SweepConfig:
    """Read a sweep config (or the defaults when path is None) and apply CLI overrides.

    Overrides whose value is None are ignored, so CLI flags can be passed as they come.
    """
    tables: dict[str, dict] = {}
    where = "defaults"
    if path is not None:
        path = Path(path)
        where = str(path)
        try:
            tables = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such config file") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from None
    for table in tables:
        if table not in _TABLES:
            raise ConfigError(f"{where}: unknown table [{table}]{did_you_mean(table, _TABLES)}")
    sections = {name: _build(cls, tables.get(name, {}), f"{where} [{name}]") for name, cls in _TABLES.items()}
    sweep_values = dataclasses.asdict(sections["sweep"])
    sweep_values.update({k: v for k, v in overrides.items() if v is not None})
    sweep_values["prune"] = sections["prune"]
    sweep_values["device"] = sections["device"]
    sweep_values["farm"] = sections["farm"]
    config = SweepConfig(**_normalize(sweep_values))
    _validate(config, where)
    return config


def _build(cls, values: dict, where: str):
    known = {f.name: f for f in dataclasses.fields(cls) if f.name not in _TABLES}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key '{key}'{did_you_mean(key, known)}")
        expected = type(getattr(cls(), key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is tuple and isinstance(value, list):
            continue
        if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
            raise ConfigError(f"{where}: '{key}' must be {expected.__name__}, got {value!r}")
    return cls(**_normalize(values))


def _normalize(values: dict) -> dict:
    out = dict(values)
    for key in ("targets", "kernels", "boards", "methods", "skip"):
        if key in out and isinstance(out[key], (list, tuple)):
            out[key] = tuple(float(v) if key == "targets" else str(v) for v in out[key])
    return out


def _validate(config: SweepConfig, where: str) -> None:
    from harness.device.boards import BOARDS

    if not config.targets:
        raise ConfigError(f"{where}: 'targets' is empty")
    for target in config.targets:
        if not 0.0 <= target < 1.0:
            raise ConfigError(f"{where}: sparsity target {target} is outside [0, 1)")
    if len(set(config.targets)) != len(config.targets):
        raise ConfigError(f"{where}: 'targets' repeats a value: {list(config.targets)}")
    for kernel in config.kernels:
        if kernel not in KERNELS:
            raise ConfigError(f"{where}: unknown kernel '{kernel}'{did_you_mean(kernel, KERNELS)}; known: {', '.join(KERNELS)}")
    for board in config.boards:
        if board not in BOARDS:
            raise ConfigError(f"unknown board '{board}'{did_you_mean(board, BOARDS)}; known: {', '.join(BOARDS)}")
    if config.task not in (*TASKS, AUTO_TASK):
        raise ConfigError(f"{where}: unknown task '{config.task}'{did_you_mean(config.task, TASKS)}; known: "
                          f"{', '.join((*TASKS, AUTO_TASK))}")
    if config.flash_budget < 0:
        raise ConfigError(f"{where}: 'flash_budget' must be at least 0 (bytes of weights; 0: the dense model's)")
    if config.flash_budget and AUTO not in config.kernels:
        raise ConfigError(f"{where}: 'flash_budget' applies to the auto kernel only, and 'kernels' "
                          f"({', '.join(config.kernels)}) has no '{AUTO}'")
    if config.device.runs < 1:
        raise ConfigError(f"{where} [device]: 'runs' must be at least 1")
    if config.farm.points_per_turn < 1:
        raise ConfigError(f"{where} [farm]: 'points_per_turn' must be at least 1")
    _validate_prune(config.prune, f"{where} [prune]")


def _validate_prune(prune: PruneConfig, where: str) -> None:
    from harness.prune.method import MethodError, parse_method

    if not prune.methods:
        raise ConfigError(f"{where}: 'methods' is empty")
    for text in prune.methods:
        try:
            parse_method(text)
        except MethodError as err:
            raise ConfigError(f"{where}: 'methods': {err}") from None
    if len(set(prune.methods)) != len(prune.methods):
        raise ConfigError(f"{where}: 'methods' repeats a method: {list(prune.methods)}")
    for key in ("dense_epochs", "finetune_epochs", "round_epochs", "rewind_epoch"):
        if getattr(prune, key) < 0:
            raise ConfigError(f"{where}: '{key}' must be at least 0")
    for key in ("saliency_batches", "min_weights", "batch_size"):
        if getattr(prune, key) < 1:
            raise ConfigError(f"{where}: '{key}' must be at least 1")
    if prune.rewind_epoch > prune.dense_epochs:
        raise ConfigError(f"{where}: 'rewind_epoch' {prune.rewind_epoch} is after the last dense epoch "
                          f"({prune.dense_epochs})")
    if not 0.0 < prune.round_fraction < 1.0:
        raise ConfigError(f"{where}: 'round_fraction' {prune.round_fraction} is outside (0, 1)")
    if not prune.learning_rate > 0:
        raise ConfigError(f"{where}: 'learning_rate' must be positive")
    for layer, target in prune.layer_targets.items():
        if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0.0 <= target < 1.0:
            raise ConfigError(f"{where}: 'layer_targets': target {target!r} of layer '{layer}' is outside [0, 1)")


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
