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

from ppgedge.atomic import write_json_atomic, write_text_atomic
from ppgedge.data.format import Dataset
from ppgedge.data.splits import Split
from ppgedge.distill.defaults import DEFAULT_METHODS, DEFAULT_STUDENTS
from ppgedge.distill.run import METHODS, distill
from ppgedge.distill.scaling import aggregate, fit_all, markdown_table, plot_sweep
from ppgedge.errors import PpgedgeError
from ppgedge.evaluate.predict import evaluate_checkpoint
from ppgedge.models import list_models
from ppgedge.train.trainer import TrainConfig, train


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
    out_dir = Path(out_dir)
    (out_dir / "models").mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.jsonl"
    done: dict[str, dict[str, Any]] = {}
    if results.exists():
        for line in results.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["key"]] = row
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


def summarise(out_dir: Path, rows: list[dict[str, Any]], **context: Any) -> dict[str, Any]:
    """Write the CSV, summary JSON, Markdown table and plot for the rows so far."""
    with open(out_dir / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["key"])
        writer.writeheader()
        writer.writerows(rows)
    summary = aggregate(rows)
    laws = fit_all(rows)
    doc = {
        "schema": "ppgedge.sweep/1",
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
