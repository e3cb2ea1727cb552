"""``ppgedge sweep``: students x methods (and from-scratch) x seeds, resumable.

Every run appends one JSON line to ``results.jsonl`` as soon as it finishes, so an interrupted
sweep continues with the runs it has not done. All runs share the same split, epochs and
schedule (equal epochs); the teacher's logits are computed once and read from the cache.
At the end: ``results.csv``, ``summary.json`` (mean/std over seeds, fitted scaling laws),
``sweep.md`` (the table) and ``sweep.png`` (error vs parameters).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ppgedge.atomic import atomic_path, write_json_atomic, write_text_atomic
from ppgedge.data.format import Dataset
from ppgedge.data.splits import Split
from ppgedge.distill.defaults import DEFAULT_METHODS, DEFAULT_STUDENTS
from ppgedge.distill.run import METHODS, distill
from ppgedge.distill.scaling import aggregate, fit_all, markdown_table, plot_sweep
from ppgedge.errors import PpgedgeError
from ppgedge.evaluate.predict import evaluate_checkpoint
from ppgedge.models import list_models
from ppgedge.ownership import SWEEP, claim
from ppgedge.train.trainer import TrainConfig, train

SCHEMA = "ppgedge.sweep/1"
MARKER = "sweep.json"  # written first: marks the folder as a sweep ppgedge may continue


def _family(name: str) -> str:
    return next(e.family for e in list_models() if e.name == name)


def run_sweep(
    teacher: str | Path,
    dataset: Dataset,
    split: Split,
    out_dir: str | Path,
    cfg: TrainConfig,
    *,
    students: Sequence[str] = DEFAULT_STUDENTS,
    methods: Sequence[str] = DEFAULT_METHODS,
    seeds: Sequence[int] = (0,),
    cache_dir: str | Path | None = None,
    device: str = "auto",
    on_run: Callable[[dict[str, Any], bool], None] | None = None,
) -> dict[str, Any]:
    """Run (or finish) the grid; ``on_run(row, skipped)`` is told about every cell."""
    known = {e.name for e in list_models()}
    bad = [s for s in students if s not in known]
    if bad:
        raise PpgedgeError(f"unknown student model(s) {bad}: run 'ppgedge models'")
    bad = [m for m in methods if m != "scratch" and m not in METHODS]
    if bad:
        raise PpgedgeError(f"unknown method(s) {bad}: use scratch, {', '.join(METHODS)}")
    out_dir = claim(out_dir, SWEEP)
    grid = {"students": list(students), "methods": list(methods), "seeds": list(seeds)}
    write_json_atomic(out_dir / MARKER, {"schema": SCHEMA, "teacher": str(teacher), **grid})
    (out_dir / "models").mkdir(exist_ok=True)
    results = out_dir / "results.jsonl"
    done = _finished_rows(results)
    test_idx = split.indices(dataset.subject_names())["test"]
    for seed in seeds:
        for student in students:
            for method in methods:
                key = f"{method}-{student}-s{seed}"
                if key in done:
                    if on_run:
                        on_run(done[key], True)
                    continue
                path = out_dir / "models" / f"{key}.pt"
                run_cfg = replace(cfg, arch=student, seed=seed)
                t0 = time.perf_counter()
                if method == "scratch":
                    ckpt = train(dataset, split, path, run_cfg, device=device)
                else:
                    ckpt = distill(
                        teacher,
                        dataset,
                        split,
                        student,
                        path,
                        run_cfg,
                        method=method,
                        cache_dir=cache_dir,
                        device=device,
                        assistant="resnet_base",
                    )
                seconds = time.perf_counter() - t0
                ev = evaluate_checkpoint(ckpt, dataset, test_idx).report["overall"]
                row = {
                    "key": key,
                    "method": method,
                    "student": student,
                    "family": _family(student),
                    "seed": seed,
                    "parameters": ckpt.metrics["parameters"],
                    "macs": ckpt.metrics["macs"],
                    "test_mae": ev["mae"],
                    "test_rmse": ev["rmse"],
                    "within5": ev["within5"],
                    "val_mae": ckpt.metrics["val_mae"],
                    "epochs_run": ckpt.metrics["epochs_run"],
                    "seconds": round(seconds, 1),
                }
                with open(results, "a") as fh:
                    fh.write(json.dumps(row) + "\n")
                done[key] = row
                if on_run:
                    on_run(row, False)
    return summarise(out_dir, [done[k] for k in done], teacher=str(teacher), split=split)


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


def summarise(out_dir: Path, rows: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
    """Write the CSV, summary JSON, Markdown table and plot for the rows so far."""
    with atomic_path(out_dir / "results.csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["key"])
        writer.writeheader()
        writer.writerows(rows)
    summary = aggregate(rows)
    laws = fit_all(rows)
    doc = {
        "schema": SCHEMA,
        **{k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in context.items()},
        "runs": len(rows),
        "summary": summary,
        "scaling_laws": laws,
    }
    write_json_atomic(out_dir / "summary.json", doc)
    write_text_atomic(out_dir / "sweep.md", markdown_table(summary, laws))
    if summary:
        plot_sweep(summary, out_dir / "sweep.png", "student error vs size")
    return doc
