"""Distillation benchmark: every method beside the from-scratch student, mean and std over seeds.

Student: ``resnet_small`` (56 k parameters, 1/22 of the 1.26 M ``resnet_teacher``). All runs use
the same split, epochs (early-stopping patience = epochs, so every run sees every epoch and keeps
its best validation epoch), schedule and un-augmented data; teacher logits come from the cache.

1. Synthetic default, held-out subjects: tuning of the DKD and soft-KD hyper-parameters on the
   *validation* subjects (seed 0), then all methods x seeds scored on the test subjects, plus a
   cross-modal PPG-only student (scratch vs DKD from the PPG + accelerometer teacher).
2. IEEE SPC 2015, 5 subject folds: each fold's teacher from benchmarks/foundation.py
   (run that first), all methods x seeds on the fold's test subjects.

Writes ``benchmarks/results/distill.json`` and ``distill.md``.
Run: ``.venv/bin/python benchmarks/distill.py`` (about 40 min on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ppgedge import __version__
from ppgedge.data.format import Dataset
from ppgedge.data.splits import holdout, kfold
from ppgedge.distill.run import distill
from ppgedge.evaluate.predict import evaluate_checkpoint
from ppgedge.train.trainer import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
FOUNDATION = ROOT / "benchmarks" / "out" / "foundation"
RESULTS = ROOT / "benchmarks" / "results"
STUDENT = "resnet_small"
METHODS = ("scratch", "hard", "soft", "dkd", "feature", "progressive")


def run_one(
    method: str,
    teacher: Path,
    ds: Dataset,
    split,
    out: Path,
    cfg: TrainConfig,
    hparams: dict | None = None,
    cache: Path | None = None,
):
    t0 = time.perf_counter()
    if method == "scratch":
        ckpt = train(ds, split, out, cfg, device="cpu", restart=True)
    else:
        ckpt = distill(
            teacher,
            ds,
            split,
            cfg.arch,
            out,
            cfg,
            method=method,
            hparams=hparams,
            assistant="resnet_base",
            cache_dir=cache,
            device="cpu",
            restart=True,
        )
    idx = split.indices(ds.subject_names())["test"]
    test = evaluate_checkpoint(ckpt, ds, idx).report["overall"]["mae"]
    return {
        "method": method,
        "test_mae": test,
        "val_mae": ckpt.metrics["val_mae"],
        "parameters": ckpt.metrics["parameters"],
        "seconds": time.perf_counter() - t0,
    }


def stats(rows: list[dict], method: str) -> dict:
    v = np.array([r["test_mae"] for r in rows if r["method"] == method])
    return {
        "mean": float(v.mean()),
        "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
        "n": int(len(v)),
    }


def _synthetic_setup(args):
    ds = Dataset(FOUNDATION / "synthetic.ppgds")
    base = TrainConfig(arch=STUDENT, epochs=args.epochs, patience=args.epochs, augment=False)
    return ds, holdout(ds.subjects, seed=0), FOUNDATION / "teacher_synth.pt", base


def tune(args, work: Path) -> list[dict]:
    """Hyper-parameters chosen on validation subjects only (seed 0); the defaults in
    ppgedge.distill.run.DEFAULT_HPARAMS were set from this table."""
    ds, split, teacher, base = _synthetic_setup(args)
    tuning = []
    grids = (
        ("dkd", [{"temperature": t, "beta": b} for t in (2.0, 4.0) for b in (2.0, 8.0)]),
        ("soft", [{"temperature": t} for t in (1.0, 2.0, 4.0)]),
        ("hard", [{"weight": w} for w in (0.5, 0.8)]),
    )
    for method, grid in grids:
        for hp in grid:
            r = run_one(method, teacher, ds, split, work / "tune.pt", base, hp, args.cache)
            tuning.append({**r, "hparams": hp})
            print("tune", json.dumps(tuning[-1]), flush=True)
    return tuning


def logged_runs(paths: list[Path]) -> dict[tuple, dict]:
    """Runs a previous invocation printed (``tag {json}`` lines), keyed like :func:`once`."""
    done = {}
    for path in paths:
        for line in path.read_text().splitlines():
            tag, _, payload = line.partition(" ")
            if tag in ("synthetic", "cross-modal", "spc") and payload.startswith("{"):
                row = json.loads(payload)
                done[(tag, row["method"], row["seed"], row.get("fold"))] = row
    return done


def once(args, tag: str, method: str, seed: int, fold: str | None, fn) -> dict:
    """Run ``fn`` unless ``--resume-log`` already holds this run; print it either way."""
    key = (tag, method, seed, fold)
    row = args.done.get(key) or {**fn(), "seed": seed, **({"fold": fold} if fold else {})}
    print(tag, json.dumps(row), flush=True)
    return row


def synthetic(args, work: Path) -> dict:
    ds, split, teacher, base = _synthetic_setup(args)
    rows = []
    for seed in args.seeds:
        for method in METHODS:
            cfg = TrainConfig(**{**base.__dict__, "seed": seed})
            rows.append(
                once(
                    args,
                    "synthetic",
                    method,
                    seed,
                    None,
                    lambda m=method, c=cfg: run_one(
                        m, teacher, ds, split, work / f"syn_{m}.pt", c, cache=args.cache
                    ),
                )
            )
    cross = []
    for seed in args.seeds:
        for method in ("scratch", "dkd"):
            cfg = TrainConfig(**{**base.__dict__, "seed": seed, "channels": "ppg"})
            cross.append(
                once(
                    args,
                    "cross-modal",
                    method,
                    seed,
                    None,
                    lambda m=method, c=cfg: run_one(
                        m, teacher, ds, split, work / f"xm_{m}.pt", c, cache=args.cache
                    ),
                )
            )
    return {
        "rows": rows,
        "cross_modal": cross,
        "summary": {m: stats(rows, m) for m in METHODS},
        "cross_modal_summary": {m: stats(cross, m) for m in ("scratch", "dkd")},
    }


def spc(args, work: Path) -> dict:
    ds = Dataset(FOUNDATION / "spc.ppgds")
    folds = kfold(ds.subjects, 5, n_val=2, seed=0)
    rows = []
    methods = [m for m in METHODS if m != "progressive"]
    for fold in folds:
        teacher = FOUNDATION / f"spc_{fold.name}_{args.spc_teacher}.pt"
        for seed in args.seeds:
            for method in methods:
                cfg = TrainConfig(
                    arch=STUDENT, epochs=args.epochs, patience=args.epochs, augment=False, seed=seed
                )
                rows.append(
                    once(
                        args,
                        "spc",
                        method,
                        seed,
                        fold.name,
                        lambda m=method, c=cfg, t=teacher, f=fold: run_one(
                            m, t, ds, f, work / f"spc_{m}.pt", c, cache=args.cache
                        ),
                    )
                )
    # per seed: MAE over all folds' test windows is the mean of per-fold MAEs weighted by size;
    # report the plain mean over (fold, seed) runs and the per-seed fold means
    per_seed = {
        m: [
            float(np.mean([r["test_mae"] for r in rows if r["method"] == m and r["seed"] == s]))
            for s in args.seeds
        ]
        for m in methods
    }
    summary = {
        m: {
            "mean": float(np.mean(v)),
            "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
            "n": len(v),
        }
        for m, v in per_seed.items()
    }
    return {"rows": rows, "teacher": args.spc_teacher, "summary": summary}


def markdown(res: dict) -> str:
    lines = [
        "| dataset | method | test MAE (mean ± std over seeds) | vs scratch |",
        "| --- | --- | ---: | ---: |",
    ]
    for part, label in (("synthetic", "synthetic (held-out)"), ("spc2015", "SPC 2015 (5 folds)")):
        if part not in res:
            continue
        summ = res[part]["summary"]
        ref = summ["scratch"]["mean"]
        for m, s in summ.items():
            lines.append(
                f"| {label} | {m} | {s['mean']:.2f} ± {s['std']:.2f} | {s['mean'] / ref:.2f}x |"
            )
    if "synthetic" in res:
        cm = res["synthetic"]["cross_modal_summary"]
        ref = cm["scratch"]["mean"]
        for m, s in cm.items():
            lines.append(
                f"| synthetic, PPG-only student | {m} | {s['mean']:.2f} ± "
                f"{s['std']:.2f} | {s['mean'] / ref:.2f}x |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 2])
    parser.add_argument("--part", choices=["all", "tune", "synthetic", "spc"], default="all")
    parser.add_argument("--spc-teacher", choices=["ens", "ft", "scratch"], default="ens")
    parser.add_argument(
        "--resume-log",
        type=Path,
        action="append",
        default=[],
        help="reuse the runs a previous invocation printed to this log",
    )
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "distill")
    parser.add_argument("--cache", type=Path, default=ROOT / "benchmarks" / "out" / "cache")
    args = parser.parse_args()
    args.done = logged_runs(args.resume_log)
    if not (FOUNDATION / "teacher_synth.pt").exists():
        sys.exit("run benchmarks/foundation.py first: it trains the teachers used here")
    args.work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    out = RESULTS / "distill.json"
    res = json.loads(out.read_text()) if out.exists() else {}
    res.update(
        {
            "benchmark": "distill",
            "ppgedge": __version__,
            "student": STUDENT,
            "epochs": args.epochs,
            "seeds": args.seeds,
        }
    )
    RESULTS.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every part, so a crash later keeps what is done
        res["wall_seconds"] = round(time.perf_counter() - t0, 1)
        out.write_text(json.dumps(res, indent=2) + "\n")
        (RESULTS / "distill.md").write_text(markdown(res))

    if args.part == "tune":
        res["tuning"] = tune(args, args.work)
        save()
    if args.part in ("all", "synthetic"):
        res["synthetic"] = synthetic(args, args.work)
        save()
    if args.part in ("all", "spc") and (FOUNDATION / "spc.ppgds").exists():
        res["spc2015"] = spc(args, args.work)
        save()
    print(markdown(res))


if __name__ == "__main__":
    main()
