"""Compression benchmark: prune a distilled student to 50 % of its parameters, then int8 by QAT and
by PTQ, scored on held-out test subjects with the int8 model run in the TFLite Micro host runtime.

Student: ``resnet_small`` (56 k parameters) distilled with feature distillation (the strongest
method in benchmarks/results/distill.md), from benchmarks/distill.py's outputs where they exist
(synthetic seed 0; SPC fold 4), otherwise distilled here with the same settings.

Per dataset (synthetic held-out subjects; IEEE SPC 2015, 5 subject folds):
1. ``prune`` to 50 % of the parameters (L1, 4 steps, DKD fine-tuning from the fold's teacher);
2. ``qat`` of the pruned model (5 epochs, DKD from the teacher), converted to .tflite;
3. ``ptq`` of the same pruned model (512 training windows), converted to .tflite;
every model scored on the test subjects: PyTorch float for the student and the pruned model,
TFLite Micro (int8, the device's arithmetic) for QAT and PTQ. Wall time of each stage on this
machine is recorded (2 CPU cores; numbers are noisy when the machine is shared).

Writes ``benchmarks/results/compress.json`` and ``compress.md``.
Run: ``.venv/bin/python benchmarks/compress.py`` (about 20 min on 2 CPU cores; needs
benchmarks/foundation.py's outputs: datasets and teachers).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ppgedge import __version__
from ppgedge.compress.prune import prune
from ppgedge.compress.quantize import load_artifact, ptq, qat, to_tflite
from ppgedge.compress.runtimes import tflite_mae
from ppgedge.data.format import Dataset
from ppgedge.data.loader import WindowSource
from ppgedge.data.splits import Split, holdout, kfold
from ppgedge.distill.run import distill
from ppgedge.evaluate.predict import evaluate_checkpoint
from ppgedge.models.checkpoint import load_checkpoint
from ppgedge.train.trainer import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
FOUNDATION = ROOT / "benchmarks" / "out" / "foundation"
DISTILLED = ROOT / "benchmarks" / "out" / "distill"
RESULTS = ROOT / "benchmarks" / "results"
STUDENT = "resnet_small"
METHOD = "feature"


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t0, 1)


def student_for(ds: Dataset, split: Split, teacher: Path, reuse: Path, out: Path, epochs: int):
    """benchmarks/distill.py's student for this split when it is there, else distil one."""
    if reuse.is_file():
        ck = load_checkpoint(reuse)
        if (ck.training.get("split") or {}).get("test") == list(split.test):
            return reuse, 0.0
    cfg = TrainConfig(arch=STUDENT, epochs=epochs, patience=epochs, augment=False, seed=0)
    _, seconds = _timed(
        lambda: distill(teacher, ds, split, STUDENT, out, cfg, method=METHOD, device="cpu")
    )
    return out, seconds


def one_split(ds: Dataset, split: Split, teacher: Path, student: Path, work: Path, args) -> dict:
    """Prune -> QAT / PTQ -> TFLite Micro for one split; MAE on its test subjects."""
    test_idx = split.indices(ds.subject_names())["test"]
    base = load_checkpoint(student)
    src = WindowSource(
        ds, test_idx, base.data_format.channels, preprocessing=base.data_format.preprocessing
    )
    work.mkdir(parents=True, exist_ok=True)
    row: dict = {"split": split.name, "test_windows": int(len(test_idx))}
    row["student_mae"] = evaluate_checkpoint(base, ds, test_idx).report["overall"]["mae"]
    row["student_params"] = base.metrics["parameters"]

    pruned_path = work / f"{split.name}_pruned.pt"
    res, row["prune_s"] = _timed(
        lambda: prune(
            student,
            ds,
            split,
            pruned_path,
            "50%",
            criterion="l1",
            steps=4,
            teacher=teacher,
            method="dkd",
            device="cpu",
        )
    )
    pruned = res.checkpoint
    row["pruned_params"] = pruned.metrics["parameters"]
    row["pruned_mae"] = evaluate_checkpoint(pruned, ds, test_idx).report["overall"]["mae"]
    row["prune_delta"] = row["pruned_mae"] - row["student_mae"]
    row["prune_steps"] = res.steps

    for method in ("qat", "ptq"):
        out = work / f"{split.name}_{method}.int8.pt"
        if method == "qat":
            result, seconds = _timed(
                lambda o=out: qat(
                    pruned_path, ds, split, o, epochs=args.qat_epochs, teacher=teacher
                )
            )
        else:
            result, seconds = _timed(lambda o=out: ptq(pruned_path, ds, o, n_windows=512))
        row[f"{method}_s"] = seconds
        tfl = out.with_suffix(".tflite")
        _, row[f"{method}_convert_s"] = _timed(lambda o=out, t=tfl: to_tflite(load_artifact(o), t))
        decoder = result.artifact.decode
        (mae, row[f"{method}_tflm_eval_s"]) = _timed(lambda t=tfl, d=decoder: tflite_mae(t, src, d))
        row[f"{method}_tflm_mae"] = mae
        row[f"{method}_gap"] = mae - row["pruned_mae"]
        row[f"{method}_tflite_bytes"] = tfl.stat().st_size
    print("row", json.dumps({k: v for k, v in row.items() if k != "prune_steps"}), flush=True)
    return row


