"""A candidate default for the motion benchmark, judged on validation subjects over three
seeds (issue #16).

Each candidate is a variant of motion.py: the defaults of its time with one change
(:data:`BASE_OF`; ``longtune`` until ``mix`` was adopted, then ``mix``, then ``patient``,
then ``simteacher``).

* ``ema``: ``[run] ema_decay = 0.99`` (every training stage, the teacher included, validates,
  early-stops on and keeps an exponential moving average of its weights); all stages
  retrained.
* ``spectral``: the student ``resnet_small_spectral`` (resnet_small plus a spectral head over
  the PPG, ppgedge/models/spectral.py), distilled, pruned to the same budget, QAT and exported
  as the defaults; run from a copy of the ``longtune`` folder (the same teacher).
* ``mix``: ``[distill] mix = 0.4`` (function matching: half the distillation windows get up
  to 40 % of another window mixed in, the teacher labelling the mix; the pruning fine-tunes,
  which inherit the student's settings, too); from a copy of the ``longtune`` folder.
* ``patient``: ``mix`` with ``[distill] epochs = 40, patience = 12`` (doubled); from a copy
  of the ``mix`` folder.
* ``artifacts``: ``patient`` with ``[distill] motion_aug_p = 0.5`` (accelerometer-driven
  artifacts in half the distillation windows, the teacher labelling each corrupted window;
  the pruning fine-tunes inherit it); from a copy of the ``patient`` folder.
* ``simmotion``: ``patient`` with ``[data] synthetic_motion = 8`` (synthetic subjects of the
  generator's motion sessions added to the training subjects only); every stage retrained.
* ``simteacher``: ``simmotion`` with ``synthetic_motion_for = "teacher"`` (the same teacher;
  the later stages on the recorded subjects only); from a copy of the ``simmotion`` folder.
* ``simscaled``: ``simteacher`` with the synthetic subjects in the later stages too, their
  epoch scale that of the recorded windows (``synthetic_motion_for = "all"``,
  ``synthetic_motion_epochs = "recorded"``); from a copy of the ``simteacher`` folder when
  there is one (the same teacher), else every stage from the start. Judged against
  ``simteacher`` re-made on its own host (:data:`HOST_BASELINE`: run
  ``rerun_defaults.py`` over all six scenarios first). Amended before any of its figures were
  read (:data:`AMENDMENTS`): a win is not an adoption, the change must win again on ``gentle``.
* ``gentle``: ``simteacher`` with a gentler pruning schedule, twice the steps to the same budget
  and each intermediate fine-tune twice as long (``[prune] steps = 8, finetune_epochs = 6``);
  from a copy of the ``simteacher`` folder (the same teacher and student), judged against
  ``simteacher`` re-made on its own host like ``simscaled``.
* ``gentler``: ``gentle`` with twice its pruning steps again (``[prune] steps = 16``, the same
  6 fine-tune epochs between them), from a copy of the ``gentle`` folder (the same teacher and
  student); judged against ``gentle``'s 18 runs, made on this host (gentle.json), by both
  rules. Registered 2026-12-07 before any of its runs: ``gentle`` brought the pruning loss
  down, and the question is whether finer steps go on doing so or the schedule is spent.

One rule for every candidate, fixed before the first candidate's runs (docs/motion-benchmark.md,
"Weight averaging"): **adopt the candidate as the default if the deployed int8 model's
validation MAE (TFLite Micro, the decoder its bundle reports), mean over run seeds 0-2, is lower
than the defaults' in at least 4 of the 6 scenarios**; its runs are then scored on test once,
whatever the verdict. Every candidate registered after ``simscaled`` must in addition be lower
in at least 13 of the 18 paired runs (:data:`MIN_LOWER_RUNS`, a sign test). The defaults'
figures: for ``longtune``, the 18 seed runs as
deployed_tracker.py exported them with the current code (deployed_tracker.json, ``int8
record``); for an adopted candidate, its own results file (the same teachers either way).

Writes ``benchmarks/results/<candidate>.{json,md}`` and run folders
``<scenario>[-sN]_<candidate>`` under benchmarks/out/motion. Run:
``.venv/bin/python benchmarks/candidate.py ema`` (18 chains, two at once: about 40 min on
2 cores; ``spectral`` about 30 min, its teacher reused). ``--render-only`` re-judges and
re-renders a host-baseline candidate's results file without running anything.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from host import describe, host
from motion import (
    DISTILL_ARTIFACTS,
    DISTILL_MIX,
    EMA_DECAY,
    GENTLE_PRUNE,
    GENTLER_PRUNE,
    PATIENT_DISTILL,
    RESULTS,
    SCENARIOS,
    SPECTRAL_STUDENT,
    SYNTHETIC_MOTION,
    _datasets,
    run_chain,
    write_results,
)
from motion_seeds import SEEDS, _name

from ppgedge import __version__

FOLDS = ("fold1", "fold2", "fold3", "fold4")
MIN_LOWER = 4  # of 6 scenarios
# and, for every candidate registered after 2026-12-07, lower in at least this many of the 18
# paired runs (scenario x seed): a one-sided sign test, P = 0.048 if the change did nothing
# (gentle, adopted by the scenario count, was lower in 12 of 18: P = 0.12)
MIN_LOWER_RUNS = 13
# the candidates registered before it, judged by the scenario count alone (not derived from
# CANDIDATES: every candidate added later must meet both)
SCENARIO_RULE_ONLY = frozenset(
    (
        "ema",
        "spectral",
        "mix",
        "patient",
        "artifacts",
        "simmotion",
        "simteacher",
        "simscaled",
        "gentle",
    )
)
CANDIDATES: dict[str, dict[str, str]] = {
    "ema": {
        "title": "Weight averaging",
        "change": f"`[run] ema_decay = {EMA_DECAY}` (every training stage keeps an exponential "
        "moving average of its weights), every stage retrained",
    },
    "spectral": {
        "title": "Spectral head",
        "change": f"the student `{SPECTRAL_STUDENT}` (resnet_small plus a spectral head over "
        "the PPG), the same teacher, distilled, pruned to the same budget, QAT and exported",
    },
    "mix": {
        "title": "Function matching",
        "change": f"`[distill] mix = {DISTILL_MIX}` (half the distillation windows get up to "
        f"{DISTILL_MIX:.0%} of another window mixed in, the teacher labelling the mix; the "
        "pruning fine-tunes inherit it), the same teacher",
    },
    "patient": {
        "title": "A patient teacher",
        "change": f"the distillation stage's epochs and patience doubled (`[distill] epochs = "
        f"{PATIENT_DISTILL['epochs']}, patience = {PATIENT_DISTILL['patience']}`, before the "
        "data scaling), the same teacher",
    },
    "artifacts": {
        "title": "Artifacts the teacher labels",
        "change": f"accelerometer-driven artifacts in the distillation (`[distill] motion_aug_p "
        f"= {DISTILL_ARTIFACTS}`: that share of the windows carries another window's motion "
        "in its PPG, the teacher labelling each corrupted window; the pruning fine-tunes "
        "inherit it), the same teacher",
    },
    "simmotion": {
        "title": "Synthetic motion subjects in training",
        "change": f"{SYNTHETIC_MOTION} synthetic subjects of the generator's motion sessions "
        f"(arm exercise, boxing, stairs; 6 min each) added to the training subjects only "
        f"(`[data] synthetic_motion = {SYNTHETIC_MOTION}`; validation and test subjects "
        "unchanged), every stage retrained, the teacher included",
    },
    "simteacher": {
        "title": "Synthetic motion subjects for the teacher alone",
        "change": f"the teacher of `simmotion` ({SYNTHETIC_MOTION} synthetic motion subjects in "
        "its training subjects), the distillation, pruning, QAT and tracker on the recorded "
        'training subjects only (`[data] synthetic_motion_for = "teacher"`), from copies '
        "of the `simmotion` folders",
    },
    "simscaled": {
        "title": "Synthetic motion subjects in every stage, on top of the recorded windows",
        "change": f"the {SYNTHETIC_MOTION} synthetic motion subjects of its teacher lent to the "
        'distillation, pruning, QAT and tracker too (`[data] synthetic_motion_for = "all"`), '
        "whose epoch scale stays that of the recorded windows (`synthetic_motion_epochs = "
        '"recorded"`: the synthetic windows on top, each epoch longer)',
    },
    "gentle": {
        "title": "A gentler pruning schedule",
        "change": f"twice the pruning steps to the same budget, each intermediate fine-tune twice "
        f"as long (`[prune] steps = {GENTLE_PRUNE['steps']}, finetune_epochs = "
        f"{GENTLE_PRUNE['finetune_epochs']}`, before the data scaling; the last fine-tune keeps "
        "its 20 epochs), the same teacher and student, from copies of the `simteacher` folders",
    },
    "gentler": {
        "title": "A gentler pruning schedule still",
        "change": f"twice `gentle`'s pruning steps again (`[prune] steps = "
        f"{GENTLER_PRUNE['steps']}, finetune_epochs = {GENTLER_PRUNE['finetune_epochs']}`, "
        "before the data scaling; the last fine-tune keeps its 20 epochs), the same teacher and "
        "student, from copies of the `gentle` folders",
    },
}


def _deployed(run: Path) -> dict[str, Any]:
    """What the run's bundle reports: its decoder, validation MAE (the export's int8 fit) and
    test MAE (verify, TFLite Micro)."""
    export = json.loads((run / "export" / "export.json").read_text())
    verify = json.loads((run / "verify" / "verify.json").read_text())
    rec = export["tracker"]
    decoder = rec["decoder"]  # tracked, or the per-window decoder the bundle computes
    val = rec["val_mae_by_decoder"][decoder]
    tracked = decoder == "tracked" and verify.get("mae_tflm_tracked") is not None
    test = verify["mae_tflm_tracked"] if tracked else verify["mae_tflm"]
    teacher = json.loads((run / "manifest.json").read_text())
    return {
        "decoder": decoder,
        "val": float(val),
        "test": float(test),
        "fitted_on": rec.get("logits"),
        "teacher_test_per_window": teacher["stages"]["teacher"]["metrics"].get("test_mae"),
    }


def _one(job: tuple[str, int], variant: str, data: dict[str, Path]) -> dict[str, Any]:
    scenario, seed = job
    run, seconds = run_chain(_name(scenario, seed), variant, data)
    return {"scenario": scenario, "seed": seed, "seconds": seconds, **_deployed(run)}


# the defaults each candidate changed one thing of (its runs start from copies of theirs)
BASE_OF = {
    "ema": "longtune",
    "spectral": "longtune",
    "mix": "longtune",
    "patient": "mix",
    "artifacts": "patient",
    "simmotion": "patient",
    "simteacher": "patient",
    "simscaled": "simteacher",
    "gentle": "simteacher",
    "gentler": "gentle",
}


# candidates judged against their base re-made on their own host (rerun_defaults.py), since
# the same configuration moves with the CPU's float kernels (docs/motion-benchmark.md)
HOST_BASELINE = {
    "simscaled": "rerun_defaults",
    "gentle": "rerun_defaults",
    "gentler": "gentle",  # an adopted candidate's own runs, made on this host
}

# amendments fixed before any of the candidate's figures were read (docs/motion-benchmark.md):
# what a win of its rule does and does not mean once the defaults moved on under it
AMENDMENTS = {
    "simscaled": "Amendment fixed 2026-12-07, before any of its figures were read: the "
    "defaults became `gentle` while these chains ran (with `simteacher`'s pruning schedule "
    "pinned, `[prune] steps = 4, finetune_epochs = 3`), so winning this rule does not switch "
    "it on: its change is then run on top of `gentle` (18 chains from the distill stage) and "
    "adopted only if that, too, is lower on validation than `gentle` in at least 4 of 6 "
    "scenarios.",
}


def _by_run(runs: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, float]]:
    """A results file's runs (candidate.py or rerun_defaults.py rows) by (scenario, seed)."""
    return {
        (r["scenario"], r["seed"]): {
            "val": r["val"],
            "test": r["test"],
            "teacher": r["teacher_test_per_window"],
        }
        for r in runs
    }


