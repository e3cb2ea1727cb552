"""What the firmware tests (test_measure.py, test_aot.py) need from the machine."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

TFLM_SRC = Path(__file__).resolve().parents[2] / "shared" / "vendor" / "tflm-src"
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm", "gcc")


def need_tools() -> None:
    """Skip locally, fail in CI ($CI set, where .ci/run installs them), when a tool is missing."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not TFLM_SRC.is_dir():
        missing.append(str(TFLM_SRC))
    if missing:
        why = f"not available: {', '.join(missing)} (.ci/run installs them)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
