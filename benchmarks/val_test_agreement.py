"""Does the motion benchmark's validation rank configurations as its test subjects do?
(issue #16, a diagnostic of the protocol; nothing is chosen on it)

Every candidate of the motion benchmark was judged on the validation MAE of its 18 runs (6
scenarios x run seeds 0-2), each run paired with the baseline's run of the same scenario and
seed, and then scored once on test. This reads those already-scored runs (the results files
of benchmarks/candidate.py and rerun_defaults.py; no retraining, no new test scoring) and asks,
for every pair of configurations made on the same host: when one has the lower validation MAE,
does it also have the lower test MAE? Per run (paired by scenario and seed), per scenario (mean
over seeds) and for the verdict the benchmark's rule would give (lower on validation in at
least 4 of 6 scenarios) against the test (lower 4-fold mean, lower across activities).

Writes ``benchmarks/results/val_test_agreement.{json,md}``:
``.venv/bin/python benchmarks/val_test_agreement.py`` (seconds).
"""

from __future__ import annotations

import itertools
import json
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binomtest, kendalltau

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = ("xact", "fold1", "fold2", "fold3", "fold4", "synthetic")
FOLDS = ("fold1", "fold2", "fold3", "fold4")
# configurations with 18 scored runs, by the host that made them (docs/motion-benchmark.md:
# host A made the runs before 2026-12-07's re-run, host B every run since; the results files
# of host A do not record it, those of host B do)
HOSTS: dict[str, dict[str, str]] = {
    "A": {
        "mix": "mix",
        "patient": "patient",
        "artifacts": "artifacts",
        "spectral": "spectral",
        "ema": "ema",
        "simmotion": "simmotion",
        "simteacher": "simteacher",
    },
    "B": {
        "simteacher": "rerun_defaults",
        "gentle": "gentle",
        "gentler": "gentler",
        "simscaled": "simscaled",
    },
}


def _runs(stem: str) -> dict[tuple[str, int], tuple[float, float]]:
    doc = json.loads((RESULTS / f"{stem}.json").read_text())
    return {
        (r["scenario"], int(r["seed"])): (float(r["val"]), float(r["test"])) for r in doc["runs"]
    }


def _sign_agreement(dv: np.ndarray, dt: np.ndarray) -> dict[str, Any]:
    """Pairs where validation differs: how often the test differs the same way."""
    keep = (dv != 0) & (dt != 0)
    agree = int(np.sum(np.sign(dv[keep]) == np.sign(dt[keep])))
    n = int(keep.sum())
    p = binomtest(agree, n, 0.5, alternative="greater").pvalue if n else float("nan")
    return {"pairs": n, "agree": agree, "share": agree / n if n else float("nan"), "p": p}


def _means(runs: dict[tuple[str, int], tuple[float, float]], k: int) -> dict[str, float]:
    return {s: float(np.mean([v[k] for (sc, _), v in runs.items() if sc == s])) for s in SCENARIOS}


def _tau(x: list[float], y: list[float]) -> float:
    return float(kendalltau(x, y).statistic)


def study() -> dict[str, Any]:
    hosts: dict[str, Any] = {}
    all_run_dv, all_run_dt, all_sc_dv, all_sc_dt = [], [], [], []
    verdicts = []
    for host, configs in HOSTS.items():
        runs = {name: _runs(stem) for name, stem in configs.items()}
        val = {name: _means(r, 0) for name, r in runs.items()}
        test = {name: _means(r, 1) for name, r in runs.items()}
        folds = {name: float(np.mean([t[f] for f in FOLDS])) for name, t in test.items()}
        for a, b in itertools.combinations(configs, 2):
            keys = sorted(set(runs[a]) & set(runs[b]))
            all_run_dv += [runs[a][k][0] - runs[b][k][0] for k in keys]
            all_run_dt += [runs[a][k][1] - runs[b][k][1] for k in keys]
            all_sc_dv += [val[a][s] - val[b][s] for s in SCENARIOS]
            all_sc_dt += [test[a][s] - test[b][s] for s in SCENARIOS]
            a_lower = sum(val[a][s] < val[b][s] for s in SCENARIOS)
            b_lower = sum(val[b][s] < val[a][s] for s in SCENARIOS)
            verdicts.append(
                {
                    "host": host,
                    "a": a,
                    "b": b,
                    "runs": len(keys),
                    "a_lower_val_scenarios": a_lower,
                    "rule_prefers": a if a_lower >= 4 else (b if b_lower >= 4 else "neither"),
                    "fold_mean_test": [folds[a], folds[b]],
                    "xact_test": [test[a]["xact"], test[b]["xact"]],
                    "test_prefers_folds": a if folds[a] < folds[b] else b,
                    "test_prefers_xact": a if test[a]["xact"] < test[b]["xact"] else b,
                }
            )
        names = list(configs)
        per_scenario = {}
        for s in SCENARIOS:
            v, t = [val[n][s] for n in names], [test[n][s] for n in names]
            per_scenario[s] = {"val": v, "test": t, "kendall_tau": _tau(v, t)}
        hosts[host] = {
            "configurations": names,
            "per_scenario": per_scenario,
            # the 4 folds are a cross-validation over xact's own training subjects: would
            # their test mean have ranked the configurations as xact's test subjects do?
            "folds_vs_xact_kendall_tau": _tau(
                [folds[n] for n in names], [test[n]["xact"] for n in names]
            ),
        }
    decided = [v for v in verdicts if v["rule_prefers"] != "neither"]
    return {
        "runs": _sign_agreement(np.array(all_run_dv), np.array(all_run_dt)),
        "scenario_means": _sign_agreement(np.array(all_sc_dv), np.array(all_sc_dt)),
        "verdicts": verdicts,
        "verdicts_decided": len(decided),
        "verdict_matches_folds": sum(v["rule_prefers"] == v["test_prefers_folds"] for v in decided),
        "verdict_matches_xact": sum(v["rule_prefers"] == v["test_prefers_xact"] for v in decided),
        "hosts": hosts,
    }


