"""Run a bundle's C tracker on window sequences: on the host (gcc) to check it bit for bit
against Python, and on a Cortex-M core in QEMU to count its instructions per update.

Both builds compile the rendered ``trk_tracker.c`` with ``-std=c99 -Wall -Wextra -Werror
-pedantic`` beside ``csrc/tracker_main.c``, which reads (reset flag, int8 logits) records from
``tracker.in`` and writes (bpm, margin) pairs to ``tracker.out``.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppgedge.errors import PpgedgeError
from ppgedge.export.tracker_c import render_tracker
from ppgedge.firmware import qemu
from ppgedge.firmware.boards import board_for
from ppgedge.firmware.build import cache_root, require_tools
from ppgedge.firmware.images import linker_script
from ppgedge.models.tracker import N_CLASSES, TransitionPrior

C_FLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
IDENT = "trk"


@dataclass(frozen=True)
class CRun:
    """The C tracker's outputs per window, its state size and, in QEMU, instructions."""

    bpm: np.ndarray  # int64 (N,)
    margin: np.ndarray  # int64 (N,), logit quanta
    state_bytes: int
    instructions: np.ndarray | None = None  # int64 (N,) per update (QEMU only)


def _write(work: Path, prior: TransitionPrior, scale: float, x: np.ndarray, starts: np.ndarray):
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != N_CLASSES or x.dtype != np.int8:
        raise PpgedgeError(f"C tracker: needs int8 logits of shape (N, {N_CLASSES})")
    for name, text in render_tracker("tracker", prior, scale, IDENT).items():
        (work / name).write_text(text)
    (work / "tracker_main.c").write_text(qemu.csrc("tracker_main.c"))
    recs = np.concatenate([np.asarray(starts, np.uint8)[:, None], x.view(np.uint8)], axis=1)
    (work / "tracker.in").write_bytes(struct.pack("<I", len(x)) + recs.tobytes())


def _read(work: Path, n: int) -> CRun:
    raw = (work / "tracker.out").read_bytes()
    if len(raw) != 8 * n + 4:
        raise PpgedgeError(f"C tracker wrote {len(raw)} bytes, expected {8 * n + 4}")
    pairs = np.frombuffer(raw[: 8 * n], "<i4").reshape(n, 2).astype(np.int64)
    return CRun(pairs[:, 0], pairs[:, 1], struct.unpack("<I", raw[8 * n :])[0])


def _cc(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise PpgedgeError(f"{what} failed: {(done.stderr or done.stdout).strip()[:400]}")


def run_host(prior: TransitionPrior, scale: float, x: np.ndarray, starts: np.ndarray) -> CRun:
    """Compile the C tracker with the host's C compiler and run it on ``x``."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise PpgedgeError("no host C compiler (cc/gcc) to run the C tracker")
    with tempfile.TemporaryDirectory(prefix="ppgedge-tracker-") as tmp:
        work = Path(tmp)
        _write(work, prior, scale, x, starts)
        exe = work / "tracker"
        srcs = [str(work / f"{IDENT}_tracker.c"), str(work / "tracker_main.c")]
        _cc([cc, *C_FLAGS, "-O2", f"-I{work}", *srcs, "-o", str(exe)], "compiling the tracker")
        done = subprocess.run([str(exe)], cwd=work, capture_output=True, text=True)
        if done.returncode:
            raise PpgedgeError(f"the host C tracker exited with {done.returncode}")
        return _read(work, len(x))


def run_qemu(
    prior: TransitionPrior,
    scale: float,
    x: np.ndarray,
    starts: np.ndarray,
    core: str = "cortex-m4",
    timeout_s: float = 300.0,
) -> CRun:
    """Cross-compile the C tracker (-Os, the bundle's application flags) for ``core``, run it
    in QEMU with semihosting, and count executed instructions between the marks."""
    require_tools()
    board = board_for(core)
    plugin = qemu.plugin(cache_root())
    with tempfile.TemporaryDirectory(prefix="ppgedge-tracker-") as tmp:
        work = Path(tmp)
        _write(work, prior, scale, x, starts)
        (work / "startup.c").write_text(qemu.csrc("startup.c"))
        script = linker_script(board, work / "link.ld")
        elf = work / "tracker.elf"
        objs = []
        for src, extra in (
            (f"{IDENT}_tracker.c", []),
            ("tracker_main.c", []),
            ("startup.c", ["-DPPGEDGE_SEMIHOSTING", "-std=gnu17"]),
        ):
            obj = work / (src + ".o")
            flags = list(C_FLAGS) if not extra else ["-Wall"]
            _cc(
                [
                    "arm-none-eabi-gcc",
                    *board.flags,
                    *flags,
                    *extra,
                    "-Os",
                    "-ffunction-sections",
                    "-fdata-sections",
                    f"-I{work}",
                    "-c",
                    str(work / src),
                    "-o",
                    str(obj),
                ],
                f"compiling {src} for {core}",
            )
            objs.append(str(obj))
        _cc(
            [
                "arm-none-eabi-gcc",
                *board.flags,
                "-nostartfiles",
                "--specs=nano.specs",
                "--specs=rdimon.specs",
                "-Wl,--gc-sections",
                "-T",
                str(script),
                *objs,
                "-lc",
                "-o",
                str(elf),
            ],
            f"linking the tracker for {core}",
        )
        nm = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True)
        mark = next(
            int(p[0], 16)
            for p in (ln.split() for ln in nm.stdout.splitlines())
            if len(p) == 3 and p[2] == "ppgedge_mark"
        )
        run = qemu.run(
            board, elf, mark_address=mark, plugin_so=plugin, workdir=work, timeout_s=timeout_s
        )
        if run.exit_code:
            raise PpgedgeError(f"the C tracker in QEMU exited with {run.exit_code}")
        out = _read(work, len(x))
    marks = np.asarray(run.marks, np.int64)
    if len(marks) != 2 * len(x):
        raise PpgedgeError(f"QEMU recorded {len(marks)} marks for {len(x)} updates")
    return CRun(out.bpm, out.margin, out.state_bytes, marks[1::2] - marks[0::2])
