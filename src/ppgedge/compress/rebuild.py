"""Pruned or rebuilt: the weights of the architecture pruning found, from either route.

Channel pruning does two things at once: it searches for an architecture that fits the budget
(which channels of which layer survive) and it hands that architecture the surviving weights
to fine-tune. The second part is not always worth keeping: trained afresh for as long as a
student is distilled, the same architecture can match or beat the fine-tuned one (Liu et al.,
"Rethinking the value of network pruning", ICLR 2019), and on a dozen subjects the fine-tuned
weights carry what the larger student overfitted. Which holds is a property of the data, so,
like the distill stage's distilled-or-scratch choice, this trains the pruned architecture from
a fresh, seeded initialisation with the teacher (the student's own training settings: its
augmentation, learning rate and the distill stage's epochs) and keeps whichever of the two has
the lower validation MAE. Both scores go into ``metrics["choice"]``; the other checkpoint stays
beside the kept one.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ppgedge.compress.prune import _Teaching
from ppgedge.data.format import Dataset
from ppgedge.data.splits import Split
from ppgedge.models.checkpoint import (
    Checkpoint,
    checkpoint_from_model,
    load_checkpoint,
    model_record,
    save_checkpoint,
)
from ppgedge.train.trainer import TrainConfig, TrainingObserver, train, training_config_of


def rebuilt_path(out: Path) -> Path:
    """Where the candidate that is not kept stays beside the stage's pruned model."""
    return out.with_name(out.stem + ".alternative" + out.suffix)


def reinitialise(model: nn.Module, seed: int) -> nn.Module:
    """Every layer's parameters and running statistics drawn afresh (seeded), shapes kept."""
    torch.manual_seed(seed)
    for m in model.modules():
        if hasattr(m, "reset_running_stats"):
            m.reset_running_stats()  # type: ignore[operator]
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()  # type: ignore[operator]
    return model


def _student_config(
    student: Checkpoint, pruned: Checkpoint, epochs: int, patience: int, seed: int
) -> TrainConfig:
    """The student's training settings (augmentation, learning rate...) for the pruned shape."""
    return replace(
        training_config_of(student),
        arch=pruned.arch,
        arch_kwargs=dict(pruned.arch_kwargs),
        channels=",".join(pruned.data_format.channels),
        epochs=epochs,
        patience=patience,
        seed=seed,
    )


def keep_better_rebuilt(
    pruned_path: str | Path,
    student_path: str | Path,
    teacher: str | Path,
    dataset: Dataset,
    split: Split,
    *,
    epochs: int | None = None,
    patience: int | None = None,
    method: str = "dkd",
    cache_dir: str | Path | None = None,
    device: str = "auto",
    seed: int = 0,
    observer: TrainingObserver | None = None,
) -> Checkpoint:
    """Distil ``teacher`` into a freshly initialised copy of the pruned architecture at
    ``pruned_path`` for ``epochs`` (with ``patience``; by default the student's own), in the
    student's training settings; the one of the two with the lower validation MAE ends at
    ``pruned_path``, the other at :func:`rebuilt_path`, both scores in ``metrics["choice"]``."""
    out = Path(pruned_path)
    pruned = load_checkpoint(out)
    student = load_checkpoint(student_path)
    own = training_config_of(student)
    epochs = own.epochs if epochs is None else epochs
    patience = own.patience if patience is None else patience
    cfg = _student_config(student, pruned, epochs, patience, seed)
    alt = rebuilt_path(out)
    teaching = _Teaching(teacher, dataset, method, cache_dir, device)
    with tempfile.TemporaryDirectory(prefix="ppgedge-rebuild-") as work:
        start = Path(work) / "init.pt"
        model = reinitialise(pruned.build(), seed)
        save_checkpoint(
            checkpoint_from_model(
                model, pruned.data_format, decode=pruned.decode, lineage=list(pruned.lineage)
            ),
            start,
        )
        objective = teaching.objective(model, cfg, tuple(pruned.data_format.channels))
        rebuilt = train(
            dataset, split, alt, cfg, init_from=start, device=device, observer=observer,
            objective=objective,
        )  # fmt: skip
    lineage = [*rebuilt.lineage]
    lineage[-1] = {**lineage[-1], "stage": "rebuild", "init": f"re-initialised (seed {seed})"}
    rebuilt = replace(rebuilt, parent=model_record(out, pruned), lineage=lineage)
    scores = {
        "pruned": float(pruned.metrics["val_mae"]),
        "rebuilt": float(rebuilt.metrics["val_mae"]),
    }
    kept = "rebuilt" if scores["rebuilt"] < scores["pruned"] else "pruned"
    best, other = (rebuilt, pruned) if kept == "rebuilt" else (pruned, rebuilt)
    files = {kept: out.name, ("pruned" if kept == "rebuilt" else "rebuilt"): alt.name}
    choice: dict[str, Any] = {
        "kept": kept,
        "val_mae": scores,
        "chosen_on": "validation subjects",
        "files": files,
    }
    save_checkpoint(other, alt)
    save_checkpoint(replace(best, metrics={**best.metrics, "choice": choice}), out)
    return load_checkpoint(out)
