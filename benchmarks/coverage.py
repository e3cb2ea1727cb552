"""How much of the motion benchmark's error lies outside the heart rates the model trained on
(issue #16).

For each of the 18 seed runs of motion_seeds.py (defaults, seeds 0-2): the run's int8 model is
exported again with the current code (into a temporary folder; the .tflite is checked
byte-identical to the run's) and verified on its test subjects, which scores the value the
bundle reports (TFLite Micro int8, the export's decoder and tracker) split by the reference
heart rate against the training recordings' range (``ppgedge.evaluate.coverage``, the range the
model's tracker prior records). The teacher is decoded as motion.py decodes it (the decoder its
validation subjects choose from today's grid) and split the same way.

A diagnostic of configurations already scored, not a new configuration: nothing is chosen on
it. Writes ``benchmarks/results/coverage.{json,md}``. Run after motion_seeds.py:
``.venv/bin/python benchmarks/coverage.py`` (18 exports, verifies and decodings, ~4 min).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from deployed_tracker import reexport
from host import describe
from motion import (
    OUT,
    RESULTS,
    SCENARIOS,
    VERDICT_VARIANT,
    _float_logits,
    _split,
    run_dataset,
    stretch_of,
    write_results,
)
from motion_seeds import _name, score_seed_runs

from ppgedge import __version__
from ppgedge.evaluate.coverage import DEPLOYED, DEPLOYED_TRACKED, coverage, trained_range
from ppgedge.evaluate.tracking import TRACKED, fit_tracker, track_windows
from ppgedge.export.verify import verify
from ppgedge.models.bpm import decode
from ppgedge.models.checkpoint import load_checkpoint
from ppgedge.models.tracker import TransitionPrior

FOLDS = ("fold1", "fold2", "fold3", "fold4")


def _split_errors(bands: dict[str, Any]) -> dict[str, float | None]:
    """MAE over all windows, inside the trained range and outside it (below and above
    together), from :func:`ppgedge.evaluate.coverage.coverage`'s per-band summaries."""

    def pooled(keys: tuple[str, ...]) -> float | None:
        got = [bands[k] for k in keys if bands.get(k)]
        n = sum(b["n"] for b in got)
        return sum(b["mae"] * b["n"] for b in got) / n if n else None

    return {
        "all": pooled(("below", "inside", "above")),
        "inside": pooled(("inside",)),
        "outside": pooled(("below", "above")),
    }


def _teacher_pred(teacher, ds, parts) -> tuple[np.ndarray, str]:
    """The teacher's test BPM with the decoder its validation subjects choose (motion.py's)."""
    val, test = (_float_logits(teacher, ds, parts[p]) for p in ("val", "test"))
    rec = fit_tracker(ds, parts["train"], parts["val"], val, stretch=stretch_of(teacher))
    if rec["decoder"] == TRACKED:
        prior = TransitionPrior.from_dict(rec["prior"])
        return track_windows(test, ds, parts["test"], prior).bpm, TRACKED
    return decode(torch.from_numpy(test), rec["decoder"]).numpy(), rec["decoder"]


def results_stem(variant: str) -> str:
    """``coverage`` for today's defaults; ``coverage_<variant>`` for an earlier default's runs,
    kept so that the figures the docs quote from it stay where they say."""
    return "coverage" if variant == VERDICT_VARIANT else f"coverage_{variant}"