def markdown(doc: dict[str, Any]) -> str:
    r, s = doc["runs"], doc["scenario_means"]
    lines = [
        "# Validation against test on the motion benchmark (issue #16, diagnostic)",
        "",
        f"{doc['date']}. Every pair of configurations with 18 scored runs made on the same host "
        f"({sum(len(h['configurations']) for h in doc['hosts'].values())} configurations, "
        f"{len(doc['verdicts'])} pairs); no retraining, no new test scoring, nothing chosen "
        "on it. MAE of the deployed int8 model (TFLite Micro, chosen decoder).",
        "",
        "| comparison | pairs where validation differs | test differs the same way | "
        "share | P (one-sided sign test) |",
        "|---|---:|---:|---:|---:|",
        f"| per run (scenario x seed) | {r['pairs']} | {r['agree']} | {r['share']:.2f} "
        f"| {r['p']:.3f} |",
        f"| per scenario (mean over seeds) | {s['pairs']} | {s['agree']} | {s['share']:.2f} "
        f"| {s['p']:.3f} |",
        "",
        f"The benchmark's rule (lower validation MAE in at least 4 of 6 scenarios) prefers one "
        f"configuration in {doc['verdicts_decided']} of the {len(doc['verdicts'])} pairs; the "
        f"preferred one has the lower 4-fold test mean in {doc['verdict_matches_folds']} of "
        f"them and the lower across-activities test MAE in {doc['verdict_matches_xact']}.",
        "",
        "Per scenario, Kendall's tau between the configurations' mean validation and mean test "
        "MAE (1 = the same order):",
        "",
        "| host | configurations | " + " | ".join(SCENARIOS) + " |",
        "|---|---:|" + "---:|" * len(SCENARIOS),
    ]
    for host, h in doc["hosts"].items():
        taus = " | ".join(f"{h['per_scenario'][sc]['kendall_tau']:+.2f}" for sc in SCENARIOS)
        lines.append(f"| {host} | {len(h['configurations'])} | {taus} |")
    taus = ", ".join(
        f"host {h} {d['folds_vs_xact_kendall_tau']:+.2f}" for h, d in doc["hosts"].items()
    )
    lines += [
        "",
        "The four folds are a cross-validation over the across-activities scenario's own "
        "training subjects (tr01-12); Kendall's tau between the configurations' 4-fold test "
        f"mean and their across-activities test MAE: {taus}.",
    ]
    lines += [
        "",
        "Pairs (a against b): scenarios where a's validation MAE is lower, the rule's "
        "preference, and the test:",
        "",
        "| host | a | b | a lower on val | rule prefers | 4-fold test a / b | "
        "across activities a / b |",
        "|---|---|---|---:|---|---|---|",
    ]
    for v in doc["verdicts"]:
        fa, fb = v["fold_mean_test"]
        xa, xb = v["xact_test"]
        lines.append(
            f"| {v['host']} | {v['a']} | {v['b']} | {v['a_lower_val_scenarios']} of 6 | "
            f"{v['rule_prefers']} | {fa:.2f} / {fb:.2f} | {xa:.2f} / {xb:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    doc = {"schema": 1, "date": date.today().isoformat(), **study()}
    text = markdown(doc)
    (RESULTS / "val_test_agreement.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / "val_test_agreement.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
