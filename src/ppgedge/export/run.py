"""``export``: an int8 artifact (or a float checkpoint plus calibration data) -> the files a
firmware engineer takes home: a rule-checked full-int8 ``.tflite``, a TensorFlow Lite Micro
bundle, and a float ONNX checked with onnxruntime.

Everything is built in a hidden directory beside the output and moved into place at the end, so
an error at any step leaves no partial export. ``export.json`` records where every file came
from (the artifact and its hash, the data format, the decoder) so ``verify`` and ``profile``
never ask for it again.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ppgedge import __version__
from ppgedge.atomic import atomic_path, file_sha256, write_json_atomic
from ppgedge.compress.quantize import (
    QuantizedArtifact,
    load_artifact,
    ptq,
    ptq_windows,
    to_tflite,
)
from ppgedge.compress.runtimes import run_raw
from ppgedge.data.format import Dataset
from ppgedge.data.preprocess import zscore_numpy
from ppgedge.errors import PpgedgeError, check_interrupt
from ppgedge.export.bundle_manifest import NotAManifest, read_json_object
from ppgedge.export.onnx_export import export_onnx
from ppgedge.export.rules import check_int8_rules
from ppgedge.models.checkpoint import SCHEMA as CHECKPOINT_SCHEMA
from ppgedge.models.checkpoint import load_weights_only
from ppgedge.ownership import EXPORT, claim

SCHEMA = "ppgedge.export/1"
FORMATS = ("tflite", "tflm", "onnx")
MANIFEST = "export.json"
MANIFEST_MAX_BYTES = 16 << 20  # an export.json is tens of KB: a larger file is not ours


def read_export_manifest(path: Path) -> dict[str, Any]:
    """An ``export.json`` as a dict, read within a size bound; anything else is a one-line
    error (a corrupt or foreign file beside a model must not become a traceback)."""
    try:
        return read_json_object(path, MANIFEST_MAX_BYTES)
    except NotAManifest as exc:
        raise PpgedgeError(f"{path} is not an export manifest ({exc}): export again") from None
    except (OSError, ValueError) as exc:
        raise PpgedgeError(
            f"{path}: not a readable export manifest ({type(exc).__name__}): export the model again"
        ) from None


@dataclass
class ExportResult:
    out_dir: Path
    name: str
    files: dict[str, Path]
    artifact: QuantizedArtifact
    artifact_path: Path
    rules: Any
    onnx: Any | None = None
    bundle: Any | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)


# Formats only written when asked for by name ("all" stays tflite, tflm, onnx).
OPTIONAL_FORMATS = ("aot",)


def parse_formats(text: str) -> tuple[str, ...]:
    """``all`` or a comma list of tflite, tflm, onnx, aot (tflm implies tflite; aot, the
    ahead-of-time C backend, implies tflm: it reuses the bundle's preprocessing)."""
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    if items == ["all"]:
        return FORMATS
    if "c" in items:  # the spelling of the AOT format
        items[items.index("c")] = "aot"
    bad = [t for t in items if t not in (*FORMATS, *OPTIONAL_FORMATS)]
    if bad or not items:
        raise PpgedgeError(f"unknown format {bad or text!r}: use tflite, tflm, onnx, aot or all")
    if "aot" in items and "tflm" not in items:
        items.insert(0, "tflm")
    if "tflm" in items and "tflite" not in items:
        items.insert(0, "tflite")
    return tuple(f for f in (*FORMATS, *OPTIONAL_FORMATS) if f in items)


def safe_name(text: str) -> str:
    """A file-name stem from a model name (the bundle derives its C identifier itself)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._-")
    return stem or "model"


def default_name(path: Path) -> str:
    name = path.name
    for suffix in (".pt", ".int8", ".tflite"):
        name = name.removesuffix(suffix)
    return safe_name(name)


def _kind(path: Path) -> str:
    """``artifact`` or ``checkpoint``; anything else is refused with what to give instead."""
    raw = load_weights_only(path, "model")
    schema = raw.get("schema") if isinstance(raw, dict) else None
    if schema == "ppgedge.quantized/1":
        return "artifact"
    if schema == CHECKPOINT_SCHEMA:
        return "checkpoint"
    raise PpgedgeError(
        f"{path}: not a ppgedge model (schema {schema!r}): export takes an int8 artifact from "
        "`ppgedge qat`/`ppgedge quantize` or a float checkpoint with --data for calibration"
    )


def _calibration_windows(path: Path, fmt: Any) -> np.ndarray:
    """Raw windows (N, C, T) from a .npy file, preprocessed as the model's input is."""
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise PpgedgeError(f"{path}: not a readable .npy array ({exc})") from None
    want = (len(fmt.channels), fmt.window_samples)
    if x.ndim != 3 or tuple(x.shape[1:]) != want:
        raise PpgedgeError(
            f"{path}: calibration windows have shape {tuple(x.shape)}; the model takes "
            f"(N, {want[0]}, {want[1]}) raw windows ({', '.join(fmt.channels)})"
        )
    if len(x) == 0:
        raise PpgedgeError(f"{path}: the calibration set is empty")
    if not np.isfinite(x).all():
        raise PpgedgeError(f"{path}: calibration windows contain NaN or infinite values")
    return zscore_numpy(x.astype(np.float32))


def check_windows(fmt: Any, n: int = 32, seed: int = 0) -> np.ndarray:
    """Seeded standard-normal windows, z-scored like real inputs: enough to check that two
    runtimes compute the same function (accuracy is ``verify``'s job, on real data)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, len(fmt.channels), fmt.window_samples)).astype(np.float32)
    return zscore_numpy(x)


def export(
    source: str | Path,
    out_dir: str | Path,
    *,
    formats: tuple[str, ...] = FORMATS,
    name: str | None = None,
    data: str | Path | None = None,
    calib_windows: int = 512,
    calib_part: str = "train",
    on_stage: Callable[[str, str, float], None] | None = None,
) -> ExportResult:
    """Export ``source`` (an int8 artifact, or a float checkpoint calibrated on ``data``: a
    ppgedge dataset or a .npy of raw windows) to ``out_dir`` in ``formats``. The tracker is
    fitted on the exported model's int8 outputs (:mod:`ppgedge.export.deployed_tracker`) from
    the training data the artifact records; for an artifact, ``data`` says where that dataset
    is now."""
    source, out_dir = Path(source), Path(out_dir)
    claim(out_dir, EXPORT)  # before any work: only a new, empty or earlier export folder
    if not source.is_file():
        raise PpgedgeError(f"{source}: no such file")
    name = safe_name(name) if name else default_name(source)
    report = on_stage or (lambda stage, text, seconds: None)
    seconds: dict[str, float] = {}
    files: dict[str, Path] = {}
    kind = _kind(source)
    if kind == "checkpoint" and "tflite" in formats and data is None:
        raise PpgedgeError(
            f"{source} is a float checkpoint: int8 export needs calibration data: add --data "
            "DATASET (or a .npy of raw windows), or run `ppgedge qat` first"
        )
    with atomic_path(out_dir, directory=True, kind=EXPORT) as tmp:
        artifact_path = source
        if kind == "checkpoint" and "tflite" in formats:
            t0 = time.perf_counter()
            artifact_path = tmp / f"{name}.int8.pt"
            data = Path(data)  # type: ignore[arg-type]
            if data.suffix == ".npy":
                base_fmt = load_weights_only(source, "checkpoint").get("data_format") or {}
                from ppgedge.data.format import DataFormat

                windows = _calibration_windows(data, DataFormat.from_dict(base_fmt))
                ptq_windows(source, windows, artifact_path, source=str(data))
            else:
                ptq(source, Dataset(data), artifact_path, n_windows=calib_windows, part=calib_part)
            seconds["calibrate"] = time.perf_counter() - t0
            files["artifact"] = artifact_path
            report("calibrate", f"PTQ on {data}", seconds["calibrate"])
        art = load_artifact(artifact_path) if kind == "artifact" or "tflite" in formats else None
        fmt = art.data_format if art is not None else None
        rules = None
        if "tflite" in formats and art is not None:
            t0 = time.perf_counter()
            tfl = to_tflite(art, tmp / f"{name}.tflite")
            check_interrupt()  # a Ctrl-C the converter's imports swallowed: stop now, not later
            rules = check_int8_rules(tfl)
            if not rules.ok:
                raise PpgedgeError(
                    f"{source}: the int8 model breaks a deployment rule: {rules.first_line()}"
                )
            run_raw(tfl, check_windows(fmt, n=1), "tflm")  # loads and runs in TFLite Micro
            seconds["tflite"] = time.perf_counter() - t0
            files["tflite"] = tfl
            report(
                "tflite",
                f"{tfl.name} ({tfl.stat().st_size:,} B, {len(rules.ops)} ops)",
                seconds["tflite"],
            )
        deployed = None
        if "tflite" in formats and art is not None:
            from ppgedge.export.deployed_tracker import fit_deployed_tracker

            t0 = time.perf_counter()
            deployed = fit_deployed_tracker(
                files["tflite"], art, Path(data) if kind == "artifact" and data else None
            )
            seconds["tracker"] = time.perf_counter() - t0
            report("tracker", deployed.note, seconds["tracker"])
        bundle = None
        if "tflm" in formats:
            from ppgedge.export.bundle import write_bundle

            t0 = time.perf_counter()
            bundle = write_bundle(
                files["tflite"],
                tmp / "tflm",
                name=name,
                data_format=fmt,
                decode=deployed.decode,  # tflm implies tflite: fitted above
                provenance=_provenance(art, artifact_path),
                tracker=deployed.record,
            )
            seconds["tflm"] = time.perf_counter() - t0
            files["tflm"] = tmp / "tflm"
            report("tflm", f"bundle tflm/ (arena {bundle.arena.total:,} B)", seconds["tflm"])
        if "aot" in formats:
            from ppgedge.aot.bundle import write_aot_bundle

            t0 = time.perf_counter()
            gen = write_aot_bundle(tmp / "tflm", tmp / "aot")
            seconds["aot"] = time.perf_counter() - t0
            files["aot"] = tmp / "aot"
            report("aot", f"C99 + CMSIS-NN aot/ (arena {gen.plan.arena_bytes:,} B, no "
                   "interpreter)", seconds["aot"])  # fmt: skip
        onnx = None
        if "onnx" in formats:
            t0 = time.perf_counter()
            if art is not None:
                model, fmt = art.float_model(), art.data_format
            else:
                from ppgedge.models.checkpoint import load_checkpoint

                ck = load_checkpoint(source)
                model, fmt = ck.build().eval(), ck.data_format
            onnx = export_onnx(model, fmt, tmp / f"{name}.onnx", check_windows(fmt))
            seconds["onnx"] = time.perf_counter() - t0
            files["onnx"] = onnx.path
            report(
                "onnx",
                f"{onnx.path.name} ({onnx.bytes:,} B, onnxruntime max |diff| "
                f"{onnx.max_abs_diff:.1e})",
                seconds["onnx"],
            )
        manifest = _manifest(
            source,
            kind,
            name,
            art,
            artifact_path,
            files,
            tmp,
            rules,
            onnx,
            bundle,
            seconds,
            out_dir,
            deployed,
        )
        write_json_atomic(tmp / MANIFEST, manifest)
    final = {k: out_dir / p.relative_to(tmp) for k, p in files.items()}
    art_final = final.get("artifact", artifact_path)
    return ExportResult(
        out_dir, name, final, art, art_final, rules, onnx, bundle, seconds, manifest
    )


# Wall-clock times, absolute paths and the hashes of parent files (which hold those times) differ
# between two otherwise identical runs; the bundle leaves them out so the same config and seed
# give a byte-identical bundle. export.json keeps the full record.
_VOLATILE_KEYS = ("created", "path", "sha256", "teacher_sha256")


def _reproducible(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {
            k: _reproducible(v)
            for k, v in obj.items()
            if k not in _VOLATILE_KEYS and not str(k).endswith(("seconds", "seconds_this_session"))
        }
    if isinstance(obj, list | tuple):
        return [_reproducible(v) for v in obj]
    return obj


def _provenance(art: QuantizedArtifact, path: Path) -> dict[str, Any]:
    return _reproducible(
        {
            "artifact": path.name,
            "method": art.training.get("method"),
            "arch": art.base.arch,
            "parent": art.parent,
            "metrics": {k: v for k, v in art.metrics.items() if isinstance(v, int | float | str)},
            "lineage": art.lineage,
        }
    )


def _manifest(
    source, kind, name, art, artifact_path, files, tmp, rules, onnx, bundle, seconds, out_dir,
    deployed,
):  # fmt: skip
    def rel(p: Path) -> str:
        return str(p.relative_to(tmp)) if p.is_relative_to(tmp) else str(p)

    def outside(p: Path) -> str:
        """A file beside the export, relative to the export folder (a copied or moved run
        folder keeps its links; verify resolves relative paths from the folder)."""
        return os.path.relpath(Path(p).resolve(), out_dir.resolve())

    entries = {}
    for key, p in files.items():
        if p.is_file():
            entries[key] = {"path": rel(p), "bytes": p.stat().st_size, "sha256": file_sha256(p)}
        else:
            entries[key] = {"path": rel(p)}
    return {
        "schema": SCHEMA,
        "ppgedge_version": __version__,
        "name": name,
        "source": {"path": outside(source), "kind": kind, "sha256": file_sha256(source)},
        "artifact": {
            "path": rel(artifact_path)
            if artifact_path.is_relative_to(tmp)
            else outside(artifact_path),
            "sha256": file_sha256(artifact_path),
        }
        if art is not None
        else None,
        "data_format": art.data_format.to_dict() if art is not None else None,
        # the bundle's per-window decoder: chosen on the int8 outputs with the tracker below
        "decode": deployed.decode if deployed else (art.decode if art is not None else None),
        "files": entries,
        "tflite": {"ops": rules.ops, "input": _q(rules.input), "output": _q(rules.output)}
        if rules is not None
        else None,
        "onnx": onnx.to_dict() | {"path": rel(onnx.path)} if onnx is not None else None,
        "arena": bundle.arena.to_dict()
        if bundle is not None and hasattr(bundle.arena, "to_dict")
        else None,
        # the tracker the bundle runs (deployed_tracker.py): fitted on the int8 outputs of the
        # .tflite above when the training data was at hand, else the checkpoint's float record
        "tracker": deployed.record if deployed is not None else None,
        "tracker_note": deployed.note if deployed is not None else None,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }


def _q(t: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": t["name"],
        "dtype": t["dtype"],
        "shape": t["shape"],
        "scale": [float(s) for s in t["scale"]],
        "zero_point": [int(z) for z in t["zero_point"]],
    }
