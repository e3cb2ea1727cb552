"""``ppgedge sweep``: students x methods (and from-scratch) x seeds x subject folds, resumable.

The grid (:mod:`ppgedge.distill.grid`) runs on an engine: ``local`` (one cell after another in
this process) or ``ray`` (one Ray task per cell, on a local or a running cluster). Whatever the
engine, every finished cell appends one JSON line to ``results.jsonl`` as it ends, so an
interrupted sweep continues with the cells it has not done, and the CSV, ``summary.json`` (mean
and std over folds and seeds, cells that failed or did not run, fitted scaling laws),
``sweep.md`` and ``sweep.png`` are rewritten while it runs and at the end. The teacher's logits
are computed once, before any cell, and shared with every cell through the cache (and Ray's
object store).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ppgedge.atomic import atomic_path, write_json_atomic, write_text_atomic
from ppgedge.data.format import Dataset
from ppgedge.data.splits import Split
from ppgedge.distill.crossval import aggregate_cv, cv_markdown, fit_all_cv
from ppgedge.distill.defaults import DEFAULT_METHODS, DEFAULT_STUDENTS
from ppgedge.distill.engines import ENGINES
from ppgedge.distill.grid import Cell, CellOutcome, SweepContext, fold_splits, make_cells
from ppgedge.distill.run import METHODS
from ppgedge.distill.scaling import markdown_table, plot_sweep
from ppgedge.errors import PpgedgeError
from ppgedge.models import list_models
from ppgedge.ownership import SWEEP, claim
from ppgedge.train.trainer import TrainConfig

SCHEMA = "ppgedge.sweep/1"
MARKER = "sweep.json"  # written first: marks the folder as a sweep ppgedge may continue
SUMMARY_EVERY_S = 30.0  # rewrite the summary files at most this often while cells finish


def _check_grid(students: Sequence[str], methods: Sequence[str], engine: str) -> None:
    known = {e.name for e in list_models()}
    bad = [s for s in students if s not in known]
    if bad:
        raise PpgedgeError(f"unknown student model(s) {bad}: run 'ppgedge models'")
    bad = [m for m in methods if m != "scratch" and m not in METHODS]
    if bad:
        raise PpgedgeError(f"unknown method(s) {bad}: use scratch, {', '.join(METHODS)}")
    if engine not in ENGINES:
        raise PpgedgeError(f"unknown engine '{engine}': use {' or '.join(ENGINES)}")


def _teacher_logits(teacher: str | Path, dataset: Dataset, cache_dir: str | Path | None):
    """Run the teacher once over every window (or find its cached logits): every cell and every
    fold index into this one array."""
    from ppgedge.distill.cache import teacher_logits
    from ppgedge.distill.teachers import check_teacher_matches, load_teacher

    t = load_teacher(teacher, dataset.fmt)
    check_teacher_matches(t, dataset)
    return t, teacher_logits(t, dataset, cache_dir=cache_dir, device="cpu")


def teacher_saw_test_subjects(teacher: Any, dataset: Dataset, splits: Sequence[Split]):
    """Per split, the test subjects a ppgedge teacher trained (or stopped early) on, when it was
    trained on this very dataset: distilled students then inherit knowledge of them and their
    test MAE is optimistic. Foreign teachers record no split and are not checked."""
    from ppgedge.data.fingerprint import dataset_sha256

    training = getattr(getattr(teacher, "checkpoint", None), "training", None) or {}
    seen_split = training.get("split") or {}
    if training.get("dataset_sha256") != dataset_sha256(dataset.path):
        return {}
    seen = set(seen_split.get("train", [])) | set(seen_split.get("val", []))
    return {s.name: sorted(seen & set(s.test)) for s in splits if seen & set(s.test)}


def run_sweep(
    teacher: str | Path,
    dataset: Dataset,
    split: Split | None,
    out_dir: str | Path,
    cfg: TrainConfig,
    *,
    students: Sequence[str] = DEFAULT_STUDENTS,
    methods: Sequence[str] = DEFAULT_METHODS,
    seeds: Sequence[int] = (0,),
    folds: int | None = None,
    cache_dir: str | Path | None = None,
    device: str = "auto",
    engine: str = "local",
    ray_address: str | None = None,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0,
    retries: int = 2,
    on_run: Callable[[dict[str, Any], bool], None] | None = None,
    on_fail: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run (or finish) the grid; ``on_run(row, skipped)`` is told about every finished cell and
    ``on_fail(record)`` about every cell that failed after its retries.

    With ``folds`` the split is ``folds`` subject-wise folds (``split`` is ignored) and every
    cell runs once per fold. Ctrl-C cancels what is outstanding, writes the summary of what
    finished and re-raises.
    """
    _check_grid(students, methods, engine)
    if engine == "ray":
        from ppgedge.distill.engines.ray_engine import require_ray

        require_ray()  # one line naming the extra, before any work
    splits = fold_splits(dataset.subjects, folds) if folds else (split,)
    if splits[0] is None:
        raise PpgedgeError("run_sweep needs a split or folds")
    out_dir = claim(out_dir, SWEEP)
    grid = {"students": list(students), "methods": list(methods), "seeds": list(seeds)}
    write_json_atomic(
        out_dir / MARKER,
        {"schema": SCHEMA, "teacher": str(teacher), **grid, "folds": folds or None},
    )
    models_dir = out_dir / "models"
    models_dir.mkdir(exist_ok=True)
    results = out_dir / "results.jsonl"
    done = _finished_rows(results)
    cells = make_cells(students, methods, seeds, folds)
    todo = [c for c in cells if c.key not in done]
    for c in cells:
        if c.key in done and on_run:
            on_run(done[c.key], True)
    logits, overlap = None, {}
    if any(c.method != "scratch" for c in cells):  # also on a rerun: the summary names overlap
        t, logits = _teacher_logits(teacher, dataset, cache_dir)
        overlap = teacher_saw_test_subjects(t, dataset, splits)
    ctx = SweepContext(
        teacher=str(Path(teacher).resolve()),
        dataset=str(Path(dataset.path).resolve()),
        splits=tuple(splits),
        cfg=cfg,
        cache_dir=str(logits.path.parent) if logits is not None else _abs(cache_dir),
        device=device,
        threads=max(1, int(cpus_per_run)),
    )
    context = {"teacher": str(teacher), "split": splits[0] if not folds else None}
    context["folds"] = [s.to_dict() for s in splits] if folds else None
    context["teacher_saw_test_subjects"] = overlap
    failed: dict[str, dict[str, Any]] = {}

    def write_summary() -> dict[str, Any]:
        rows = [done[c.key] for c in cells if c.key in done]
        not_run = [c.key for c in cells if c.key not in done and c.key not in failed]
        return summarise(out_dir, rows, failed=list(failed.values()), not_run=not_run, **context)

    outcomes: Iterator[CellOutcome]
    if engine == "ray":
        from ppgedge.distill.engines.ray_engine import run_ray

        shipped = (logits.logits, logits.path.name) if logits is not None else None
        outcomes = run_ray(
            todo,
            ctx,
            models_dir,
            address=ray_address,
            cpus_per_run=cpus_per_run,
            gpus_per_run=gpus_per_run,
            retries=retries,
            logits=shipped,
        )
    else:
        from ppgedge.distill.engines.local import run_local

        outcomes = run_local(todo, ctx, models_dir, retries=retries)
    last = time.monotonic()
    try:
        for outcome in outcomes:
            _record(outcome, results, done, failed, on_run, on_fail)
            if time.monotonic() - last > SUMMARY_EVERY_S:
                write_summary()
                last = time.monotonic()
    except KeyboardInterrupt:
        close = getattr(outcomes, "close", None)
        if close is not None:
            close()  # cancels outstanding Ray tasks before the summary is written
        write_summary()
        raise
    return write_summary()


