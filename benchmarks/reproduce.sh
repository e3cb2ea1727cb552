#!/usr/bin/env bash
# Regenerate the README's headline figures on a fresh clone: the main job over three seeds
# (benchmarks/results/main_job_seeds.md: mean and range) and twice on one seed (first run and
# an unchanged rerun: main_job.md), and the gate's start-up (cli_startup.md). About 20-40 minutes
# on 2 CPU cores with nothing else running. Run from the repository root after README command 1
# or 2 (it uses .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -P benchmarks/main_job.py --seeds 0,1,2 --out benchmarks/out/main_job_seeds
.venv/bin/python -P benchmarks/main_job.py
.venv/bin/python -P benchmarks/cli_startup.py
