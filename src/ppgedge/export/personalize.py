"""``ppgedge personalize``: calibrate a deployed int8 model to one wearer.

Wrist PPG differs between people (skin, perfusion, how the strap sits), and a wearable can ask
its user for a few labelled minutes (a chest strap, a guided rest-and-walk). Here the first
``minutes`` of one held-out subject's labelled data (windows in recording order, by
``start_s``) re-fit the final layer's bias of the int8 model (see
:mod:`ppgedge.compress.bias_calibration`); the rest of that subject's windows, starting after
those minutes, score the model before and after, both as TensorFlow Lite Micro computes them.
The result is a TFLite Micro bundle of the same name whose model differs from the original
only in the bias bytes the report lists.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppgedge.atomic import file_sha256
from ppgedge.compress.bias_calibration import (
    BASES,
    calibration_inputs,
    final_layer,
    fit_bias,
    quantize_bias,
    with_bias,
)
from ppgedge.compress.quantize import ARTIFACT_SUFFIX
from ppgedge.compress.runtimes import dequantize, output_qparams, run_raw
from ppgedge.data.fingerprint import dataset_sha256
from ppgedge.data.format import DataFormat, Dataset
from ppgedge.data.loader import WindowSource
from ppgedge.errors import PpgedgeError
from ppgedge.evaluate.metrics import error_summary
from ppgedge.evaluate.predict import check_compatible
from ppgedge.evaluate.tracking import tracked_evaluation
from ppgedge.export.bundle import write_bundle
from ppgedge.export.deployed_tracker import deployed_decoding
from ppgedge.export.run import read_export_manifest
from ppgedge.export.verify import foreign_input, resolve_export
from ppgedge.models.bpm import decode as decode_logits
from ppgedge.ownership import BUNDLE, claim

SCHEMA = "ppgedge.personalize/1"
# chosen on validation subjects: benchmarks/results/personalize.md
DEFAULT_BASIS = "linear"
DEFAULT_L2 = 0.1  # SPC 2015 validation with the current training defaults (it was 1e-3)


@dataclass
class Deployed:
    """An int8 .tflite with what it needs to be run on a dataset and re-exported."""

    tflite: Path
    name: str
    data_format: DataFormat
    decode: str
    sigma: float
    train_subjects: tuple[str, ...]
    train_dataset_sha256: str | None
    tracker: dict[str, Any] | None = None  # the export's, carried into the new bundle


def load_deployed(model: str | Path, dataset: Dataset) -> Deployed:
    """An export folder or its .tflite (the artifact beside it gives format and decoder)."""
    model = Path(model)
    if model.is_file() and model.suffix != ".tflite" and not model.name.endswith(ARTIFACT_SUFFIX):
        raise PpgedgeError(
            f"{model}: personalize adapts the deployed int8 model: give its export folder or "
            f".tflite (ppgedge export {model} -o DIR --data DATASET), not a float checkpoint"
        )
    tfl, art, _ = resolve_export(model)
    if tfl is None:
        raise PpgedgeError(
            f"{model}: an int8 artifact without a .tflite: export it first (ppgedge export)"
        )
    name = tfl.stem
    manifest = tfl.parent / "export.json"
    if manifest.is_file():
        name = str(read_export_manifest(manifest).get("name") or name)
    if art is None:
        channels, pre, decoder = foreign_input(tfl, dataset)
        fmt = DataFormat(
            dataset.fmt.sample_rate_hz, dataset.fmt.window_s, dataset.fmt.hop_s, channels, pre
        )
        return Deployed(tfl, name, fmt, decoder, 1.5, (), None)
    check_compatible(art.data_format, dataset)
    decoder, tracker = deployed_decoding(tfl, art)  # the export's (the bundle's) choices
    training = art.base.training or {}
    sigma = float((training.get("config") or {}).get("label_sigma_bpm", 1.5))
    split = training.get("split") or {}
    return Deployed(
        tfl,
        name,
        art.data_format,
        decoder,
        sigma,
        tuple(split.get("train") or ()),
        training.get("dataset_sha256"),
        tracker,
    )


def subject_windows(
    dataset: Dataset, subject: str, minutes: float, window_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, rest) window indices of ``subject``: its recordings end to end in order;
    calibration windows end within the first ``minutes``, rest windows start after them."""
    if subject not in dataset.subjects:
        shown = ", ".join(dataset.subjects[:12]) + (" ..." if len(dataset.subjects) > 12 else "")
        raise PpgedgeError(f"unknown --subject '{subject}' in {dataset.path}: use one of {shown}")
    idx = np.flatnonzero(dataset.subject_names() == subject)
    rec = np.asarray(dataset.recording[idx])
    start = np.asarray(dataset.start_s[idx], np.float64)
    order = np.lexsort((start, rec))
    idx, rec, start = idx[order], rec[order], start[order]
    t = start.copy()
    offset = 0.0
    for r in np.unique(rec):  # recordings in their stored order, one after the other
        on = rec == r
        t[on] += offset
        offset += float(start[on].max()) + window_s
    cut = 60.0 * minutes
    calib, rest = idx[t + window_s <= cut + 1e-6], idx[t >= cut - 1e-6]
    if minutes < 0 or (minutes > 0 and len(calib) == 0) or len(rest) == 0:
        total = offset / 60.0
        raise PpgedgeError(
            f"--minutes {minutes:g}: subject '{subject}' has {total:.1f} min of windows, so "
            f"{minutes:g} min leave no calibration or no evaluation windows: use fewer minutes"
        )
    return calib, rest


