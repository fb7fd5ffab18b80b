"""The sweep's stage modules: what they export, what the kernel benchmark takes from them, and the stages failed
rows carry. (The stages at work: tests/test_sweep.py, tests/test_bench_resume.py, tests/test_kernel_bench.py.)"""

import ast
import importlib
import json

import pytest

from conftest import PROJECT_DIR
from harness import cache, paths
from harness.results import ResultRow, read_results_csv, write_results
from harness.stages import KEPT_FAILURES, Stage

STAGE_MODULES = [
    "harness.orchestrator",
    "harness.plan",
    "harness.prepare",
    "harness.points",
    "harness.auto",
    "harness.cache",
    "harness.device.measure",
    "harness.stages",
]


def harness_imports(package: str) -> list[tuple[str, str, str]]:
    """(file, module, name) of every `from harness... import name` in a package's files."""
    found = []
    for path in sorted((PROJECT_DIR / package.replace(".", "/")).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("harness"):
                found += [(path.name, node.module, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("module", STAGE_MODULES)
def test_stage_modules_say_what_they_export(module):
    names = importlib.import_module(module).__all__
    assert names and all(not name.startswith("_") for name in names)
    missing = [name for name in names if not hasattr(importlib.import_module(module), name)]
    assert not missing


def test_the_kernel_benchmark_takes_only_exported_names():
    imports = harness_imports("harness.kernel_bench")
    assert any(module == "harness.orchestrator" for _, module, _ in imports)  # the walk sees its imports
    for file, module, name in imports:
        assert not name.startswith("_"), f"kernel_bench/{file} imports {module}.{name}"
        exported = getattr(importlib.import_module(module), "__all__", None)
        if module in STAGE_MODULES:
            assert name in exported, f"kernel_bench/{file} imports {module}.{name}, which {module} does not export"


def test_a_failed_row_carries_its_stage_and_results_csv_the_lower_case_name(tmp_path):
    row = ResultRow("run", "m", 0.5, "csr", "mps2_an386", "cortex-m4").fail("verify", RuntimeError("3 differ"))
    assert row.failed_stage is Stage.VERIFY and row.failed_stage in KEPT_FAILURES
    with pytest.raises(ValueError, match="'flash' is not a valid Stage"):
        ResultRow("run", "m", 0.5, "csr", "mps2_an386", "cortex-m4").fail("flash", RuntimeError("no"))
    write_results(tmp_path / "results.csv", [row])
    assert read_results_csv(tmp_path / "results.csv").failed_stage.tolist() == ["verify"]
    assert json.loads(json.dumps({"stage": row.failed_stage})) == {"stage": "verify"}  # a point's stored JSON


def test_an_atomic_folder_is_whole_or_absent(tmp_path):
    target = tmp_path / "entry"
    with pytest.raises(RuntimeError):
        with cache.atomic_folder(target) as out:
            (out / "half").write_text("made")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with cache.atomic_folder(target) as out:
        (out / "whole").write_text("made")
    assert [path.name for path in tmp_path.iterdir()] == ["entry"] and (target / "whole").read_text() == "made"


def test_an_atomic_replace_leaves_the_new_file_or_link_only(tmp_path):
    target = tmp_path / "entry"
    target.write_text("old")
    paths.partial_path(target).symlink_to(tmp_path / "elsewhere")  # left by a killed process with this pid
    cache.write_atomically(target, "new")
    assert [path.name for path in tmp_path.iterdir()] == ["entry"] and target.read_text() == "new"
    paths.replace_atomically(target, lambda partial: partial.symlink_to(tmp_path / "other"))
    assert [path.name for path in tmp_path.iterdir()] == ["entry"] and target.readlink() == tmp_path / "other"


def test_content_hashes_separate_their_parts():
    assert cache.content_hash("ab", "c") != cache.content_hash("a", "bc")
    assert len(cache.content_hash("x")) == 24
