"""Sweep configuration: a small TOML file and the command line's flags, checked against one declared schema.

The records below are that schema: pydantic dataclasses whose fields declare
their types and ranges, so a value is checked wherever a record is made, by
a TOML file, a flag or code. A TOML file is read strictly (`runs = "5"` or
`runs = true` is an error, not a 5 or a 1); a flag's text is a number where
the key is one. Every error is one ConfigError naming the file and table
(or the flag), the key, and the nearest known key for a typo, so a sweep
never runs with a silently ignored or impossible setting.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, Field, Strict, ValidationError, field_validator, model_validator
from pydantic.dataclasses import dataclass

from harness.chooser import AUTO
from harness.compiler import KERNEL_FORMATS
from harness.device.boards import BOARDS
from harness.scoring import AUTO as AUTO_TASK
from harness.scoring import TASKS


class ConfigError(ValueError):
    """A sweep configuration that cannot be run as written."""


# Every weight format, and the auto kernel that picks one of them per layer (harness/chooser.py).
KERNELS = (*KERNEL_FORMATS, AUTO)
# Untimed inferences before the timed ones: a few warm the caches; the firmware refuses more than this
# (firmware/src/runtime.c, BENCH_MAX_WARMUP), so a typo cannot keep a board busy for minutes.
MAX_WARMUP = 100
MAX_RUNS = 10_000
# The hardware-aware methods' λ (docs/pruning.md, "Hardware-aware allocation"): at 0.5 the digits CNN (real
# data, seeds 0-2) stays within 0.8 points of global magnitude's device accuracy, and ResNet-8 runs 1.31x
# faster than global magnitude, where 1 gains 1.25x.
DEFAULT_TRADEOFF = 0.5


class _Continues(ValueError):
    """A problem written to follow the key's name: "'runs' 0 is outside [1, 10000]"."""


def _interval(text: str) -> AfterValidator:
    """A number inside an interval written as in mathematics: "[0, 1)" holds 0 but not 1."""
    low, high = (float(bound) for bound in text[1:-1].split(","))

    def check(value):
        if value < low or value > high or (text[0] == "(" and value == low) or (text[-1] == ")" and value == high):
            raise _Continues(f"{value!r} is outside {text}")
        return value

    return AfterValidator(check)


def _one_of(noun: str, choices: Mapping | tuple) -> AfterValidator:
    def check(value: str) -> str:
        if value not in choices:
            raise ValueError(f"unknown {noun} '{value}'{did_you_mean(value, choices)}; known: {', '.join(choices)}")
        return value

    return AfterValidator(check)


def _unique(what: str) -> AfterValidator:
    def check(values: tuple) -> tuple:
        if len(set(values)) != len(values):
            raise _Continues(f"repeats a {what}: {list(values)}")
        return values

    return AfterValidator(check)


def _port_spec(spec: str) -> str:
    """ "" (the harness picks), a port for every board, or name=port,... per board; a TCP port is 1..65535."""
    items = [item.strip() for item in spec.split(",") if item.strip()] if "=" in spec else [spec] if spec else []
    for item in items:
        name, _, port = item.rpartition("=")
        if "=" in item and name.strip() not in BOARDS:
            raise ValueError(f"'{item}' names unknown board '{name.strip()}'{did_you_mean(name.strip(), BOARDS)}")
        if port.strip().isdigit() and not 1 <= int(port) <= 65535:
            raise ValueError(f"TCP port {port.strip()} is outside 1..65535")
        if not port.strip():
            raise ValueError(f"'{item}' names no port: give name=port, e.g. nucleo_f446re=/dev/ttyACM0")
    return spec


Count = Annotated[int, Strict(), Field(ge=0)]
Positive = Annotated[int, Strict(), Field(ge=1)]
Text = Annotated[str, Strict()]
Fraction = Annotated[float, Strict(), _interval("[0, 1)")]  # a sparsity: none pruned .. not all
_SCHEMA = ConfigDict(extra="forbid")


