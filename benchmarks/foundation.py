"""Foundation benchmark: the spectral baseline and the teacher, per activity, on held-out subjects.

1. Synthetic default (16 subjects x 10 min, seed 0): seeded held-out split (train / val / test
   subjects), teacher trained from scratch.
2. IEEE SPC 2015 (../shared/data/ieee-spc2015, 20 subjects): subject k-fold; in each fold the
   teacher is the synthetic teacher fine-tuned on the fold's training subjects (synthetic
   pre-training then fine-tuning) and, beside it, the same network trained from scratch.
   Skipped with a message when the data is absent.

Writes ``benchmarks/results/foundation.json`` and ``foundation.md`` (the README's table).
Run: ``.venv/bin/python benchmarks/foundation.py`` (about 30-40 min on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ppgedge import __version__
from ppgedge.data.format import DataFormat, Dataset, write_dataset
from ppgedge.data.importers import import_dataset
from ppgedge.data.splits import holdout, kfold
from ppgedge.data.synth import synthesize
from ppgedge.evaluate.metrics import full_report
from ppgedge.evaluate.predict import evaluate_checkpoint, evaluate_spectral
from ppgedge.train.trainer import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
SPC = ROOT.parent / "shared" / "data" / "ieee-spc2015"
RESULTS = ROOT / "benchmarks" / "results"


def _mae_by_activity(report: dict) -> dict[str, float]:
    return {a: round(v["mae"], 2) for a, v in report["per_activity"].items()} | {
        "all": round(report["overall"]["mae"], 2)
    }


def synthetic(work: Path, args: argparse.Namespace) -> dict:
    data = work / "synthetic.ppgds"
    write_dataset(synthesize(16, 10.0, 0, DataFormat()), data)
    ds = Dataset(data)
    split = holdout(ds.subjects, seed=0)
    idx = split.indices(ds.subject_names())["test"]
    t0 = time.perf_counter()
    ckpt = train(
        ds,
        split,
        work / "teacher_synth.pt",
        TrainConfig(arch=args.teacher, epochs=args.epochs, patience=args.patience),
        device=args.device,
    )
    seconds = time.perf_counter() - t0
    spectral = evaluate_spectral(ds, idx).report
    teacher = evaluate_checkpoint(ckpt, ds, idx).report
    return {
        "split": split.to_dict(),
        "n_test_windows": int(len(idx)),
        "teacher": {
            "arch": args.teacher,
            "parameters": ckpt.metrics["parameters"],
            "train_seconds": round(seconds, 1),
            "decode": ckpt.decode,
        },
        "spectral_mae": _mae_by_activity(spectral),
        "teacher_mae": _mae_by_activity(teacher),
        "spectral_run_over_rest": round(
            spectral["per_activity"]["run"]["mae"] / spectral["per_activity"]["rest"]["mae"], 2
        ),
    }


def spc2015(work: Path, args: argparse.Namespace, pretrained: Path) -> dict:
    data = work / "spc.ppgds"
    write_dataset(import_dataset("spc2015", SPC, DataFormat()), data)
    ds = Dataset(data)
    folds = kfold(ds.subjects, args.folds, n_val=2, seed=0)
    preds: dict[str, list[np.ndarray]] = {"spectral": [], "fine-tuned": [], "scratch": []}
    idx_all: list[np.ndarray] = []
    per_fold = []
    for fold in folds:
        idx = fold.indices(ds.subject_names())["test"]
        idx_all.append(idx)
        cfg = TrainConfig(
            arch=args.teacher, epochs=args.epochs, patience=args.patience, lr=args.lr_finetune
        )
        t0 = time.perf_counter()
        tuned = train(
            ds, fold, work / f"spc_{fold.name}_ft.pt", cfg, init_from=pretrained, device=args.device
        )
        t_ft = time.perf_counter() - t0
        scratch = train(
            ds,
            fold,
            work / f"spc_{fold.name}_scratch.pt",
            TrainConfig(arch=args.teacher, epochs=args.epochs, patience=args.patience),
            device=args.device,
        )
        e_ft = evaluate_checkpoint(tuned, ds, idx)
        e_sc = evaluate_checkpoint(scratch, ds, idx)
        e_sp = evaluate_spectral(ds, idx)
        preds["fine-tuned"].append(e_ft.pred)
        preds["scratch"].append(e_sc.pred)
        preds["spectral"].append(e_sp.pred)
        per_fold.append(
            {
                "fold": fold.name,
                "test": list(fold.test),
                "fine_tuned_mae": round(e_ft.report["overall"]["mae"], 2),
                "scratch_mae": round(e_sc.report["overall"]["mae"], 2),
                "spectral_mae": round(e_sp.report["overall"]["mae"], 2),
                "fine_tune_seconds": round(t_ft, 1),
            }
        )
        print(json.dumps(per_fold[-1]), flush=True)
    idx = np.concatenate(idx_all)
    true = np.asarray(ds.y[idx])
    reports = {
        k: full_report(np.concatenate(v), true, ds.subject_names(idx), ds.activity_names(idx))
        for k, v in preds.items()
    }
    return {
        "folds": per_fold,
        "n_windows": int(len(idx)),
        "spectral_mae": _mae_by_activity(reports["spectral"]),
        "teacher_mae": _mae_by_activity(reports["fine-tuned"]),
        "scratch_mae": _mae_by_activity(reports["scratch"]),
        "per_subject_teacher_mae": {
            s: round(v["mae"], 2) for s, v in reports["fine-tuned"]["per_subject"].items()
        },
    }


def markdown(res: dict) -> str:
    lines = [
        "| dataset | activity | windows | spectral baseline MAE | teacher MAE |"
        " teacher from scratch MAE |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    syn = res["synthetic"]
    for act, mae in syn["spectral_mae"].items():
        lines.append(
            f"| synthetic (held-out) | {act} | | {mae:.2f} | "
            f"{syn['teacher_mae'][act]:.2f} | (same) |"
        )
    spc = res.get("spc2015")
    if spc:
        for act, mae in spc["spectral_mae"].items():
            lines.append(
                f"| SPC 2015 ({len(spc['folds'])}-fold by subject) | {act} | | "
                f"{mae:.2f} | {spc['teacher_mae'][act]:.2f} | "
                f"{spc['scratch_mae'][act]:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="resnet_teacher")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--lr-finetune", type=float, default=1e-3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "foundation")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    res: dict = {
        "benchmark": "foundation",
        "ppgedge": __version__,
        "torch": torch.__version__,
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, "
        f"{'cuda' if torch.cuda.is_available() else 'cpu'}",
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    res["synthetic"] = synthetic(args.work, args)
    print(json.dumps(res["synthetic"]), flush=True)
    if SPC.exists():
        res["spc2015"] = spc2015(args.work, args, args.work / "teacher_synth.pt")
    else:
        print(f"SPC 2015 not found at {SPC}: skipped", file=sys.stderr)
    res["wall_seconds"] = round(time.perf_counter() - t0, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "foundation.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / "foundation.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
