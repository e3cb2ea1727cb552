"""Default sweep benchmark: the default grid of `ppgedge sweep` on the synthetic default, timed.

Teacher: the synthetic ``resnet_teacher`` of benchmarks/foundation.py (run that first). Grid:
the CLI's defaults (5 ResNet sizes 2.5 k-265 k, 3 MLPs, scratch/hard/soft/dkd/feature, seeds
0,1,2, 20 epochs). Teacher logits are cached before the clock starts, as the issue's budget
("with cached teacher outputs") assumes. Writes ``benchmarks/results/sweep.{json,md,png}``.
Run: ``.venv/bin/python benchmarks/sweep.py [--threads 1]``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from ppgedge.data.format import Dataset
from ppgedge.data.splits import holdout
from ppgedge.distill.cache import teacher_logits
from ppgedge.distill.defaults import DEFAULT_METHODS, DEFAULT_STUDENTS
from ppgedge.distill.sweep import run_sweep
from ppgedge.distill.teachers import load_teacher
from ppgedge.train.trainer import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
FOUNDATION = ROOT / "benchmarks" / "out" / "foundation"
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "sweep")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "out" / "cache")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = Dataset(FOUNDATION / "synthetic.ppgds")
    teacher = FOUNDATION / "teacher_synth.pt"
    teacher_logits(load_teacher(teacher), ds, cache_dir=args.cache)
    t0 = time.perf_counter()
    doc = run_sweep(
        teacher,
        ds,
        holdout(ds.subjects, seed=0),
        args.work,
        TrainConfig(epochs=args.epochs, patience=args.epochs, augment=False),
        students=DEFAULT_STUDENTS,
        methods=DEFAULT_METHODS,
        seeds=[int(s) for s in args.seeds.split(",")],
        cache_dir=args.cache,
        device="cpu",
        on_run=lambda r, skipped: print(json.dumps(r), flush=True),
    )
    wall = time.perf_counter() - t0
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc["wall_seconds"] = round(wall, 1)
    doc["threads"] = args.threads
    doc["note"] = "wall time of the runs done in this invocation (earlier runs are reused)"
    (RESULTS / "sweep.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    shutil.copy(args.work / "sweep.md", RESULTS / "sweep.md")
    shutil.copy(args.work / "sweep.png", RESULTS / "sweep.png")
    print(f"{doc['runs']} runs in {wall / 60:.1f} min")


if __name__ == "__main__":
    main()
