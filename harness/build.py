"""Build and upload firmware through PlatformIO, and read sizes from the ELF.

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

from harness.paths import platformio_project
from harness.toolchain import ToolchainError, pio_command, pio_env, require_tool

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
        return sum(size for name, size in self.sections.items() if _in_flash(name))

    @property
    def static_ram_bytes(self) -> int:
        return sum(size for name, size in self.sections.items() if _in_static_ram(name))


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


# --- sizes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelCode:
    """Flash taken by the kernels linked into a firmware, per kernel family.

    A family is one C file in firmware/kernels/ (e.g. "conv2d_csr_s8" for
    conv2d_csr_s8.c); its bytes are the code and constants (.text*,
    .rodata*, .data* input sections) the linker kept from that file, static
    helpers included, alignment padding between them not. A family absent
    here is not in the firmware: --gc-sections dropped it, or nothing calls
    it. Code a kernel calls in another C file counts for that file.
    """

    family_bytes: dict[str, int]  # family -> bytes
    family_of: dict[str, str]  # kernel, as LayerInfo.kernel names it (C function without "nn_") -> family

    def family(self, kernel: str) -> str | None:
        return self.family_of.get(kernel)

    def bytes_of(self, kernel: str) -> int:
        """The code bytes of the family that defines a kernel function; 0 for one not linked."""
        family = self.family_of.get(kernel)
        return self.family_bytes.get(family, 0) if family else 0


_MAP_INPUT_SECTION = re.compile(r"^ (\S+)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
_MAP_NAME_ONLY = re.compile(r"^ (\.\S+)$")  # a long section name; address, size and file follow on the next line
_MAP_CONTINUED = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
_MAP_SYMBOL = re.compile(r"^\s+0x[0-9a-fA-F]+\s+([A-Za-z_]\w*)$")
_FLASH_INPUT = re.compile(r"^\.(text|rodata|data)(\..*)?$")


def kernel_code(link_map: Path) -> KernelCode:
    """Attribute the kept input sections of a GNU ld map (-Wl,-Map) to the kernel C files they came from."""
    lines = link_map.read_text(errors="replace").splitlines()
    try:
        start = lines.index("Linker script and memory map")  # what precedes it lists discarded sections
    except ValueError:
        raise BuildError(f"{link_map} is no GNU ld map: it has no 'Linker script and memory map'") from None
    family_bytes: dict[str, int] = {}
    family_of: dict[str, str] = {}
    current = None  # the family of the input section the last lines described
    pending = None  # a section name waiting for its address line
    for line in lines[start + 1 :]:
        if pending is not None and (match := _MAP_CONTINUED.match(line)):
            section, size, origin = pending, int(match.group(2), 16), match.group(3)
        elif match := _MAP_INPUT_SECTION.match(line):
            section, size, origin = match.group(1), int(match.group(3), 16), match.group(4)
        else:
            pending = None
            if match := _MAP_NAME_ONLY.match(line):
                pending = match.group(1)
            elif (match := _MAP_SYMBOL.match(line)) and current:
                family_of[match.group(1).removeprefix("nn_")] = current
            continue
        pending = None
        current = _kernel_family(origin)
        if current and size and _FLASH_INPUT.match(section):
            family_bytes[current] = family_bytes.get(current, 0) + size
    return KernelCode(family_bytes, {kernel: family for kernel, family in family_of.items() if family in family_bytes})


def _kernel_family(object_file: str) -> str | None:
    """ "…/kernels/conv2d_csr_s8.o" (or conv2d_csr_s8.c.o, as Arduino builds name it) -> "conv2d_csr_s8"."""
    path = Path(object_file.strip())
    # A reference kernel (kernels/reference/, built with -DNN_REFERENCE_KERNELS) counts for the family it replaces.
    folder = path.parent.parent if path.parent.name == "reference" else path.parent
    if folder.name != "kernels" or path.suffix != ".o":
        return None
    return path.name.removesuffix(".o").removesuffix(".cpp").removesuffix(".c")


def elf_sections(elf: Path) -> dict[str, int]:
    """Allocated section sizes (`size -A`), from the ARM toolchain's size tool when the ELF is ARM."""
    tool = "arm-none-eabi-size" if _is_arm(elf) else "size"
    try:
        out = subprocess.run([tool, "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        raise ToolchainError(
            f"{tool} not found: install it with `apt-get install "
            f"{'binutils-arm-none-eabi' if tool.startswith('arm') else 'binutils'}`"
        ) from None
    sections = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    return sections


def _is_arm(elf: Path) -> bool:
    with open(elf, "rb") as f:
        header = f.read(20)
    return header[18:20] == b"\x28\x00"  # e_machine EM_ARM, little-endian


# ESP32 names its sections by memory: code and constants run from flash
# (.flash.*) or are copied to IRAM/DRAM at boot (.iram0.*, .dram0.data).
_FLASH_SECTIONS = (
    ".text",
    ".rodata",
    ".data",
    ".isr_vector",
    ".vectors",
    ".ARM.exidx",
    ".init_array",
    ".fini_array",
    ".dram0.data",
)
_STATIC_RAM_SECTIONS = (".data", ".bss", ".dram0.data", ".dram0.bss")


def _in_flash(section: str) -> bool:
    # .data lives in RAM but its initial values are stored in flash.
    return section in _FLASH_SECTIONS or section.startswith((".text.", ".rodata.", ".flash.", ".iram0."))


def _in_static_ram(section: str) -> bool:
    return section in _STATIC_RAM_SECTIONS
