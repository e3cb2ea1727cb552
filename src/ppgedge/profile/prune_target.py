"""A pruning budget from a target: what ``prune --target NAME`` and ``[prune] to = "target"``
prune to.

The limit comes from the same cycle model ``check`` gates with, applied to the pruned
architecture itself. Cycles are not proportional to MACs (CMSIS-NN is less efficient on few
channels, and ADD, MEAN and PAD scale with activations, not MACs: the default student costs 5.3
cycles per MAC at the high end of the band, pruned to 43 % of its MACs 7.2), so a MAC count from
a fixed cycles-per-MAC figure over-promises. Instead the student is cut structurally (the same
greedy channel pruner, no fine-tuning: it balances widths, so the shapes match what ``prune``
reaches), quantised on a few seeded windows (weights do not change the cycle count) and profiled
on the target, at the budget's bound of the estimate band; a secant search on log(cycles) vs
log(MACs) finds the MAC count whose cycles fit the tighter of the latency and energy budgets.
The flash budget binds instead when it is the tighter. It is an estimate, like the latency and
energy ``check`` gates.
"""

from __future__ import annotations

import copy
import math
import tempfile
from pathlib import Path

from ppgedge.profile.energy import active_power_uw
from ppgedge.profile.report import profile
from ppgedge.profile.targets import Target

MARGIN = 0.97  # the cycles aimed at: prune rounds channel counts and fine-tunes between steps
MAX_PROBES = 5


def allowed_cycles(target: Target) -> float:
    """The cycles one inference may take under ``target``'s latency and energy budgets."""
    b = target.budget
    hz = target.clock_mhz * 1e6
    return min(b.latency_ms * 1e-3 * hz, b.energy_uj / active_power_uw(target) * hz)


def _cycles_at(ckpt, macs: float | None, target: Target, work: Path) -> tuple[int, float]:
    """(MACs, estimated cycles at the budget's bound) of ``ckpt``'s model cut to ``macs``."""
    from ppgedge.compress.prune import ChannelPruner
    from ppgedge.compress.quantize import ptq_windows, to_tflite
    from ppgedge.export.run import check_windows
    from ppgedge.models.checkpoint import checkpoint_from_model, save_checkpoint
    from ppgedge.models.registry import count_macs

    fmt = ckpt.data_format
    model = copy.deepcopy(ckpt.build())
    if macs is not None:
        pruner = ChannelPruner(model, len(fmt.channels), fmt.window_samples, kind="macs")
        pruner.prune_to(macs, len(fmt.channels), fmt.window_samples)
    n = count_macs(model, len(fmt.channels), fmt.window_samples)
    path = save_checkpoint(checkpoint_from_model(model, fmt), work / f"cut{n}.pt")
    art = ptq_windows(path, check_windows(fmt), work / f"cut{n}.int8.pt")
    report = profile(to_tflite(art.path, work / f"cut{n}.tflite"), target)
    return n, float(report.latency["cycles"][target.budget.latency_bound])


def prune_budget_for(checkpoint: str | Path, target: Target) -> str:
    """The ``prune --to`` budget text that makes ``checkpoint`` fit ``target``."""
    from ppgedge.compress.prune import int8_flash_bytes
    from ppgedge.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint)
    goal = MARGIN * allowed_cycles(target)
    with tempfile.TemporaryDirectory(prefix="ppgedge-prune-target-") as tmp:
        macs, cycles = _cycles_at(ckpt, None, target, Path(tmp))
        if cycles > goal:
            points = [(macs, cycles)]
            guess = macs * goal / cycles  # first probe: cycles proportional to MACs
            for _ in range(MAX_PROBES):
                n, c = _cycles_at(ckpt, guess, target, Path(tmp))
                points.append((n, c))
                fitting = [p for p in points if p[1] <= goal]
                if fitting and max(fitting)[1] >= 0.97 * goal:
                    break
                (m0, c0), (m1, c1) = points[-2], points[-1]
                slope = (math.log(c1) - math.log(c0)) / (math.log(m1) - math.log(m0) or 1e-9)
                slope = min(max(slope, 0.3), 2.0)  # cycles grow with MACs, never wildly
                guess = m1 * (goal / c1) ** (1 / slope)
            fitting = [p for p in points if p[1] <= goal]
            best = max(fitting)[0] if fitting else min(points)[0]
            return f"{best} macs"
    if int8_flash_bytes(ckpt.build()) > target.budget.flash_kb * 1024:
        return f"{target.budget.flash_kb:g}kb flash"
    return f"{macs} macs"  # already fits: prune reports "nothing to do"
