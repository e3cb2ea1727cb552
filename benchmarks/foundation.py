"""Foundation benchmark: the spectral baseline and the teacher, per activity, on held-out subjects.

1. Synthetic default (16 subjects x 10 min, seed 0): seeded held-out split (train / val / test
   subjects), teacher trained from scratch.
2. IEEE SPC 2015 (../shared/data/ieee-spc2015, 20 subjects): subject k-fold; in each fold three
   networks of the teacher's architecture are trained on the fold's training subjects: the
   synthetic teacher fine-tuned (synthetic pre-training then fine-tuning) and two from scratch
   (seeds 0 and 1). Nested protocol: each fold's teacher is the subset of those members
   (averaged with ``ppgedge.models.ensemble``: mean of the probability vectors) and the decoder
   with the lowest MAE on the fold's validation subjects, which also stop training; the fold's
   test subjects are scored once, after every choice. The members are reported beside it, and
   ``configs_evaluated_on_test`` counts every configuration scored on test. Skipped with a
   message when the data is absent.

``--reuse`` loads models a previous run left in ``--work`` instead of training them again.

Writes ``benchmarks/results/<--name>.json`` and ``.md`` (default ``foundation``).
Run: ``.venv/bin/python benchmarks/foundation.py`` (about 30-40 min on 2 quiet CPU cores);
the nested figure in the docs: ``--teacher resnet_base --epochs 10 --patience 4 --threads 1
--name foundation_nested --work benchmarks/out/foundation_nested`` (about 30 min).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import torch

from ppgedge import __version__
from ppgedge.data.format import DataFormat, Dataset, write_dataset
from ppgedge.data.importers import import_dataset
from ppgedge.data.splits import holdout, kfold
from ppgedge.data.synth import synthesize
from ppgedge.evaluate.metrics import full_report
from ppgedge.evaluate.predict import choose_decoder, evaluate_checkpoint, evaluate_spectral
from ppgedge.models.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from ppgedge.models.ensemble import ensemble_checkpoint
from ppgedge.train.trainer import TrainConfig, train


def train_or_reuse(args: argparse.Namespace, out: Path, *a, **kw):
    """Train, or with --reuse load the model an earlier run wrote to ``out``."""
    if args.reuse and out.exists():
        return load_checkpoint(out)
    return train(*a[:2], out, *a[2:], **kw)


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
    ckpt = train_or_reuse(
        args,
        work / "teacher_synth.pt",
        ds,
        split,
        TrainConfig(arch=args.teacher, epochs=args.epochs, patience=args.patience),
        device=args.device,
    )
    spectral = evaluate_spectral(ds, idx).report
    teacher = evaluate_checkpoint(ckpt, ds, idx).report
    return {
        "split": split.to_dict(),
        "n_test_windows": int(len(idx)),
        "teacher": {
            "arch": args.teacher,
            "parameters": ckpt.metrics["parameters"],
            "train_seconds": round(ckpt.metrics["train_seconds_this_session"], 1),
            "decode": ckpt.decode,
        },
        "spectral_mae": _mae_by_activity(spectral),
        "teacher_mae": _mae_by_activity(teacher),
        "spectral_run_over_rest": round(
            spectral["per_activity"]["run"]["mae"] / spectral["per_activity"]["rest"]["mae"], 2
        ),
    }


MEMBERS = ("fine-tuned", "scratch", "scratch seed 1")


def _candidates(paths: dict[str, Path]) -> list[tuple[str, ...]]:
    """Every non-empty subset of the members, in a fixed order (fewer members first)."""
    names = list(paths)
    return [c for r in range(1, len(names) + 1) for c in combinations(names, r)]


def select_teacher(paths: dict[str, Path], ds: Dataset) -> tuple[Checkpoint, dict]:
    """The fold's teacher, chosen on its validation subjects only (nested protocol).

    The rule was fixed before any score was seen: every non-empty subset of the members is
    averaged (the one ensembling method, mean of probabilities), each with the decoder that is
    best on validation; the lowest validation MAE wins, ties go to the smaller subset. Test
    subjects are not read here.
    """
    val_mae: dict[str, float] = {}
    best: tuple[float, tuple[str, ...], Checkpoint] | None = None
    for cand in _candidates(paths):
        if len(cand) == 1:
            ckpt = load_checkpoint(paths[cand[0]])
        else:
            ckpt = ensemble_checkpoint([paths[m] for m in cand])
        ckpt.decode, maes = choose_decoder(ckpt, ds)
        ckpt.metrics["val_mae_by_decoder"] = maes
        key = " + ".join(cand)
        val_mae[key] = round(maes[ckpt.decode], 3)
        if best is None or maes[ckpt.decode] < best[0] - 1e-9:
            best = (maes[ckpt.decode], cand, ckpt)
    assert best is not None
    _, cand, ckpt = best
    return ckpt, {
        "members": list(cand),
        "decode": ckpt.decode,
        "val_mae": round(best[0], 3),
        "val_mae_by_candidate": val_mae,
        "candidates_on_validation": len(val_mae),
    }


def spc2015(work: Path, args: argparse.Namespace, pretrained: Path) -> dict:
    """Nested subject k-fold: members, ensemble and decoder chosen on each fold's validation
    subjects; each fold's test subjects are scored once, after every choice is made."""
    data = work / "spc.ppgds"
    write_dataset(import_dataset("spc2015", SPC, DataFormat()), data)
    ds = Dataset(data)
    folds = kfold(ds.subjects, args.folds, n_val=2, seed=0)
    preds: dict[str, list[np.ndarray]] = {k: [] for k in ("spectral", *MEMBERS, "teacher")}
    idx_all: list[np.ndarray] = []
    per_fold = []
    for fold in folds:
        configs = {
            "fine-tuned": TrainConfig(
                arch=args.teacher, epochs=args.epochs, patience=args.patience, lr=args.lr_finetune
            ),
            "scratch": TrainConfig(arch=args.teacher, epochs=args.epochs, patience=args.patience),
            "scratch seed 1": TrainConfig(
                arch=args.teacher, epochs=args.epochs, patience=args.patience, seed=1
            ),
        }
        suffix = {"fine-tuned": "ft", "scratch": "scratch", "scratch seed 1": "scratch_seed1"}
        paths = {m: work / f"spc_{fold.name}_{suffix[m]}.pt" for m in MEMBERS}
        members = {
            m: train_or_reuse(
                args,
                paths[m],
                ds,
                fold,
                configs[m],
                device=args.device,
                **({"init_from": pretrained} if m == "fine-tuned" else {}),
            )
            for m in MEMBERS
        }
        # Every choice is made above and here, on validation subjects; test is read below.
        teacher, chosen = select_teacher(paths, ds)
        save_checkpoint(teacher, work / f"spc_{fold.name}_ens.pt")
        idx = fold.indices(ds.subject_names())["test"]
        idx_all.append(idx)
        evals = {m: evaluate_checkpoint(members[m], ds, idx) for m in MEMBERS}
        evals["teacher"] = evaluate_checkpoint(teacher, ds, idx)
        evals["spectral"] = evaluate_spectral(ds, idx)
        for k, e in evals.items():
            preds[k].append(e.pred)
        per_fold.append(
            {
                "fold": fold.name,
                "val": list(fold.val),
                "test": list(fold.test),
                "teacher_chosen_on_validation": chosen,
                **{f"{k}_test_mae": round(e.report["overall"]["mae"], 2) for k, e in evals.items()},
                "member_val_mae": {m: round(members[m].metrics["val_mae"], 3) for m in MEMBERS},
                "member_best_epoch": {m: members[m].metrics["best_epoch"] for m in MEMBERS},
                "member_train_seconds": {
                    m: round(members[m].metrics["train_seconds_this_session"], 1) for m in MEMBERS
                },
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
        "protocol": "nested subject k-fold: in each fold the members (early stopping), the "
        "member subset, the ensembling and the decoder are chosen on the fold's validation "
        "subjects; test subjects are scored once per reported configuration",
        "folds": per_fold,
        "n_windows": int(len(idx)),
        "teacher": "per fold, the subset of {pre-trained + fine-tuned, from scratch, from scratch "
        "seed 1} (mean of probabilities) with the lowest validation MAE",
        # Scored on test: the spectral baseline, the three members and the chosen teacher.
        "configs_evaluated_on_test": len(preds),
        "candidates_on_validation_per_fold": len(_candidates(paths)),
        "spectral_mae": _mae_by_activity(reports["spectral"]),
        "teacher_mae": _mae_by_activity(reports["teacher"]),
        "fine_tuned_mae": _mae_by_activity(reports["fine-tuned"]),
        "scratch_mae": _mae_by_activity(reports["scratch"]),
        "scratch_seed1_mae": _mae_by_activity(reports["scratch seed 1"]),
        "teacher_over_spectral": round(
            reports["teacher"]["overall"]["mae"] / reports["spectral"]["overall"]["mae"], 3
        ),
        "per_subject_teacher_mae": {
            s: round(v["mae"], 2) for s, v in reports["teacher"]["per_subject"].items()
        },
    }


def markdown(res: dict) -> str:
    lines = [
        "| dataset | activity | spectral baseline MAE | teacher MAE |"
        " member: pre-trained + fine-tuned | member: from scratch | member: from scratch, seed 1 |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    syn = res["synthetic"]
    for act, mae in syn["spectral_mae"].items():
        lines.append(
            f"| synthetic (held-out) | {act} | {mae:.2f} | {syn['teacher_mae'][act]:.2f} | | | |"
        )
    spc = res.get("spc2015")
    if spc:
        for act, mae in spc["spectral_mae"].items():
            lines.append(
                f"| SPC 2015 ({len(spc['folds'])}-fold by subject) | {act} | "
                f"{mae:.2f} | {spc['teacher_mae'][act]:.2f} | "
                f"{spc['fine_tuned_mae'][act]:.2f} | {spc['scratch_mae'][act]:.2f} | "
                f"{spc['scratch_seed1_mae'][act]:.2f} |"
            )
        lines += [
            "",
            f"SPC 2015 teacher, nested protocol: {spc['teacher_mae']['all']:.2f} BPM pooled, "
            f"{spc['teacher_over_spectral']:.3f}x the spectral baseline. Per fold "
            f"{spc['candidates_on_validation_per_fold']} member subsets were compared on "
            "validation subjects only; configurations evaluated on test: "
            f"{spc['configs_evaluated_on_test']} (spectral baseline, three members, the chosen "
            "teacher), each scored once.",
            "",
            "| fold | teacher chosen on validation | decoder | val MAE | test MAE |",
            "| --- | --- | --- | ---: | ---: |",
        ]
        for f in spc["folds"]:
            c = f["teacher_chosen_on_validation"]
            lines.append(
                f"| {f['fold']} | {' + '.join(c['members'])} | {c['decode']} | "
                f"{c['val_mae']:.2f} | {f['teacher_test_mae']:.2f} |"
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
    parser.add_argument("--reuse", action="store_true", help="load models left in --work")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "foundation")
    parser.add_argument("--name", default="foundation", help="results file stem")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
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
    (RESULTS / f"{args.name}.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
