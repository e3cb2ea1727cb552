"""``ppgedge eval`` on what is deployed, not only on float checkpoints.

* an int8 artifact (``.int8.pt``): its fake-quant graph, what QAT trained and evaluates;
* a ``.tflite``: the model as TFLite Micro computes it (the device's arithmetic), with the data
  format and decoder from the ``export.json`` beside it, or the dataset's channels and argmax
  for a foreign model whose input fits.

Both are scored on the same windows as a checkpoint would be (the model's own test subjects
when it was trained on this dataset), beside the spectral baseline, in ``evaluate_model``'s
document shape, so the CLI renders them alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppgedge.compress.quantize import ARTIFACT_SUFFIX, Windows4D, load_artifact
from ppgedge.compress.runtimes import dequantize, output_qparams, run_raw
from ppgedge.data.format import Dataset
from ppgedge.data.loader import WindowSource
from ppgedge.errors import PpgedgeError
from ppgedge.evaluate.coverage import coverage, trained_range
from ppgedge.evaluate.predict import check_compatible, eval_indices, evaluate_spectral, evaluation
from ppgedge.evaluate.report import evaluate_model
from ppgedge.evaluate.tracking import tracked_evaluation
from ppgedge.export.deployed_tracker import deployed_decoding
from ppgedge.export.verify import foreign_input, resolve_export
from ppgedge.models.bpm import decode


def is_deployed(path: Path) -> bool:
    return path.suffix == ".tflite" or path.name.endswith(ARTIFACT_SUFFIX)


def evaluate_any(
    model: str | Path,
    dataset_path: str | Path,
    *,
    part: str = "auto",
    baseline: bool = True,
    device: str = "auto",
) -> dict[str, Any]:
    """A float checkpoint, an int8 artifact or a ``.tflite`` on ``dataset_path``."""
    model = Path(model)
    if not is_deployed(model):
        return evaluate_model(model, dataset_path, part=part, baseline=baseline, device=device)
    if not model.is_file():
        raise PpgedgeError(f"{model}: no such file")
    dataset = Dataset(dataset_path)
    if model.suffix == ".tflite":
        tfl, art, notes = resolve_export(model)
    else:
        tfl, art, notes = None, load_artifact(model), []
    if art is not None:
        check_compatible(art.data_format, dataset)
        idx, described = eval_indices(dataset, art.base, part)
        fmt = art.data_format
        # the export's choices on its int8 outputs for its .tflite, else the artifact's
        decoder, tracker = deployed_decoding(tfl, art)
        channels, pre = fmt.channels, fmt.preprocessing
    else:
        idx, described = eval_indices(dataset, None, "all" if part == "auto" else part)
        tracker = {}  # a foreign model: no tracker, no training labels
        channels, pre, decoder = foreign_input(tfl, dataset)  # type: ignore[arg-type]
    if len(idx) == 0:
        raise PpgedgeError(f"no windows to evaluate in {described} of {dataset.path}")
    x = WindowSource(dataset, idx, channels, preprocessing=pre).windows(np.arange(len(idx)))
    track_in, scale = None, None
    if tfl is not None:
        raw = run_raw(tfl, x, "tflm")
        qp = output_qparams(tfl)
        logits = torch.from_numpy(dequantize(raw, *qp) if qp else raw.astype(np.float32))
        name = f"{model.name} (TFLite Micro int8)"
        if qp and raw.dtype == np.int8:  # the int8 outputs, as the bundle's C tracker sees them
            track_in, scale = raw.reshape(len(idx), -1), float(qp[0])
    else:
        with torch.no_grad():
            logits = Windows4D(art.reference())(torch.from_numpy(np.asarray(x, np.float32)))
        name = f"{model.name} (fake-quant int8)"
    evals = [evaluate_spectral(dataset, idx)] if baseline else []
    evals.append(evaluation(name, decode(logits, decoder).numpy(), dataset, idx))
    tracking: dict[str, Any] | None = None
    if art is not None:
        track_in = logits.numpy() if track_in is None else track_in
        tracked, tracking = tracked_evaluation(name, track_in, dataset, idx, tracker, scale)
        if tracked is not None:
            evals.append(tracked)
    return {
        "dataset": str(dataset.path),
        "windows": described,
        "n_windows": int(len(idx)),
        "checkpoint": str(model),
        "decode": decoder,
        "models": {e.name: e.report for e in evals},
        "tracking": tracking,
        "coverage": coverage(((e.name, e.pred, e.true) for e in evals), trained_range(tracker)),
        "notes": notes,  # e.g. a broken export.json beside the .tflite: read as foreign
    }
