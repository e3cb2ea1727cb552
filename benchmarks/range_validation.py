"""Could sped-up validation windows choose between pruned models? (issue #16, a diagnostic)

Fold 4's test subjects reach heart rates above any in its training and validation pool, and
its pruned models lose most there; validation subjects cannot show it. One candidate remedy
is to read the validation subjects at higher heart rates too: every validation window with a
successor, sped up by a fixed factor (ppgedge.train.time_stretch.sped_up: the window and the
next one joined, a centred crop resampled, label x factor). This scores the prune stage's
candidates of existing fold-4 run folders (L1 fine-tuned, Taylor, rebuilt) that way and
beside their test MAE, to see whether the sped-up validation orders them as the test does.
Validation-only windows drive nothing here; the test column is what such a criterion would
have had to predict.

Writes ``benchmarks/results/range_validation.{json,md}``. Run after benchmarks/motion.py has
made the folders: ``.venv/bin/python benchmarks/range_validation.py fold4_longtune
fold4_taylor fold4_rebuild`` (inference only, about a minute).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from motion import OUT, _split, run_dataset, write_results

from ppgedge import __version__
from ppgedge.data.loader import WindowSource
from ppgedge.models.bpm import decode
from ppgedge.models.checkpoint import load_checkpoint
from ppgedge.train.time_stretch import sped_up

FACTORS = (1.125, 1.25)
CANDIDATES = {
    "student": "distill/student.pt",
    "pruned (kept)": "prune/pruned.pt",
    "pruned (other)": "prune/pruned.alternative.pt",
}


def _mae(model: torch.nn.Module, decoder: str, x: torch.Tensor, y: np.ndarray) -> float:
    with torch.no_grad():
        return float(np.mean(np.abs(decode(model(x), decoder).numpy() - y)))


def score_folder(run: Path) -> dict[str, Any]:
    teacher = load_checkpoint(run / "teacher" / "teacher.pt")
    split = _split(teacher)
    ds = run_dataset(run, teacher)
    parts = split.indices(ds.subject_names())
    prune_cfg = json.loads((run / "manifest.json").read_text())["stages"]["prune"]["params"]
    rows = {}
    for name, rel in CANDIDATES.items():
        if not (run / rel).is_file():
            continue
        ck = load_checkpoint(run / rel)
        model = ck.build().eval()
        val = WindowSource(ds, parts["val"], ck.data_format.channels)
        test = WindowSource(ds, parts["test"], ck.data_format.channels)
        row = {
            "val": _mae(model, ck.decode, torch.from_numpy(val.windows(np.arange(len(val)))),
                        val.y),
            "test": _mae(model, ck.decode, torch.from_numpy(test.windows(np.arange(len(test)))),
                         test.y),
        }  # fmt: skip
        for f in FACTORS:
            _, x, y = sped_up(val, f)
            row[f"val x{f}"] = _mae(model, ck.decode, x, y.numpy())
        rows[name] = row
    return {
        "criterion": prune_cfg.get("criterion", "l1"),
        "rebuild": bool(prune_cfg.get("rebuild", False)),
        "val_subjects": list(split.val),
        "val_max_bpm": float(np.max(ds.y[parts["val"]])),
        "train_max_bpm": float(np.max(ds.y[parts["train"]])),
        "test_max_bpm": float(np.max(ds.y[parts["test"]])),
        "models": rows,
    }


def markdown(doc: dict[str, Any]) -> str:
    cols = ["val", *(f"val x{f}" for f in FACTORS), "test"]
    lines = [
        "# Sped-up validation as a criterion for pruned models (issue #16, diagnostic)",
        "",
        f"ppgedge {doc['ppgedge']}, {doc['date']}. Per-window MAE in BPM with each model's own "
        "decoder (float). `val xF`: every validation window with a successor sped up by F "
        "(labels x F). The test column is what the criterion would have to predict.",
        "",
        "| run | criterion | model | " + " | ".join(cols) + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    for run, r in doc["runs"].items():
        for name, m in r["models"].items():
            crit = r["criterion"] + (" + rebuild" if r["rebuild"] else "")
            vals = " | ".join(f"{m[c]:.2f}" for c in cols)
            lines.append(f"| {run} | {crit} | {name} | {vals} |")
    first = next(iter(doc["runs"].values()), None)
    if first:
        lines += [
            "",
            f"Heart-rate ceilings: training {first['train_max_bpm']:.0f}, validation "
            f"{first['val_max_bpm']:.0f} ({', '.join(first['val_subjects'])}), test "
            f"{first['test_max_bpm']:.0f} BPM.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run folder names under benchmarks/out/motion")
    args = ap.parse_args()
    torch.set_num_threads(1)
    doc = {
        "schema": "ppgedge.benchmark.range_validation/1",
        "ppgedge": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "factors": list(FACTORS),
        "runs": {name: score_folder(OUT / name) for name in args.runs},
    }
    write_results("range_validation", doc, markdown(doc))


if __name__ == "__main__":
    main()
