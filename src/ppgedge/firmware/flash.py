"""Split a linked image's flash and RAM into model array, TFLM framework, kernels and app.

Read from the GNU ld map file: every input section placed in an output section, with its size
and the object (or archive member) it came from. Runtime objects are named after their source
path (``build.Runtime.object_path``), so a member from ``.../kernels/...`` or CMSIS-NN is kernel
code and every other runtime member is framework; the ``*_model_data.c`` object is the model
array; newlib-nano, libm, libgcc and the C++ support library are ``libc`` (pulled in by TFLM
and the application together); everything else (application, startup) is the app. Alignment fill
goes to the part of the section before it. The parts add up to ``arm-none-eabi-size``'s totals.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ppgedge.firmware.build import Image

PARTS = ("model", "framework", "kernels", "libc", "app")
_LIBS = ("libc", "libm.a", "libgcc.a", "libstdc++", "libsupc++", "librdimon", "libnosys", "libg")
FLASH_SECTIONS = (".text", ".ARM.extab", ".ARM.exidx", ".data")
RAM_SECTIONS = (".data", ".bss")
_INPUT = re.compile(r"^\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(\S.*)$")


@dataclass(frozen=True)
class Split:
    """Bytes per part for flash (text + rodata + data load image) and RAM (data + bss)."""

    flash: dict[str, int]
    ram: dict[str, int]
    flash_total: int
    ram_total: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def part_of(origin: str) -> str:
    """Which part an input file of the link belongs to."""
    name = origin.rsplit("/", 1)[-1]
    if "_model_data.c" in name:
        return "model"
    if "libtflm-" in name and "(" in name:
        member = name.split("(", 1)[1]
        if "__kernels__" in member or member.startswith("cmsis-nn__"):
            return "kernels"
        return "framework"
    if name.startswith(_LIBS) or "crt" in name.split("(")[0]:
        return "libc"
    return "app"


def _entries(map_text: str) -> list[tuple[str, int, str]]:
    """(output section, size, origin) of every sized input section or fill."""
    body = map_text.split("Linker script and memory map", 1)[-1]
    out: list[tuple[str, int, str]] = []
    section = ""
    pending = ""  # an input section name whose address and size are on the next line
    last_origin = "app"
    for line in body.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            section = line.split()[0]
            pending = ""
            continue
        stripped = line.strip()
        if stripped.startswith("*fill*"):
            parts = stripped.split()
            if len(parts) >= 3:
                out.append((section, int(parts[2], 16), last_origin))
            continue
        m = _INPUT.match(line)
        if m and pending:
            size, origin = int(m.group(2), 16), m.group(3).strip()
            pending = ""
        else:
            parts = stripped.split()
            if len(parts) == 1 and parts[0].startswith("."):
                pending = parts[0]
                continue
            if len(parts) >= 4 and parts[0].startswith(".") and parts[1].startswith("0x"):
                size, origin = int(parts[2], 16), " ".join(parts[3:])
            else:
                continue
        if size:
            out.append((section, size, origin))
            last_origin = origin
    return out


def split(image: Image) -> Split:
    """Flash and RAM of ``image`` per part; rounding left over goes to the app."""
    flash = dict.fromkeys(PARTS, 0)
    ram = dict.fromkeys(PARTS, 0)
    for section, size, origin in _entries(Path(image.map).read_text(errors="replace")):
        part = part_of(origin)
        if section in FLASH_SECTIONS:
            flash[part] += size
        if section in RAM_SECTIONS:
            ram[part] += size
    flash["app"] += image.flash - sum(flash.values())
    ram["app"] += image.ram - sum(ram.values())
    return Split(flash, ram, image.flash, image.ram)
