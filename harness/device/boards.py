"""Boards the harness can measure, by name.

A board is a PlatformIO environment plus how to reach it: emulated boards
start QEMU on upload and serve their UART on a loopback TCP port; `host`
runs the firmware as a Linux process on a pty.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Board:
    name: str          # also the PlatformIO environment in platformio.ini
    core: str          # e.g. "cortex-m4"
    transport: str     # "qemu-tcp" | "host-pty" | "serial"
    needs: tuple[tuple[str, str], ...]  # (executable, Debian package that provides it)

    @property
    def emulated(self) -> bool:
        return self.transport in ("qemu-tcp", "host-pty")


BOARDS: dict[str, Board] = {}


def register_board(board: Board) -> Board:
    if board.name in BOARDS:
        raise ValueError(f"board '{board.name}' is registered twice")
    BOARDS[board.name] = board
    return board


_ARM_QEMU = (("arm-none-eabi-gcc", "gcc-arm-none-eabi"), ("qemu-system-arm", "qemu-system-arm"))

register_board(Board("mps2_an386", "cortex-m4", "qemu-tcp", _ARM_QEMU))
register_board(Board("mps2_an385", "cortex-m3", "qemu-tcp", _ARM_QEMU))
register_board(Board("mps2_an500", "cortex-m7", "qemu-tcp", _ARM_QEMU))
register_board(Board("host", "host", "host-pty", (("gcc", "gcc"),)))


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise KeyError(f"unknown board '{name}'; known: {', '.join(BOARDS)}") from None