@dataclass(frozen=True, config=_SCHEMA)
class PruneConfig:
    # "criterion/schedule[/pattern]", see harness/prune/method.py; several methods are compared in one sweep
    methods: Annotated[tuple[Text, ...], Field(min_length=1), _unique("method")] = ("global-magnitude/gradual",)
    dense_epochs: Count = 40
    finetune_epochs: Count = 30  # per target (one-shot, gradual, iterative); per round (lottery ticket)
    round_fraction: Annotated[float, Strict(), _interval("(0, 1)")] = (
        0.2  # iterative, lottery ticket: share of the remaining weights pruned per round
    )
    round_epochs: Count = 2  # iterative: fine-tuning after a round that reaches no target
    rewind_epoch: Count = 0  # lottery ticket: survivors rewind to their weights after this many dense epochs
    saliency_batches: Positive = 16  # taylor: training batches whose |w * dL/dw| is summed
    skip: tuple[Text, ...] = ()  # layers kept dense, e.g. ["conv1", "fc2"]
    layer_targets: dict[Text, Any] = dataclasses.field(
        default_factory=dict
    )  # layer -> its own sparsity at every point, e.g. {fc1 = 0.95}
    min_weights: Positive = 1  # weights every pruned layer keeps at least
    max_layer_sparsity: Annotated[float, Strict(), _interval("(0, 1]")] = (
        1.0  # no layer pruned beyond this share of its weights (1: only min_weights holds)
    )
    # hardware-aware methods (docs/pruning.md, "Hardware-aware allocation"):
    tradeoff: Annotated[float, Strict(), Field(ge=0)] = (
        DEFAULT_TRADEOFF  # λ: weight of the saliency lost against the predicted latency saved (0: latency alone)
    )
    # Prune until the prunable layers' predicted latency is at most this share of theirs dense, instead of to
    # 'targets'; 0: off.
    latency_budget: Annotated[float, Strict(), _interval("[0, 1)")] = 0.0
    batch_size: Positive = 32
    learning_rate: Annotated[float, Strict(), Field(gt=0)] = 2e-3

    @field_validator("methods")
    @classmethod
    def _methods_parse(cls, methods: tuple[str, ...]) -> tuple[str, ...]:
        from harness.prune.method import MethodError, parse_method  # harness.prune imports this module

        for text in methods:
            try:
                parse_method(text)
            except MethodError as err:
                raise ValueError(str(err)) from None
        return methods

    @field_validator("layer_targets")
    @classmethod
    def _layer_targets_are_sparsities(cls, targets: dict) -> dict:
        for layer, target in targets.items():
            if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0.0 <= target < 1.0:
                raise ValueError(f"target {target!r} of layer '{layer}' is outside [0, 1)")
        return targets

    @model_validator(mode="after")
    def _hardware_aware_keys_need_a_hardware_aware_method(self):
        from harness.prune.method import parse_method

        if any(parse_method(text).scope == "hardware" for text in self.methods):
            return self
        for key, default in (("tradeoff", DEFAULT_TRADEOFF), ("latency_budget", 0.0)):
            if getattr(self, key) != default:
                raise ValueError(
                    f"'{key}' applies to the hardware-aware methods only, and 'methods' "
                    f"({', '.join(self.methods)}) has none"
                )
        return self

    @model_validator(mode="after")
    def _layer_targets_within_the_ceiling(self):
        for layer, target in self.layer_targets.items():
            if target > self.max_layer_sparsity:
                raise ValueError(
                    f"target {target} of layer '{layer}' is above 'max_layer_sparsity' {self.max_layer_sparsity}"
                )
        return self

    @model_validator(mode="after")
    def _rewind_within_dense_training(self):
        if self.rewind_epoch > self.dense_epochs:
            raise ValueError(f"'rewind_epoch' {self.rewind_epoch} is after the last dense epoch ({self.dense_epochs})")
        return self


@dataclass(frozen=True, config=_SCHEMA)
class DeviceConfig:
    warmup: Annotated[int, Strict(), _interval(f"[0, {MAX_WARMUP}]")] = 2
    runs: Annotated[int, Strict(), _interval(f"[1, {MAX_RUNS}]")] = 5
    accuracy_samples: Count = 360  # held-out samples streamed to the board; 0 means all
    timeout_s: Annotated[float, Strict(), _interval("(0, 3600]")] = 20.0
    port: Annotated[str, Strict(), AfterValidator(_port_spec)] = (
        ""  # serial URL or device; empty: the board's default (emulators pick a free TCP port)
    )


@dataclass(frozen=True, config=_SCHEMA)
class FarmConfig:
    """A labgrid board farm to measure on instead of local boards (docs/farm.md)."""

    address: Text = ""  # the coordinator, HOST[:PORT]; empty: local boards (or LG_COORDINATOR with --farm)
    points_per_turn: Positive = 8  # points measured on a place before it is given back so others get a turn