def _host_baseline(candidate: str) -> dict[tuple[str, int], dict[str, float]]:
    """The base's 18 runs re-made on this host; refused before any chain when incomplete."""
    path = RESULTS / f"{HOST_BASELINE[candidate]}.json"
    base = BASE_OF[candidate]
    doc = json.loads(path.read_text()) if path.is_file() else {"variant": None, "runs": []}
    out = _by_run(doc["runs"])
    missing = [f"{s} seed {n}" for n in SEEDS for s in SCENARIOS if (s, n) not in out]
    made_by = doc.get("variant") or doc.get("candidate")  # rerun_defaults.py or candidate.py
    remake = (
        f"benchmarks/rerun_defaults.py --scenarios {','.join(SCENARIOS)}"
        if HOST_BASELINE[candidate] == "rerun_defaults"
        else f"benchmarks/candidate.py {base}"
    )
    if made_by != base or missing:
        raise SystemExit(
            f"{candidate} is judged against `{base}` made on this host: run `{remake}` first "
            f"({path.name}: variant {made_by}, missing {len(missing)} of 18 runs)"
        )
    here, there = host(), doc.get("host") or {}
    kernels = ("family", "model", "avx512f", "avx2", "torch")
    if any(here[k] != there.get(k) for k in kernels):
        raise SystemExit(
            f"{candidate} is judged against `{base}` re-made on this host, but {path.name} was "
            f"made on {describe(there) if there else 'an unrecorded host'} and this is "
            f"{describe(here)}: re-make it here first (`{remake}`)"
        )
    return out


