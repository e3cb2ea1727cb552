"""Error metrics per window, per subject and per activity."""

from __future__ import annotations

from typing import Any

import numpy as np


def error_summary(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """MAE, RMSE and share of windows within 5 BPM."""
    err = np.abs(np.asarray(pred, np.float64) - np.asarray(true, np.float64))
    if err.size == 0:
        return {"n": 0, "mae": float("nan"), "rmse": float("nan"), "within5": float("nan")}
    return {
        "n": int(err.size),
        "mae": float(err.mean()),
        "rmse": float(np.sqrt((err**2).mean())),
        "within5": float((err <= 5.0).mean()),
    }


def grouped_summary(
    pred: np.ndarray, true: np.ndarray, groups: np.ndarray
) -> dict[str, dict[str, float]]:
    groups = np.asarray(groups, dtype=object)
    return {
        str(g): error_summary(pred[groups == g], true[groups == g])
        for g in sorted(set(groups.tolist()))
    }


def full_report(
    pred: np.ndarray, true: np.ndarray, subjects: np.ndarray, activities: np.ndarray
) -> dict[str, Any]:
    """Overall, per-subject and per-activity errors in one JSON-ready dict."""
    return {
        "overall": error_summary(pred, true),
        "per_activity": grouped_summary(pred, true, activities),
        "per_subject": grouped_summary(pred, true, subjects),
    }