def _abs(path: str | Path | None) -> str | None:
    return str(Path(path).resolve()) if path is not None else None


def _record(
    outcome: CellOutcome,
    results: Path,
    done: dict[str, dict[str, Any]],
    failed: dict[str, dict[str, Any]],
    on_run: Callable[[dict[str, Any], bool], None] | None,
    on_fail: Callable[[dict[str, Any]], None] | None,
) -> None:
    """Append a finished cell to results.jsonl at once; keep a failed one for the summary."""
    cell: Cell = outcome.cell
    if outcome.row is None:
        failed[cell.key] = {**cell.to_dict(), "error": outcome.error, "attempts": outcome.attempts}
        if on_fail:
            on_fail(failed[cell.key])
        return
    with open(results, "a") as fh:
        fh.write(json.dumps(outcome.row) + "\n")
    done[cell.key] = outcome.row
    failed.pop(cell.key, None)
    if on_run:
        on_run(outcome.row, False)


def _finished_rows(results: Path) -> dict[str, dict[str, Any]]:
    """The cells an earlier (possibly killed) sweep finished; a torn last line is redone."""
    done: dict[str, dict[str, Any]] = {}
    if not results.exists():
        return done
    lines = results.read_text(encoding="utf-8", errors="replace").splitlines()
    for n, line in enumerate(lines, 1):
        try:
            row = json.loads(line) if line.strip() else None
        except (ValueError, RecursionError):
            row = None
            if n < len(lines):
                raise PpgedgeError(
                    f"{results}: line {n} is not JSON: fix or delete that line to rerun the cell"
                ) from None
        if isinstance(row, dict) and isinstance(row.get("key"), str):
            done[row["key"]] = row
    return done


def summarise(
    out_dir: Path,
    rows: list[dict[str, Any]],
    *,
    failed: list[dict[str, Any]] | None = None,
    not_run: list[str] | None = None,
    **context: Any,
) -> dict[str, Any]:
    """Write the CSV, summary JSON, Markdown table and plot for the rows so far."""
    failed, not_run = failed or [], not_run or []
    fields = list(dict.fromkeys(k for r in rows for k in r)) or ["key"]
    with atomic_path(out_dir / "results.csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    summary = aggregate_cv(rows)
    laws = fit_all_cv(rows, summary)
    doc = {
        "schema": SCHEMA,
        **{k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in context.items()},
        "cells": len(rows) + len(failed) + len(not_run),
        "runs": len(rows),
        "failed": failed,
        "not_run": not_run,
        "summary": summary,
        "scaling_laws": laws,
    }
    write_json_atomic(out_dir / "summary.json", doc)
    md = markdown_table(summary, laws) + cv_markdown(summary, laws, failed, not_run)
    overlap = context.get("teacher_saw_test_subjects")
    if overlap:
        seen = "; ".join(f"{k}: {', '.join(v)}" for k, v in overlap.items())
        md += (
            f"\n**The teacher was trained on this dataset and saw test subjects** ({seen}): "
            "distilled students' test MAE there is optimistic; use a teacher trained without "
            "them.\n"
        )
    write_text_atomic(out_dir / "sweep.md", md)
    if summary:
        folds = max(s["folds"] for s in summary)
        seeds = max(s["seeds"] for s in summary)
        bars = f"std over {folds} fold(s) x {seeds} seed(s)"
        plot_sweep(summary, out_dir / "sweep.png", f"student error vs size ({bars})")
    return doc
