"""Commands that read files and print (the CI gate, data info) import no torch and no converter:
a gate runs on every push, and importing torch alone costs 2.5 s (benchmarks/cli_startup.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("torch", "tensorflow", "litert_torch", "onnxruntime", "ai_edge_litert")
MODEL = Path(__file__).resolve().parents[2] / "shared/data/mlperf-tiny/ad01_int8.tflite"


def test_gate_and_info_commands_import_nothing_heavy(tiny_dataset_path: Path) -> None:
    commands = [["targets"], ["data", "info", str(tiny_dataset_path)]]
    if MODEL.is_file():  # the shared folder beside the clone; the rest still runs without it
        commands += [["profile", str(MODEL), "-t", "nrf52840"], ["check", str(MODEL)]]
    probe = (
        "import json, sys; from typer.testing import CliRunner; from ppgedge.cli import app; "
        f"codes = [CliRunner().invoke(app, a).exit_code for a in {commands!r}]; "
        f"print(json.dumps([codes, [m for m in {HEAVY!r} if m in sys.modules]]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    codes, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert codes[:2] == [0, 0] and all(c in (0, 1) for c in codes), (codes, out.stderr)
    assert heavy == [], f"{heavy} imported by {commands}"
