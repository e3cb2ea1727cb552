"""Per-user calibration curve (issue #16, part 3): MAE vs calibration minutes N = 0, 1, 2, 5.

Two int8 models, each a resnet_small (the main job's student architecture) trained from scratch
(TrainConfig defaults, 20 epochs, patience 6, seed 0), post-training quantised on 512 training
windows and converted to a full-int8 .tflite; all MAEs are TensorFlow Lite Micro int8:

* ``spc2015``: trained on the 12 IEEE SPC 2015 treadmill subjects (2 of them, seeded, for
  validation), personalised on the 8 arm-exercise / boxing test subjects;
* ``synthetic``: the main job's data (16 subjects x 10 min, seed 0, 32 Hz, 8 s windows) and
  its seeded split, personalised on its test subjects.

Per held-out subject the evaluation windows are fixed: those that start after the largest N
the subject's data allows (at least 1 min left to score), so every N of a subject is scored on
the same windows; N = 0 is the deployed model. The bias fit's two knobs (the shape of the change:
linear, quadratic or free; ``l2``, the pull towards the deployed bias) are chosen per model on
its VALIDATION subjects (mean MAE over N = 1, 2, 5 where possible); test subjects are then
scored once, with that choice.

Writes ``benchmarks/results/personalize.json`` and ``.md``.
Run: ``.venv/bin/python benchmarks/personalize.py [--work DIR]`` (about 15 min on 2 shared
cores; ``--work`` keeps the data and models for a rerun).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ppgedge.compress import quantize as Q
from ppgedge.compress.bias_calibration import (
    fc_inputs,
    final_layer,
    fit_bias,
    quantize_bias,
    with_bias,
)
from ppgedge.compress.runtimes import predict_logits
from ppgedge.data.format import DataFormat, Dataset, resolve_channels, write_dataset
from ppgedge.data.importers import import_dataset
from ppgedge.data.loader import WindowSource
from ppgedge.data.splits import Split, holdout
from ppgedge.data.synth import synthesize
from ppgedge.errors import PpgedgeError
from ppgedge.evaluate.metrics import error_summary
from ppgedge.export.personalize import subject_windows
from ppgedge.models.bpm import decode
from ppgedge.models.checkpoint import load_checkpoint
from ppgedge.train.trainer import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SPC = ROOT.parent / "shared" / "data" / "ieee-spc2015"
FMT = DataFormat(32.0, 8.0, 2.0, resolve_channels("all"))
MINUTES = (0, 1, 2, 5)
L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)
BASIS_GRID = ("linear", "quadratic", "free")
CONFIGS = [(b, l2) for b in BASIS_GRID for l2 in L2_GRID]
MIN_REST_MIN = 1.0


def _model(ds: Dataset, split: Split, work: Path) -> tuple[Path, str]:
    """Train, quantise and convert once; a kept work folder (``--work``) is reused."""
    tfl = work / "m.tflite"
    if not tfl.is_file():
        cfg = TrainConfig(arch="resnet_small", epochs=20, patience=6, seed=0)
        train(ds, split, work / "m.pt", cfg, device="cpu")
        res = Q.ptq(work / "m.pt", ds, work / "m.int8.pt", n_windows=512)
        Q.to_tflite(res.path, tfl)
    return tfl, load_checkpoint(work / "m.pt").decode


def _mae(tfl: Path, x: np.ndarray, y: np.ndarray, decoder: str) -> float:
    logits = torch.from_numpy(predict_logits(tfl, x, "tflm"))
    return float(error_summary(decode(logits, decoder).numpy(), y)["mae"])


def _subject(ds: Dataset, subject: str) -> dict:
    """The subject's windows in order, the feasible N and the fixed evaluation windows."""
    # the largest N that still leaves MIN_REST_MIN to score
    total = max((m for m in MINUTES if m > 0 and _feasible(ds, subject, m)), default=0)
    if total:
        _, rest = subject_windows(ds, subject, total, FMT.window_s)
    else:
        rest = np.flatnonzero(ds.subject_names() == subject)
    ns = [m for m in MINUTES if m <= total]
    return {"rest": rest, "ns": ns}


