"""Flash for the TFLite Micro runtime code a model needs: measured per op, summed per model.

The table in ``codesize_data/<core>.json`` was measured by ``benchmarks/tflm_codesize.py``:
TFLite Micro (commit 90b983c) and CMSIS-NN (4ab83cc, TFLM's pin; the tree in
../shared/vendor/tflm-src) compiled with arm-none-eabi-gcc 12.2 by ``ppgedge.firmware`` the
way TFLite Micro's Makefile builds them (framework ``-Os``, kernels and CMSIS-NN ``-O2``,
``-DNDEBUG``, ``--gc-sections``), with each kernel registered int8-only
(``Register_CONV_2D_INT8()``...) where TFLite Micro offers that:

* the framework: a ``MicroInterpreter`` with no kernel (interpreter, allocator, planner,
  flatbuffer access, op resolver), 18,044 B on a Cortex-M4, 17,740 B on a Cortex-M33
  (TFLite Micro's own ``memory_footprint`` README quotes 9,732 B on a Cortex-M3 for an older,
  smaller framework);
* per op, the code symbols its kernel adds (CMSIS-NN functions, TFLite Micro glue, the
  reference kernel where CMSIS-NN has none). A model's kernel code is the size of the *union* of
  its ops' symbols, so helpers several kernels share count once, times the table's worst ratio
  of linked size to symbol sizes (alignment, literal pools: 1.025 on M4 and M33, 1.14 on M7).
  The union is 1-3 % (M4, M33) to 14 % (M7) below linking exactly those kernels (the
  padding factor covers it), where summing the single-op sizes overstates by half.

* the application of a ppgedge bundle (``bundle_app``): its ``main.cc`` with MicroPrintf
  logging, the C preprocessing and decoding, startup and what only they pull from newlib-nano
  (printf, sqrtf): the bundle's linked firmware image minus the same program without them.
  Counting it makes ``profile``'s flash that of the linked bundle (``profile --measure`` links
  it and shows both); for a foreign model it stands for an application of that size.

So this is a measurement of real code under stated flags, but still an ESTIMATE for a given
firmware: another compiler or flags, logging, the default all-type registration
(``AddConv2D()`` pulls float and int16 kernels too: 35 KB instead of 18 KB for CONV_2D), or
platform code change it. Ops outside the table count the median of the measured kernels.
One table per core family (Cortex-M4, M33, M7: ``-mcpu`` and FPU flags of each); another core
uses the Cortex-M4 table.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from ppgedge.profile.graph import Graph

DATA_DIR = Path(__file__).resolve().parent / "codesize_data"
FALLBACK_CORE = "cortex-m4"
FAMILY = {
    "cortex-m4": "cortex-m4", "cortex-m4f": "cortex-m4",
    "cortex-m33": "cortex-m33", "cortex-m33f": "cortex-m33",
    "cortex-m7": "cortex-m7", "cortex-m7f": "cortex-m7",
}  # fmt: skip


@dataclass(frozen=True)
class CodeItem:
    """One line of the flash breakdown."""

    name: str
    bytes: int
    source: str


@cache
def table(core: str) -> dict[str, Any]:
    """The measured table for ``core`` (the Cortex-M4 one when that core was not measured)."""
    family = FAMILY.get(core.lower(), FALLBACK_CORE)
    path = DATA_DIR / f"{family}.json"
    if not path.is_file():
        path = DATA_DIR / f"{FALLBACK_CORE}.json"
    data = json.loads(path.read_text())
    data["file"] = path.name
    return data


def padding(core: str) -> float:
    """Linked size over symbol sizes, the worst of the measured model sets (alignment and
    literal pools the symbol table does not size): 1.025 on M4 and M33, 1.14 on M7."""
    sets = table(core)["model_sets"].values()
    return max(max(s["together"] / s["union_of_symbols"] for s in sets), 1.0)


def runtime_items(graph: Graph, core: str = FALLBACK_CORE) -> list[CodeItem]:
    """Framework plus the kernel code of the op types the model uses (shared code once)."""
    t = table(core)
    gcc = f"{t['compiler'].split()[0]} {t['compiler'].split()[-2]}"
    where = f"measured: {t['core']}, {gcc}, ppgedge/profile/codesize_data/{t['file']}"
    items = [
        CodeItem("TFLite Micro framework (interpreter, allocator, planner)", t["framework"], where)
    ]
    sizes = t["symbol_sizes"]
    used = sorted({op.opcode for op in graph.operators})
    known = [op for op in used if op in t["op_symbols"]]
    union = set().union(*(t["op_symbols"][op] for op in known)) if known else set()
    symbols = sum(sizes[i] for i in union) + sum(t["op_growth"][op] for op in known)
    kernels = round(symbols * padding(core))
    if known:
        items.append(CodeItem(f"kernels: {', '.join(known)} (shared code once)", kernels, where))
    app = t.get("bundle_app")
    if app:
        items.append(
            CodeItem(
                "application as in a ppgedge bundle (main.cc, C preprocessing and decoding, "
                "startup, logging)",
                int(app["bytes"]),
                where,
            )
        )
    unknown = [op for op in used if op not in t["op_symbols"]]
    if unknown:
        median = int(statistics.median(t["per_op_int8"].values()))
        items.append(
            CodeItem(
                f"kernels not measured: {', '.join(unknown)}",
                median * len(unknown),
                f"estimate: median measured kernel, {median} B each",
            )
        )
    return items
