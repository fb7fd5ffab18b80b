"""A built firmware's sizes: its sections from the ELF (`size -A`), and the code of each kernel family it links,
from the linker's map (-Wl,-Map, which harness/build.py has the build write beside the ELF).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.toolchain import ToolchainError


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
        raise ValueError(f"{link_map} is no GNU ld map: it has no 'Linker script and memory map'") from None
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


def flash_bytes(sections: dict[str, int]) -> int:
    """Bytes in flash of a firmware's sections (elf_sections)."""
    return sum(size for name, size in sections.items() if _in_flash(name))


def static_ram_bytes(sections: dict[str, int]) -> int:
    """Bytes of RAM a firmware's sections (elf_sections) take before it runs: .data and .bss."""
    return sum(size for name, size in sections.items() if _in_static_ram(name))


def _in_flash(section: str) -> bool:
    # .data lives in RAM but its initial values are stored in flash.
    return section in _FLASH_SECTIONS or section.startswith((".text.", ".rodata.", ".flash.", ".iram0."))


def _in_static_ram(section: str) -> bool:
    return section in _STATIC_RAM_SECTIONS
