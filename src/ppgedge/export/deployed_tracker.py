"""The temporal tracker a bundle ships, fitted on the int8 outputs of the ``.tflite`` it ships.

A checkpoint's tracker record (width, weight, re-acquire cost, label power, and the choice
between ``tracked`` and a per-window decoder) is fitted at training time on the float model's
validation logits. The firmware runs something else: the pruned, quantised network's int8
outputs in TFLite Micro, through the C tracker's integer arithmetic. Quantisation moves the
logits, so the float choice can be the wrong one for the device (fold 1 of the motion
benchmark: the float record tracked with K = 20, the int8 outputs choose K = 3, J = 2).
Export therefore fits the record again on what the device computes: the same validation
subjects' windows, run through the exported ``.tflite`` in TFLite Micro, scored in the
tracker's int8 arithmetic (bit-exact with the bundle's C), the prior from the same training
labels. The data comes from the artifact's own record (path and SHA-256); when it is missing or
changed the checkpoint's float record is kept and the manifest says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ppgedge.atomic import file_sha256
from ppgedge.compress.quantize import QuantizedArtifact
from ppgedge.compress.runtimes import output_qparams, run_raw
from ppgedge.data.fingerprint import dataset_sha256
from ppgedge.data.format import Dataset
from ppgedge.data.loader import WindowSource
from ppgedge.data.splits import Split
from ppgedge.errors import PpgedgeError
from ppgedge.evaluate.tracking import fit_tracker
from ppgedge.models.bpm import DECODERS
from ppgedge.train.trainer import label_stretch, training_config_of

INT8_FIT = "TFLite Micro int8 outputs"


@dataclass
class DeployedTracker:
    """The tracker record the bundle and ``export.json`` carry, and how it was obtained."""

    record: dict[str, Any]
    decode: str  # the bundle's per-window decoder (``record["decoder"]`` may be ``tracked``)
    note: str  # one line for the export's status and manifest


def _training_record(art: QuantizedArtifact) -> dict[str, Any] | None:
    """The record (artifact's, else its base checkpoint's) naming both a dataset and a split
    of it: the split's subjects only mean something in the dataset it was drawn on."""
    for rec in (art.training, art.base.training):
        if rec.get("split") and rec.get("dataset") and rec.get("dataset_sha256"):
            return rec
    return None


def _dataset(rec: dict[str, Any], data: Path | None) -> tuple[Dataset | None, str]:
    """The training dataset (``data`` if given: where it is now), or None and why not."""
    path = Path(data) if data is not None else Path(rec["dataset"])
    if not (path / "meta.json").is_file():
        if data is not None:
            raise PpgedgeError(
                f"{path}: not a ppgedge dataset: --data names the model's training dataset, "
                f"recorded as {rec['dataset']}, for fitting the tracker on the int8 outputs"
            )
        return None, f"its training data {path} is gone"
    if dataset_sha256(path) != rec["dataset_sha256"]:
        if data is not None:
            raise PpgedgeError(
                f"{path} is not the dataset this model was trained on (SHA-256 differs): give "
                f"that dataset ({rec['dataset']}) or leave --data out"
            )
        return None, f"its training data {path} has changed since (SHA-256 differs)"
    return Dataset(path), ""


def _kept(record: dict[str, Any], decode: str, why: str) -> DeployedTracker:
    note = f"kept as fitted on float logits ({why}: pass --data DATASET to fit it on int8)"
    return DeployedTracker({**record, "fitted_on": f"float logits ({why})"}, decode, note)


def fit_deployed_tracker(
    tflite: Path, art: QuantizedArtifact, data: Path | None = None
) -> DeployedTracker:
    """Fit ``art``'s tracker on ``tflite``'s int8 outputs of its validation windows."""
    record = dict(art.base.tracker or {})
    if "prior" not in record:  # no window sequences, or a model made before trackers
        return DeployedTracker(record, art.decode, "none (the model carries no tracker)")
    rec = _training_record(art)
    if rec is None:
        return _kept(record, art.decode, "the artifact records no training split")
    dataset, why = _dataset(rec, data)
    if dataset is None:
        return _kept(record, art.decode, why)
    split = Split.from_dict(rec["split"])
    parts = split.indices(dataset.subject_names())
    if len(parts["val"]) == 0 or len(parts["train"]) == 0:
        return _kept(record, art.decode, "its split leaves no training or no validation windows")
    qp = output_qparams(tflite)
    if qp is None:
        raise PpgedgeError(f"{tflite}: the output is not int8: export a full-int8 model")
    fmt = art.data_format
    x = WindowSource(dataset, parts["val"], fmt.channels, preprocessing=fmt.preprocessing).windows(
        np.arange(len(parts["val"]))
    )
    raw = run_raw(tflite, x, "tflm").astype(np.int64).reshape(len(x), -1)
    fitted = fit_tracker(
        dataset,
        parts["train"],
        parts["val"],
        raw,
        float(qp[0]),
        stretch=label_stretch(training_config_of(art.base)),
    )
    if "prior" not in fitted:
        return _kept(record, art.decode, fitted.get("unavailable", "no window sequences"))
    n_val = len(parts["val"])
    names = ", ".join(split.val[:6]) + (
        f" and {len(split.val) - 6} more" if len(split.val) > 6 else ""
    )
    fitted["fitted_on"] = (
        f"{INT8_FIT} of {n_val} validation windows ({names}), "
        f"replacing the float record (decoder {record.get('decoder')})"
    )
    fitted["tflite_sha256"] = file_sha256(tflite)
    maes = fitted["val_mae_by_decoder"]
    # the per-window decoder the bundle computes (and reports when the tracker is not chosen):
    # the lowest on the same int8 outputs, the first of equals
    fitted["window_decoder"] = min((d for d in DECODERS if d in maes), key=maes.get)
    fitted["float_record"] = {
        "decoder": record.get("decoder"),
        "window_decoder": art.decode,
        "prior": {k: record["prior"].get(k) for k in ("half_width", "weight", "jump")},
    }
    p = fitted["prior"]
    note = (
        f"fitted on the int8 outputs of {n_val} validation windows: decoder "
        f"{fitted['decoder']} (K={p['half_width']}, w={p['weight']:g}"
        + ("" if p.get("jump") is None else f", J={p['jump']:g}")
        + f"; per window {fitted['window_decoder']})"
    )
    return DeployedTracker(fitted, fitted["window_decoder"], note)


def deployed_decoding(tflite: Path | None, art: QuantizedArtifact) -> tuple[str, dict[str, Any]]:
    """(per-window decoder, tracker record) that go with ``tflite``: those its export fitted on
    its int8 outputs (``export.json`` beside it, when the record names this very file), else
    the artifact's (its base checkpoint's float choices)."""
    if tflite is not None and Path(tflite).is_file():
        from ppgedge.export.run import MANIFEST, read_export_manifest  # run imports this module

        try:
            rec = read_export_manifest(Path(tflite).parent / MANIFEST).get("tracker")
        except PpgedgeError:  # no or no readable export.json: not this export's record
            rec = None
        if (
            isinstance(rec, dict)
            and "prior" in rec
            and rec.get("tflite_sha256") == file_sha256(tflite)
            and rec.get("window_decoder") in DECODERS
        ):
            return rec["window_decoder"], rec
    return art.decode, dict(art.base.tracker or {})
