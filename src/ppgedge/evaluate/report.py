"""``ppgedge eval`` as a function: a checkpoint and the spectral floor on the same windows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ppgedge.data.format import Dataset
from ppgedge.evaluate.coverage import coverage, trained_range
from ppgedge.evaluate.predict import (
    Evaluation,
    eval_indices,
    evaluate_checkpoint,
    evaluate_spectral,
)
from ppgedge.evaluate.tracking import tracked_evaluation
from ppgedge.models.checkpoint import load_checkpoint
from ppgedge.train.trainer import pick_device


def evaluate_model(
    checkpoint: str | Path | None,
    dataset_path: str | Path,
    *,
    part: str = "auto",
    baseline: bool = True,
    device: str = "auto",
) -> dict[str, Any]:
    """Evaluate ``checkpoint`` (and/or the spectral baseline) on ``dataset_path``.

    With ``part='auto'`` a checkpoint trained on this very dataset is scored on its own held-out
    test subjects, never on windows it trained on.
    """
    dataset = Dataset(dataset_path)
    ckpt = load_checkpoint(checkpoint) if checkpoint else None
    idx, described = eval_indices(dataset, ckpt, part)
    evals: list[Evaluation] = []
    tracking: dict[str, Any] | None = None
    if baseline:
        evals.append(evaluate_spectral(dataset, idx))
    if ckpt is not None:
        name = f"{ckpt.arch}"
        dev = str(pick_device(device))
        ev = evaluate_checkpoint(ckpt, dataset, idx, name=name, device=dev)
        evals.append(ev)
        assert ev.logits is not None
        tracked, tracking = tracked_evaluation(name, ev.logits, dataset, idx, ckpt.tracker)
        if tracked is not None:
            evals.append(tracked)
    return {
        "dataset": str(dataset.path),
        "windows": described,
        "n_windows": int(len(idx)),
        "checkpoint": str(checkpoint) if checkpoint else None,
        "decode": ckpt.decode if ckpt else None,
        "models": {e.name: e.report for e in evals},
        "tracking": tracking,
        "coverage": coverage(
            ((e.name, e.pred, e.true) for e in evals), trained_range(ckpt.tracker if ckpt else None)
        ),
    }
