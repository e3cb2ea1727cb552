"""Fresh-clone transcript: the README's two set-up commands, run exactly as written, each in its
own fresh clone of the committed tree, and what they printed beside the README's figures.

The commands are read from README.md (the ``bash`` blocks under "Set up"), not retyped here, so
the transcript tests the README itself. Each clone is made beside this checkout, so ``../shared``
(real data, vendored TFLite Micro) sits beside it as it does in CI. The main job's int8 MAE,
flash, SRAM and verdict are read from the clone's own ``runs/default/manifest.json`` and
compared with ``benchmarks/results/main_job_seeds.json`` (the range over seeds 0, 1, 2 that the
README states); the test command must end with failures = 0, errors = 0 and skipped = 0.

Writes ``benchmarks/results/fresh_clone.json`` and ``fresh_clone.md``.
Run: ``.venv/bin/python -P benchmarks/fresh_clone.py`` (about 25 min on 2 CPU cores with
nothing else running: two installs, the main job, the test suite).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TAIL_LINES = 45


def readme_commands(readme: Path) -> tuple[str, str]:
    """The two set-up commands: the first line after "# 1." and "# 2." in README's bash blocks."""
    text = readme.read_text()
    found = {}
    for number in ("1", "2"):
        m = re.search(rf"```bash\n# {number}\..*\n(.+)\n```", text)
        if not m:
            raise SystemExit(f"README.md has no ```bash block starting '# {number}.'")
        found[number] = m.group(1).strip()
    return found["1"], found["2"]


def clone(commit: str, dest: Path) -> None:
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", commit], check=True)


def run_logged(command: str, cwd: Path, log: Path) -> dict:
    """``bash -c COMMAND`` as a user would type it, output piped (no terminal), env without this
    checkout's virtual environment; wall time and exit code."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(
        p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT))
    )
    t0 = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.run(
            ["bash", "-c", command], cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=env
        )
    return {"command": command, "exit_code": proc.returncode,
            "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip


def tail(log: Path, n: int = TAIL_LINES) -> list[str]:
    lines = log.read_text(errors="replace").splitlines()
    return [ln for ln in lines if not ln.startswith(("  Downloading", "  Using cached"))][-n:]


def pytest_counts(lines: list[str]) -> dict[str, int]:
    """The counts on pytest's last summary line (``429 passed, 2 warnings in 712.3s``)."""
    for line in reversed(lines):
        if re.search(r"\b(passed|failed|error)\b", line) and " in " in line:
            return {k: int(v) for v, k in re.findall(r"(\d+) (\w+)", line)}
    return {}


def main_job_check(clone_dir: Path) -> dict:
    manifest = json.loads((clone_dir / "runs" / "default" / "manifest.json").read_text())
    int8 = manifest["summary"][-1]
    seeds = json.loads((RESULTS / "main_job_seeds.json").read_text())
    seed0 = next(r for r in seeds["runs"] if r["seed"] == 0)
    lo, hi = seeds["stats"]["int8_mae"]["min"], seeds["stats"]["int8_mae"]["max"]
    return {
        "int8_mae": int8["test_mae"],
        "flash_bytes": int8["flash_bytes"],
        "sram_bytes": int8["sram_bytes"],
        "parameters": int8["parameters"],
        "verdict": int8["verdict"],
        "readme_seed0_int8_mae": seed0["int8_mae"],
        "readme_range": [lo, hi],
        "within_range": lo - 1e-9 <= int8["test_mae"] <= hi + 1e-9,
        "same_size_as_seed0": abs(int8["flash_bytes"] / 1024 - seed0["flash_kb"]) < 0.05,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", default="HEAD", help="commit to clone (default HEAD)")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", args.commit], check=True, capture_output=True,
        text=True,
    ).stdout.strip()  # fmt: skip
    if not (ROOT.parent / "shared").is_dir():
        print(f"note: no {ROOT.parent / 'shared'}: tests that read real data will skip")
    cmd1, cmd2 = readme_commands(ROOT / "README.md")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    doc: dict = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": commit,
                 "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                 "runs": []}  # fmt: skip
    logs = []
    for number, command in (("1", cmd1), ("2", cmd2)):
        dest = ROOT.parent / f"fresh-clone-{stamp}-{number}"
        clone(commit, dest)
        log = dest.parent / f"{dest.name}.log"
        print(f"[{number}] {command}  (in {dest})", flush=True)
        result = run_logged(command, dest, log)
        lines = tail(log)
        result["tail"] = lines
        if number == "1" and result["exit_code"] in (0, 1):
            result["main_job"] = main_job_check(dest)
        if number == "2":
            result["pytest"] = pytest_counts(lines)
        print(f"[{number}] exit {result['exit_code']} in {result['seconds']:.0f} s", flush=True)
        doc["runs"].append(result)
        logs.append(log)
        shutil.rmtree(dest, ignore_errors=True)  # the clone this script made
        log.unlink(missing_ok=True)
    r1, r2 = doc["runs"]
    counts = r2.get("pytest", {})
    doc["ok"] = bool(
        r1["exit_code"] == 0
        and r1.get("main_job", {}).get("within_range")
        and r2["exit_code"] == 0
        and counts.get("passed", 0) > 0
        and not any(counts.get(k) for k in ("failed", "error", "errors", "skipped"))
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "fresh_clone.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / "fresh_clone.md").write_text(render(doc))
    print(render(doc))
    return 0 if doc["ok"] else 1


def render(doc: dict) -> str:
    r1, r2 = doc["runs"]
    mj = r1.get("main_job", {})
    counts = r2.get("pytest", {})
    lo, hi = mj.get("readme_range", [float("nan")] * 2)
    lines = [
        "# Fresh clone: the README's two commands, run exactly",
        "",
        f"{doc['date']}, commit `{doc['commit'][:12]}`, {doc['machine']['cpus']} CPU cores, "
        f"Python {doc['machine']['python']}, no GPU; each command in its own fresh clone beside "
        "`../shared`, output piped (no terminal). `benchmarks/fresh_clone.py` reads the commands "
        "from README.md.",
        "",
        "| command | exit | seconds (install included) | result | README says |",
        "| --- | ---: | ---: | --- | --- |",
        f"| 1. main job | {r1['exit_code']} | {r1['seconds']:.0f} | int8 MAE "
        f"{mj.get('int8_mae', float('nan')):.2f} BPM, {mj.get('parameters', 0):,} params, "
        f"{mj.get('flash_bytes', 0) / 1024:.1f} KB flash, {mj.get('sram_bytes', 0) / 1024:.1f} "
        f"KB SRAM, {mj.get('verdict', '?')} | {mj.get('readme_seed0_int8_mae', float('nan')):.2f}"
        f" with the default seed, {lo:.2f}-{hi:.2f} over seeds 0-2 "
        f"(`main_job_seeds.json`): {'within' if mj.get('within_range') else 'OUTSIDE'} |",
        f"| 2. tests | {r2['exit_code']} | {r2['seconds']:.0f} | "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
        + " | all pass, none skipped |",
        "",
        f"Verdict: **{'matches the README' if doc['ok'] else 'does NOT match the README'}**.",
        "",
    ]
    for number, r in (("1", r1), ("2", r2)):
        lines += [f"## Command {number}: last {len(r['tail'])} lines", "", "```"]
        lines += [f"$ {r['command']}", "..."] + r["tail"] + ["```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