def _baseline(base: str) -> dict[tuple[str, int], dict[str, float]]:
    doc = json.loads((RESULTS / "deployed_tracker.json").read_text())
    out = {
        (r["scenario"], r["seed"]): {
            "val": r["int8 record"]["int8_val"],
            "test": r["int8 record"]["int8"],
            "teacher": r["int8 record"]["teacher"],
        }
        for r in doc["runs"]
    }
    if base != "longtune":  # an adopted candidate: its own runs and teachers
        out |= _by_run(json.loads((RESULTS / f"{base}.json").read_text())["runs"])
    return out


def summarise(rows: list[dict[str, Any]], base: dict, candidate: str) -> dict[str, Any]:
    per: dict[str, Any] = {}
    for sc in SCENARIOS:
        rs = [r for r in rows if r["scenario"] == sc]
        bs = [base[(sc, r["seed"])] for r in rs]
        per[sc] = {
            "val_candidate": float(np.mean([r["val"] for r in rs])),
            "val_defaults": float(np.mean([b["val"] for b in bs])),
            "test_candidate": float(np.mean([r["test"] for r in rs])),
            "test_defaults": float(np.mean([b["test"] for b in bs])),
            "teacher_defaults": float(np.mean([b["teacher"] for b in bs])),
        }
    lower = [sc for sc, c in per.items() if c["val_candidate"] < c["val_defaults"]]
    wins = len(lower) >= MIN_LOWER
    paired: dict[str, int] = {}
    if candidate not in SCENARIO_RULE_ONLY:
        n = sum(r["val"] < base[(r["scenario"], r["seed"])]["val"] for r in rows)
        paired = {"lower_runs": int(n), "runs": len(rows)}
        wins = wins and n >= MIN_LOWER_RUNS
    amended = (
        {"wins_rule": wins, "amendment": AMENDMENTS[candidate]} if candidate in AMENDMENTS else {}
    )
    return {
        "scenarios": per,
        "lower_on_validation": lower,
        **paired,
        "adopted": wins and not amended,
        **amended,
        "fold_mean_candidate": float(np.mean([per[f]["test_candidate"] for f in FOLDS])),
        "fold_mean_defaults": float(np.mean([per[f]["test_defaults"] for f in FOLDS])),
    }


