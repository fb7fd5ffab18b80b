"""Flashing a farm place's board where the place is: the firmware travels to the board's exporter host.

An emulated board is loaded over its gdb stub (harness/device/gdb_remote.py).
A real board is flashed by one of labgrid's drivers, run by
`labgrid-client` on the place this run holds: OpenOCDDriver (the board
profile's `openocd` configs, the place's USBDebugger) or FlashScriptDriver
(the profile's `flash_command`, with the place's USBFlashableDevice). Both
copy files to the exporter host over SSH and run the tool there.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness.device import gdb_remote
from harness.device.boards import Board
from harness.device.farm import Farm, FarmError, PlaceAccess


def flash(farm: Farm, access: PlaceAccess, board: Board, elf: Path, log_path: Path) -> None:
    """Put the firmware on the place's board, through a driver where the place is.

    An emulated board: over its gdb stub. A real board: labgrid's OpenOCDDriver (the profile's `openocd`
    configs, the place's USBDebugger) or its FlashScriptDriver (the profile's `flash_command`, run on the
    exporter host against the place's USBFlashableDevice: esptool, picotool, bossac).
    """
    if access.gdb is not None:
        gdb_remote.load_and_run(*access.gdb, elf)
    elif board.openocd:
        driver = {
            "OpenOCDDriver": {
                "config": list(board.openocd),
                "load_commands": ["init", "program {filename} verify reset", "shutdown"],
            }
        }
        _labgrid_client(farm, access, driver, ["bootstrap", str(elf)], log_path)
    elif board.flash_command:
        with tempfile.TemporaryDirectory(prefix="flash-") as directory:
            script = Path(directory) / f"flash-{board.name}.sh"
            script.write_text(flash_script(board.flash_command, elf))
            script.chmod(0o755)
            _labgrid_client(
                farm, access, {"FlashScriptDriver": {}}, ["flashscript", str(script), "{device.devnode}"], log_path
            )
    else:
        raise FarmError(
            f"board '{board.name}' has no way to be flashed on a farm: give its profile "
            f"(firmware/boards/profiles.toml) 'openocd' configs or a 'flash_command'"
        )


def flash_script(command: str, elf: Path) -> str:
    """A shell script that carries the image and flashes it with command on the exporter host.

    labgrid's FlashScriptDriver copies only the script there, so the image travels inside it. In command,
    {port} is the device (the script's first argument), {elf} the ELF and {bin} the .bin PlatformIO made
    beside it.
    """
    image = elf.with_suffix(".bin") if "{bin}" in command else elf
    if not image.exists():
        raise FarmError(f"{image}: no such image to flash (flash_command '{command}')")
    run = command.replace("{port}", '"$1"').replace("{elf}", '"$image"').replace("{bin}", '"$image"')
    payload = base64.encodebytes(image.read_bytes()).decode()
    return (
        f"#!/bin/sh\n# Made by the harness: flashes {image.name} with: {command}\nset -e\n"
        f"image=$(mktemp)\ntrap 'rm -f \"$image\"' EXIT\n"
        f"base64 -d > \"$image\" <<'IMAGE'\n{payload}IMAGE\n{run}\n"
    )


def _labgrid_client(farm: Farm, access: PlaceAccess, driver: dict, command: list[str], log_path: Path) -> None:
    """Run a labgrid-client command on the place, as this run (which holds it), with driver configured.

    Through the command line, not the library: labgrid's drivers reach the exporter host over SSH to copy
    files and run tools there, and the command line is the interface labgrid keeps stable for that.
    """
    environment = {"targets": {access.place: {"resources": {"RemotePlace": {"name": access.place}}, "drivers": driver}}}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="labgrid-env-") as config:
        json.dump(environment, config)  # JSON is YAML
        config.flush()
        host, user = farm.holder.split("/", 1)
        proc = subprocess.run(
            [
                str(Path(sys.executable).parent / "labgrid-client"),
                "-x",
                farm.address,
                "-c",
                config.name,
                "-p",
                access.place,
                *command,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "LG_HOSTNAME": host, "LG_USERNAME": user},
            timeout=600,
        )
    log_path.write_bytes(proc.stdout)
    if proc.returncode != 0:
        last = (proc.stdout.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        if "NoSupplierFoundError" in last:
            wanted = "USBDebugger (the board's probe)" if "OpenOCDDriver" in driver else "USBFlashableDevice"
            last = f"the place has no {wanted}: export it with the board (docs/farm.md)"
        raise FarmError(f"flashing place '{access.place}' with {next(iter(driver))} failed: {last} (log: {log_path})")
