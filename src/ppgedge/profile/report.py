"""The profile of one model on one target: per-layer rows and totals, each beside its floor.

Flash, SRAM and MACs are computed from the file (SRAM's arena plan is TFLite Micro's own
algorithm; persistent bookkeeping and runtime code size are documented estimates). Latency and
energy are ESTIMATES with a low-high band from the cycle model in :mod:`.cycles`. ``to_dict``
is the versioned JSON (``ppgedge.profile/1``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ppgedge.export.bundle_manifest import read_bundle_manifest
from ppgedge.profile import codesize, cycles, energy, ops, persistent, planner, scratch
from ppgedge.profile.graph import Graph
from ppgedge.profile.layers import LayerFacts, analyze
from ppgedge.profile.targets import Target
from ppgedge.profile.tflite_reader import read_tflite

SCHEMA = "ppgedge.profile/1"
ESTIMATE_NOTE = (
    "Latency and energy are ESTIMATES from a cycle model calibrated on published MLPerf Tiny "
    "measurements (band = low-high; see ppgedge/profile/cycles.py); flash runtime code and "
    "persistent arena bytes are documented estimates; MACs, model bytes and the activation "
    "arena plan are computed exactly."
)


@dataclass(frozen=True)
class Band:
    """An estimate: low, centre and high."""

    low: float
    mid: float
    high: float

    def scaled(self, k: float) -> Band:
        return Band(self.low * k, self.mid * k, self.high * k)

    def at(self, bound: str) -> float:
        return {"low": self.low, "mid": self.mid, "high": self.high}[bound]

    def to_dict(self) -> dict[str, float]:
        return {"low": self.low, "mid": self.mid, "high": self.high}


@dataclass(frozen=True)
class LayerRow:
    index: int
    op: str
    kernel: str
    input_shapes: list[list[int]]
    output_shapes: list[list[int]]
    macs: int
    param_bytes: int
    activation_bytes: int
    scratch_bytes: int
    cycles: Band
    share: float


@dataclass(frozen=True)
class Report:
    """Everything ``ppgedge profile`` shows and ``ppgedge check`` gates on."""

    model: dict[str, Any]
    target: Target
    layers: list[LayerRow]
    macs: int
    flash: dict[str, Any]
    sram: dict[str, Any]
    latency: dict[str, Any]
    energy: dict[str, Any]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        t = self.target
        return {
            "schema": SCHEMA,
            "note": ESTIMATE_NOTE,
            "model": self.model,
            "target": {
                "name": t.name,
                "title": t.title,
                "core": t.core,
                "clock_mhz": t.clock_mhz,
                "flash_kb": t.flash_kb,
                "sram_kb": t.sram_kb,
                "dsp": t.dsp,
                "active_ua_per_mhz": t.active_ua_per_mhz,
                "supply_v": t.supply_v,
                "sleep_ua": t.sleep_ua,
                "path": t.path,
            },
            "budget": t.budget.to_dict(),
            "layers": [{**asdict(r), "cycles": r.cycles.to_dict()} for r in self.layers],
            "totals": {
                "macs": self.macs,
                "flash": self.flash,
                "sram": self.sram,
                "latency": self.latency,
                "energy": self.energy,
            },
            "seconds": round(self.seconds, 4),
        }


def _band_sum(items: list[cycles.OpCycles]) -> Band:
    return Band(sum(c.low for c in items), sum(c.mid for c in items), sum(c.high for c in items))


def _scratch_buffers(requests: list[scratch.Scratch]) -> list[planner.Buffer]:
    return [planner.scratch_buffer(s.op, s.nbytes) for s in requests]


def _ratio(value: float, floor: float) -> float | None:
    return round(value / floor, 3) if floor > 0 else None


def bundle_application_ram(model: str | Path, sha256: str) -> list[dict[str, Any]]:
    """Static RAM the bundle beside ``model`` (``tflm/``, holding the .tflite whose hash is
    ``sha256``) adds to the firmware: the temporal tracker's state when the bundle's ``main``
    runs it. Empty for a foreign model or a bundle without a tracker."""
    model = Path(model)
    man = read_bundle_manifest(model if model.is_dir() else model.parent / "tflm")
    try:
        same = man is not None and (model.is_dir() or man["model"]["sha256"] == sha256)
        state = (man or {}).get("tracker") or {}
        state_bytes = state.get("state_bytes") if same else None
    except (KeyError, TypeError, AttributeError):
        return []
    if not isinstance(state_bytes, int):
        return []
    return [{"name": "tracker state (static)", "bytes": state_bytes}]


def build(
    graph: Graph,
    target: Target,
    started: float | None = None,
    app_ram: list[dict[str, Any]] | None = None,
) -> Report:
    """Profile ``graph`` on ``target`` (raises PpgedgeError for models it cannot describe);
    ``app_ram``: the application's own static RAM items (:func:`bundle_application_ram`)."""
    started = time.perf_counter() if started is None else started
    ops.require_int8_tflm(graph)
    core = cycles.core_model(target.core)
    facts: list[LayerFacts] = [analyze(graph, op) for op in graph.operators]

    # SRAM: the activation plan (what the host runtime reports), then the device's scratch.
    tensors = planner.tensor_buffers(graph)
    host_scratch = scratch.scratch_for(graph, facts, target.dsp, target.mve, host=True)
    device_scratch = scratch.scratch_for(graph, facts, target.dsp, target.mve)
    activations = planner.plan(tensors)
    host_plan = planner.plan(tensors + _scratch_buffers(host_scratch))
    device_plan = planner.plan(tensors + _scratch_buffers(device_scratch))
    tail = persistent.estimate(graph, len(device_scratch), bits=32)
    in_bytes = sum(graph.tensors[i].nbytes for i in graph.inputs)
    out_bytes = sum(graph.tensors[i].nbytes for i in graph.outputs)
    io_bytes = in_bytes + out_bytes
    app_items = list(app_ram or [])
    app_bytes = sum(int(a["bytes"]) for a in app_items)
    sram_total = device_plan.arena_bytes + tail.total + io_bytes + app_bytes
    sram_floor = activations.live_peak()

    # Flash: the model file plus the runtime code for the op types it uses.
    code = codesize.runtime_items(graph, target.core)
    code_bytes = sum(c.bytes for c in code)
    flash_total = graph.size_bytes + code_bytes
    flash_floor = graph.constant_bytes

    # Latency and energy (estimates).
    per_op = [cycles.op_cycles(f, core) for f in facts]
    total = _band_sum(per_op)
    macs = sum(f.macs for f in facts)
    floor = cycles.floor_cycles(macs, core)
    hz = target.clock_mhz * 1e6
    ms = total.scaled(1e3 / hz)
    period = target.budget.period_s
    e = {b: energy.estimate(total.at(b), target, period) for b in ("low", "mid", "high")}
    e_floor = energy.estimate(floor, target, period)

    scratch_by_op: dict[int, int] = {}
    for s in device_scratch:
        scratch_by_op[s.op] = scratch_by_op.get(s.op, 0) + s.nbytes
    layers = [
        LayerRow(
            index=f.index,
            op=f.opcode,
            kernel="CMSIS-NN" if f.opcode in ops.CMSIS_NN_KERNELS else "reference",
            input_shapes=[list(s) for s in f.input_shapes],
            output_shapes=[list(s) for s in f.output_shapes],
            macs=f.macs,
            param_bytes=f.param_bytes,
            activation_bytes=f.activation_bytes,
            scratch_bytes=scratch_by_op.get(f.index, 0),
            cycles=Band(c.low, c.mid, c.high),
            share=c.mid / total.mid if total.mid else 0.0,
        )
        for f, c in zip(facts, per_op, strict=True)
    ]
    return Report(
        model={
            "path": graph.name,
            "file": Path(graph.name).name,
            "bytes": graph.size_bytes,
            "sha256": graph.sha256,
            "operators": len(graph.operators),
            "tensors": len(graph.tensors),
            "op_types": sorted({op.opcode for op in graph.operators}),
        },
        target=target,
        layers=layers,
        macs=macs,
        flash={
            "model_bytes": graph.size_bytes,
            "runtime_bytes": code_bytes,
            "runtime_items": [asdict(c) for c in code],
            "total_bytes": flash_total,
            "floor_bytes": flash_floor,
            "floor": "weight, bias and other constant tensor bytes",
            "ratio": _ratio(flash_total, flash_floor),
            "estimate": "runtime code is an estimate; model bytes are exact",
        },
        sram={
            "activations_bytes": activations.arena_bytes,
            "host_arena_head_bytes": host_plan.arena_bytes,
            "scratch_bytes": device_plan.arena_bytes - activations.arena_bytes,
            "scratch_requested_bytes": sum(s.nbytes for s in device_scratch),
            "scratch_requests": [asdict(s) for s in device_scratch],
            "arena_head_bytes": device_plan.arena_bytes,
            "persistent_bytes": tail.total,
            "persistent_items": tail.items,
            "input_buffer_bytes": in_bytes,
            "output_buffer_bytes": out_bytes,
            "io_buffers_bytes": io_bytes,
            "io_note": "the application's own copies of the input window (sampling continues "
            "while the model runs) and of the output; the tensors themselves are in the arena",
            "application_bytes": app_bytes,
            "application_items": app_items,
            "total_bytes": sram_total,
            "floor_bytes": sram_floor,
            "floor": "largest sum of tensors alive at once over any operator",
            "ratio": _ratio(sram_total, sram_floor),
            "arena_ratio": _ratio(activations.arena_bytes, sram_floor),
            "estimate": "activation plan exact (TFLM GreedyMemoryPlanner); persistent estimated",
        },
        latency={
            "estimate": True,
            "cycles": total.to_dict(),
            "ms": ms.to_dict(),
            "floor_cycles": floor,
            "floor_ms": floor * 1e3 / hz,
            "floor": f"MACs at {core.peak_macs_per_cycle:g} MAC/cycle (peak int8 SIMD rate)",
            "ratio": _ratio(total.mid, floor),
            "core_model": core.family,
            "basis": core.basis,
        },
        energy={
            "estimate": True,
            "uj": {b: e[b].uj for b in e},
            "avg_power_uw": {b: e[b].avg_uw for b in e},
            "floor_uj": e_floor.uj,
            "ratio": _ratio(e["mid"].uj, e_floor.uj),
            "period_s": period,
            "sleep_included": e["mid"].sleep_included,
            "fits_period": e["high"].fits_period,
            "active_uw": energy.active_power_uw(target),
        },
        seconds=time.perf_counter() - started,
    )


def profile(path: str | Path, target: Target) -> Report:
    """Read ``path`` and profile it on ``target``."""
    started = time.perf_counter()
    graph = read_tflite(path)
    return build(graph, target, started, app_ram=bundle_application_ram(path, graph.sha256))
