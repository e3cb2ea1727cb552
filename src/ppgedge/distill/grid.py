"""The sweep grid: cells, subject folds, and the one function that runs a cell.

A cell is (student, method, seed, fold). Both engines call :func:`run_cell` with the same
:class:`SweepContext`, so a cell gives the same numbers whether it runs in this process or in a
Ray worker: the context carries every input (paths, splits, training configuration, torch
threads) and nothing is read from the process that happens to run it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ppgedge.data.format import Dataset
from ppgedge.data.splits import Split, kfold
from ppgedge.errors import PpgedgeError
from ppgedge.train.trainer import TrainConfig

PROGRESSIVE_ASSISTANT = "resnet_base"


@dataclass(frozen=True)
class Cell:
    """One grid point; ``fold`` is None for a sweep on one split (the key then has no fold)."""

    student: str
    method: str
    seed: int
    fold: int | None = None

    @property
    def key(self) -> str:
        base = f"{self.method}-{self.student}-s{self.seed}"
        return base if self.fold is None else f"{base}-f{self.fold}"

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, **self.__dict__}


@dataclass(frozen=True)
class SweepContext:
    """Everything a cell depends on, small and picklable (shipped once to a cluster)."""

    teacher: str
    dataset: str
    splits: tuple[Split, ...]  # one per fold, or the single split
    cfg: TrainConfig
    cache_dir: str | None = None
    device: str = "cpu"
    threads: int = 1

    def split_for(self, cell: Cell) -> Split:
        return self.splits[0 if cell.fold is None else cell.fold]


@dataclass
class CellOutcome:
    """What an engine reports for a cell: a result row, or the error that stopped it."""

    cell: Cell
    row: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 1


def fold_splits(subjects: Sequence[str], folds: int, *, seed: int = 0) -> tuple[Split, ...]:
    """``folds`` subject-wise folds; each training part keeps its own validation subjects."""
    if folds < 2:
        raise PpgedgeError(f"--folds {folds}: cross-validation needs at least 2 folds")
    if folds > len(subjects):
        raise PpgedgeError(
            f"--folds {folds}: the dataset has only {len(subjects)} subjects "
            f"(at most {len(subjects)} folds, one test subject each)"
        )
    splits = tuple(kfold(list(subjects), folds, seed=seed))
    for s in splits:
        if not s.train or not s.val:
            raise PpgedgeError(
                f"--folds {folds}: fold '{s.name}' leaves no training or validation subject "
                f"({len(subjects)} subjects): use fewer folds"
            )
    return splits


def make_cells(
    students: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    folds: int | None,
) -> list[Cell]:
    """The grid in a fixed order: fold, seed, student, method (the order results are listed)."""
    fold_ids: list[int | None] = [None] if not folds else list(range(folds))
    return [
        Cell(student, method, seed, fold)
        for fold in fold_ids
        for seed in seeds
        for student in students
        for method in methods
    ]


def _family(name: str) -> str:
    from ppgedge.models import list_models

    return next(e.family for e in list_models() if e.name == name)


def run_cell(cell: Cell, ctx: SweepContext, out: Path) -> dict[str, Any]:
    """Train or distil one cell's student to ``out`` and score it on its fold's test subjects.

    Torch is limited to ``ctx.threads`` threads: the run's CPU allotment on a cluster, and the
    same number locally, so the arithmetic (and the numbers) match between engines.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(ctx.threads)))
    try:
        return _run_cell(cell, ctx, out)
    finally:
        torch.set_num_threads(threads)  # a caller's own thread setting outlives the cell


def _run_cell(cell: Cell, ctx: SweepContext, out: Path) -> dict[str, Any]:
    from ppgedge.distill.run import distill
    from ppgedge.evaluate.predict import evaluate_checkpoint
    from ppgedge.evaluate.tracking import tracked_evaluation
    from ppgedge.train.trainer import train

    dataset = Dataset(ctx.dataset)
    split = ctx.split_for(cell)
    run_cfg = replace(ctx.cfg, arch=cell.student, seed=cell.seed)
    t0 = time.perf_counter()
    if cell.method == "scratch":
        ckpt = train(dataset, split, out, run_cfg, device=ctx.device)
    else:
        ckpt = distill(
            ctx.teacher,
            dataset,
            split,
            cell.student,
            out,
            run_cfg,
            method=cell.method,
            cache_dir=ctx.cache_dir,
            device=ctx.device,
            assistant=PROGRESSIVE_ASSISTANT,
        )
    seconds = time.perf_counter() - t0
    test_idx = split.indices(dataset.subject_names())["test"]
    full = evaluate_checkpoint(ckpt, dataset, test_idx)
    ev = full.report["overall"]
    tracked, _ = tracked_evaluation("cell", full.logits, dataset, test_idx, ckpt.tracker)
    return {
        "key": cell.key,
        "method": cell.method,
        "student": cell.student,
        "family": _family(cell.student),
        "seed": cell.seed,
        "fold": cell.fold,
        "split": split.name,
        "parameters": ckpt.metrics["parameters"],
        "macs": ckpt.metrics["macs"],
        "test_mae": ev["mae"],
        "test_rmse": ev["rmse"],
        "within5": ev["within5"],
        # the temporal tracker on the same logits (None: no window sequences to fit it on)
        "test_mae_tracked": tracked.report["overall"]["mae"] if tracked else None,
        "val_mae": ckpt.metrics["val_mae"],
        "val_mae_tracked": (ckpt.tracker.get("val_mae_by_decoder") or {}).get("tracked"),
        "epochs_run": ckpt.metrics["epochs_run"],
        "seconds": round(seconds, 1),
    }


def error_line(exc: BaseException, limit: int = 400) -> str:
    """An exception as one line for the summary: its type and first line of message."""
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    line = f"{type(exc).__name__}: {first}" if not isinstance(exc, PpgedgeError) else first
    return line[:limit]
