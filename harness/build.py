"""Build and upload firmware through PlatformIO; a built firmware's sizes are read by harness/firmware_sizes.py.

Each firmware (generated model x kernel x board environment) gets its own
PlatformIO build directory, named by the caller's hash of everything it is
built from: a firmware built there before is used as it is, and SCons'
content signatures keep any rebuild small. Builds of different firmware can
run in parallel. Boards on PlatformIO's official platforms need those
platforms installed; when one is missing and cannot be downloaded, the
error says so in one line instead of after PlatformIO's minute of retries.
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from harness.firmware_sizes import KernelCode, elf_sections, flash_bytes, kernel_code, static_ram_bytes
from harness.paths import platformio_project
from harness.toolchain import pio_command, pio_env, require_tool

REGISTRY = ("api.registry.platformio.org", 443)
MAP_FILE = "firmware.map"  # the linker's map, beside firmware.elf


class BuildError(RuntimeError):
    """PlatformIO failed to build or upload a firmware."""


@dataclass(frozen=True)
class Firmware:
    env: str
    elf: Path
    build_dir: Path  # PLATFORMIO_BUILD_DIR; PlatformIO writes to build_dir/env
    model_dir: Path
    build_id: str  # the board reports it in its handshake
    rebuilt: bool
    seconds: float
    sections: dict[str, int]  # section name -> bytes, from the ELF
    kernel_code: KernelCode  # from the linker's map

    @property
    def flash_bytes(self) -> int:
        return flash_bytes(self.sections)

    @property
    def static_ram_bytes(self) -> int:
        return static_ram_bytes(self.sections)


def build_firmware(env: str, model_dir: Path, build_dir: Path, build_id: str) -> Firmware:
    """Build env with the model in model_dir; build_dir must be named by a hash of everything the firmware is
    built from, because a firmware built there before is taken as it is, without starting PlatformIO."""
    elf = build_dir / env / "firmware.elf"
    link_map = build_dir / env / MAP_FILE
    done = build_dir / env / "built"  # written last: a killed build leaves none
    started = time.perf_counter()
    # A firmware built before the link wrote a map is linked again, so its kernels' code can be attributed.
    with _build_folder_lock(build_dir):
        rebuilt = not (done.exists() and done.read_text() == build_id and elf.exists() and link_map.exists())
        if rebuilt:
            require_platform(env)
            done.unlink(missing_ok=True)
            _run_pio(
                ["run", "-e", env],
                _variables(env, model_dir, build_dir, build_id),
                build_dir / env / "build.log",
                f"PlatformIO build of '{env}'",
            )
            if not elf.exists() or not link_map.exists():
                raise BuildError(f"PlatformIO build of '{env}' produced no {elf if not elf.exists() else link_map}")
            done.write_text(build_id)
    return Firmware(
        env=env,
        elf=elf,
        build_dir=build_dir,
        model_dir=model_dir,
        build_id=build_id,
        rebuilt=rebuilt,
        seconds=time.perf_counter() - started,
        sections=elf_sections(elf),
        kernel_code=kernel_code(link_map),
    )


def upload_firmware(
    firmware: Firmware, port: str, board_dir: Path, extra_variables: dict[str, str] | None = None
) -> Path:
    """Flash through PlatformIO's upload target; returns the pid file of an emulated board's process.

    board_dir is the session's own: an emulated board's pid file and log go there, not into the build folder
    that another sweep may be uploading the same firmware from.
    """
    variables = {
        **_variables(firmware.env, firmware.model_dir, firmware.build_dir, firmware.build_id),
        "HARNESS_BOARD_DIR": str(board_dir),
        **(extra_variables or {}),
    }
    with _build_folder_lock(firmware.build_dir):
        _run_pio(
            ["run", "-e", firmware.env, "-t", "upload", "--upload-port", port],
            variables,
            board_dir / "upload.log",
            f"upload of '{firmware.env}' to {port}",
        )
    return board_dir / "board.pid"


@contextmanager
def _build_folder_lock(build_dir: Path):
    """One PlatformIO at a time in a build folder, across processes: two sweeps that build or upload the same
    firmware (same content, same folder) would otherwise write the same files at once. The lock file sits
    beside the folder, because PlatformIO empties the folder on a first build."""
    build_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(build_dir.with_name(build_dir.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _variables(env: str, model_dir: Path, build_dir: Path, build_id: str) -> dict[str, str]:
    """What platformio.ini's scripts read: the model to build in, where to build, the id to stamp; and a
    linker map beside the ELF. Build and upload must pass the same flags, or the upload would build again."""
    link_map = shlex.quote(str(build_dir / env / MAP_FILE))
    flags = " ".join(filter(None, (os.environ.get("PLATFORMIO_BUILD_FLAGS", ""), f"-Wl,-Map,{link_map}")))
    return {
        "HARNESS_MODEL_DIR": str(model_dir),
        "PLATFORMIO_BUILD_DIR": str(build_dir),
        "HARNESS_BUILD_ID": build_id,
        "PLATFORMIO_BUILD_FLAGS": flags,
    }


def _run_pio(args: list[str], variables: dict[str, str], log: Path, what: str) -> None:
    # The log is written when PlatformIO is done: on a first build it empties the build directory (its
    # project.checksum is new), and a log open in there would be gone, with the error it explains.
    proc = subprocess.run(
        pio_command() + args + ["-d", str(platformio_project())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**pio_env(), **variables},
        stdin=subprocess.DEVNULL,
    )
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(proc.stdout)
    if proc.returncode != 0:
        raise BuildError(_missing_package(log) or f"{what} failed: {_first_error(log)} (log: {log})")


def _first_error(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()
    for pattern in (r"error:", r"Error:", r"Error \d", r"Error"):
        for line in lines:
            if re.search(pattern, line):
                return line.strip()
    return lines[-1].strip() if lines else "no output"


# --- PlatformIO platforms ------------------------------------------------------------------------


def env_option(env: str, option: str, default=None):
    """An option of an environment in platformio.ini, as PlatformIO resolves it (with [env] and ${...})."""
    return _project_config().get(f"env:{env}", option, default)


@lru_cache(maxsize=1)
def _project_config():
    from platformio.project.config import ProjectConfig

    return ProjectConfig(str(platformio_project() / "platformio.ini"))


@lru_cache(maxsize=1)
def _platforms_dir() -> str:
    from platformio import fs

    with fs.cd(str(platformio_project())):  # PlatformIO resolves relative paths in platformio.ini from the cwd
        return _project_config().get("platformio", "platforms_dir")


def require_platform(env: str) -> None:
    """Fail in one line when env's platform is missing here and PlatformIO's registry is out of reach."""
    spec = env_option(env, "platform")
    if spec.startswith(("symlink://", "file://")) or _platform_installed(spec):
        return
    try:
        socket.create_connection(REGISTRY, timeout=3).close()
    except OSError:
        raise BuildError(_missing_message(spec.split("@")[0], env)) from None


def require_board_tools(boards) -> None:
    """Fail in one line, before any work, when a board's tools (an emulator) or PlatformIO platform are missing."""
    for board in boards:
        for tool, package in board.needs:
            require_tool(tool, package)
        require_platform(board.name)


