"""The package as others get it: the wheel, installed outside the checkout, runs a sweep on the host board; and
the CI command (.ci/run, `make test`) lints first, so a lint error fails it before any test runs."""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import harness
from conftest import PROJECT_DIR
from test_api import HOST_SWEEP

pytestmark = pytest.mark.usefixtures("no_leftover_boards")

# What the wheel and the CI command are made from.
PROJECT_FILES = ["pyproject.toml", "Makefile", ".ci", "platformio.ini", "harness", "models", "firmware", "configs"]


def copy_project(dest: Path) -> Path:
    """The checkout's files, without what a build or run left in it (a wheel would pack a stale build/)."""
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    dest.mkdir(exist_ok=True)
    for name in PROJECT_FILES:
        source = PROJECT_DIR / name
        if source.is_dir():
            shutil.copytree(source, dest / name, symlinks=True, ignore=skip)
        else:
            shutil.copy2(source, dest / name)
    return dest


def run(command: list, cwd: Path) -> subprocess.CompletedProcess:
    # Only what a user's shell would have: no PYTHONPATH to the checkout, no harness owning this process.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "HARNESS_OWNER")}
    return subprocess.run(
        list(map(str, command)), cwd=cwd, env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv outside the checkout with the wheel installed; returns its bin/.

    Its dependencies are this test's own venv's, seen through a .pth file, so none is downloaded again; that
    venv's editable install of the harness is not (its own .pth file is not read from there).
    """
    tmp = tmp_path_factory.mktemp("wheel")
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", tmp / "dist", copy_project(tmp / "source")], tmp
    )
    assert built.returncode == 0, built.stderr[-3000:]
    venv = tmp / "venv"
    assert run([sys.executable, "-m", "venv", "--without-pip", venv], tmp).returncode == 0
    python = venv / "bin" / "python"
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], tmp).stdout.strip()
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    wheel = next((tmp / "dist").glob("sparse_mcu_bench-*.whl"))
    done = run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel], tmp)
    assert done.returncode == 0, done.stderr[-3000:]
    # The console script pip writes for PlatformIO when it installs it as a dependency.
    pio = venv / "bin" / "pio"
    pio.write_text(f"#!{python}\nimport sys\nfrom platformio.__main__ import main\nsys.exit(main())\n")
    pio.chmod(0o755)
    return venv / "bin"


def test_the_installed_wheel_runs_a_host_sweep_outside_the_checkout(installed, tmp_path):
    where = run(
        [
            installed / "python",
            "-c",
            "import harness, importlib.util; print(harness.__file__); print(importlib.util.find_spec('models'))",
        ],
        tmp_path,
    )
    package, models = where.stdout.split()
    assert Path(package).is_relative_to(installed.parent) and models == "None", where.stdout + where.stderr
    site = Path(package).parent
    files = {path: path.stat().st_mtime_ns for path in site.rglob("*") if "__pycache__" not in path.parts}
    assert "host " in run([installed / "harness", "boards"], tmp_path).stdout  # profiles.toml, from the wheel

    (tmp_path / "host.toml").write_text(HOST_SWEEP)
    swept = run([installed / "harness", "sweep", "--config", "host.toml", "--name", "wheel"], tmp_path)
    assert swept.returncode == 0, swept.stdout[-3000:] + swept.stderr[-3000:]
    (run_dir,) = (tmp_path / "results").iterdir()
    rows = harness.load_results(run_dir)
    assert len(rows) == 2 and (rows.status == "ok").all() and (rows.latency_unit == "ns").all()
    assert (rows.output_mismatches == 0).all() and rows.harness_sha.eq("unknown").all()  # no checkout to ask
    # Built and cached under the folder it ran from; nothing written into the installed package.
    assert (tmp_path / ".harness" / ".pio" / "core" / "packages" / "tool-scons" / "scons.py").is_file()
    assert list((tmp_path / ".harness" / ".cache" / "firmware").iterdir())
    assert {path: path.stat().st_mtime_ns for path in site.rglob("*") if "__pycache__" not in path.parts} == files


def test_a_lint_error_fails_the_ci_command_before_any_test_runs(tmp_path):
    project = copy_project(tmp_path)
    (project / "harness" / "planted.py").write_text("import os\n")
    # The venv `make test` expects, already set up: this test's Python and ruff.
    venv = project / ".venv"
    (venv / "bin").mkdir(parents=True)
    for name, target in (("python", sys.executable), ("ruff", Path(sys.executable).with_name("ruff"))):
        (venv / "bin" / name).write_text(f'#!/bin/sh\nexec {target} "$@"\n')
        (venv / "bin" / name).chmod(0o755)
    (venv / ".installed").touch()
    ci = run(["bash", ".ci/run"], project)
    assert ci.returncode != 0
    assert re.search(r"F401 .*`os` imported but unused\n\s*--> harness/planted.py:1:8", ci.stdout), ci.stdout[-3000:]
    assert "test session starts" not in ci.stdout