def _feasible(ds: Dataset, subject: str, minutes: float) -> bool:
    """Whether ``minutes`` of calibration leave at least MIN_REST_MIN of the subject to score."""
    try:
        _, rest = subject_windows(ds, subject, minutes, ds.fmt.window_s)
    except PpgedgeError:  # fewer windows than N minutes
        return False
    return len(rest) * ds.fmt.hop_s >= 60.0 * MIN_REST_MIN


def _key(basis: str, l2: float) -> str:
    return f"{basis}|{l2:g}"


def _curve(ds, tfl, decoder, subject, configs, work: Path) -> dict:
    """MAE per N and per (basis, l2) on the subject's fixed evaluation windows."""
    layer = final_layer(tfl)
    info = _subject(ds, subject)
    src = WindowSource(ds, info["rest"], FMT.channels)
    x_rest, y_rest = src.windows(np.arange(len(src))), src.y
    out: dict = {
        "evaluation_windows": int(len(src)),
        "mae": {"0": _mae(tfl, x_rest, y_rest, decoder)},
    }
    data = tfl.read_bytes()
    end = layer.bias_offset + 4 * layer.bias.size
    for n in info["ns"][1:]:
        cal, _ = subject_windows(ds, subject, n, FMT.window_s)
        cs = WindowSource(ds, cal, FMT.channels)
        feats = fc_inputs(tfl, layer, cs.windows(np.arange(len(cs))))
        for basis, l2 in configs:
            bias = fit_bias(layer, feats, cs.y, l2=l2, basis=basis)
            new, offsets = with_bias(data, layer, quantize_bias(layer, bias))
            assert all(layer.bias_offset <= o < end for o in offsets)
            p = work / "p.tflite"
            p.write_bytes(new)
            k = _key(basis, l2)
            out["mae"].setdefault(str(n), {})[k] = _mae(p, x_rest, y_rest, decoder)
            out.setdefault("bytes_changed", {}).setdefault(str(n), {})[k] = len(offsets)
    return out


