"""AOT against TFLite Micro + CMSIS-NN: same inputs, both in the emulator, plus the host build.

``compare`` runs the measured TFLM image (``firmware.measure``, its harness kept) and the AOT
harness on the same input file in QEMU, and the AOT code built for the host on it too, and
reports: int8 input and output tensors identical (windows compared), linked flash and RAM of
both firmware images per part, and executed instructions per inference (Invoke against
``NAME_invoke``). A bundle's windows go through its C preprocessing in both images.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ppgedge.aot import build as B
from ppgedge.aot.generate import generate, write
from ppgedge.errors import PpgedgeError
from ppgedge.firmware import flash, qemu
from ppgedge.firmware.boards import board_for
from ppgedge.firmware.build import Runtime, cache_root, require_tools
from ppgedge.firmware.measure import (
    _files_for,
    _inputs_for,
    _read_out,
    _write_in,
    measure,
    run_harness,
)
from ppgedge.firmware.sources import locate

SCHEMA = "ppgedge.aot-verify/1"


@dataclass
class AotComparison:
    model: str
    core: str
    windows: int
    inputs: str
    bit_exact_device: bool  # AOT on the emulated core == TFLM + CMSIS-NN on the emulated core
    bit_exact_host: bool | None  # AOT host build (portable CMSIS-NN C) == the same
    inputs_identical: bool  # both images fed the same int8 tensors (after C preprocessing)
    max_diff: int
    tflm_vs_python_exact: bool  # the TFLM image against the TFLM Python runtime (measure)
    flash: dict[str, Any]
    ram: dict[str, Any]
    instructions: dict[str, float]
    arena: dict[str, int]
    layers: list[dict[str, Any]]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **asdict(self)}


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 4) if b else None


def _aot_split(image) -> dict[str, Any]:
    """Flash/RAM of the AOT image: generated file = model (weights + invoke code), CMSIS-NN
    = kernels, newlib = libc, the rest app (main, startup, preprocessing, decoding)."""
    s = flash.split(image)
    parts_f, parts_r = dict(s.flash), dict(s.ram)
    text = Path(image.map).read_text(errors="replace")
    f_model = r_model = 0
    for section, size, origin in flash._entries(text):
        if origin.rsplit("/", 1)[-1].endswith("_aot.o"):
            if section in flash.FLASH_SECTIONS:
                f_model += size
            if section in flash.RAM_SECTIONS:
                r_model += size
    parts_f["app"] -= f_model
    parts_f["model"] += f_model
    parts_r["app"] -= r_model
    parts_r["model"] += r_model
    return {"flash": parts_f, "ram": parts_r, "flash_total": s.flash_total,
            "ram_total": s.ram_total}  # fmt: skip


def compare(model: str | Path, core: str = "cortex-m4", windows: int = 200, *,
            data: str | Path | None = None, tflm_src: str | Path | None = None,
            cache: str | Path | None = None, host: bool = True, seed: int = 0,
            timeout_s: float = 600.0, keep: str | Path | None = None,
            reference: tuple[Any, Path] | None = None) -> AotComparison:  # fmt: skip
    """Compare the AOT build of ``model`` (a .tflite or a bundle directory) with its TFLM
    build on ``core`` (see the module docstring). ``reference``: a ``firmware.measure`` report
    of the same model, core, windows, data and seed with the folder it kept, reused instead of
    measuring again."""
    import time

    started = time.perf_counter()
    board = board_for(core)
    src = locate(tflm_src)
    compiler = require_tools()
    qemu.require_qemu()
    cache_dir = Path(cache) if cache else cache_root()
    rt = Runtime(src, board, compiler, cache=cache_dir)
    with tempfile.TemporaryDirectory(prefix="ppgedge-aot-") as tmp:
        work = Path(keep) if keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if reference is None:
            tflm_dir = work / "tflm"
            ref = measure(model, core, windows, data=data, tflm_src=src.root, cache=cache_dir,
                          timeout_s=timeout_s, bisect=False, seed=seed, keep=tflm_dir)  # fmt: skip
        else:
            ref, tflm_dir = reference
        files = _files_for(Path(model), tflm_dir)
        feed = _inputs_for(files, Path(data) if data else None, windows, seed)
        n = len(feed.items)
        if ref.exact["windows"] != n:
            raise PpgedgeError(f"the reference measured {ref.exact['windows']} windows, not {n}")
        _, t_x, t_y, _ = _read_out(tflm_dir / "run" / "out.bin", n)
        gen = generate(files.tflite, files.ident)
        model_dir = work / "aot" / "model"
        write(gen, model_dir)
        staged = B.stage_app_sources(files, model_dir)
        c_sources = [p for p in staged if p.suffix == ".c"]
        images = B.build_device(rt, model_dir, files.ident, c_sources, files.raw,
                                feed.item_bytes, work / "aot" / "build")  # fmt: skip
        run_dir = work / "aot" / "run"
        res = run_harness(board, images, feed, run_dir, cache_dir, timeout_s,
                          f"{files.tflite.name}: the AOT harness")  # fmt: skip
        head, a_x, a_y, _ = _read_out(run_dir / "out.bin", n)
        host_exact = None
        if host:
            exe = B.build_host(src, cache_dir, model_dir, files.ident, c_sources, files.raw,
                               feed.item_bytes, work / "aot" / "host")  # fmt: skip
            h_dir = work / "aot" / "host-run"
            h_dir.mkdir(parents=True, exist_ok=True)
            _write_in(h_dir, feed, n, 0)
            done = subprocess.run([str(exe)], cwd=h_dir, capture_output=True, timeout=timeout_s)
            if done.returncode != 0:
                raise PpgedgeError(f"{files.tflite.name}: the host AOT harness exited "
                                   f"{done.returncode}")  # fmt: skip
            _, h_x, h_y, _ = _read_out(h_dir / "out.bin", n)
            host_exact = bool(np.array_equal(h_y, t_y) and np.array_equal(h_x, t_x))
        split = _aot_split(images.firmware)
    m = np.array(res.marks, dtype=np.int64)
    if len(m) != 6 * n:
        raise PpgedgeError(f"the counting plugin saw {len(m)} marks, expected {6 * n}")
    m = m.reshape(n, 6)
    aot_invoke = float((m[:, 3] - m[:, 2]).mean())
    tflm_invoke = float(ref.instructions["invoke"])
    diff = np.abs(a_y.astype(np.int16) - t_y.astype(np.int16))
    t_flash, t_ram = ref.flash["total"], ref.ram["total"]
    return AotComparison(
        model=files.tflite.name,
        core=board.core,
        windows=n,
        inputs=feed.origin,
        bit_exact_device=bool(diff.max() == 0),
        bit_exact_host=host_exact,
        inputs_identical=bool(np.array_equal(a_x, t_x)),
        max_diff=int(diff.max()),
        tflm_vs_python_exact=bool(ref.exact["bit_exact"]),
        flash={"aot": split["flash_total"], "tflm": t_flash,
               "ratio": _ratio(split["flash_total"], t_flash),
               "aot_parts": split["flash"], "tflm_parts": {k: v for k, v in ref.flash.items()
                                                            if k != "total"}},
        ram={"aot": split["ram_total"], "tflm": t_ram, "ratio": _ratio(split["ram_total"], t_ram),
             "aot_parts": split["ram"], "tflm_parts": {k: v for k, v in ref.ram.items()
                                                        if k != "total"},
             "aot_stack": head["stack_used"], "tflm_stack": ref.stack_bytes},
        instructions={"aot_invoke": aot_invoke, "tflm_invoke": tflm_invoke,
                      "ratio": _ratio(aot_invoke, tflm_invoke)},
        arena={"aot": gen.plan.arena_bytes, "tflm_declared": int(ref.arena["declared"]),
               "tflm_used": int(ref.arena["used"])},
        layers=gen.summary()["layers"],
        seconds=round(time.perf_counter() - started, 2),
    )  # fmt: skip


def verify_aot(model: str | Path, dataset: str | Path, windows: int = 200, *,
               tflm_src: str | Path | None = None) -> AotComparison:  # fmt: skip
    """``verify --runtime aot``: ``model`` is an export folder (its ``tflm/`` bundle), a
    bundle, or a .tflite with its bundle beside it; the dataset's first windows feed both."""
    m = Path(model)
    if m.is_file() and m.suffix != ".tflite":
        raise PpgedgeError(f"{m}: --runtime aot verifies an export folder, a bundle or a .tflite")
    bundle = m / "tflm" if (m / "tflm" / "manifest.json").is_file() else m
    return compare(bundle, "cortex-m4", windows, data=dataset, tflm_src=tflm_src)
