"""Per-user calibration of the deployed default chain (issue #16, part 3, on the shipped model).

``benchmarks/personalize.py`` draws the MAE-vs-minutes curve on a stand-alone resnet_small with
a per-window decoder. This one runs ``ppgedge personalize`` itself (its defaults: basis
``linear``, ``l2`` 0.1, nothing chosen here) on what the default chain ships: the across-
activities runs of ``motion_seeds.py`` (trained on the 12 SPC 2015 treadmill subjects, seeds
0, 1, 2), each run's QAT artifact exported again with the current code (the bundle's tracker and
decoder fitted on its int8 validation outputs). For each of the run's test subjects (the 8
arm-exercise / boxing recordings) and validation subjects, and N = 1, 2, 5 minutes where at
least one minute is left after N: the value the bundle reports (the tracker when the export
chose it, else the per-window decoder), TensorFlow Lite Micro int8, on the subject's windows
after its first N minutes, before (the shipped bundle) and after (the personalised one), so
every before/after pair is on the same windows. Test subjects are scored once, with the
command's defaults: one configuration.

Writes ``benchmarks/results/personalize_deployed.{json,md}``.
Run: ``.venv/bin/python benchmarks/personalize_deployed.py`` after ``motion_seeds.py`` (about
10 min on 2 cores).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from deployed_tracker import reexport
from motion import OUT, VERDICT_VARIANT, run_dataset, write_results
from motion_seeds import _name
from personalize import _feasible

from ppgedge import __version__
from ppgedge.data.format import Dataset
from ppgedge.export.personalize import DEFAULT_BASIS, DEFAULT_L2, personalize
from ppgedge.models.checkpoint import load_checkpoint

SCENARIO = "xact"
SEEDS = (0, 1, 2)
MINUTES = (1, 2, 5)
VARIANT = VERDICT_VARIANT  # the defaults' run folders: `gentle` since it was adopted (made by
# candidate.py gentle); `simteacher` before (candidate.py simteacher, or rerun_defaults.py),
# `patient`, `mix` and `longtune` (motion_seeds.py) before that


def _one(export_dir: Path, ds: Dataset, subject: str, n: int, work: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    r = personalize(export_dir, ds.path, subject, n, work / f"{subject}-{n}")
    tracked = r.reports == "tracked"
    return {
        "minutes": n,
        "calibration_windows": r.calibration_windows,
        "evaluation_windows": r.evaluation_windows,
        "reports": r.reports,
        "before": r.mae_before_tracked if tracked else r.mae_before,
        "after": r.mae_after_tracked if tracked else r.mae_after,
        "per_window_before": r.mae_before,
        "per_window_after": r.mae_after,
        "bytes_changed": r.changed["bytes_changed"],
        "outside_bias": r.changed["outside_bias"],
        "seconds": round(time.perf_counter() - t0, 1),
    }


def score_seed(seed: int) -> dict[str, Any]:
    run = OUT / f"{_name(SCENARIO, seed)}_{VARIANT}"
    if not (run / "qat" / "model.qat.int8.pt").is_file():
        raise SystemExit(f"{run}: no finished run: run benchmarks/candidate.py mix first")
    teacher = load_checkpoint(run / "teacher" / "teacher.pt")
    ds = run_dataset(run, teacher)
    split = teacher.training["split"]
    out: dict[str, Any] = {"run": run.name, "val": split["val"], "test": split["test"]}
    with tempfile.TemporaryDirectory(prefix="personalize-deployed-") as tmp:
        result, _, identical = reexport(run, ds, Path(tmp) / "export")
        out["tflite_identical_to_shipped"] = identical
        out["decoder"] = result.manifest["tracker"].get("decoder") or result.manifest["decode"]
        for part in ("val", "test"):
            out[part + "_curves"] = {
                s: [
                    _one(Path(tmp) / "export", ds, s, n, Path(tmp))
                    for n in MINUTES
                    if _feasible(ds, s, n)
                ]
                for s in split[part]
            }
    return out


def _summary(seeds: list[dict[str, Any]], part: str) -> dict[str, Any]:
    rows = {}
    for n in MINUTES:
        cells = [c for s in seeds for cs in s[part + "_curves"].values() for c in cs]
        cells = [c for c in cells if c["minutes"] == n]
        if not cells:
            continue
        before = np.array([c["before"] for c in cells])
        after = np.array([c["after"] for c in cells])
        rows[str(n)] = {
            "pairs": len(cells),
            "before": float(before.mean()),
            "after": float(after.mean()),
            "better": int((after < before - 0.05).sum()),
            "worse": int((after > before + 0.05).sum()),
        }
    return rows


def _markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# Per-user calibration of the deployed default chain "
        "(`benchmarks/personalize_deployed.py`)",
        "",
        f"ppgedge {doc['version']}, {doc['date']}, 2 CPU cores. `ppgedge personalize` with its "
        f"defaults (basis {doc['basis']}, l2 {doc['l2']:g}; one configuration, nothing chosen "
        "here) on the bundles of the across-activities runs (trained on the 12 SPC 2015 "
        f"treadmill subjects; seeds 0-2, variant `{VARIANT}`), re-exported with the current "
        "code. "
        "MAE (BPM, TensorFlow Lite Micro int8) as the bundle reports it (its tracker when the "
        "export chose it), on each subject's windows after the first N minutes, before and "
        "after: each pair on the same windows (so N columns differ in windows). Better/worse: "
        "more than 0.05 BPM.",
        "",
    ]
    for part, title in (("test", "Test subjects (arm exercise, boxing)"),
                        ("val", "Validation subjects (treadmill)")):  # fmt: skip
        lines += [f"## {title}", "", "| N (min) | pairs | before | after | better | worse |",
                  "|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
        for n, r in doc["summary"][part].items():
            lines.append(
                f"| {n} | {r['pairs']} | {r['before']:.2f} | {r['after']:.2f} | "
                f"{r['better']} | {r['worse']} |"
            )
        lines.append("")
    lines += [
        "## Per run and subject (before -> after, BPM)",
        "",
        "| run | decoder | subject | N=1 | N=2 | N=5 |",
        "|---|---|---|---|---|---|",
    ]
    for s in doc["seeds"]:
        for part in ("test", "val"):
            for subj, cells in s[part + "_curves"].items():
                by_n = {c["minutes"]: c for c in cells}
                row = [
                    f"{by_n[n]['before']:.2f} -> {by_n[n]['after']:.2f}" if n in by_n else "n/a"
                    for n in MINUTES
                ]
                tag = "" if part == "test" else " (val)"
                lines.append(f"| {s['run']} | {s['decoder']} | {subj}{tag} | {' | '.join(row)} |")
    changed = {c["bytes_changed"] for s in doc["seeds"] for p in ("val", "test")
               for cs in s[p + "_curves"].values() for c in cs}  # fmt: skip
    outside = sum(c["outside_bias"] for s in doc["seeds"] for p in ("val", "test")
                  for cs in s[p + "_curves"].values() for c in cs)  # fmt: skip
    lines += [
        "",
        f"Bytes changed per personalised model: {min(changed)}-{max(changed)}, all inside the "
        f"final layer's bias ({outside} outside). Re-exported .tflite byte-identical to the "
        f"shipped one in {sum(s['tflite_identical_to_shipped'] for s in doc['seeds'])} of "
        f"{len(doc['seeds'])} runs. {doc['seconds']:.0f} s in all.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    seeds = [score_seed(seed) for seed in SEEDS]
    doc = {
        "schema": "ppgedge.bench.personalize_deployed/1",
        "version": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "basis": DEFAULT_BASIS,
        "l2": DEFAULT_L2,
        "minutes": list(MINUTES),
        "seeds": seeds,
        "summary": {p: _summary(seeds, p) for p in ("test", "val")},
        "seconds": time.perf_counter() - t0,
    }
    write_results("personalize_deployed", doc, _markdown(doc))


if __name__ == "__main__":
    main()
