"""Fit and choose the temporal tracker on a split, and score it beside the per-window decoders.

The transition prior comes from the training subjects' labels, its half width and weight from
a small grid scored on the validation subjects' logits, and the decoder choice (a per-window
decoder or ``tracked``) from the same validation MAEs. Test subjects are only scored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ppgedge.data.format import Dataset
from ppgedge.errors import PpgedgeError
from ppgedge.evaluate.metrics import error_summary
from ppgedge.evaluate.predict import Evaluation, evaluation
from ppgedge.evaluate.tracker_grid import grid_bpm
from ppgedge.models.bpm import DECODERS, decode
from ppgedge.models.tracker import LabelStretch, Tracked, TransitionPrior, fit_prior, track

TRACKED = "tracked"
# Half widths (classes per hop), weights (logit units per nat of -log p), re-acquire costs
# (logit units; None: no jump move) and label powers (None: the logits as posteriors; 1: divided
# by the training's heart-rate prior) the validation subjects choose between: 5 x 7 x 5 x 2.
GRID_HALF_WIDTH = (3, 5, 8, 12, 20)
GRID_WEIGHT = (0.015625, 0.03125, 0.0625, 0.125, 0.25, 0.5, 1.0)
GRID_JUMP: tuple[float | None, ...] = (None, 2.0, 4.0, 8.0, 16.0)
GRID_LABEL_POWER: tuple[float | None, ...] = (None, 1.0)
# The decoder: the tracker is kept unless a per-window decoder's validation MAE is lower by more
# than this share of the tracker's. Two or three validation subjects cannot show what the
# tracker is for (motion they may not have), and differences of a few per cent between
# decoders on them are noise; 0 is a plain minimum.
DECODER_MARGIN = 0.10


def prior_from_training(
    dataset: Dataset, train_idx: np.ndarray, stretch: LabelStretch | None = None
) -> TransitionPrior:
    """The BPM-change histogram of the training subjects' consecutive windows and their label
    histogram (``stretch``: the time stretch the network was trained with)."""
    idx = np.asarray(train_idx)
    return fit_prior(
        dataset.y[idx],
        dataset.recording[idx],
        dataset.start_s[idx],
        dataset.fmt.hop_s,
        stretch=stretch,
    )


def track_windows(
    logits: np.ndarray | torch.Tensor,
    dataset: Dataset,
    idx: np.ndarray,
    prior: TransitionPrior,
    scale: float | None = None,
) -> Tracked:
    """Track the windows ``idx`` of ``dataset`` (logits in the order of ``idx``)."""
    x = logits.numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits)
    idx = np.asarray(idx)
    return track(
        x, dataset.recording[idx], dataset.start_s[idx], dataset.fmt.hop_s, prior, scale=scale
    )


def _grid_key(k: int, w: float, jump: float | None, tau: float | None) -> str:
    return (
        f"K={k} w={w:g}"
        + ("" if jump is None else f" J={jump:g}")
        + ("" if tau is None else f" tau={tau:g}")
    )


def choose_tracker(
    prior: TransitionPrior,
    logits: np.ndarray | torch.Tensor,
    dataset: Dataset,
    val_idx: np.ndarray,
    scale: float | None = None,
    jumps: tuple[float | None, ...] = GRID_JUMP,
    label_powers: tuple[float | None, ...] = GRID_LABEL_POWER,
) -> tuple[TransitionPrior, dict[str, Any]]:
    """The half width, weight, re-acquire cost and label power with the lowest MAE on the
    validation windows ``val_idx`` (the first of equals in grid order: no label power before
    any, no jump before any jump). A prior without a label histogram (fitted before ppgedge
    kept one) is tried without label power."""
    y = np.asarray(dataset.y[np.asarray(val_idx)], np.float64)
    if prior.label_counts is None:
        label_powers = (None,)
    settings = [
        (_grid_key(k, w, j, t), prior.with_params(k, w, j, t))
        for t in label_powers
        for j in jumps
        for k in GRID_HALF_WIDTH
        for w in GRID_WEIGHT
    ]
    x = logits.numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits)
    idx = np.asarray(val_idx)
    bpm = grid_bpm(
        x,
        dataset.recording[idx],
        dataset.start_s[idx],
        dataset.fmt.hop_s,
        [p for _, p in settings],
        scale,
    )
    scores = {key: error_summary(b, y)["mae"] for (key, _), b in zip(settings, bpm, strict=True)}
    first_best = min(range(len(settings)), key=lambda i: scores[settings[i][0]])  # grid order
    best_mae = scores[settings[first_best][0]]
    return settings[first_best][1], {
        "val_mae": best_mae,
        "configurations": len(scores),
        "val_mae_grid": scores,
    }


def mae_by_decoder_tracked(
    logits: np.ndarray | torch.Tensor,
    dataset: Dataset,
    idx: np.ndarray,
    prior: TransitionPrior | None,
    scale: float | None = None,
) -> dict[str, float]:
    """MAE of every per-window decoder and (given a prior) of the tracker on windows ``idx``.

    With ``scale``, ``logits`` are int8 codes: the per-window decoders see them dequantised, as
    the bundle's C decoders do (the zero point is a shift every decoder ignores; the scale is
    not: the expectation's softmax on raw codes is sharpened by ``1 / scale``)."""
    t = torch.as_tensor(np.asarray(logits)).float()
    if scale is not None:
        t = t * float(scale)
    y = np.asarray(dataset.y[np.asarray(idx)], np.float64)
    maes = {m: error_summary(decode(t, m).numpy(), y)["mae"] for m in DECODERS}
    if prior is not None:
        maes[TRACKED] = error_summary(track_windows(logits, dataset, idx, prior, scale).bpm, y)[
            "mae"
        ]
    return maes


