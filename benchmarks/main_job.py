"""Main-job benchmark: the README's `ppgedge run` (built-in synthetic config) from an empty run
directory, then again with nothing changed; wall time and peak memory of each.

Peak memory is each run's own largest resident set (``ru_maxrss`` from ``wait4`` on that run's
process; the run is one Python process). The held-out int8 MAE
and the budget verdict are read from the run's own manifest.

Writes ``benchmarks/results/main_job.json`` and ``main_job.md``.
Run: ``.venv/bin/python benchmarks/main_job.py`` (about 10 min on 2 CPU cores).
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "main_job")
    parser.add_argument("--quick", action="store_true", help="the --quick smoke config")
    args = parser.parse_args()
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
