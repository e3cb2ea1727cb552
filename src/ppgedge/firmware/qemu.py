"""Run a firmware image in qemu-system-arm and count the instructions it executes.

Counting uses a TCG plugin that ppgedge compiles with the host C compiler (``csrc/
insn_count.c``; Debian's QEMU 7.2 ships no plugins and no ``qemu-plugin.h``, but loads plugins
built against the documented API). It timestamps every execution of ``ppgedge_mark()`` with the
running instruction count. QEMU executes instructions, not cycles: counts are exact, time is
not modelled (no pipeline, wait states, caches or bus contention).

The guest reads and writes host files through Arm semihosting (newlib's rdimon), so one run
handles many input windows.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ppgedge.errors import PpgedgeError
from ppgedge.firmware.boards import Board

QEMU = "qemu-system-arm"
CSRC = "ppgedge.firmware.csrc"
# Exit codes of the harness (csrc/harness.cc) and of the startup's fault handler.
EXIT_CODES = {
    2: "the harness could not read its input file",
    3: "AllocateTensors failed: the arena is too small or an operator is not registered",
    4: "the input or output tensor is not the int8 tensor expected (was the application "
    "compiled with the library's defines?)",
    5: "Invoke failed",
    6: "the preprocessing rejected a window (NaN or infinite samples)",
    7: "the model's schema version differs from this TFLite Micro's",
    70: "the core faulted (HardFault, MemManage, BusFault or UsageFault)",
}


def csrc(name: str) -> str:
    """The text of one of the firmware's C sources shipped in the package."""
    return resources.files(CSRC).joinpath(name).read_text()


def require_qemu() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise PpgedgeError(
            f"{QEMU} not found: install QEMU's Arm system emulator (Debian/Ubuntu: apt-get "
            "install qemu-system-arm)"
        )
    return path


def plugin(cache: Path) -> Path:
    """The instruction-counting plugin, built once per source version with the host compiler."""
    text = csrc("insn_count.c")
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    so = cache / "qemu-plugin" / f"insn_count-{key}.so"
    if so.is_file():
        return so
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise PpgedgeError("no host C compiler (cc/gcc) to build the QEMU counting plugin")
    so.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=so.parent) as tmp:
        src = Path(tmp) / "insn_count.c"
        src.write_text(text)
        out = Path(tmp) / "insn_count.so"
        cmd = [cc, "-shared", "-fPIC", "-O2", "-fvisibility=hidden", str(src), "-o", str(out)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise PpgedgeError(f"building the QEMU plugin failed: {done.stderr.strip()[:300]}")
        os.replace(out, so)
    return so


@dataclass(frozen=True)
class Run:
    """One emulator run: exit code, total instructions, the counter at each mark, stderr."""

    exit_code: int
    total: int
    marks: list[int]
    stderr: str
    seconds: float


def run(
    board: Board,
    elf: Path,
    *,
    mark_address: int | None,
    plugin_so: Path | None,
    workdir: Path,
    timeout_s: float,
) -> Run:
    """Run ``elf`` on ``board`` in ``workdir`` (semihosting paths are relative to it), counting
    instructions when a plugin and the mark function's address are given."""
    import time

    qemu = require_qemu()
    counts = workdir / "counts.txt"
    counts.unlink(missing_ok=True)
    cmd = [
        qemu,
        "-M",
        board.machine,
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
        "-kernel",
        str(elf),
    ]
    if plugin_so is not None and mark_address is not None:
        cmd += ["-plugin", f"{plugin_so},mark={mark_address:#x},out={counts}", "-d", "plugin"]
    started = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise PpgedgeError(
            f"{elf.name}: the emulator did not finish within {timeout_s:g} s on {board.machine} "
            "(raise --timeout, or use fewer --windows)"
        ) from None
    seconds = time.perf_counter() - started
    total, marks = 0, []
    if counts.is_file():
        for line in counts.read_text().splitlines():
            kind, _, value = line.partition(" ")
            if kind == "total":
                total = int(value)
            elif kind == "mark":
                marks.append(int(value))
    return Run(done.returncode, total, marks, done.stderr, seconds)


def explain(code: int) -> str:
    return EXIT_CODES.get(code, f"exit code {code}")