def _scores(
    tfl: Path,
    x: np.ndarray,
    dataset: Dataset,
    idx: np.ndarray,
    decoder: str,
    tracker: dict[str, Any] | None = None,
) -> tuple[float, float | None]:
    """(per-window MAE with ``decoder``, the bundle's tracker MAE or ``None``) of windows
    ``idx`` from one TFLite Micro run: the tracker sees the int8 outputs (the C tracker's
    arithmetic), the per-window decoder their dequantised logits (the C decoders')."""
    raw = run_raw(tfl, x, "tflm").reshape(len(x), -1)
    qp = output_qparams(tfl)
    logits = torch.from_numpy(dequantize(raw, *qp) if qp else raw.astype(np.float32))
    y = dataset.y[idx]
    mae = float(error_summary(decode_logits(logits, decoder).numpy(), y)["mae"])
    if not tracker or qp is None:
        return mae, None
    ev, _ = tracked_evaluation(tfl.name, raw.astype(np.int64), dataset, idx, tracker, qp[0])
    return mae, None if ev is None else float(ev.report["overall"]["mae"])


@dataclass
class PersonalizeResult:
    subject: str
    minutes: float
    calibration_windows: int
    evaluation_windows: int
    mae_before: float  # per window, the bundle's per-window decoder
    mae_after: float
    l2: float
    basis: str
    changed: dict[str, Any]
    bundle: str
    tflite_sha256_before: str
    tflite_sha256_after: str
    # the bundle's temporal tracker over the same windows (None: the model carries none), and
    # which of the two values the bundle reports (its decoder, chosen at export)
    mae_before_tracked: float | None = None
    mae_after_tracked: float | None = None
    reports: str = "per-window"

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **asdict(self)}


def personalize(
    model: str | Path,
    data: str | Path,
    subject: str,
    minutes: float,
    out: str | Path,
    *,
    l2: float = DEFAULT_L2,
    basis: str = DEFAULT_BASIS,
    tflm_src: str | Path | None = None,
) -> PersonalizeResult:
    """Fit the final bias on ``subject``'s first ``minutes``, score the rest before and after,
    and write the personalised TFLite Micro bundle to ``out``."""
    if not minutes > 0:
        raise PpgedgeError(f"--minutes must be more than 0, got {minutes:g}")
    if basis not in BASES:
        raise PpgedgeError(f"unknown --basis '{basis}': use one of {', '.join(BASES)}")
    claim(out, BUNDLE, "-o")  # before any work: a new, empty or earlier bundle folder
    dataset = Dataset(data)
    dep = load_deployed(model, dataset)
    if subject in dep.train_subjects and dep.train_dataset_sha256 == dataset_sha256(dataset.path):
        raise PpgedgeError(
            f"subject '{subject}' trained this model: personalise a held-out subject "
            "(one of its validation or test subjects)"
        )
    layer = final_layer(dep.tflite)
    calib, rest = subject_windows(dataset, subject, minutes, dep.data_format.window_s)
    fmt = dep.data_format
    src = WindowSource(
        dataset, np.concatenate([calib, rest]), fmt.channels, preprocessing=fmt.preprocessing
    )
    x = src.windows(np.arange(len(src)))
    x_cal, x_rest = x[: len(calib)], x[len(calib) :]
    y_cal = src.y[: len(calib)]
    feats, branch = calibration_inputs(dep.tflite, layer, x_cal)
    bias = fit_bias(layer, feats, y_cal, sigma=dep.sigma, l2=l2, basis=basis, branch=branch)
    bias_q = quantize_bias(layer, bias)
    old = dep.tflite.read_bytes()
    new, offsets = with_bias(old, layer, bias_q)
    with tempfile.TemporaryDirectory() as tmp:
        new_tfl = Path(tmp) / dep.tflite.name
        new_tfl.write_bytes(new)
        mae_before, tracked_before = _scores(
            dep.tflite, x_rest, dataset, rest, dep.decode, dep.tracker
        )
        mae_after, tracked_after = _scores(new_tfl, x_rest, dataset, rest, dep.decode, dep.tracker)
        end = layer.bias_offset + 4 * layer.bias.size
        changed = {
            "array": layer.bias_name,
            "dtype": "int32",
            "elements": int(layer.bias.size),
            "elements_changed": int((bias_q != layer.bias).sum()),
            "bias_bytes": [layer.bias_offset, end],
            "bytes_changed": len(offsets),
            "first_changed": offsets[0] if offsets else None,
            "last_changed": offsets[-1] if offsets else None,
            "outside_bias": sum(1 for o in offsets if not layer.bias_offset <= o < end),
        }
        result = PersonalizeResult(
            subject=subject,
            minutes=float(minutes),
            calibration_windows=int(len(calib)),
            evaluation_windows=int(len(rest)),
            mae_before=mae_before,
            mae_after=mae_after,
            l2=float(l2),
            basis=basis,
            changed=changed,
            bundle=str(out),
            tflite_sha256_before=file_sha256(dep.tflite),
            tflite_sha256_after=file_sha256(new_tfl),
            mae_before_tracked=tracked_before,
            mae_after_tracked=tracked_after,
            reports="tracked"
            if tracked_after is not None and (dep.tracker or {}).get("decoder") == "tracked"
            else "per-window",
        )
        prov = {"personalized": {**result.to_dict(), "parent_tflite": str(dep.tflite)}}
        prov["personalized"].pop("bundle")
        write_bundle(
            new_tfl,
            out,
            name=dep.name,
            data_format=dep.data_format,
            decode=dep.decode,
            provenance=prov,
            tracker=dep.tracker,  # the same tracker: only the bias bytes differ
            tflm_src=tflm_src,
        )
    return result
