"""Flash for the TFLite Micro runtime code a model needs: an ESTIMATE, per op and core runtime.

PLACEHOLDER TABLE (replaced by measured numbers below once measured).
"""

from __future__ import annotations

from dataclasses import dataclass

from ppgedge.profile.graph import Graph


@dataclass(frozen=True)
class CodeItem:
    name: str
    bytes: int
    source: str


CORE_RUNTIME = CodeItem(
    "TFLite Micro framework (interpreter, allocator, planner, flatbuffer access)",
    9732,
    "tflite-micro examples/memory_footprint/README.md: 9,732 B on a Cortex-M3 'bluepill'",
)

KERNEL_BYTES: dict[str, int] = {
    "CONV_2D": 6000, "DEPTHWISE_CONV_2D": 6000, "FULLY_CONNECTED": 3000,
    "AVERAGE_POOL_2D": 1500, "MAX_POOL_2D": 1200, "SOFTMAX": 2500, "ADD": 2500, "MUL": 2000,
    "MEAN": 3000, "RESHAPE": 400, "PAD": 1500, "QUANTIZE": 1500, "DEQUANTIZE": 800,
}  # fmt: skip
KERNEL_DEFAULT = 2000
KERNEL_SOURCE = "placeholder estimate"


def runtime_items(graph: Graph) -> list[CodeItem]:
    """Core runtime plus one kernel per distinct op type used by the model."""
    items = [CORE_RUNTIME]
    for name in sorted({op.opcode for op in graph.operators}):
        n = KERNEL_BYTES.get(name, KERNEL_DEFAULT)
        items.append(CodeItem(f"{name} kernel", n, KERNEL_SOURCE))
    return items
