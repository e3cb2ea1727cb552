"""``profile``/``check --runtime aot``: the report's flash and SRAM for the AOT C backend.

Layers, MACs, latency and energy stay the TFLite Micro estimates (the AOT code calls the same
CMSIS-NN kernels; ``benchmarks/results/aot.md`` measures it at 0.89-1.0x TFLM's instructions);
flash and SRAM are replaced by the AOT firmware's, counted on its linked image
(``ppgedge.aot.footprint``): no interpreter, no flatbuffer, no persistent arena.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ppgedge.errors import PpgedgeError
from ppgedge.profile.report import Report

RUNTIMES = ("tflm", "aot")


def with_runtime(report: Report, model: str | Path, runtime: str,
                 tflm_src: str | Path | None = None) -> Report:  # fmt: skip
    """``report`` unchanged for tflm; for aot, flash and SRAM of the linked AOT image."""
    if runtime not in RUNTIMES:
        raise PpgedgeError(f"unknown runtime {runtime!r}: use tflm or aot")
    if runtime == "tflm":
        return report
    from ppgedge.aot.footprint import linked_footprint

    fp = linked_footprint(model, report.target.core, tflm_src=tflm_src)
    fl = fp["flash"]
    io = report.sram["io_buffers_bytes"]
    code = [
        {"name": "CMSIS-NN kernels the layers call", "bytes": fl["kernels"], "source": "linked"},
        {"name": "application (main, C preprocessing and decoding, startup)",
         "bytes": fl["app"], "source": "linked"},
        {"name": "C library (newlib-nano, libgcc)", "bytes": fl["libc"], "source": "linked"},
    ]  # fmt: skip
    flash = dict(report.flash)
    flash.update(
        runtime="aot",
        model_bytes=fl["model"],
        model_note="generated C: weights, biases, multipliers, parameters and the invoke code",
        runtime_bytes=fp["flash_total"] - fl["model"],
        runtime_items=code,
        total_bytes=fp["flash_total"],
        ratio=round(fp["flash_total"] / flash["floor_bytes"], 3) if flash["floor_bytes"] else None,
        estimate=f"measured: the AOT firmware linked for {fp['core']} (no interpreter)",
    )
    sram = dict(report.sram)
    total = fp["arena_bytes"] + io + report.sram.get("application_bytes", 0)
    sram.update(
        runtime="aot",
        arena_head_bytes=fp["arena_bytes"],
        activations_bytes=fp["arena_bytes"],
        scratch_bytes=0,
        scratch_requested_bytes=sum(la["scratch_bytes"] for la in fp["layers"]),
        scratch_requests=[la for la in fp["layers"] if la["scratch_bytes"]],
        persistent_bytes=0,
        persistent_items=[],
        total_bytes=total,
        linked_ram_bytes=fp["ram_total"],
        ratio=round(total / sram["floor_bytes"], 3) if sram["floor_bytes"] else None,
        estimate="exact: the AOT plan (TFLM's greedy planner, no persistent state) plus the "
        "application's input and output copies and its tracker state, if any",
    )
    return replace(report, flash=flash, sram=sram)