def summarise(rows: list[dict]) -> dict:
    """Window-weighted means over splits (the MAE over all test windows of all folds)."""
    w = np.array([r["test_windows"] for r in rows], float)
    keys = ("student_mae", "pruned_mae", "qat_tflm_mae", "ptq_tflm_mae")
    out = {k: float(np.average([r[k] for r in rows], weights=w)) for k in keys}
    out["prune_delta"] = out["pruned_mae"] - out["student_mae"]
    out["qat_gap"] = out["qat_tflm_mae"] - out["pruned_mae"]
    out["ptq_gap"] = out["ptq_tflm_mae"] - out["pruned_mae"]
    for k in ("prune_s", "qat_s", "ptq_s", "qat_convert_s", "qat_tflm_eval_s"):
        out[f"mean_{k}"] = float(np.mean([r[k] for r in rows]))
    out["param_ratio"] = float(np.mean([r["pruned_params"] / r["student_params"] for r in rows]))
    return out


def markdown(res: dict) -> str:
    lines = [
        "# Compression benchmark",
        "",
        f"ppgedge {res['version']}, {res['date']}, CPU ({res['threads']} threads). Student "
        f"`{STUDENT}` distilled with `{METHOD}`; pruned to 50 % of its parameters (L1, 4 steps, "
        "DKD fine-tuning); int8 MAE measured in the TFLite Micro host runtime on test subjects.",
        "Gaps are against the pruned float model (the input of QAT and PTQ).",
        "",
        "| data | split | params | student MAE | pruned MAE | prune Δ | QAT int8 MAE | QAT gap "
        "| PTQ int8 MAE | PTQ gap | prune s | QAT s | PTQ s | convert s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for part, body in res["parts"].items():
        for r in body["rows"]:
            lines.append(
                f"| {part} | {r['split']} | {r['student_params']:,} → {r['pruned_params']:,} "
                f"| {r['student_mae']:.2f} | {r['pruned_mae']:.2f} | {r['prune_delta']:+.2f} "
                f"| {r['qat_tflm_mae']:.2f} | {r['qat_gap']:+.2f} | {r['ptq_tflm_mae']:.2f} "
                f"| {r['ptq_gap']:+.2f} | {r['prune_s']:.0f} | {r['qat_s']:.0f} "
                f"| {r['ptq_s']:.0f} | {r['qat_convert_s']:.1f} |"
            )
        s = body["summary"]
        lines.append(
            f"| **{part}** | all | ×{s['param_ratio']:.2f} | {s['student_mae']:.2f} "
            f"| {s['pruned_mae']:.2f} | **{s['prune_delta']:+.2f}** | {s['qat_tflm_mae']:.2f} "
            f"| **{s['qat_gap']:+.2f}** | {s['ptq_tflm_mae']:.2f} | **{s['ptq_gap']:+.2f}** "
            f"| {s['mean_prune_s']:.0f} | {s['mean_qat_s']:.0f} | {s['mean_ptq_s']:.0f} "
            f"| {s['mean_qat_convert_s']:.1f} |"
        )
    lines += ["", "Targets: prune Δ ≤ +0.3 BPM; QAT int8 within 0.2 BPM of float.", ""]
    for part, body in res["parts"].items():
        s = body["summary"]
        lines.append(
            f"- {part}: prune {'met' if s['prune_delta'] <= 0.3 else 'MISSED'} "
            f"({s['prune_delta']:+.2f}); QAT {'met' if abs(s['qat_gap']) <= 0.2 else 'MISSED'} "
            f"({s['qat_gap']:+.2f}); PTQ gap {s['ptq_gap']:+.2f}"
            + (
                f"; students distilled here: {body['distilled_here_s']:.0f} s"
                if body.get("distilled_here_s")
                else ""
            )
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["all", "synthetic", "spc"], default="all")
    parser.add_argument("--folds", default="0,1,2,3,4", help="SPC folds to run")
    parser.add_argument("--epochs", type=int, default=20, help="distillation epochs if needed")
    parser.add_argument("--qat-epochs", type=int, default=5)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "compress")
    args = parser.parse_args()
    import torch

    args.work.mkdir(parents=True, exist_ok=True)
    res = {
        "version": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "threads": torch.get_num_threads(),
        "parts": {},
    }
    if not (FOUNDATION / "synthetic.ppgds").exists():
        print("run benchmarks/foundation.py first", file=sys.stderr)
        return 2
    if args.part in ("all", "synthetic"):
        ds = Dataset(FOUNDATION / "synthetic.ppgds")
        split = holdout(ds.subjects, seed=0)
        teacher = FOUNDATION / "teacher_synth.pt"
        student, took = student_for(
            ds,
            split,
            teacher,
            DISTILLED / f"syn_{METHOD}_0.pt",
            args.work / "syn_student.pt",
            args.epochs,
        )
        rows = [one_split(ds, split, teacher, student, args.work / "syn", args)]
        res["parts"]["synthetic"] = {
            "rows": rows,
            "summary": summarise(rows),
            "distilled_here_s": took,
        }
    if args.part in ("all", "spc") and (FOUNDATION / "spc.ppgds").exists():
        ds = Dataset(FOUNDATION / "spc.ppgds")
        folds = kfold(ds.subjects, 5, n_val=2, seed=0)
        rows, took_all = [], 0.0
        for i in [int(f) for f in args.folds.split(",")]:
            fold = folds[i]
            teacher = FOUNDATION / f"spc_{fold.name}_ens.pt"
            student, took = student_for(
                ds,
                fold,
                teacher,
                DISTILLED / f"spc_{METHOD}.pt",
                args.work / f"spc_{fold.name}_student.pt",
                args.epochs,
            )
            took_all += took
            rows.append(one_split(ds, fold, teacher, student, args.work / "spc", args))
        res["parts"]["spc2015"] = {
            "rows": rows,
            "summary": summarise(rows),
            "distilled_here_s": took_all,
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "compress.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    (RESULTS / "compress.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