@dataclass(frozen=True, config=_SCHEMA)
class SweepConfig:
    # names the run folder, results/<name>-<time>/
    name: Annotated[str, Strict(), Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")] = "digits-cnn"
    model: Annotated[str, Strict(), Field(min_length=1)] = "digits_cnn"
    data: Text = ""
    task: Annotated[str, Strict(), _one_of("task", (*TASKS, AUTO_TASK))] = "auto"  # or "auto": from the targets' shape
    targets: Annotated[tuple[Fraction, ...], Field(min_length=1), _unique("value")] = (0.0, 0.5, 0.7, 0.8, 0.9, 0.95)
    kernels: Annotated[
        tuple[Annotated[str, Strict(), _one_of("kernel", KERNELS)], ...], Field(min_length=1), _unique("kernel")
    ] = KERNELS
    boards: Annotated[tuple[Annotated[str, Strict(), _one_of("board", BOARDS)], ...], Field(min_length=1)] = (
        "mps2_an386",
    )
    seed: Count = 0
    flash_budget: Count = 0  # auto kernel: bytes of weights (values + indices + pointers) a model may take; 0: dense's
    prune: PruneConfig = dataclasses.field(default_factory=PruneConfig)
    device: DeviceConfig = dataclasses.field(default_factory=DeviceConfig)
    farm: FarmConfig = dataclasses.field(default_factory=FarmConfig)

    @model_validator(mode="after")
    def _targets_within_the_ceiling(self):
        highest = max(self.targets)
        if highest > self.prune.max_layer_sparsity:
            raise ValueError(
                f"target {highest} is above [prune] 'max_layer_sparsity' {self.prune.max_layer_sparsity}: "
                "no layer may be pruned that far, so the model cannot be"
            )
        return self

    @model_validator(mode="after")
    def _flash_budget_for_auto(self):
        if self.flash_budget and AUTO not in self.kernels:
            raise ValueError(
                f"'flash_budget' applies to the auto kernel only, and 'kernels' "
                f"({', '.join(self.kernels)}) has no '{AUTO}'"
            )
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True, config=_SCHEMA)
class FaultLimits:
    """What `--inject-faults` may ask of the fault proxy (harness/device/faults.py, FaultPlan)."""

    rate: Annotated[float, _interval("[0, 1]")]  # chance per exchange of a link fault
    reset: Annotated[float, _interval("[0, 1]")]  # chance per exchange of a board reset
    delay: Annotated[float, _interval("(0, 60]")]  # seconds a delayed reply is held back
    seed: Count


def check_flag(flag: str, schema: type, values: Mapping[str, Any]) -> None:
    """Values a flag gave, checked against a schema; a ConfigError naming the flag and the key."""
    try:
        schema(**values)
    except ValidationError as err:
        error = err.errors(include_url=False)[0]
        key = error["loc"][0] if error["loc"] else None
        problem = _problem(error, schema, key, tuple(error["loc"][1:]))
        raise ConfigError(
            f"{flag}: {problem}" if key is None or error["type"] in _UNKNOWN_KEY else f"{flag}: {key} {problem}"
        ) from None


_TABLES = {"sweep": SweepConfig, "prune": PruneConfig, "device": DeviceConfig, "farm": FarmConfig}
_SUBTABLES = ("prune", "device", "farm")


def load_config(path: str | Path | None, flags: Mapping[str, str] | None = None, **overrides) -> SweepConfig:
    """Read a sweep config (or the defaults when path is None) and apply overrides.

    An override is a [sweep] key, or a table's keys as a dict (device={"port": "4444"}); those whose value is
    None are ignored, so CLI flags can be passed as they come. `flags` names the flag that gave a key
    ("targets" or "device.port" -> "--port"), for the error; by default "--<key>".
    """
    tables: dict[str, dict] = {}
    where = "defaults"
    if path is not None:
        path = Path(path)
        where = str(path)
        try:
            tables = tomllib.loads(path.read_text())
        except (FileNotFoundError, IsADirectoryError):
            raise ConfigError(f"{path}: no such config file") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{path}: cannot be read ({err})") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: not valid TOML: {err}") from None
    for table, values in tables.items():
        if table not in _TABLES:
            raise ConfigError(f"{where}: unknown table [{table}]{did_you_mean(table, _TABLES)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: '{table}' must be a table: [{table}] on a line of its own, then its keys")
    if clash := set(tables.get("sweep", {})) & set(_SUBTABLES):
        key = clash.pop()
        raise ConfigError(f"{where} [sweep]: '{key}' is a table of its own: write its keys under [{key}]")
    return _build(tables, where, flags, overrides)


