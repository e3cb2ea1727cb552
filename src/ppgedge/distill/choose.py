"""Distilled or from scratch: the student the validation subjects prefer.

On large data distillation wins; on a dozen subjects a DKD student can lose 7 BPM to its
teacher where the same network trained from scratch (with the teacher's augmentation) does not.
Which one holds is a property of the data, so the distill stage trains both and keeps the one
with the lower validation MAE; the kept checkpoint records both scores (``metrics["choice"]``),
so the story of the artifact says what was compared and why it is what it is.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from ppgedge.atomic import atomic_path
from ppgedge.data.format import Dataset
from ppgedge.data.splits import Split
from ppgedge.models.checkpoint import CHECKPOINT, Checkpoint, load_checkpoint, save_checkpoint
from ppgedge.train.trainer import TrainConfig, TrainingObserver, train


def val_scores_text(choice: dict[str, Any]) -> str:
    """A choice record's validation scores for people: ``dkd 0.66, scratch 1.10``."""
    return ", ".join(f"{k} {v:.2f}" for k, v in choice["val_mae"].items())


def scratch_path(out: Path) -> Path:
    """Where the from-scratch candidate is kept beside the stage's student."""
    return out.with_name(out.stem + ".scratch" + out.suffix)


def keep_better(
    distilled: Checkpoint,
    dataset: Dataset,
    split: Split,
    out: str | Path,
    cfg: TrainConfig,
    *,
    method: str = "dkd",
    device: str = "auto",
    observer: TrainingObserver | None = None,
    restart: bool = False,
    reuse_finished: bool = False,
) -> Checkpoint:
    """Train ``distilled``'s architecture from scratch (augmented, as the teacher) beside the
    distilled student saved at ``out``; the one with the lower validation MAE ends at ``out``
    (the other beside it, :func:`scratch_path`), with both scores in ``metrics["choice"]``.
    ``reuse_finished``: a from-scratch student this configuration already finished at the
    candidate's path is not trained again (:func:`ppgedge.train.trainer.train`)."""
    out = Path(out)
    student = distilled.arch
    alt = scratch_path(out)
    scratch = train(
        dataset,
        split,
        alt,
        # the teacher's augmentation: mixing and artifacts are for the teacher to label
        replace(cfg, arch=student, augment=True, mix_max=0.0, motion_aug_p=0.0),
        device=device,
        observer=observer,
        restart=restart,
        reuse_finished=reuse_finished,
    )
    scores = {
        method: float(distilled.metrics["val_mae"]),
        "scratch": float(scratch.metrics["val_mae"]),
    }
    kept = "scratch" if scores["scratch"] < scores[method] else method
    files = {method: out.name, "scratch": alt.name}
    best = distilled
    if kept == "scratch":  # the kept one goes to ``out``; the distilled one stays beside it
        with atomic_path(alt, kind=CHECKPOINT) as tmp:
            shutil.copyfile(out, tmp)
        files, best = {method: alt.name, "scratch": out.name}, scratch
    choice: dict[str, Any] = {
        "kept": kept,
        "val_mae": scores,
        "chosen_on": "validation subjects",
        "files": files,
    }
    # the annotated file is no longer what one training finished: without its digest no later
    # run reuses it as a finished distilled (or scratch) student (train's reuse_finished)
    training = {k: v for k, v in best.training.items() if k != "digest"}
    save_checkpoint(
        replace(best, metrics={**best.metrics, "choice": choice}, training=training), out
    )
    return load_checkpoint(out)
