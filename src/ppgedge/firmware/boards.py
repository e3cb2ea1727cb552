"""Which emulated board stands for which Cortex-M core, and how code for it is compiled.

QEMU 7.2's Arm MPS2 FPGA images carry the three cores ppgedge's targets use. Their memory maps
(from QEMU's hw/arm/mps2.c and mps2-tz.c): 4 MB of code SSRAM at 0 (on the TrustZone AN505 its
secure alias at 0x10000000, where the core boots) and 4 MB of data SSRAM at 0x20000000 (AN505:
secure alias 0x38000000). A model that does not fit those fails to link, with a one-line error.
Compiler flags per core are those of TFLite Micro's cortex_m_generic target (hard float).
"""

from __future__ import annotations

from dataclasses import dataclass

from ppgedge.errors import PpgedgeError

MB = 1024 * 1024


@dataclass(frozen=True)
class Board:
    """One core, its compiler flags, and the QEMU machine that runs its code."""

    core: str
    cpu_flags: tuple[str, ...]
    machine: str
    code_origin: int
    ram_origin: int
    code_bytes: int = 4 * MB
    ram_bytes: int = 4 * MB

    @property
    def flags(self) -> list[str]:
        return [*self.cpu_flags, "-mthumb"]


BOARDS: dict[str, Board] = {
    "cortex-m4": Board(
        "cortex-m4",
        ("-mcpu=cortex-m4", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
        "mps2-an386",
        0x00000000,
        0x20000000,
    ),
    "cortex-m33": Board(
        "cortex-m33",
        ("-mcpu=cortex-m33", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
        "mps2-an505",
        0x10000000,
        0x38000000,
    ),
    "cortex-m7": Board(
        "cortex-m7",
        ("-mcpu=cortex-m7", "-mfloat-abi=hard", "-mfpu=fpv5-d16"),
        "mps2-an500",
        0x00000000,
        0x20000000,
    ),
}
ALIASES = {"cortex-m4f": "cortex-m4", "cortex-m33f": "cortex-m33", "cortex-m7f": "cortex-m7"}


def board_for(core: str) -> Board:
    """The board for a target's core (``cortex-m4f`` counts as ``cortex-m4``)."""
    name = ALIASES.get(core.lower(), core.lower())
    if name not in BOARDS:
        raise PpgedgeError(
            f"no emulated board for core '{core}': --measure supports {', '.join(BOARDS)}"
        )
    return BOARDS[name]
