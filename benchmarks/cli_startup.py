"""How fast the gate commands start: `ppgedge --version`, `--help`, `targets`, `profile`, `check`.

A CI gate runs on every push; it must not pay for torch or the converter stack it does not use.
For each command: the median and max wall time of N runs (fresh processes, stdout to a pipe, as
CI runs them), and, as evidence of why, `python -X importtime` of the CLI package: total import
time and whether torch, tensorflow, litert_torch or onnxruntime were imported at all.

Run: ``.venv/bin/python benchmarks/cli_startup.py [--runs 5]``; writes
``benchmarks/results/cli_startup.{json,md}``. Target (issue 15): under 1.0 s each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT.parent / "shared" / "data" / "mlperf-tiny" / "kws_ref_model.tflite"
RESULTS = ROOT / "benchmarks" / "results"
HEAVY = ("torch", "tensorflow", "litert_torch", "onnxruntime", "ai_edge_litert")
TARGET_S = 1.0


def commands() -> dict[str, list[str]]:
    out = {
        "--version": ["--version"],
        "--help": ["--help"],
        "check --help": ["check", "--help"],
        "targets": ["targets"],
    }
    if MODEL.is_file():
        out["profile"] = ["profile", str(MODEL), "-t", "nrf52840"]
        out["check --json"] = ["check", str(MODEL), "-t", "nrf52840", "--json"]
    return out


def time_command(args: list[str], runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "ppgedge", *args], capture_output=True, text=True
        )
        seconds.append(time.perf_counter() - t0)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"ppgedge {' '.join(args)} failed: {proc.stderr.strip()}")
    return seconds


def import_evidence() -> dict[str, object]:
    """-X importtime of `import ppgedge.cli`, and which heavy modules a check imports."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import ppgedge.cli"],
        capture_output=True,
        text=True,
    )
    rows = [ln.split("|") for ln in proc.stderr.splitlines() if ln.startswith("import time:")]
    cumulative = {r[2].strip(): int(r[1]) for r in rows if r[1].strip().isdigit()}
    probe = (
        "import sys; from typer.testing import CliRunner; from ppgedge.cli import app; "
        f"CliRunner().invoke(app, ['check', {str(MODEL)!r}, '-t', 'nrf52840', '--json']); "
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    heavy = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    return {
        "import_ppgedge_cli_ms": round(cumulative.get("ppgedge.cli", 0) / 1000, 1),
        "slowest_imports_ms": {
            k: round(v / 1000, 1) for k, v in sorted(cumulative.items(), key=lambda kv: -kv[1])[:8]
        },
        "heavy_modules_imported_by_check": json.loads(heavy.stdout.strip().replace("'", '"'))
        if MODEL.is_file() and heavy.returncode == 0
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows = []
    for name, argv in commands().items():
        s = time_command(argv, args.runs)
        rows.append(
            {
                "command": f"ppgedge {name}",
                "median_s": round(statistics.median(s), 3),
                "max_s": round(max(s), 3),
                "under_target": statistics.median(s) < TARGET_S,
            }
        )
    doc = {
        "schema": "ppgedge.bench.cli_startup/1",
        "runs": args.runs,
        "target_s": TARGET_S,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "commands": rows,
        "imports": import_evidence(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cli_startup.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        "# CLI start-up (`benchmarks/cli_startup.py`)",
        "",
        f"{args.runs} fresh processes per command, stdout a pipe, Python {doc['python']}, "
        f"{doc['cpus']} CPUs, 1-min load average {doc['load_avg_1min']} when it ran. "
        f"Target: under {TARGET_S:g} s.",
        "",
        "| command | median s | max s | under target |",
        "| --- | ---: | ---: | :---: |",
    ]
    lines += [
        f"| `{r['command']}` | {r['median_s']:.3f} | {r['max_s']:.3f} | "
        f"{'yes' if r['under_target'] else 'NO'} |"
        for r in rows
    ]
    ev = doc["imports"]
    lines += [
        "",
        f"`python -X importtime -c 'import ppgedge.cli'`: {ev['import_ppgedge_cli_ms']} ms "
        f"cumulative; heavy modules a `check` imports: {ev['heavy_modules_imported_by_check']}.",
        "",
    ]
    (RESULTS / "cli_startup.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
