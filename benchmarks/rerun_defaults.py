"""Re-run the defaults' motion-benchmark chains from scratch on this host and set them beside
the recorded figures (issue #16): how far the same configuration moves with the host.

The motion benchmark's runs of a candidate start from copies of earlier run folders, made on
whichever host ran them. A later session on another CPU cannot copy those folders (they are
not kept between checkouts) and retrains every stage; PyTorch's CPU kernels differ between
processor generations (AVX-512 or not, for one), so small-data training lands elsewhere. This
script runs :data:`motion.VERDICT_VARIANT` for the given scenarios and seeds exactly as
``candidate.py`` does (``motion.run_chain``: the same config, one thread per chain, two chains
at once; a run folder whose stages are all current is only re-scored) and writes, per seed, the
deployed int8 model's validation and test MAE (TFLite Micro, the decoder its bundle reports)
beside the recorded ones from ``benchmarks/results/<variant>.json``. Nothing is chosen on it;
the test subjects are scored again for a configuration already reported.

``candidate.py`` reads this file as the baseline of a candidate judged against runs of its
own host (:data:`candidate.HOST_BASELINE`).

Writes ``benchmarks/results/rerun_defaults.{json,md}``. Run:
``.venv/bin/python benchmarks/rerun_defaults.py --scenarios xact --seeds 0,1,2`` (about 20 min
for three xact chains on 2 cores, every stage retrained; all six scenarios about two hours:
measured 2026-12-07 on a 2-core AMD EPYC, 513-851 s of stages per chain, two at once).
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from candidate import _one
from host import host
from motion import OUT, RESULTS, SCENARIOS, VERDICT_VARIANT, _datasets, write_results
from motion_seeds import _name

from ppgedge import __version__


def markdown(doc: dict[str, Any]) -> str:
    h, v = doc["host"], doc["variant"]
    lines = [
        f"# The defaults (`{v}`) re-run from scratch: {', '.join(doc['scenarios'])} (issue #16)",
        "",
        f"ppgedge {doc['ppgedge']}, {doc['date']}; host: {h['cpu']} (family {h['family']}, "
        f"model {h['model']}, AVX-512 {'yes' if h['avx512f'] else 'no'}, torch CPU capability "
        f"{h['mkldnn_isa']}), 2 chains at once, one thread each. Every stage retrained from "
        f"the data stage (no copied folder). Recorded: benchmarks/results/{v}.json. Deployed "
        "int8 model in TFLite Micro, the value its bundle reports; MAE in BPM. Nothing is "
        "chosen on this; the test subjects are scored again for a configuration already "
        "reported.",
        "",
        "| scenario | seed | val recorded | val now | test recorded | test now | teacher (per "
        "window) recorded | now | seconds of its stages |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["runs"]:
        rec = r["recorded"] or {}
        cells = [f"{rec[k]:.2f}" if k in rec else "-" for k in ("val", "test")]
        t_rec = rec.get("teacher_test_per_window")
        lines.append(
            f"| {r['scenario']} | {r['seed']} | {cells[0]} | {r['val']:.2f} | {cells[1]} | "
            f"{r['test']:.2f} | "
            f"{'-' if t_rec is None else f'{t_rec:.2f}'} | {r['teacher_test_per_window']:.2f} "
            f"| {r['stage_seconds']:.0f} |"
        )
    m = doc["means"]
    lines += [
        "",
        f"Mean over the runs: validation {m['val_recorded']:.2f} recorded, {m['val']:.2f} now; "
        f"test {m['test_recorded']:.2f} recorded, {m['test']:.2f} now.",
        "",
        "Per scenario, mean over its seeds (the figures a candidate is judged against):",
        "",
        "| scenario | runs | val recorded | val now | test recorded | test now |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for sc in doc["scenarios"]:
        rs = [r for r in doc["runs"] if r["scenario"] == sc]
        rec = [r["recorded"] for r in rs if r["recorded"]]
        cells = [
            f"{np.mean([x[k] for x in rec]):.2f}" if len(rec) == len(rs) else "-"
            for k in ("val", "test")
        ]
        lines.append(
            f"| {sc} | {len(rs)} | {cells[0]} | {np.mean([r['val'] for r in rs]):.2f} | "
            f"{cells[1]} | {np.mean([r['test'] for r in rs]):.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default="xact", help=f"comma-separated, of {SCENARIOS}")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds")
    ap.add_argument("--jobs", type=int, default=2, help="chains run at once")
    ap.add_argument("--render-only", action="store_true", help="rewrite the .md from the .json")
    args = ap.parse_args()
    if args.render_only:
        doc = json.loads((RESULTS / "rerun_defaults.json").read_text())
        write_results("rerun_defaults", doc, markdown(doc))
        return
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    scenarios = args.scenarios.split(",")
    if not set(scenarios) <= set(SCENARIOS):
        raise SystemExit(f"--scenarios: each of {', '.join(SCENARIOS)}")
    data = _datasets()
    recorded_doc = json.loads((RESULTS / f"{VERDICT_VARIANT}.json").read_text())
    recorded = {(r["scenario"], r["seed"]): r for r in recorded_doc["runs"]}

    def one(job: tuple[str, int]) -> dict[str, Any]:
        row = _one(job, VERDICT_VARIANT, data)  # the chain exactly as candidate.py runs it
        run = OUT / f"{_name(*job)}_{VERDICT_VARIANT}"
        stages = json.loads((run / "manifest.json").read_text())["stages"]
        trained = round(sum(s.get("seconds") or 0.0 for s in stages.values()), 1)
        return {**row, "stage_seconds": trained, "recorded": recorded.get(job)}

    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(one, [(s, seed) for seed in seeds for s in scenarios]))
    both = [r for r in rows if r["recorded"]]

    def mean(values: list[float]) -> float:
        return float(sum(values) / len(values)) if values else float("nan")

    doc = {
        "schema": "ppgedge.benchmark.rerun_defaults/1",
        "ppgedge": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "variant": VERDICT_VARIANT,
        "scenarios": scenarios,
        "host": host(),
        "runs": rows,
        "means": {
            "val": mean([r["val"] for r in both]),
            "val_recorded": mean([r["recorded"]["val"] for r in both]),
            "test": mean([r["test"] for r in both]),
            "test_recorded": mean([r["recorded"]["test"] for r in both]),
        },
    }
    write_results("rerun_defaults", doc, markdown(doc))


if __name__ == "__main__":
    main()
