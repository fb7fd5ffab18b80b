"""Make PlatformIO and the build tools usable on a machine without PlatformIO's registry.

PlatformIO runs every build through its core package `tool-scons`, which it
would normally download. We create that package from the SCons installed by
pip, in the project's own PlatformIO core dir, so `pio run` never needs the
network. Run `python -m harness.toolchain` (the Makefile does) to set it up.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from harness.cache import write_atomically
from harness.paths import platformio_project

# PlatformIO runs <core_dir>/packages/tool-scons/scons.py with its own Python,
# which is ours, so PyPI's SCons is importable there.
_SCONS_LAUNCHER = """\
# Created by harness/toolchain.py: runs the SCons that pip installed.
from SCons.Script.Main import main

main()
"""


class ToolchainError(RuntimeError):
    """A build tool is missing or unusable; the message says how to fix it."""


def require_tool(name: str, apt_package: str) -> None:
    if shutil.which(name) is None:
        raise ToolchainError(f"{name} not found: install it with `apt-get install {apt_package}`")


def pio_command() -> list[str]:
    """The `pio` installed next to the running Python (a venv's bin/)."""
    pio = Path(sys.executable).parent / "pio"
    if not pio.exists():
        raise ToolchainError(f"{pio} not found: install it with `pip install platformio==6.2.0`")
    return [str(pio)]


def pio_env() -> dict[str, str]:
    """Environment for every PlatformIO call: no telemetry, and no upgrade
    check (it stalls `pio run` about a minute when offline)."""
    return {
        **os.environ,
        "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "No",
        "PLATFORMIO_DISABLE_UPGRADE_CHECK": "true",
    }


def ensure_platformio_offline(project_dir: Path | str | None = None) -> None:
    """Install `tool-scons` into the PlatformIO core dir of project_dir (default: the harness's own,
    harness/paths.py); cheap when already there."""
    try:
        import platformio  # noqa: F401
        import SCons  # noqa: F401  (what the package runs)
    except ImportError as err:
        raise ToolchainError(
            f"Python package {err.name} not found: install it with `pip install platformio==6.2.0 scons==4.11.1`"
        ) from None
    packages_dir, platforms_dir = _core_dirs(Path(project_dir) if project_dir else platformio_project())
    # PlatformIO creates platforms/ by a test then makedirs; two first builds in parallel in a new core dir
    # race there (FileExistsError, seen with the installed wheel's first sweep), so it is made here first.
    platforms_dir.mkdir(parents=True, exist_ok=True)
    package_dir = packages_dir / "tool-scons"
    package_dir.mkdir(parents=True, exist_ok=True)
    for name, text in _scons_package_files().items():
        _write_if_changed(package_dir / name, text)


def _core_dirs(project_dir: Path) -> tuple[Path, Path]:
    """The core's packages and platforms folders."""
    # Ask PlatformIO itself, so platformio.ini's core_dir and PLATFORMIO_CORE_DIR
    # are honoured. Relative paths in platformio.ini are relative to the cwd.
    from platformio import fs
    from platformio.project.config import ProjectConfig

    with fs.cd(str(project_dir)):
        config = ProjectConfig(str(project_dir / "platformio.ini"))
        return Path(config.get("platformio", "packages_dir")), Path(config.get("platformio", "platforms_dir"))


def _scons_package_files() -> dict[str, str]:
    from platformio.dependencies import get_core_dependencies
    from platformio.package.meta import PackageMetadata, PackageSpec

    requirement = get_core_dependencies()["tool-scons"]  # "~4.41101.0" for PlatformIO 6.2.0
    version = requirement.lstrip("~^=")  # the lowest version the requirement accepts
    # Without owner "platformio" in .piopm, PlatformIO does not recognise the
    # package as its core dependency and goes to the registry for it.
    spec = PackageSpec(owner="platformio", name="tool-scons", requirements=requirement)
    meta = PackageMetadata("tool", "tool-scons", version, spec=spec)
    return {
        "package.json": json.dumps({"name": "tool-scons", "version": version}, indent=2) + "\n",
        ".piopm": json.dumps(meta.as_dict(), indent=2) + "\n",
        "scons.py": _SCONS_LAUNCHER,
    }


def _write_if_changed(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        return
    write_atomically(path, text)  # so a concurrent `pio run` never sees half a file


if __name__ == "__main__":
    try:
        ensure_platformio_offline(sys.argv[1] if len(sys.argv) > 1 else None)
    except ToolchainError as err:
        sys.exit(f"error: {err}")
