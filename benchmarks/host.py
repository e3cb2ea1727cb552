"""What decides a benchmark's floating-point kernels, recorded beside its figures: the same
configuration moves by several BPM on SPC between CPUs (docs/motion-benchmark.md)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import torch


def host() -> dict[str, Any]:
    """The CPU's family, model and vector extensions, and the kernels PyTorch picked."""
    info: dict[str, str] = {}
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.is_file() else ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "cpu family", "model", "flags") and key not in info:
            info[key] = value.strip()
    flags = set(info.get("flags", "").split())
    return {
        "cpu": info.get("model name", platform.processor()),
        "family": info.get("cpu family"),
        "model": info.get("model"),
        "avx512f": "avx512f" in flags,
        "avx2": "avx2" in flags,
        "torch": torch.__version__,
        "mkldnn_isa": torch.backends.cpu.get_cpu_capability(),
    }


def describe(h: dict[str, Any]) -> str:
    """One line for a results table: 'AMD EPYC ... (family 25, model 1, AVX2)'."""
    isa = "AVX-512" if h["avx512f"] else "AVX2" if h["avx2"] else "no AVX2"
    return f"{h['cpu']} (family {h['family']}, model {h['model']}, {isa})"
