"""Estimates beside measurements: what ``profile`` predicted against what the build showed.

Used by ``ppgedge profile --measure`` and ``benchmarks/measure.py``. Per layer, the profile's
estimated cycles are compared with the measured instructions times the core's stated
cycles-per-instruction figure (both are cycles; only the instruction count is measured).
"""

from __future__ import annotations

from typing import Any


def _err(estimate: float, measured: float) -> float | None:
    return round(100.0 * (estimate - measured) / measured, 1) if measured else None


def compare(profile: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    """Flash, arena and per-layer / per-op-type cycles: estimate, measurement, error in %."""
    fl = profile["totals"]["flash"]
    cpi = measured["cycles"]["cpi"]
    rows = []
    for est, got in zip(profile["layers"], measured["instructions"]["per_op"], strict=True):
        cyc = got["instructions"] * cpi
        rows.append(
            {
                "index": est["index"],
                "op": est["op"],
                "estimated_cycles": est["cycles"]["mid"],
                "instructions": got["instructions"],
                "cycles_from_instructions": cyc,
                "error_pct": _err(est["cycles"]["mid"], cyc),
            }
        )
    by_type: dict[str, dict[str, float]] = {}
    for r in rows:
        t = by_type.setdefault(r["op"], {"estimated_cycles": 0.0, "cycles_from_instructions": 0.0})
        t["estimated_cycles"] += r["estimated_cycles"]
        t["cycles_from_instructions"] += r["cycles_from_instructions"]
    total_meas = sum(r["cycles_from_instructions"] for r in rows)
    for t in by_type.values():
        t["share"] = round(t["cycles_from_instructions"] / total_meas, 4) if total_meas else 0.0
        t["error_pct"] = _err(t["estimated_cycles"], t["cycles_from_instructions"])
    invoke_cycles = measured["instructions"]["invoke"] * cpi
    est_total = profile["totals"]["latency"]["cycles"]["mid"]
    arena = measured["arena"]
    smallest = arena.get("smallest")
    return {
        "flash": {
            "profile_bytes": fl["total_bytes"],
            "linked_bytes": measured["flash"]["total"],
            "error_pct": _err(fl["total_bytes"], measured["flash"]["total"]),
        },
        "arena": {
            "declared": arena["declared"],
            "smallest": smallest,
            "used": arena["used"],
            "declared_over_smallest": round(arena["declared"] / smallest, 3) if smallest else None,
        },
        "cycles": {
            "estimated": est_total,
            "from_instructions": invoke_cycles,
            "error_pct": _err(est_total, invoke_cycles),
            "per_layer": rows,
            "per_op_type": by_type,
        },
    }
