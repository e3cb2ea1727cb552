"""Generate the AOT C files of one int8 .tflite: lower, plan, emit (refusing before writing)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppgedge.aot import emit
from ppgedge.aot.graph import read
from ppgedge.aot.lower import Layer, lower
from ppgedge.aot.plan import Plan, plan
from ppgedge.atomic import file_sha256


@dataclass(frozen=True)
class Generated:
    ident: str
    texts: dict[str, str]  # file name -> C text
    layers: list[Layer]
    plan: Plan
    input_bytes: int
    output_bytes: int

    def summary(self) -> dict[str, Any]:
        """What a manifest records about the AOT build."""
        return {
            "runtime": "aot",
            "arena_bytes": self.plan.arena_bytes,
            "files": sorted(self.texts),
            "layers": [
                {
                    "index": la.op.index,
                    "op": la.op.name,
                    "kernel": la.kernel,
                    "scratch_bytes": la.scratch,
                }
                for la in self.layers
            ],  # fmt: skip
        }


def generate(tflite: str | Path, ident: str) -> Generated:
    """The C texts for ``tflite`` under C identifier ``ident`` (raises a one-line
    PpgedgeError naming the layer for anything unsupported; nothing is written here)."""
    g = read(tflite)
    layers = lower(g)
    p = plan(g, layers)
    note = f"From {Path(tflite).name} (sha256 {file_sha256(Path(tflite))[:16]})."
    texts = {
        f"{ident}_aot.h": emit.header(ident, g, p, note),
        f"{ident}_aot.c": emit.source(ident, g, layers, p, note),
    }
    x, y = g.tensors[g.inputs[0]], g.tensors[g.outputs[0]]
    return Generated(ident, texts, layers, p, x.bytes, y.bytes)


def write(gen: Generated, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in gen.texts.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
