"""The AOT firmware's flash and SRAM, counted on the linked image (``profile --runtime aot``).

The generated C is compiled for the core and linked with CMSIS-NN (from the TFLite Micro
runtime cache; the first build of a source tree compiles CMSIS-NN once) into the same firmware
``verify``/the AOT benchmark measure: for a bundle its C preprocessing and decoder, for a bare
.tflite a minimal main. Nothing is estimated: flash is the image's text + data per part, SRAM
the arena the plan needs plus the application's input and output copies (TFLM's convention in
``profile``), and the linked image's RAM beside it.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from ppgedge.aot.build import build_device, stage_app_sources
from ppgedge.aot.generate import generate, write
from ppgedge.aot.verify import _aot_split
from ppgedge.firmware.boards import board_for
from ppgedge.firmware.build import Runtime, cache_root, require_tools
from ppgedge.firmware.sources import locate


def linked_footprint(tflite: str | Path, core: str, *, tflm_src: str | Path | None = None,
                     cache: str | Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Flash and RAM of the AOT firmware of ``tflite`` (its bundle's preprocessing when a
    ppgedge bundle sits beside it in ``tflm/``) linked for ``core``."""

    from ppgedge.firmware.measure import _files_for

    board = board_for(core)
    src = locate(tflm_src)
    rt = Runtime(src, board, require_tools(), cache=Path(cache) if cache else cache_root())
    with tempfile.TemporaryDirectory(prefix="ppgedge-aot-size-") as tmp:
        work = Path(tmp)
        files = _files_for(Path(tflite), work)
        gen = generate(files.tflite, files.ident)
        model_dir = work / "aot"
        write(gen, model_dir)
        c_sources = [p for p in stage_app_sources(files, model_dir) if p.suffix == ".c"]
        images = build_device(rt, model_dir, files.ident, c_sources, files.raw, 4, work / "b")
        split = _aot_split(images.firmware)
    return {"core": board.core, "arena_bytes": gen.plan.arena_bytes,
            "input_bytes": gen.input_bytes, "output_bytes": gen.output_bytes,
            "layers": gen.summary()["layers"], **split}  # fmt: skip