def _one_model(name: str, ds: Dataset, split: Split, work: Path) -> dict:
    t0 = time.perf_counter()
    tfl, decoder = _model(ds, split, work)
    train_s = time.perf_counter() - t0
    val = {s: _curve(ds, tfl, decoder, s, CONFIGS, work) for s in split.val}
    score = {}
    for basis, l2 in CONFIGS:
        k = _key(basis, l2)
        vals = [c["mae"][n][k] for c in val.values() for n in c["mae"] if n != "0"]
        score[k] = float(np.mean(vals))
    best = min(CONFIGS, key=lambda c: score[_key(*c)])
    test = {s: _curve(ds, tfl, decoder, s, [best], work) for s in split.test}
    layer = final_layer(tfl)
    k = _key(*best)
    return {
        "model": "resnet_small, 20 epochs, PTQ 512 windows, TFLite Micro int8",
        "decoder": decoder,
        "tflite_bytes": tfl.stat().st_size,
        "bias": {
            "array": layer.bias_name,
            "bytes": [layer.bias_offset, layer.bias_offset + 4 * layer.bias.size],
        },
        "train_and_convert_seconds": round(train_s, 1),
        "split": {"train": list(split.train), "val": list(split.val), "test": list(split.test)},
        "configs_tried": [_key(*c) for c in CONFIGS],
        "val_mean_mae_by_config": score,
        "val_mean_mae_deployed": float(np.mean([c["mae"]["0"] for c in val.values()])),
        "chosen": {"basis": best[0], "l2": best[1]},
        "validation": val,
        "test": {
            s: {
                "evaluation_windows": c["evaluation_windows"],
                "bytes_changed": {n: v[k] for n, v in c.get("bytes_changed", {}).items()},
                "mae": {n: (v if n == "0" else v[k]) for n, v in c["mae"].items()},
            }
            for s, c in test.items()
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, help="keep data and models here (reused when rerun)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    doc = {
        "schema": "ppgedge.bench.personalize/1",
        "date": time.strftime("%Y-%m-%d"),
        "cpus": 2,
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = args.work or Path(tmp)
        if SPC.is_dir():
            work = root / "spc2015"
            work.mkdir(parents=True, exist_ok=True)
            path = work / "spc.ppgds"
            if not path.exists():
                write_dataset(import_dataset("spc2015", SPC, FMT), path)
            ds = Dataset(path)
            treadmill = sorted(s for s in ds.subjects if s.startswith("spc_tr"))
            rng = np.random.default_rng(0)
            val = tuple(sorted(str(s) for s in rng.choice(treadmill, 2, replace=False)))
            tests = tuple(sorted(s for s in ds.subjects if s.startswith("spc_te")))
            train_s = tuple(s for s in treadmill if s not in val)
            split = Split("spc_personalize", train_s, val, tests)
            doc["models"]["spc2015"] = _one_model("spc2015", ds, split, work)
            print(json.dumps(doc["models"]["spc2015"]["test"]), flush=True)
        work = root / "synthetic"
        work.mkdir(parents=True, exist_ok=True)
        path = work / "syn.ppgds"
        if not path.exists():
            write_dataset(synthesize(16, 10.0, 0, FMT), path)
        ds = Dataset(path)
        doc["models"]["synthetic"] = _one_model("synthetic", ds, holdout(ds.subjects, seed=0), work)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "personalize.json").write_text(json.dumps(doc, indent=2) + "\n")
    _markdown(doc)


def _markdown(doc: dict) -> None:
    lines = [
        "# Per-user calibration: MAE vs calibration minutes (`benchmarks/personalize.py`)",
        "",
        f"{doc['date']}, 2 shared CPU cores. Final FULLY_CONNECTED bias re-fit on the first N "
        "minutes of each held-out subject; MAE (BPM, TensorFlow Lite Micro int8) on that "
        "subject's windows after its largest feasible N (the same windows for every N; N=5 "
        "only where at least 1 min is left after it). Basis and L2 chosen on validation "
        "subjects (mean over N >= 1); test subjects scored once, with that choice.",
    ]
    for name, m in doc["models"].items():
        bias = m["bias"]
        scores = ", ".join(f"{k} {v:.2f}" for k, v in m["val_mean_mae_by_config"].items())
        lines += [
            "",
            f"## {name}: {m['model']}, decoder {m['decoder']}",
            "",
            f"Validation subjects {', '.join(m['split']['val'])}, mean MAE after calibration "
            f"by basis|l2 ({len(m['configs_tried'])} configurations tried): {scores}; deployed "
            f"model {m['val_mean_mae_deployed']:.2f}. Chosen: basis {m['chosen']['basis']}, "
            f"l2 {m['chosen']['l2']:g}.",
            "",
            f"Bias array `{bias['array']}`: file bytes {bias['bytes'][0]}-{bias['bytes'][1] - 1} "
            f"of {m['tflite_bytes']}; no byte outside it changes (checked for every fit).",
            "",
            "| test subject | eval windows | N=0 | N=1 | N=2 | N=5 | bytes changed (N=1/2/5) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        per_n: dict[str, list[float]] = {str(n): [] for n in MINUTES}
        for s, c in m["test"].items():
            cells = []
            for n in MINUTES:
                v = c["mae"].get(str(n))
                cells.append("n/a" if v is None else f"{v:.2f}")
                if v is not None:
                    per_n[str(n)].append(v)
            changed = "/".join(str(v) for v in c["bytes_changed"].values())
            lines.append(f"| {s} | {c['evaluation_windows']} | {' | '.join(cells)} | {changed} |")
        means = [
            f"{np.mean(per_n[str(n)]):.2f} ({len(per_n[str(n)])})" if per_n[str(n)] else "n/a"
            for n in MINUTES
        ]
        lines.append(f"| **mean (subjects)** | | {' | '.join(means)} | |")
        both = [s for s, c in m["test"].items() if "5" in c["mae"]]
        if both and len(both) < len(m["test"]):
            sub = {n: np.mean([m["test"][s]["mae"][str(n)] for s in both]) for n in MINUTES}
            lines.append(
                f"| mean of the {len(both)} with N=5 | | "
                + " | ".join(f"{sub[n]:.2f}" for n in MINUTES)
                + " | |"
            )
    (RESULTS / "personalize.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
