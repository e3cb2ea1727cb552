"""Local engine vs Ray engine on one small 2-fold grid, and a cluster estimate for the default grid.

Self-contained: a synthetic dataset and a small teacher are made under ``--work`` (reused when
present, never timed), the teacher's logits are cached before the clock starts, then the same
grid runs on the local engine (one cell after another, 1 torch thread) and on a local Ray with
one worker per core (``--cpus-per-run 1``), and the two results are compared cell for cell.
The estimate for the default grid (8 students x 5 methods x 3 seeds) with 5 folds on a 64-CPU
cluster scales per-cell costs measured here to the wall time ``benchmarks/sweep.py`` measured
(``benchmarks/results/sweep.json``) and adds the per-cell Ray overhead measured here.
Writes ``benchmarks/results/sweep_ray.{json,md}``.
Run: ``.venv/bin/python benchmarks/sweep_ray.py``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import torch

from ppgedge.data.format import DataFormat, Dataset, write_dataset
from ppgedge.data.splits import holdout
from ppgedge.data.synth import synthesize
from ppgedge.distill.cache import teacher_logits
from ppgedge.distill.defaults import DEFAULT_METHODS, DEFAULT_STUDENTS
from ppgedge.distill.grid import Cell, SweepContext, make_cells, run_cell
from ppgedge.distill.sweep import run_sweep
from ppgedge.distill.teachers import load_teacher
from ppgedge.train.trainer import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
STUDENTS = ("resnet_micro", "resnet_mini", "mlp_micro")
METHODS = ("scratch", "soft", "dkd")
FOLDS = 2


def _inputs(work: Path) -> tuple[Dataset, Path]:
    """A synthetic dataset the size of the default (16 subjects x 10 min) and a resnet_tiny
    teacher, made once and not timed."""
    data, teacher = work / "data.ppgds", work / "teacher.pt"
    if not data.exists():
        write_dataset(
            synthesize(n_subjects=16, minutes_per_subject=10.0, seed=3, fmt=DataFormat()), data
        )
    ds = Dataset(data)
    if not teacher.exists():
        cfg = TrainConfig(arch="resnet_tiny", epochs=6, seed=0, augment=False)
        train(ds, holdout(ds.subjects, seed=0), teacher, cfg, device="cpu")
    return ds, teacher


def _sweep(engine: str, ds: Dataset, teacher: Path, out: Path, cache: Path, epochs: int):
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    doc = run_sweep(
        teacher,
        ds,
        None,
        out,
        TrainConfig(epochs=epochs, patience=epochs, augment=False),
        students=STUDENTS,
        methods=METHODS,
        seeds=[0],
        folds=FOLDS,
        cache_dir=cache,
        device="cpu",
        engine=engine,
        cpus_per_run=1,
    )
    wall = time.perf_counter() - t0
    rows = [json.loads(s) for s in (out / "results.jsonl").read_text().splitlines()]
    return wall, doc, rows


def _makespan(durations: list[float], slots: int) -> float:
    """Greedy list scheduling in submission order (what a FIFO task queue does)."""
    free = [0.0] * slots
    for d in durations:
        heapq.heapreplace(free, free[0] + d)
    return max(free)


def _relative_costs(ds: Dataset, teacher: Path, cache: Path) -> dict[tuple[str, str], float]:
    """Seconds of a 2-epoch cell per default student, for a logit method (the cost of scratch,
    hard, soft and dkd alike) and for ``feature`` (the teacher runs inside the cell)."""
    ctx = SweepContext(
        teacher=str(teacher),
        dataset=str(ds.path),
        splits=(holdout(ds.subjects, seed=0),),
        cfg=TrainConfig(epochs=2, patience=2, augment=False),
        cache_dir=str(cache),
        device="cpu",
    )
    costs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for student in DEFAULT_STUDENTS:
            for method in ("soft", "feature"):
                t0 = time.perf_counter()
                run_cell(Cell(student, method, 0), ctx, Path(tmp) / f"{student}-{method}.pt")
                costs[(student, method)] = time.perf_counter() - t0
    return costs


def _estimate(
    costs: dict[tuple[str, str], float], overhead_s: float, teacher_s: float
) -> dict[str, Any]:
    """The default grid with 5 folds on 64 one-CPU workers: per-cell times are the relative
    costs measured here scaled so the default grid's runs add up to the wall time
    ``benchmarks/sweep.py`` measured (one thread, same machine)."""
    src = RESULTS / "sweep.json"
    if not src.exists():
        return {"ok": False, "reason": f"{src} missing: run benchmarks/sweep.py first"}
    measured = json.loads(src.read_text())
    seeds, folds, slots = 3, 5, 64
    cells = make_cells(DEFAULT_STUDENTS, DEFAULT_METHODS, range(seeds), folds)

    def weight(c: Cell) -> float:
        return costs[(c.student, "feature" if c.method == "feature" else "soft")]

    one_pass = [weight(c) for c in cells if c.fold == 0]  # one fold = the measured grid
    scale = measured["wall_seconds"] / sum(one_pass)
    tasks = [weight(c) * scale + overhead_s for c in cells]
    span = _makespan(tasks, slots)
    return {
        "ok": True,
        "grid_cells": len(tasks),
        "source_wall_s": measured["wall_seconds"],
        "source_runs": measured["runs"],
        "serial_local_h": round(sum(tasks) / 3600, 2),
        "cluster_64cpu_min": round((teacher_s + span) / 60, 1),
        "perfect_split_min": round(sum(tasks) / slots / 60, 1),
        "longest_task_min": round(max(tasks) / 60, 1),
        "teacher_logits_s": round(teacher_s, 1),
        "overhead_per_task_s": round(overhead_s, 2),
        "relative_cost_2_epochs_s": {f"{s}/{m}": round(v, 2) for (s, m), v in costs.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "sweep_ray")
    parser.add_argument(
        "--render", action="store_true", help="Only rewrite the .md from the saved .json."
    )
    args = parser.parse_args()
    if args.render:
        doc = json.loads((RESULTS / "sweep_ray.json").read_text())
        (RESULTS / "sweep_ray.md").write_text(_markdown(doc))
        return
    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    cache = args.work / "cache"
    ds, teacher = _inputs(args.work)
    shutil.rmtree(cache, ignore_errors=True)
    t0 = time.perf_counter()
    teacher_logits(load_teacher(teacher), ds, cache_dir=cache)  # once, shared by every cell
    teacher_s = time.perf_counter() - t0
    load = [os.getloadavg()[0]]

    local_wall, _, local_rows = _sweep(
        "local", ds, teacher, args.work / "local", cache, args.epochs
    )
    load.append(os.getloadavg()[0])
    cpus = os.cpu_count() or 1
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - t0
    try:
        ray_wall, ray_doc, ray_rows = _sweep(
            "ray", ds, teacher, args.work / "ray", cache, args.epochs
        )
    finally:
        ray.shutdown()
    load.append(os.getloadavg()[0])

    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    local_by_key = {r["key"]: strip(r) for r in local_rows}
    identical = all(local_by_key.get(r["key"]) == strip(r) for r in ray_rows) and len(
        ray_rows
    ) == len(local_rows)
    train_s = sum(r["seconds"] for r in local_rows)
    # what a cell costs beyond its training loop (open data, evaluate, ship the checkpoint,
    # schedule): the Ray wall time times its slots, less the training time, per cell
    overhead = max(0.0, (ray_wall * cpus - sum(r["seconds"] for r in ray_rows)) / len(ray_rows))
    local_overhead = max(0.0, (local_wall - train_s) / len(local_rows))
    doc = {
        "machine": f"{cpus} CPU cores (shared with other work: 1-min load average {load})",
        "grid": {
            "students": STUDENTS,
            "methods": METHODS,
            "seeds": [0],
            "folds": FOLDS,
            "epochs": args.epochs,
            "cells": len(local_rows),
        },
        "teacher_logits_s": round(teacher_s, 2),
        "local_wall_s": round(local_wall, 1),
        "ray_start_s": round(ray_start, 1),
        "ray_wall_s": round(ray_wall, 1),
        "ray_wall_with_start_s": round(ray_wall + ray_start, 1),
        "speedup_local_over_ray": round(local_wall / ray_wall, 2),
        "speedup_including_start": round(local_wall / (ray_wall + ray_start), 2),
        "train_seconds_local": round(train_s, 1),
        "train_seconds_ray": round(sum(r["seconds"] for r in ray_rows), 1),
        "overhead_per_cell_local_s": round(local_overhead, 2),
        "overhead_per_cell_ray_s": round(overhead, 2),
        "identical_results": identical,
        "ray_failed": ray_doc["failed"],
        "ray_version": ray.__version__,
        "torch_threads_per_cell": 1,
        "estimate_default_grid_5_folds_64_cpus": _estimate(
            _relative_costs(ds, teacher, cache), overhead, teacher_s
        ),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sweep_ray.json").write_text(json.dumps(doc, indent=2) + "\n")
    (RESULTS / "sweep_ray.md").write_text(_markdown(doc))
    print(json.dumps(doc, indent=2))


def _markdown(d: dict[str, Any]) -> str:
    g, e = d["grid"], d["estimate_default_grid_5_folds_64_cpus"]
    lines = [
        "# Sweep: local engine vs Ray engine",
        "",
        f"Measured by `benchmarks/sweep_ray.py` on {d['machine']}; Ray {d['ray_version']}, "
        f"one torch thread per cell on both engines.",
        "",
        f"Grid: {', '.join(g['students'])} x {', '.join(g['methods'])} x seed 0 x {g['folds']} "
        f"subject folds = {g['cells']} cells, {g['epochs']} epochs, teacher logits cached "
        f"before the clock ({d['teacher_logits_s']} s, once for every cell and fold).",
        "",
        "| engine | wall (s) | training inside cells (s) | overhead per cell (s) |",
        "| --- | ---: | ---: | ---: |",
        f"| local (1 process) | {d['local_wall_s']} | {d['train_seconds_local']} | "
        f"{d['overhead_per_cell_local_s']} |",
        f"| Ray, 2 workers | {d['ray_wall_s']} (+{d['ray_start_s']} to start Ray) | "
        f"{d['train_seconds_ray']} | {d['overhead_per_cell_ray_s']} |",
        "",
        f"Wall-time ratio local / Ray: **{d['speedup_local_over_ray']}x** "
        f"({d['speedup_including_start']}x counting Ray's start). Same numbers on both engines, "
        f"cell for cell (all but the timing column): **{d['identical_results']}**.",
        "",
        "This machine has 2 cores that other work shares, so two workers can at best halve the "
        "wall time and in practice compete with that other work and with the Ray processes "
        "themselves; the ratio says little about a cluster. What it does measure is Ray's cost "
        "per cell (worker start-up and torch import once per worker, opening the dataset and "
        "hashing it once per worker, shipping the checkpoint back, scheduling), used below.",
        "",
        "## Estimate: default grid, 5 folds, 64 CPUs",
        "",
    ]
    if e.get("ok"):
        lines += [
            f"{e['grid_cells']} cells (8 students x 5 methods x 3 seeds x 5 folds), each a "
            "one-CPU task. A cell's time is its student's and method's cost measured here "
            "(two epochs; `feature` apart, as it runs the teacher inside the cell), scaled so "
            f"that one fold adds up to the {e['source_wall_s']} s that `benchmarks/sweep.py` "
            f"measured for the {e['source_runs']} runs of the default grid on one thread, plus "
            f"the {e['overhead_per_task_s']} s Ray overhead per cell measured above.",
            "",
            f"- one process, one cell after another: **{e['serial_local_h']} h**",
            f"- 64 one-CPU Ray workers, cells in submission order: **{e['cluster_64cpu_min']} "
            f"min** (a perfect split would be {e['perfect_split_min']} min; the longest single "
            f"cell takes {e['longest_task_min']} min)",
            "",
            "What stops linear scaling: the teacher's logits are one serial step before any cell "
            f"({e['teacher_logits_s']} s here for a resnet_tiny teacher; the 1.26 M-parameter "
            "resnet_teacher, or a large dataset, takes longer; "
            "and `feature` distillation runs the teacher inside every cell by design); the "
            "largest students' cells are much longer than the rest, so the last minutes run on "
            "a few workers; every new worker imports torch and hashes the dataset once, and "
            "every node needs the dataset on a path it can read (shared file system); each "
            "cell's result and checkpoint return through the driver, which writes them one at a "
            "time. The estimate assumes 64 cores as fast as these and nothing else running.",
        ]
    else:
        lines.append(f"Not estimated: {e['reason']}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