def config_from_dict(
    values: Mapping[str, Any], where: str, flags: Mapping[str, str] | None = None, **overrides
) -> SweepConfig:
    """A config as SweepConfig.to_dict() wrote it (a run's manifest), with overrides as load_config takes them."""
    if not isinstance(values, Mapping) or not all(isinstance(values.get(t, {}), Mapping) for t in _SUBTABLES):
        raise ConfigError(f"{where}: holds no sweep config (tables of keys and values)")
    tables = {
        "sweep": {k: v for k, v in values.items() if k not in _SUBTABLES},
        **{table: values.get(table, {}) for table in _SUBTABLES},
    }  # runs made before the farm have none
    return _build(tables, where, flags, overrides)


def run_name(model: str) -> str:
    """A run named after its model: the file's stem, or the reference model's name.

    >>> run_name("/data/kws_ref_model.h5"), run_name("ic_resnet8")
    ('kws_ref_model', 'ic_resnet8')
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(model).stem if "." in Path(model).name else model).strip("-.")


def _build(tables: Mapping[str, dict], where: str, flags: Mapping[str, str] | None, overrides: dict) -> SweepConfig:
    given: dict[tuple[str, str], str] = {}  # (table, key) set by a flag -> the flag
    values: dict[str, Any] = {**tables.get("sweep", {}), **{t: dict(tables.get(t, {})) for t in _SUBTABLES}}
    if values.get("name") is None and isinstance(model := overrides.get("model") or values.get("model"), str):
        values["name"] = run_name(model)  # a run without a name of its own is named after its model; --name wins
    for key, value in overrides.items():
        if key in _SUBTABLES:
            for sub, sub_value in (value or {}).items():
                if sub_value is not None:
                    values[key][sub] = sub_value
                    given[key, sub] = (flags or {}).get(f"{key}.{sub}", f"--{sub.replace('_', '-')}")
        elif value is not None:
            values[key] = value
            given["sweep", key] = (flags or {}).get(key, f"--{key.replace('_', '-')}")
    try:
        return SweepConfig(**values)
    except ValidationError as err:
        raise ConfigError(explain(err, where, given)) from None


def explain(err: ValidationError, where: str, given: Mapping[tuple[str, str], str] | None = None) -> str:
    """A schema error as one line: where (file and table, or the flag), the key, what is wrong, the fix."""
    error = err.errors(include_url=False)[0]
    loc = tuple(error["loc"])
    table = loc[0] if loc and loc[0] in _SUBTABLES else "sweep"
    rest = loc[1:] if loc and loc[0] in _SUBTABLES else loc
    key = rest[0] if rest else None
    flag = (given or {}).get((table, key))
    problem = _problem(error, _TABLES[table], key, rest[1:])
    if flag:
        return f"{flag}: {problem}"
    if key is None or error["type"] in _UNKNOWN_KEY:
        return f"{where} [{table}]: {problem}"
    continues = error["type"] != "value_error" or isinstance(error["ctx"]["error"], _Continues)
    return f"{where} [{table}]: '{key}'{' ' if continues else ': '}{problem}"


_UNKNOWN_KEY = ("unexpected_keyword_argument", "extra_forbidden")


_TYPE_NAMES = {
    "int_type": "int",
    "int_parsing": "int",
    "float_type": "float",
    "float_parsing": "float",
    "string_type": "str",
    "bool_type": "bool",
    "tuple_type": "tuple (a list, e.g. [1, 2])",
    "dict_type": "a table, e.g. { fc1 = 0.9 }",
    "dataclass_type": "a table",
    "dataclass_exact_type": "a table",
}


def _problem(error: dict, schema: type, key: str | None, item: tuple) -> str:
    kind, value, context = error["type"], error.get("input"), error.get("ctx") or {}
    if kind in _UNKNOWN_KEY:
        known = [f.name for f in dataclasses.fields(schema) if f.name not in _SUBTABLES]
        return f"unknown key '{key}'{did_you_mean(str(key), known)}"
    holds = f"item {item[0] + 1} " if item and isinstance(item[0], int) else ""
    if kind == "value_error":
        return str(context.get("error", error["msg"]))
    if kind in _TYPE_NAMES:
        return f"{holds}must be {_TYPE_NAMES[kind]}, got {value!r}"
    if kind in ("too_short", "string_too_short"):
        return "is empty: give at least one value"
    if kind == "string_pattern_mismatch":
        return f"{value!r} cannot name a folder: use letters, digits, '.', '_' and '-', not starting with '.' or '-'"
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("more than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, name = bounds[kind]
        return f"{holds}must be {words} {context[name]}, got {value!r}"
    return f"{holds}{error['msg']}, got {value!r}"


def did_you_mean(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""