def score_folder(job: tuple[str, int], variant: str = VERDICT_VARIANT) -> dict[str, Any]:
    torch.set_num_threads(1)
    scenario, seed = job
    run = OUT / f"{_name(scenario, seed)}_{variant}"
    teacher = load_checkpoint(run / "teacher" / "teacher.pt")
    ds = run_dataset(run, teacher)
    parts = _split(teacher).indices(ds.subject_names())
    with tempfile.TemporaryDirectory(prefix="coverage-") as tmp:
        result, _, identical = reexport(run, ds, Path(tmp) / "export")
        report = verify(result.out_dir, ds, part="test")
    record = result.manifest["tracker"]
    trained = trained_range(record)
    assert trained is not None, f"{run}: the export's tracker records no label histogram"
    true = np.asarray(ds.y[parts["test"]], np.float64)
    decoder = (report.tracking or {}).get("val_decoder")
    t_pred, t_decoder = _teacher_pred(teacher, ds, parts)
    teacher_cov = coverage([("teacher", t_pred, true)], trained)
    cov = report.coverage or {}
    int8_bands = cov["models"][DEPLOYED_TRACKED if decoder == TRACKED else DEPLOYED]
    row = {
        "scenario": scenario,
        "seed": seed,
        "tflite_identical": identical,
        "trained_bpm": list(trained),
        "test_bpm": [float(true.min()), float(true.max())],
        "windows": cov["windows"],
        "int8_decoder": decoder,
        "teacher_decoder": t_decoder,
        "int8": _split_errors(int8_bands),
        "teacher": _split_errors(teacher_cov["models"]["teacher"]),
    }
    print(scenario, seed, row["windows"], row["int8"], row["teacher"], flush=True)
    return row


