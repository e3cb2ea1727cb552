"""The AOT firmware bundle: generated C beside the TFLM bundle's preprocessing and decoder.

``export --format aot`` writes ``aot/`` next to ``tflm/``: ``NAME_aot.c/.h`` (the model, no
interpreter), the TFLM bundle's ``NAME_config.h`` and ``NAME_preprocess.c/.h`` copied unchanged
(the same preprocessing and decoder; the temporal tracker's ``NAME_tracker.c/.h`` too when
the bundle has one), a ``main.c`` like the TFLM bundle's ``main.cc``, and a
manifest recording ``"runtime": "aot"`` with the arena and the kernel each layer calls.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ppgedge.aot.build import STRICT, stage_app_sources, templated
from ppgedge.aot.generate import Generated, generate, write
from ppgedge.atomic import file_sha256
from ppgedge.errors import PpgedgeError
from ppgedge.firmware.images import ModelFiles

SCHEMA = "ppgedge.aot-bundle/1"


def write_aot_bundle(tflm_dir: Path, out_dir: Path) -> Generated:
    """Generate the AOT bundle of the TFLM bundle in ``tflm_dir`` into ``out_dir`` (refuses
    with one line naming the layer before writing anything)."""
    try:
        man = json.loads((tflm_dir / "manifest.json").read_text())
        ident = str(man["identifier"])
    except (OSError, ValueError, KeyError):
        raise PpgedgeError(f"{tflm_dir}: not a ppgedge TFLM bundle (no manifest)") from None
    gen = generate(tflm_dir / f"{ident}.tflite", ident)
    write(gen, out_dir)
    files = ModelFiles(tflm_dir, ident, True, tflm_dir / f"{ident}.tflite")
    reused = [p.name for p in stage_app_sources(files, out_dir)]  # the tracker too, if any
    main = templated("main.c", ident, out_dir / "main.c")
    tracker = int(f"{ident}_tracker.c" in reused)
    text = main.read_text().replace("#if PPGEDGE_RAW", "#if 1")
    main.write_text(text.replace("#if PPGEDGE_TRACKER", f"#if {tracker}"))
    manifest: dict[str, Any] = {
        "schema": SCHEMA,
        "runtime": "aot",
        "identifier": ident,
        "model": f"{ident}.tflite",
        "model_sha256": file_sha256(tflm_dir / f"{ident}.tflite"),
        "data_format": man.get("data_format"),
        "decode": man.get("decode"),
        "tracker": man.get("tracker"),
        "reused_from_tflm_bundle": reused,
        "compile": {
            "generated": f"{' '.join(STRICT)}, CMSIS-NN headers with -I",
            "link": "CMSIS-NN (cmsis-nn/Source, int8) and the C library; no TFLite Micro",
        },
        **gen.summary(),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return gen