def fit_tracker(
    dataset: Dataset,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    val_logits: np.ndarray | torch.Tensor,
    scale: float | None = None,
    jumps: tuple[float | None, ...] = GRID_JUMP,
    stretch: LabelStretch | None = None,
    label_powers: tuple[float | None, ...] = GRID_LABEL_POWER,
    decoder_margin: float = DECODER_MARGIN,
) -> dict[str, Any]:
    """Prior from training labels (``stretch``: the network's training time stretch), width,
    weight, re-acquire cost and label power from validation, then the decoder
    (:func:`choose_decoder`): the ``tracker`` record a checkpoint or artifact stores
    (``prior`` feeds :meth:`TransitionPrior.from_dict`)."""
    try:
        fitted = prior_from_training(dataset, train_idx, stretch)
    except PpgedgeError as exc:  # no window sequences: the model still works window by window
        return {"unavailable": str(exc)}
    prior, choice = choose_tracker(fitted, val_logits, dataset, val_idx, scale, jumps, label_powers)
    maes = mae_by_decoder_tracked(val_logits, dataset, val_idx, prior, scale)
    return {
        "prior": prior.to_dict(),
        "chosen_on": "validation subjects",
        "configurations": choice["configurations"],
        "val_mae_grid": choice["val_mae_grid"],
        "val_mae_by_decoder": maes,
        "decoder": choose_decoder(maes, decoder_margin),
        "decoder_margin": decoder_margin,
        "logits": "int8" if scale is not None else "float",
    }


def choose_decoder(val_maes: dict[str, float], margin: float = DECODER_MARGIN) -> str:
    """``tracked`` unless a per-window decoder's validation MAE is below ``(1 - margin)`` times
    the tracker's; then the per-window decoder with the lowest (the first of equals)."""
    if not 0 <= margin < 1:
        raise PpgedgeError(f"decoder margin {margin!r} must be in [0, 1)")
    best = min(val_maes, key=val_maes.get)
    if TRACKED in val_maes and val_maes[best] >= (1 - margin) * val_maes[TRACKED]:
        return TRACKED
    return best


def tracked_evaluation(
    name: str,
    logits: np.ndarray | torch.Tensor,
    dataset: Dataset,
    idx: np.ndarray,
    record: dict[str, Any],
    scale: float | None = None,
) -> tuple[Evaluation | None, dict[str, Any]]:
    """The tracker's evaluation beside a per-window one (``name (tracked)``), and what it did:
    sequences, resets at gaps, the prior's width and weight, int8 or float arithmetic.
    ``(None, {"skipped": why})`` for a model that carries no tracker."""
    if "prior" not in record:
        why = record.get("unavailable") or (
            "the model carries no tracker (made before ppgedge fitted one): re-train it"
        )
        return None, {"skipped": why}
    prior = TransitionPrior.from_dict(record["prior"])
    tr = track_windows(logits, dataset, idx, prior, scale)
    ev = evaluation(f"{name} (tracked)", tr.bpm, dataset, np.asarray(idx))
    info = {
        "sequences": tr.sequences,
        "gap_resets": tr.gaps,
        "half_width": prior.half_width,
        "weight": prior.weight,
        "jump": prior.jump,
        "label_power": prior.label_power,
        "arithmetic": "int8 (bit-exact with the bundle's C tracker)" if scale else "float",
        "val_decoder": record.get("decoder"),
        "fitted_on": record.get("logits", "float"),  # the validation outputs it was fitted on
        "confidence_median": float(np.median(tr.confidence)) if len(tr.confidence) else None,
    }
    return ev, info