def _platform_installed(spec: str) -> bool:
    from platformio.package.manager.platform import PlatformPackageManager

    return PlatformPackageManager(_platforms_dir()).get_package(spec) is not None


def _missing_message(package: str, env: str) -> str:
    return (
        f"PlatformIO platform '{package}' is not installed and cannot be downloaded here: run "
        f"`pio pkg install -p {package}` (or `pio pkg install -e {env}` for its toolchain too) in this project "
        f"on a machine with internet, then copy its .pio/core here"
    )


_INSTALLING = re.compile(r"(Platform|Tool|Library) Manager: Installing (\S+)")
_DOWNLOAD_FAILED = (
    "HTTPClientError",
    "InternetConnectionError",
    "UnknownPackageError",
    "Could not find the package",
    "UnknownPlatform",
)


def _missing_package(log: Path) -> str | None:
    """PlatformIO's failure to install a package, told in one line; None if the log shows another failure."""
    text = log.read_text(errors="replace")
    installing = _INSTALLING.findall(text)
    if not installing or not any(marker in text for marker in _DOWNLOAD_FAILED):
        return None
    kind, package = installing[-1]
    env = re.search(r"Processing (\S+)", text)
    if kind == "Platform":
        return _missing_message(package, env.group(1) if env else "ENV")
    return (
        f"PlatformIO {kind.lower()} package '{package}' is not installed and cannot be downloaded here: run "
        f"`pio pkg install -e {env.group(1) if env else 'ENV'}` in this project on a machine with internet, "
        f"then copy its .pio/core here (log: {log})"
    )
