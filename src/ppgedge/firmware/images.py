"""The two images built for one model: the firmware as shipped, and the measurement harness.

* **firmware**: the bundle's own ``main.cc`` with its model array, op resolver and C
  preprocessing (or, for a foreign ``.tflite``, a minimal main), the startup file and the
  runtime library, linked with newlib-nano and no host I/O. Its size is the flash and RAM figure.
* **harness**: the same model files with ``csrc/harness.cc`` instead of ``main.cc``, linked
  with semihosting so it can read windows from and write results to host files.

Both are compiled with the runtime's flags (``-Os`` for application code) for the board's core.
"""

from __future__ import annotations

import concurrent.futures
import os
import string
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ppgedge.errors import PpgedgeError
from ppgedge.firmware.boards import Board
from ppgedge.firmware.build import BuildError, Image, Runtime, link
from ppgedge.firmware.qemu import csrc

HEAP_BYTES = 64 * 1024
STACK_BYTES = 64 * 1024


@dataclass(frozen=True)
class ModelFiles:
    """The C/C++ files of one model in a directory: a bundle's, or the model-only subset."""

    dir: Path
    ident: str
    raw: bool  # a full bundle: raw windows go through its C preprocessing and decoding
    tflite: Path

    @property
    def c_sources(self) -> list[Path]:
        return [self.dir / f"{self.ident}_model_data.c", *self.app_sources]

    @property
    def app_sources(self) -> list[Path]:
        """The bundle's application C files besides the model: its preprocessing and, when it
        has one, the temporal tracker its ``main`` calls (so the firmware's size includes it)."""
        if not self.raw:
            return []
        tracker = self.dir / f"{self.ident}_tracker.c"
        return [self.dir / f"{self.ident}_preprocess.c", *([tracker] if tracker.is_file() else [])]


@dataclass(frozen=True)
class Images:
    firmware: Image
    harness: Image
    mark_address: int
    compiled_runtime_objects: int


def _linker_script(rt: Runtime, out: Path) -> Path:
    return linker_script(rt.board, out)


def linker_script(b: Board, out: Path) -> Path:
    """The board's memory map with the harness's heap and stack, written to ``out``."""
    text = string.Template(csrc("link.ld.in")).substitute(
        code_name="the board's code SSRAM",
        ram_name="its data SSRAM",
        code_origin=f"{b.code_origin:#010x}",
        code_length=f"{b.code_bytes:#x}",
        ram_origin=f"{b.ram_origin:#010x}",
        ram_length=f"{b.ram_bytes:#x}",
        heap_bytes=f"{HEAP_BYTES:#x}",
        stack_bytes=f"{STACK_BYTES:#x}",
    )
    out.write_text(text)
    return out


def _compile(rt: Runtime, src: Path, obj: Path, defines: list[str]) -> Path:
    lang = "c" if src.suffix == ".c" else "c++"
    cmd = rt.compile_cmd(src, obj, lang, "-Os", extra=[*defines, f"-I{src.parent}"])
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise BuildError(f"compiling {src.name}", done.stderr)
    return obj


def _symbol(elf: Path, name: str) -> int:
    out = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise PpgedgeError(f"{elf.name}: symbol {name} not found")


def build_images(
    rt: Runtime,
    files: ModelFiles,
    ops: list[str],
    work: Path,
    *,
    firmware_arena: int,
    harness_arena: int,
    item_bytes: int,
) -> Images:
    """Compile the application files and link both images (compiling runtime objects as
    needed; a missing symbol retries with every kernel compiled)."""
    work.mkdir(parents=True, exist_ok=True)
    script = _linker_script(rt, work / "link.ld")
    ident = files.ident
    fw_src = files.dir / "main.cc" if files.raw else work / "model_main.cc"
    if not files.raw:
        fw_src.write_text(string.Template(csrc("model_main.cc")).substitute(id=ident))
    fw_defs = [f"-I{files.dir}"]
    if not files.raw:
        fw_defs.append(f"-DPPGEDGE_ARENA_SIZE={firmware_arena}")
    startup = work / "startup.c"
    startup.write_text(csrc("startup.c"))
    harness_src = work / "harness.cc"
    harness_src.write_text(
        string.Template(csrc("harness.cc")).substitute(id=ident, ID=ident.upper())
    )
    h_defs = [
        f"-DPPGEDGE_RAW={int(files.raw)}",
        f"-DPPGEDGE_ARENA_CAP={harness_arena}",
        f"-DPPGEDGE_ITEM_BYTES={item_bytes}",
        '-DPPGEDGE_IN="in.bin"',
        '-DPPGEDGE_OUT="out.bin"',
        f"-I{files.dir}",
    ]
    units = [(c, work / f"{c.name}.o", []) for c in files.c_sources] + [
        (fw_src, work / "firmware_main.o", fw_defs),
        (startup, work / "startup.o", []),
        (harness_src, work / "harness.o", h_defs),
        (startup, work / "startup_semihosting.o", ["-DPPGEDGE_SEMIHOSTING"]),
    ]
    with concurrent.futures.ThreadPoolExecutor(rt.jobs or os.cpu_count() or 2) as pool:
        objs = list(pool.map(lambda u: _compile(rt, *u), units))
    model_objs, (fw_main, fw_start, h_main, h_start) = objs[:-4], objs[-4:]
    fw_objs = [*model_objs, fw_main, fw_start]
    h_objs = [*model_objs, h_main, h_start]

    lib, compiled = rt.library(ops)
    try:
        firmware = link(rt, fw_objs, lib, script, work / f"{ident}.elf", semihosting=False)
    except BuildError as exc:
        if "undefined reference" not in exc.log:
            raise
        lib, more = rt.library(ops, every_kernel=True)
        compiled += more
        firmware = link(rt, fw_objs, lib, script, work / f"{ident}.elf", semihosting=False)
    harness = link(rt, h_objs, lib, script, work / f"{ident}_harness.elf", semihosting=True)
    return Images(firmware, harness, _symbol(harness.elf, "ppgedge_mark"), compiled)