def _mean(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return float(np.mean(got)) if got else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per scenario, means over seeds; then the issue's fold figures on all windows and on
    the windows inside the trained range."""
    out: dict[str, Any] = {"scenarios": {}}
    for sc in SCENARIOS:
        rs = [r for r in rows if r["scenario"] == sc]
        total = [sum(r["windows"].values()) for r in rs]
        outside = [r["windows"]["below"] + r["windows"]["above"] for r in rs]
        cell: dict[str, Any] = {
            "seeds": len(rs),
            "trained_bpm": [r["trained_bpm"] for r in rs],
            "test_bpm": [r["test_bpm"] for r in rs],
            "outside_share": float(np.mean([o / t for o, t in zip(outside, total, strict=True)])),
        }
        for model in ("teacher", "int8"):
            for part in ("all", "inside", "outside"):
                cell[f"{model}_{part}"] = _mean([r[model][part] for r in rs])
        for part in ("all", "inside"):
            cell[f"gap_{part}"] = _mean(
                [
                    None
                    if r["int8"][part] is None or r["teacher"][part] is None
                    else r["int8"][part] - r["teacher"][part]
                    for r in rs
                ]
            )
        out["scenarios"][sc] = cell
    s = out["scenarios"]
    for part in ("all", "inside"):
        out[f"fold_mean_{part}"] = _mean([s[f][f"int8_{part}"] for f in FOLDS])
        out[f"largest_gap_{part}"] = max(s[f][f"gap_{part}"] for f in FOLDS)
    return out


def _f(v: float | None, spec: str = ".2f") -> str:
    return "-" if v is None else format(v, spec)


def markdown(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    lines = [
        "# Error inside and outside the trained heart rates (issue #16)",
        "",
        f"ppgedge {doc['ppgedge']}, {doc['date']}. The 18 seed runs of the defaults "
        f"(variant `{doc.get('variant', 'longtune')}`, seeds 0-2; "
        f"{doc.get('made_by', 'made by motion_seeds.py')}), no retraining: each int8 "
        "model re-exported (every .tflite "
        f"byte-identical to the run's: {all(r['tflite_identical'] for r in doc['runs'])}) and "
        "verified on its test subjects, scoring the value the bundle reports (TFLite Micro "
        "int8, the export's decoder and tracker); the teacher with the decoder its validation "
        "subjects choose. Test windows split by their reference heart rate against the range "
        "of the training recordings' labels (`ppgedge.evaluate.coverage`; the time stretch "
        "lends training synthetic examples beyond it). MAE in BPM, mean over seeds. A "
        "diagnostic of configurations already scored: nothing is chosen on it.",
        "",
        "| scenario | trained (seed 0) | test range (seed 0) | test windows outside | "
        "teacher all / inside / outside | int8 all / inside / outside | int8 - teacher all | "
        "inside |",
        "|---|---|---|---:|---|---|---:|---:|",
    ]
    for sc, c in s["scenarios"].items():
        lo, hi = c["trained_bpm"][0]
        tlo, thi = c["test_bpm"][0]
        lines.append(
            f"| {sc} | {lo}-{hi} | {tlo:.0f}-{thi:.0f} | {c['outside_share']:.0%} | "
            f"{_f(c['teacher_all'])} / {_f(c['teacher_inside'])} / {_f(c['teacher_outside'])} | "
            f"{_f(c['int8_all'])} / {_f(c['int8_inside'])} / {_f(c['int8_outside'])} | "
            f"{_f(c['gap_all'], '+.2f')} | {_f(c['gap_inside'], '+.2f')} |"
        )
    lines += [
        "",
        f"- 4-fold mean int8: {_f(s['fold_mean_all'])} BPM on all test windows (target 4.0), "
        f"{_f(s['fold_mean_inside'])} on the windows inside the trained range.",
        f"- Largest fold int8 - teacher: {_f(s['largest_gap_all'], '+.2f')} on all windows "
        f"(target 0.5), {_f(s['largest_gap_inside'], '+.2f')} inside the trained range.",
        "",
        "Per run (windows below / inside / above the trained range; int8 decoder as the bundle "
        "reports):",
        "",
        "| scenario | seed | trained | below / inside / above | teacher all / inside / outside "
        "| int8 all / inside / outside | int8 decoder |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in doc["runs"]:
        w, t, q = r["windows"], r["teacher"], r["int8"]
        lines.append(
            f"| {r['scenario']} | {r['seed']} | {r['trained_bpm'][0]}-{r['trained_bpm'][1]} | "
            f"{w['below']} / {w['inside']} / {w['above']} | {_f(t['all'])} / "
            f"{_f(t['inside'])} / {_f(t['outside'])} | {_f(q['all'])} / {_f(q['inside'])} / "
            f"{_f(q['outside'])} | {r['int8_decoder']} |"
        )
    return "\n".join(lines) + "\n"


def made_by(rows: list[dict[str, Any]], variant: str) -> str:
    """Which recorded runs of ``variant`` the folders are: the results file whose deployed test
    MAE every scored run reproduces (the folders under benchmarks/out are not kept between
    checkouts). ``variant`` is the rows' own, not today's defaults, so that re-rendering an
    older coverage.json still names its runs."""
    for stem, what in (
        ("rerun_defaults", "re-made by benchmarks/rerun_defaults.py"),
        (variant, "made by benchmarks/candidate.py"),
    ):
        path = RESULTS / f"{stem}.json"
        doc = json.loads(path.read_text()) if path.is_file() else {"runs": []}
        if doc.get("variant", doc.get("candidate")) != variant:
            continue
        test = {(r["scenario"], r["seed"]): r["test"] for r in doc["runs"]}
        if all(
            abs(test.get((r["scenario"], r["seed"]), -1.0) - r["int8"]["all"]) < 1e-6 for r in rows
        ):
            where = f" on {describe(doc['host'])}" if doc.get("host") else ""
            return f"the runs of {stem}.md ({what}{where})"
    return "runs matching no recorded results file (made by hand?)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="run folders at once")
    ap.add_argument("--render-only", action="store_true", help="rewrite the .md from the .json")
    ap.add_argument(
        "--variant",
        default=VERDICT_VARIANT,
        help=f"whose 18 run folders (default {VERDICT_VARIANT}, today's defaults: coverage.md; "
        "another: coverage_<variant>.md)",
    )
    args = ap.parse_args()
    stem = results_stem(args.variant)
    if args.render_only:
        doc = json.loads((RESULTS / f"{stem}.json").read_text())
        doc["made_by"] = made_by(doc["runs"], doc.get("variant", "longtune"))
        write_results(stem, doc, markdown(doc))
        return
    rows = score_seed_runs(partial(score_folder, variant=args.variant), args.jobs)
    doc = {
        "schema": "ppgedge.benchmark.coverage/1",
        "ppgedge": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "variant": args.variant,
        "made_by": made_by(rows, args.variant),
        "runs": rows,
        "summary": summarise(rows),
    }
    write_results(stem, doc, markdown(doc))


if __name__ == "__main__":
    main()
