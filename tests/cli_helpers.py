"""Running the real command line in a subprocess, and the shape every user error must have."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def ppgedge(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ppgedge", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env={"COLUMNS": "120", "PATH": "", "OMP_NUM_THREADS": "1"},  # two workers, two cores
    )


def assert_user_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert needle in proc.stderr
