"""Validation evidence for the motion-robust training defaults (issue #16, part 2).

The main job's teacher (``[teacher]`` of ``ppgedge run``: resnet_medium, 20 epochs, patience 6,
32 Hz, 8 s windows, all channels) is trained under each configuration of

* data mix: the default synthetic sessions, or sessions with arm exercise, boxing and stairs
  (``synthesize(..., motion=True)``: the same subjects' physiology, other sessions);
* accelerometer-driven augmentation share ``motion_aug_p``: 0 (today) or 0.5,

for run seeds 0, 1, 2, with the main job's own seeded split of each seed. Every model is scored
on the VALIDATION subjects only, of both the default and the motion data (the same subject
names); test subjects are never touched here. The default ``ppgedge run`` keeps whatever wins
on the default validation subjects.

Writes ``benchmarks/results/motion_augment.json`` and ``.md``.
Run: ``.venv/bin/python benchmarks/motion_augment.py`` (about 15 min on 2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ppgedge.data.format import DataFormat, Dataset, resolve_channels, write_dataset
from ppgedge.data.splits import holdout
from ppgedge.data.synth import synthesize
from ppgedge.evaluate.predict import evaluate_checkpoint
from ppgedge.train.trainer import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
FMT = DataFormat(32.0, 8.0, 2.0, resolve_channels("all"))  # the main job's [data] defaults


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--probs", default="0,0.5")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--done", type=Path, help="rows (JSON lines) of an interrupted run to keep")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    probs = [float(p) for p in args.probs.split(",")]
    rows = []
    if args.done is not None:  # a row per line, as printed below
        rows = [json.loads(ln) for ln in args.done.read_text().splitlines() if ln.startswith("{")]
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            data = {}
            for mix in ("default", "motion"):
                path = Path(tmp) / f"{mix}{seed}.ppgds"
                write_dataset(synthesize(16, 10.0, seed, FMT, motion=mix == "motion"), path)
                data[mix] = Dataset(path)
            split = holdout(data["default"].subjects, seed=seed)
            for mix in ("default", "motion"):
                for p in probs:
                    if any(
                        (r["seed"], r["mix"], r["motion_aug_p"]) == (seed, mix, p) for r in rows
                    ):
                        continue
                    cfg = TrainConfig(
                        arch="resnet_medium", epochs=args.epochs, patience=6, seed=seed,
                        motion_aug_p=p,
                    )  # fmt: skip
                    t0 = time.perf_counter()
                    ckpt = train(data[mix], split, Path(tmp) / "m.pt", cfg, device="cpu")
                    row = {"seed": seed, "mix": mix, "motion_aug_p": p}
                    row["train_seconds"] = round(time.perf_counter() - t0, 1)
                    row["epochs_run"] = ckpt.metrics["epochs_run"]
                    for name, ds in data.items():
                        idx = split.indices(ds.subject_names())["val"]
                        rep = evaluate_checkpoint(ckpt, ds, idx).report
                        row[f"val_mae_{name}"] = float(rep["overall"]["mae"])
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    configs = sorted({(r["mix"], r["motion_aug_p"]) for r in rows})
    summary = []
    for mix, p in configs:
        sel = [r for r in rows if r["mix"] == mix and r["motion_aug_p"] == p]
        summary.append(
            {
                "mix": mix,
                "motion_aug_p": p,
                "val_mae_default": float(np.mean([r["val_mae_default"] for r in sel])),
                "val_mae_motion": float(np.mean([r["val_mae_motion"] for r in sel])),
            }
        )
    best = min(summary, key=lambda s: s["val_mae_default"])
    doc = {
        "schema": "ppgedge.bench.motion_augment/1",
        "date": time.strftime("%Y-%m-%d"),
        "cpus": 2,
        "threads": args.threads,
        "configurations_tried": len(configs),
        "seeds": seeds,
        "runs": rows,
        "summary": summary,
        "chosen_on_default_validation": best,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "motion_augment.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        "# Motion-robust training: validation subjects only (`benchmarks/motion_augment.py`)",
        "",
        f"{doc['date']}, 2 shared CPU cores, torch threads {args.threads}. Teacher of the main "
        f"job (resnet_medium, {args.epochs} epochs, patience 6) per data mix and augmentation "
        f"share, seeds {seeds}; MAE (BPM) on each seed's validation subjects of the default "
        "and of the motion synthetic data. Test subjects are not used.",
        "",
        "| seed | data mix | motion_aug_p | val MAE default | val MAE motion | epochs | s |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['seed']} | {r['mix']} | {r['motion_aug_p']:g} | {r['val_mae_default']:.2f} "
            f"| {r['val_mae_motion']:.2f} | {r['epochs_run']} | {r['train_seconds']:.0f} |"
        )
    lines += [
        "",
        "| data mix | motion_aug_p | mean val MAE default | mean val MAE motion |",
        "| --- | ---: | ---: | ---: |",
    ]
    for s in summary:
        lines.append(
            f"| {s['mix']} | {s['motion_aug_p']:g} | {s['val_mae_default']:.2f} "
            f"| {s['val_mae_motion']:.2f} |"
        )
    lines += [
        "",
        f"{len(configs)} configurations tried. Lowest mean validation MAE on the default data: "
        f"mix {best['mix']}, motion_aug_p {best['motion_aug_p']:g}.",
    ]
    (RESULTS / "motion_augment.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
