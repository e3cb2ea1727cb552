"""Re-judge ``[prune] rebuild`` on data no configuration was scored on (issue #16).

The motion benchmark's ``rebuild`` variant beat the default on the test subjects of the two
scenarios where validation kept the rebuilt network, but its adoption rule (fixed before those
runs) failed; seeing those test scores is what prompted this second look, so it is made on
fresh data with a rule fixed before these runs (docs/motion-benchmark.md, "Rebuild re-judged
on fresh data"): the synthetic motion scenario at run seeds 1, 2 and 3 (new subjects, new
initialisation), ``longtune`` (the defaults) against ``rebuild``; adopt if rebuild's int8
(TFLite Micro, chosen decoder) MAE is at most longtune's + 0.10 BPM in every seed.

These held-out subjects are development data for this one decision, not reported targets.
Writes ``benchmarks/results/rebuild_check.{json,md}``; run folders go to benchmarks/out/motion
(``synthetic-sN_<variant>``). Run: ``.venv/bin/python benchmarks/rebuild_check.py`` (two
chains at once, about 4 min per whole chain on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from motion import DEV_PREFIX, OUT, run_chain, score_run, write_results

from ppgedge import __version__

SEEDS = (1, 2, 3)
VARIANTS = ("longtune", "rebuild")  # rebuild starts from a copy of the longtune folder
MARGIN = 0.10  # BPM: non-inferiority margin per seed


def _chain(scenario: str) -> dict[str, Any]:
    """Both variants of one seed, in order (rebuild reuses longtune's teacher and student)."""
    out = {}
    for variant in VARIANTS:
        run, seconds = run_chain(scenario, variant, {})
        out[variant] = {**score_run(run), "wall_seconds": seconds}
        print(scenario, variant, round(out[variant]["models"][3]["mae_chosen"], 2), flush=True)
    return out


def verdict(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    diffs = {
        s: r["rebuild"]["models"][3]["mae_chosen"] - r["longtune"]["models"][3]["mae_chosen"]
        for s, r in rows.items()
    }
    return {
        "rule": f"rebuild int8 MAE <= longtune + {MARGIN:.2f} BPM in every seed",
        "differences": diffs,
        "adopt": all(d <= MARGIN for d in diffs.values()),
    }


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# `[prune] rebuild` re-judged on fresh synthetic seeds (issue #16)",
        "",
        f"ppgedge {doc['ppgedge']}, {doc['date']}. Synthetic motion scenario (the main job's "
        "data and chain) at run seeds " + ", ".join(str(s) for s in SEEDS) + "; development "
        "data for this decision only. MAE in BPM on each seed's held-out subjects, int8 in "
        "TFLite Micro with the decoder validation chose; `kept` = the network the prune "
        "stage kept on validation.",
        "",
        "| seed | longtune int8 | rebuild int8 | difference | kept (val MAE) | prune stage s "
        "(longtune / rebuild) |",
        "|---|---|---|---|---|---|",
    ]
    for s, r in doc["runs"].items():
        lt, rb = r["longtune"], r["rebuild"]
        choice = rb.get("prune_choice") or {}
        kept = choice.get("kept", "-")
        vals = ", ".join(f"{k} {v:.2f}" for k, v in (choice.get("val_mae") or {}).items())
        lines.append(
            f"| {s} | {lt['models'][3]['mae_chosen']:.2f} | {rb['models'][3]['mae_chosen']:.2f}"
            f" | {doc['verdict']['differences'][s]:+.2f} | {kept} ({vals}) | "
            f"{lt.get('prune_seconds', 0):.0f} / {rb.get('prune_seconds', 0):.0f} |"
        )
    v = doc["verdict"]
    lines += ["", f"Rule: {v['rule']}. Verdict: **{'adopt' if v['adopt'] else 'not adopted'}**."]
    return "\n".join(lines) + "\n"


def _prune_facts(run_folder) -> dict[str, Any]:
    manifest = json.loads((run_folder / "manifest.json").read_text())
    stage = manifest.get("stages", {}).get("prune", {})
    metrics = stage.get("metrics") or {}
    choice = {k: metrics[k] for k in ("kept", "val_mae") if k in metrics}
    return {"prune_seconds": float(stage.get("seconds") or 0), "prune_choice": choice or None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="chains run at once")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    scenarios = [f"{DEV_PREFIX}{s}" for s in SEEDS]
    with ThreadPoolExecutor(args.jobs) as pool:
        results = dict(zip(scenarios, pool.map(_chain, scenarios), strict=True))
    for scenario, rows in results.items():
        for variant, row in rows.items():
            row.update(_prune_facts(OUT / f"{scenario}_{variant}"))
    doc = {
        "schema": "ppgedge.benchmark.rebuild_check/1",
        "ppgedge": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "runs": results,
        "verdict": verdict(results),
    }
    write_results("rebuild_check", doc, markdown(doc))


if __name__ == "__main__":
    main()
