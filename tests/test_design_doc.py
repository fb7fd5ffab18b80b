"""docs/design.md names the stages' modules and functions: every one of them exists."""

import importlib
import re

import pytest

from conftest import PROJECT_DIR

DESIGN = PROJECT_DIR / "docs" / "design.md"
# Backticked names with these endings are files, not Python names ("model.h", "run.jsonl").
FILE_SUFFIXES = {
    "c",
    "h",
    "cpp",
    "py",
    "ld",
    "ini",
    "toml",
    "json",
    "jsonl",
    "log",
    "elf",
    "csv",
    "parquet",
    "html",
    "md",
    "png",
    "svg",
    "pid",
    "npy",
    "tflite",
}


def paths(text: str) -> list[str]:
    """Every path into the checkout's code: harness/..., firmware/... (a folder when it ends in /)."""
    return sorted(set(re.findall(r"\b((?:harness|firmware)/[\w./-]*[\w/])", text)))


def dotted_names(text: str) -> list[str]:
    """Every backticked `module.name` (or `harness.module.name`) that is no file name."""
    names = {name for name in re.findall(r"`([a-z_]\w*(?:\.[A-Za-z_]\w*)+)`", text)}
    return sorted(name for name in names if name.rsplit(".", 1)[1] not in FILE_SUFFIXES)


def harness_modules() -> dict[str, list[str]]:
    """Short module name -> the dotted modules of that name under harness/ (packages by their folder's name)."""
    found: dict[str, list[str]] = {}
    for path in (PROJECT_DIR / "harness").rglob("*.py"):
        parts = path.relative_to(PROJECT_DIR).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.setdefault(parts[-1], []).append(".".join(parts))
    return found


def resolve(name: str, modules: dict[str, list[str]]):
    """`a.b` is harness.a's b if harness.a exists, else b of the one module named a under harness/."""
    first, *attributes = name.split(".")
    if first == "harness":  # the longest module path it starts with
        parts = name.split(".")
        known = {module for dotted in modules.values() for module in dotted}
        cut = max(i for i in range(1, len(parts)) if ".".join(parts[:i]) in known)
        module, attributes = ".".join(parts[:cut]), parts[cut:]
    elif f"harness.{first}" in modules.get(first, []):
        module = f"harness.{first}"
    else:
        candidates = modules.get(first, [])
        assert len(candidates) == 1, f"`{name}`: module {first!r} is {candidates or 'nowhere'} under harness/"
        module = candidates[0]
    value = importlib.import_module(module)
    for attribute in attributes:
        value = getattr(value, attribute)
    return value


def test_the_checks_find_what_they_look_for():
    text = "`harness/sweep.py` and harness/device/ and `plan.plan_sweep`, `model.h`, `harness.build.Firmware`"
    assert paths(text) == ["harness/device/", "harness/sweep.py"]
    assert dotted_names(text) == ["harness.build.Firmware", "plan.plan_sweep"]
    modules = harness_modules()
    with pytest.raises(AttributeError):
        resolve("plan.no_such_function", modules)
    with pytest.raises(AssertionError, match="nowhere"):
        resolve("no_such_module.f", modules)


def test_every_path_in_the_design_exists():
    missing = [path for path in paths(DESIGN.read_text()) if not (PROJECT_DIR / path).exists()]
    assert not missing, f"docs/design.md names paths that do not exist: {missing}"


def test_every_module_and_function_in_the_design_exists():
    modules = harness_modules()
    names = dotted_names(DESIGN.read_text())
    assert "orchestrator.run_sweep" in names and "measure.measure_point" in names  # the stages' table is read
    for name in names:
        assert resolve(name, modules) is not None, name


def test_every_stage_module_is_in_the_design():
    text = DESIGN.read_text()
    for module in ("orchestrator", "prepare", "plan", "points", "auto", "device/measure", "cache", "stages", "results"):
        assert f"harness/{module}.py" in text, module
