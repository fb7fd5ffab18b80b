"""Build and upload firmware through PlatformIO, and read sizes from the ELF.

Each variant (generated model x kernel) gets its own PlatformIO build
directory, so SCons' content signatures decide what to rebuild: re-running an
identical sweep compiles nothing.
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.toolchain import ToolchainError, pio_command, pio_env

PROJECT_DIR = Path(__file__).resolve().parent.parent


class BuildError(RuntimeError):
    """PlatformIO failed to build or upload a firmware."""


@dataclass(frozen=True)
class Firmware:
    env: str
    elf: Path
    build_dir: Path      # PLATFORMIO_BUILD_DIR; PlatformIO writes to build_dir/env
    model_dir: Path
    rebuilt: bool
    seconds: float
    sections: dict[str, int]  # section name -> bytes, from the ELF

    @property
    def flash_bytes(self) -> int:
        return sum(size for name, size in self.sections.items() if _in_flash(name))

    @property
    def static_ram_bytes(self) -> int:
        return self.sections.get(".data", 0) + self.sections.get(".bss", 0)


def _env(model_dir: Path, build_dir: Path) -> dict:
    env = pio_env()
    env["HARNESS_MODEL_DIR"] = str(model_dir)
    env["PLATFORMIO_BUILD_DIR"] = str(build_dir)
    return env


def _run_pio(args: list[str], model_dir: Path, build_dir: Path, log: Path, what: str) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.run(pio_command() + args + ["-d", str(PROJECT_DIR)], stdout=out, stderr=subprocess.STDOUT,
                              env=_env(model_dir, build_dir), stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise BuildError(f"{what} failed: {_first_error(log)} (log: {log})")


def _first_error(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()
    for pattern in (r"error:", r"Error:", r"Error \d", r"Error"):
        for line in lines:
            if re.search(pattern, line):
                return line.strip()
    return lines[-1].strip() if lines else "no output"


def build_firmware(env: str, model_dir: Path, build_dir: Path) -> Firmware:
    elf = build_dir / env / "firmware.elf"
    before = elf.stat().st_mtime_ns if elf.exists() else None
    started = time.perf_counter()
    _run_pio(["run", "-e", env], model_dir, build_dir, build_dir / env / "build.log", f"PlatformIO build of '{env}'")
    if not elf.exists():
        raise BuildError(f"PlatformIO build of '{env}' produced no {elf}")
    return Firmware(env=env, elf=elf, build_dir=build_dir, model_dir=model_dir,
                    rebuilt=before != elf.stat().st_mtime_ns, seconds=time.perf_counter() - started,
                    sections=elf_sections(elf))


def upload_firmware(firmware: Firmware, port: str) -> Path:
    """Flash through PlatformIO's upload target; returns the pid file of an emulated board's process."""
    _run_pio(["run", "-e", firmware.env, "-t", "upload", "--upload-port", port],
             firmware.model_dir, firmware.build_dir, firmware.build_dir / firmware.env / "upload.log",
             f"upload of '{firmware.env}' to {port}")
    return firmware.build_dir / firmware.env / "board.pid"


def elf_sections(elf: Path) -> dict[str, int]:
    """Allocated section sizes (`size -A`), from the ARM toolchain's size tool when the ELF is ARM."""
    tool = "arm-none-eabi-size" if _is_arm(elf) else "size"
    try:
        out = subprocess.run([tool, "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    except FileNotFoundError:
        raise ToolchainError(f"{tool} not found: install it with `apt-get install "
                             f"{'binutils-arm-none-eabi' if tool.startswith('arm') else 'binutils'}`") from None
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


_FLASH_SECTIONS = (".text", ".rodata", ".data", ".isr_vector", ".vectors", ".ARM.exidx", ".init_array", ".fini_array")


def _in_flash(section: str) -> bool:
    # .data lives in RAM but its initial values are stored in flash.
    return section in _FLASH_SECTIONS or section.startswith((".text.", ".rodata."))
