"""Boards the harness can measure, by name, from firmware/boards/profiles.toml.

A board is a PlatformIO environment (platformio.ini, same name) plus a short
profile: its core, how it is reached (a real serial port, QEMU on a loopback
TCP port, or a pty for the firmware as a Linux process) and the USB IDs that
identify it among attached serial ports.
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from harness.paths import project_file

PROFILES = project_file("firmware/boards/profiles.toml")
TRANSPORTS = ("serial", "qemu-tcp", "host-pty")


@dataclass(frozen=True)
class Board:
    name: str  # also the PlatformIO environment in platformio.ini
    core: str  # e.g. "cortex-m4"
    transport: str = "serial"
    needs: tuple[tuple[str, str], ...] = ()  # (executable, Debian package that provides it)
    usb: tuple[str, ...] = field(default=())  # "vid:pid" in lowercase hex, pid may be "*"
    openocd: tuple[str, ...] = ()  # OpenOCD config files that flash it (on a farm, where its probe is)
    flash_command: str = ""  # or the command that flashes it on a farm ({port}, {elf}, {bin})

    @property
    def emulated(self) -> bool:
        return self.transport in ("qemu-tcp", "host-pty")

    def matches_usb(self, vid: int | None, pid: int | None) -> bool:
        if vid is None or pid is None:
            return False
        return any(fnmatch.fnmatchcase(f"{vid:04x}:{pid:04x}", pattern) for pattern in self.usb)


BOARDS: dict[str, Board] = {}


def register_board(board: Board) -> Board:
    if board.name in BOARDS:
        raise ValueError(f"board '{board.name}' is registered twice")
    if board.transport not in TRANSPORTS:
        raise ValueError(f"board '{board.name}': transport '{board.transport}' is not one of {', '.join(TRANSPORTS)}")
    BOARDS[board.name] = board
    return board


def load_profiles(path: Path) -> list[Board]:
    known = {f.name for f in fields(Board)} - {"name"}
    boards = []
    for name, profile in tomllib.loads(path.read_text()).items():
        unknown = set(profile) - known
        if unknown or "core" not in profile:
            raise ValueError(
                f"{path} [{name}]: needs 'core'; may have {', '.join(sorted(known - {'core'}))}"
                + (f"; unknown: {', '.join(sorted(unknown))}" if unknown else "")
            )
        needs = tuple(tuple(item.split("=", 1)) for item in profile.get("needs", ()))
        usb = tuple(item.lower() for item in profile.get("usb", ()))
        boards.append(
            Board(
                name,
                profile["core"],
                profile.get("transport", "serial"),
                needs,
                usb,
                tuple(profile.get("openocd", ())),
                profile.get("flash_command", ""),
            )
        )
    return boards


for _board in load_profiles(PROFILES):
    register_board(_board)


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise KeyError(f"unknown board '{name}'; known: {', '.join(BOARDS)}") from None
