"""Will a compiled model fit the board? Checked before building, so the answer says by how much.

The board's budget is its PlatformIO board JSON (firmware/platform/boards/
<env>.json: upload.maximum_size for flash, upload.maximum_ram_size for RAM),
the same figures the linker script cuts the memory regions to. The model's
need is exact for its constant tables and arena; the rest of the firmware is
estimated from below with allowances measured on the mps2 boards (Debian's
arm-none-eabi-gcc 12.2, -O2), so a refused model never fits, and one that
passes may still just miss at link time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.paths import project_file
from harness.stages import Stage

BOARDS_DIR = project_file("firmware/platform/boards")

# Flash besides the tables: the runtime, the serial protocol and the smallest kernel (a
# one-layer FULLY_CONNECTED model links to 4,037 B on the Cortex-M3, 4,257 B on the M4), then
# per layer its parameter struct, name and call (64 B is the least seen; 70-130 B is usual).
RUNTIME_FLASH_BYTES = 3_900
FLASH_PER_LAYER = 64
# RAM besides the arena: the stack (8 KiB, firmware/platform/ldscripts/mps2.ld), the runtime's
# buffers (820 B measured) and a layer timer slot (8 B) per layer.
STACK_BYTES = 8 * 1024
RUNTIME_RAM_BYTES = 816
RAM_PER_LAYER = 8


class BudgetError(RuntimeError):
    """The model cannot fit the board; the message says which memory and by how much."""

    stage = Stage.FIT  # the failed stage its result row names: a fact about model and board, not a fault


@dataclass(frozen=True)
class Budget:
    flash_bytes: int
    ram_bytes: int


@dataclass(frozen=True)
class Need:
    """The least flash and RAM a firmware running this model takes."""

    tables: int  # constant tables (weights, biases, requantization)
    arena: int
    layers: int

    @property
    def flash_bytes(self) -> int:
        return self.tables + RUNTIME_FLASH_BYTES + FLASH_PER_LAYER * self.layers

    @property
    def ram_bytes(self) -> int:
        return self.arena + STACK_BYTES + RUNTIME_RAM_BYTES + RAM_PER_LAYER * self.layers


def board_budget(env: str, boards_dir: Path = BOARDS_DIR) -> Budget | None:
    """The board's flash and RAM, or None when its JSON is not there or sets no limit (e.g. host)."""
    path = boards_dir / f"{env}.json"
    if not path.is_file():
        return None
    upload = json.loads(path.read_text()).get("upload", {})
    budget = Budget(int(upload.get("maximum_size", 0)), int(upload.get("maximum_ram_size", 0)))
    return budget if budget.flash_bytes > 0 and budget.ram_bytes > 0 else None


def model_need(compiled) -> Need:
    """compiled: a CompiledModel."""
    return Need(tables=compiled.table_bytes, arena=compiled.arena_bytes, layers=len(compiled.layers))


def check_fits(compiled, env: str, boards_dir: Path = BOARDS_DIR) -> None:
    """Raise BudgetError if the compiled model needs more flash or RAM than board `env` has."""
    budget = board_budget(env, boards_dir)
    if budget is None:
        return
    need = model_need(compiled)
    problems = []
    if need.flash_bytes > budget.flash_bytes:
        problems.append(
            f"{need.flash_bytes:,} B of flash ({need.tables:,} B of weights and tables + "
            f"at least {need.flash_bytes - need.tables:,} B of code), "
            f"{need.flash_bytes - budget.flash_bytes:,} B more than its {budget.flash_bytes:,} B"
        )
    if need.ram_bytes > budget.ram_bytes:
        problems.append(
            f"{need.ram_bytes:,} B of RAM ({need.arena:,} B of activation arena + "
            f"at least {need.ram_bytes - need.arena:,} B of stack and runtime), "
            f"{need.ram_bytes - budget.ram_bytes:,} B more than its {budget.ram_bytes:,} B"
        )
    if problems:
        raise BudgetError(f"the {compiled.kernel} model does not fit board {env}: it needs " + " and ".join(problems))
