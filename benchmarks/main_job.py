"""Main-job benchmark: the README's `ppgedge run` (built-in synthetic config) from an empty run
directory, then again with nothing changed; wall time and peak memory of each.

Peak memory is each run's own largest resident set (``ru_maxrss`` from ``wait4`` on that run's
process; the run is one Python process). The held-out int8 MAE
and the budget verdict are read from the run's own manifest.

Writes ``benchmarks/results/main_job.json`` and ``main_job.md``.
Run: ``.venv/bin/python benchmarks/main_job.py`` (5-10 min on 2 CPU cores; ``--seeds 0,1,2``
15-30).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ppgedge.ownership import RUN, claim

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def timed_run(out: Path, extra: list[str]) -> dict:
    """One `ppgedge run`; its own peak RSS from wait4 (RUSAGE_CHILDREN only ever grows, so a
    second run would report the first run's peak)."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ppgedge", "run", "-o", str(out), "--json", *extra],
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, "COLUMNS": "120"},
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        stdout.seek(0)
        stderr.seek(0)
        out_text, err_text = stdout.read(), stderr.read()
    if proc.returncode not in (0, 1):
        print(err_text[-3000:], file=sys.stderr)
        raise SystemExit(f"ppgedge run failed with exit code {proc.returncode}")
    payload = json.loads(out_text[out_text.index("{") :])
    return {
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "exit_code": proc.returncode,
        "skipped": payload["skipped"],
        "summary": payload["summary"],
    }


def seeds_run(out_root: Path, seeds: list[int], extra: list[str]) -> int:
    """The main job once per seed (data, initialisation and shuffling change with it): the
    headline as mean and range, each run's own wall time and peak RSS."""
    rows = []
    for seed in seeds:
        out = out_root / f"seed{seed}"
        if out.exists():
            claim(out, RUN, "--out")
            shutil.rmtree(out)
        config = out_root / f"seed{seed}.toml"
        out_root.mkdir(parents=True, exist_ok=True)
        config.write_text(f"[run]\nseed = {seed}\n")
        run = timed_run(out, ["--config", str(config), *extra])
        int8 = run["summary"][-1]
        rows.append(
            {
                "seed": seed,
                "seconds": run["seconds"],
                "peak_rss_mb": run["peak_rss_mb"],
                "exit_code": run["exit_code"],
                "int8_mae": int8["test_mae"],
                # what the bundle reports: the tracked value when validation (on the int8
                # outputs) chose the tracker, else the per-window one
                "decoder": int8.get("deployed_decoder"),
                "int8_mae_deployed": int8["test_mae_tracked"]
                if int8.get("deployed_decoder") == "tracked"
                else int8["test_mae"],
                "spectral_mae": run["summary"][0]["test_mae"],
                "parameters": int8["parameters"],
                "flash_kb": int8["flash_bytes"] / 1024,
                "sram_kb": int8["sram_bytes"] / 1024,
                "latency_ms_high": int8["latency_ms"]["high"],
                "verdict": int8["verdict"],
            }
        )
        print(rows[-1], flush=True)
    keys = ("seconds", "peak_rss_mb", "int8_mae", "int8_mae_deployed", "spectral_mae",
            "parameters", "flash_kb", "sram_kb", "latency_ms_high")  # fmt: skip
    stats = {
        k: {
            "mean": sum(r[k] for r in rows) / len(rows),
            "min": min(r[k] for r in rows),
            "max": max(r[k] for r in rows),
        }
        for k in keys
    }
    doc = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "runs": rows, "stats": stats}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "main_job_seeds.json").write_text(json.dumps(doc, indent=1) + "\n")
    lines = [
        f"# Main job over seeds {', '.join(map(str, seeds))} (`ppgedge run`, `[run] seed`)",
        "",
        f"{doc['date']}, {doc['cpus']} CPU cores, no GPU; each run from an empty folder, its own "
        "peak RSS (wait4).",
        "",
        "| seed | seconds | peak RSS MB | int8 MAE (TFLM, per window) | as the bundle reports "
        "(decoder) | spectral MAE | params | flash KB | SRAM KB | latency ms (est. high) | "
        "verdict |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    lines += [
        f"| {r['seed']} | {r['seconds']:.0f} | {r['peak_rss_mb']:.0f} | {r['int8_mae']:.2f} | "
        f"{r['int8_mae_deployed']:.2f} ({r['decoder']}) | {r['spectral_mae']:.2f} | "
        f"{r['parameters']:,} | {r['flash_kb']:.1f} | "
        f"{r['sram_kb']:.1f} | {r['latency_ms_high']:.1f} | {r['verdict']} |"
        for r in rows
    ]
    lines += ["", "| | mean | range |", "| --- | ---: | --- |"]
    lines += [
        f"| {k} | {v['mean']:.2f} | {v['min']:.2f}-{v['max']:.2f} |" for k, v in stats.items()
    ]
    (RESULTS / "main_job_seeds.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "main_job")
    parser.add_argument("--quick", action="store_true", help="the --quick smoke config")
    parser.add_argument("--seeds", help="e.g. 0,1,2: one full run per seed, mean and range")
    args = parser.parse_args()
    if args.seeds:
        seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
        return seeds_run(args.out, seeds, ["--quick"] if args.quick else [])
    if args.out.exists():  # start from empty, but only ever delete a ppgedge run folder
        claim(args.out, RUN, "--out")
        shutil.rmtree(args.out)
    extra = ["--quick"] if args.quick else []
    first = timed_run(args.out, extra)
    second = timed_run(args.out, extra)
    manifest = json.loads((args.out / "manifest.json").read_text())
    stages = {k: v["seconds"] for k, v in manifest["stages"].items()}
    res = {
        "date": time.strftime("%Y-%m-%d"),
        "tools": manifest["tools"],
        "threads": os.cpu_count(),
        "first_run": first,
        "second_run": {k: second[k] for k in ("seconds", "peak_rss_mb", "skipped", "exit_code")},
        "stage_seconds": stages,
        "int8": first["summary"][-1],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "main_job_quick" if args.quick else "main_job"
    (RESULTS / f"{name}.json").write_text(json.dumps(res, indent=1) + "\n")
    rows = "\n".join(f"| {k} | {v:.1f} |" for k, v in stages.items())
    int8 = res["int8"]
    md = (
        f"# Main job (`ppgedge run{' --quick' if args.quick else ''}`)\n\n"
        f"{res['date']}, ppgedge {res['tools']['ppgedge']}, torch {res['tools']['torch']}, "
        f"{res['threads']} CPU cores, no GPU.\n\n"
        f"- first run (empty directory): **{first['seconds']:.0f} s**, peak RSS "
        f"{first['peak_rss_mb']:.0f} MB, exit code {first['exit_code']}\n"
        f"- second run, nothing changed: **{second['seconds']:.1f} s** "
        f"({len(second['skipped'])} of {len(stages)} stages skipped)\n"
        f"- int8 model on held-out synthetic subjects (TFLite Micro): MAE "
        f"**{int8['test_mae']:.2f} BPM**, {int8['parameters']:,} parameters, flash "
        f"{int8['flash_bytes'] / 1024:.1f} KB, SRAM {int8['sram_bytes'] / 1024:.1f} KB on "
        f"{int8['target']} ({int8['verdict']})\n\n"
        "| stage | seconds (first run) |\n|---|---:|\n" + rows + "\n"
    )
    (RESULTS / f"{name}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
