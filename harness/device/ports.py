"""Serial ports attached to this machine, matched to known boards by their USB vendor and product IDs."""

from __future__ import annotations

from serial.tools import list_ports
from serial.tools.list_ports_common import ListPortInfo

from harness.device.boards import BOARDS, Board


def find_ports() -> list[tuple[ListPortInfo, list[Board]]]:
    """Every serial port with the boards whose profile lists its USB IDs (several: a shared USB bridge chip)."""
    return [(port, matching_boards(port)) for port in sorted(list_ports.comports(), key=lambda p: p.device)]


def matching_boards(port: ListPortInfo) -> list[Board]:
    return [board for board in BOARDS.values() if board.matches_usb(port.vid, port.pid)]


def describe(port: ListPortInfo, boards: list[Board]) -> str:
    """One line: the device, its USB IDs, what it says it is, and which boards it may be."""
    usb = f"{port.vid:04x}:{port.pid:04x}" if port.vid is not None and port.pid is not None else "-"
    what = port.product or port.description or ""
    if port.serial_number:
        what += f" (serial {port.serial_number})"
    names = ", ".join(board.name for board in boards) or "unknown board"
    return f"{port.device:20s} {usb:9s} {names:24s} {what}"
