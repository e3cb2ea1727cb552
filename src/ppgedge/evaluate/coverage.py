"""Heart-rate coverage: the test windows whose heart rate the model never trained on.

A network trained on a small pool does not extrapolate in BPM: on the SPC treadmill folds, the
fold whose test subjects run faster than anyone in its training pool (up to 177 BPM against 167)
loses 3-5 times the error of the others, while its validation subjects, drawn from the same
pool, cannot show it (docs/motion-benchmark.md). An overall MAE hides that, so every evaluation
of a model that records its training labels splits its errors three ways: windows whose
reference heart rate is below, inside or above the range of the training recordings' labels.

The range comes from the model itself (the label histogram its tracker prior stores,
:class:`ppgedge.models.tracker.TransitionPrior`), so it is known wherever the model goes, and is
the recorded labels' range: the label-scaled time stretch lends training synthetic examples
beyond it, which is exactly what this shows the worth of.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ppgedge.data.format import BPM_MIN
from ppgedge.evaluate.metrics import error_summary
from ppgedge.models.tracker import TransitionPrior

BANDS = ("below", "inside", "above")
# verify's names for the deployed model's two decodings (TFLite Micro, per window and tracked)
DEPLOYED, DEPLOYED_TRACKED = "int8", "int8 tracked"


def trained_range(tracker_record: dict[str, Any] | None) -> tuple[int, int] | None:
    """(lowest, highest) BPM class of the training labels, from a tracker record's prior;
    ``None`` for a model that carries no label histogram (made before ppgedge stored one)."""
    prior = (tracker_record or {}).get("prior")
    if not isinstance(prior, dict):
        return None
    counts = TransitionPrior.from_dict(prior).label_counts  # validated: 180 counts, not all 0
    if counts is None:
        return None
    seen = np.flatnonzero(np.asarray(counts) > 0)
    return BPM_MIN + int(seen[0]), BPM_MIN + int(seen[-1])


def band_of(true_bpm: np.ndarray, trained: tuple[int, int]) -> np.ndarray:
    """``below`` / ``inside`` / ``above`` per window: the reference heart rate's BPM class
    (rounded, as training labels are counted) against the trained range."""
    cls = np.rint(np.asarray(true_bpm, np.float64))
    lo, hi = trained
    return np.where(cls < lo, BANDS[0], np.where(cls > hi, BANDS[2], BANDS[1]))


def coverage(
    models: Iterable[tuple[str, np.ndarray, np.ndarray]], trained: tuple[int, int] | None
) -> dict[str, Any] | None:
    """Per model ``(name, predicted, reference)`` on the same windows: error summaries below,
    inside and above the trained range (``None`` for a band without windows, so the JSON stays
    strict), and the windows in each. ``None`` when the range is unknown."""
    if trained is None:
        return None
    doc: dict[str, Any] = {"trained_bpm": list(trained), "models": {}}
    for name, pred, true in models:
        true = np.asarray(true, np.float64)
        pred = np.asarray(pred, np.float64)
        bands = band_of(true, trained)
        doc["windows"] = {b: int((bands == b).sum()) for b in BANDS}  # the same for every model
        doc["models"][name] = {
            b: error_summary(pred[bands == b], true[bands == b]) if doc["windows"][b] else None
            for b in BANDS
        }
    return doc


def summary_line(doc: dict[str, Any] | None, model: str) -> str | None:
    """One sentence for logs and reports: how many windows leave the trained range and the
    model's MAE there against inside; ``None`` when there is nothing to say."""
    if not doc or model not in doc.get("models", {}):
        return None
    lo, hi = doc["trained_bpm"]
    n = doc["windows"]
    total = sum(n.values())
    head = f"training recordings span {lo}-{hi} BPM"
    outside = [b for b in ("below", "above") if n[b]]
    if total == 0 or not outside:
        return f"{head}; every window inside"
    bands = doc["models"][model]
    parts = [
        f"{n[b]} of {total} windows {b} ({_share(n[b] / total)}): MAE {bands[b]['mae']:.2f}"
        for b in outside
    ]
    inside = "none inside" if n["inside"] == 0 else f"{bands['inside']['mae']:.2f} inside"
    return f"{head}; " + "; ".join(parts) + f" against {inside}"


def _share(x: float) -> str:
    """A share as a percentage that never rounds a few windows away to 0 %."""
    return f"{x:.0%}" if x >= 0.01 else f"{x:.1%}" if x >= 0.001 else "<0.1%"


def deployed_line(doc: dict[str, Any] | None, decoder: str | None) -> str | None:
    """:func:`summary_line` for the value the bundle reports: tracked or per window."""
    tracked = decoder == "tracked" and DEPLOYED_TRACKED in (doc or {}).get("models", {})
    return summary_line(doc, DEPLOYED_TRACKED if tracked else DEPLOYED)