def markdown(doc: dict[str, Any]) -> str:
    s, v = doc["summary"], doc["candidate"]
    c0 = CANDIDATES[v]
    verdict = "adopted" if s["adopted"] else "not adopted"
    if s.get("wins_rule"):
        verdict = "wins its rule, not adopted by that alone (amendment below)"
    lines = [
        f"# {c0['title']} on the motion benchmark (issue #16)",
        "",
        f"ppgedge {doc['ppgedge']}, {doc['date']}. Variant `{v}` = the defaults with "
        f"{c0['change']}; run seeds 0-2; the defaults are "
        + (
            "the 18 seed runs of motion_seeds.md as exported with the current code "
            "(deployed_tracker.md)"
            if BASE_OF[v] == "longtune"
            else f"the 18 runs of `{BASE_OF[v]}`, made on this host ({BASE_OF[v]}.md)"
            if HOST_BASELINE.get(v) == BASE_OF[v]
            else f"the 18 runs of `{BASE_OF[v]}` re-made on this host ({HOST_BASELINE[v]}.md)"
            if v in HOST_BASELINE
            else f"the 18 runs of {BASE_OF[v]}.md"
        )
        + ". Deployed int8 model in TFLite Micro, the value its bundle "
        "reports; MAE in BPM, mean over seeds."
        + (f" Host: {describe(doc['host'])}." if "host" in doc else ""),
        "",
        f"Rule fixed before the runs: adopt if the validation MAE is lower than the defaults' "
        f"in at least {MIN_LOWER} of 6 scenarios"
        + (
            f" and in at least {MIN_LOWER_RUNS} of the {s['runs']} paired runs"
            if "lower_runs" in s
            else ""
        )
        + f". Lower in {len(s['lower_on_validation'])} "
        f"({', '.join(s['lower_on_validation']) or 'none'})"
        + (f", in {s['lower_runs']} of the runs" if "lower_runs" in s else "")
        + f": **{verdict}**.",
        *(["", s["amendment"]] if "amendment" in s else []),
        "",
        f"| scenario | val defaults | val {v} | test defaults | test {v} |",
        "|---|---:|---:|---:|---:|",
    ]
    for sc, c in s["scenarios"].items():
        lines.append(
            f"| {sc} | {c['val_defaults']:.2f} | {c['val_candidate']:.2f} | "
            f"{c['test_defaults']:.2f} | {c['test_candidate']:.2f} |"
        )
    lines += [
        "",
        f"4-fold mean (test): defaults {s['fold_mean_defaults']:.2f}, {v} "
        f"{s['fold_mean_candidate']:.2f} (target 4.0). Scored on test once.",
        "",
        f"Per run ({v}): scenario, seed, decoder, validation, test, seconds of this "
        "invocation of the chain (stages already current are skipped):",
        "",
        "| scenario | seed | decoder | val | test | seconds |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in doc["runs"]:
        lines.append(
            f"| {r['scenario']} | {r['seed']} | {r['decoder']} | {r['val']:.2f} | "
            f"{r['test']:.2f} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("candidate", choices=sorted(CANDIDATES), help="the variant to judge")
    ap.add_argument("--jobs", type=int, default=2, help="chains run at once")
    ap.add_argument(
        "--render-only",
        action="store_true",
        help="re-judge and re-render the results file's runs (no chain runs; the candidates "
        "judged against a host baseline)",
    )
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.render_only and args.candidate not in HOST_BASELINE:  # judged by older code
        raise SystemExit(f"--render-only: only {', '.join(HOST_BASELINE)}")
    if args.candidate in HOST_BASELINE:
        baseline = _host_baseline(args.candidate)  # before hours of chains, not after
    else:
        baseline = _baseline(BASE_OF[args.candidate])
    if args.render_only:
        doc = json.loads((RESULTS / f"{args.candidate}.json").read_text())
        doc["summary"] = summarise(doc["runs"], baseline, args.candidate)
        write_results(args.candidate, doc, markdown(doc))
        return
    data = _datasets()
    jobs = [(s, seed) for seed in SEEDS for s in SCENARIOS]
    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda j: _one(j, args.candidate, data), jobs))
    doc = {
        "schema": "ppgedge.benchmark.candidate/1",
        "ppgedge": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "candidate": args.candidate,
        "change": CANDIDATES[args.candidate]["change"],
        "host": host(),
        "runs": rows,
        "summary": summarise(rows, baseline, args.candidate),
    }
    write_results(args.candidate, doc, markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
