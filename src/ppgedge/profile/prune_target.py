"""A pruning budget from a target: what ``prune --target NAME`` and ``[prune] to = "target"``
prune to.

The MACs a model may keep and still meet the target's latency and energy budgets at the
pessimistic (high) end of the cycle model's band, or the target's flash budget when that binds
first. It is an estimate, like the latency and energy that ``check`` gates.
"""

from __future__ import annotations

from pathlib import Path

from ppgedge.profile.cycles import BAND_HIGH, core_model
from ppgedge.profile.energy import active_power_uw
from ppgedge.profile.targets import Target

# Share of the latency and energy budgets the convolution and dense MACs may use at the high
# end of the band: the rest is per-op overhead, requantisation and element-wise ops (about
# 10 % in profiled ResNets).
MAC_SHARE = 0.85


def target_mac_limit(target: Target) -> int:
    """The most MACs a model may have and still meet ``target``'s latency and energy budgets."""
    b = target.budget
    cycles_per_mac = core_model(target.core).conv_cpm * BAND_HIGH
    hz = target.clock_mhz * 1e6
    by_latency = b.latency_ms * 1e-3 * hz
    by_energy = b.energy_uj / active_power_uw(target) * hz
    return int(MAC_SHARE * min(by_latency, by_energy) / cycles_per_mac)


def prune_budget_for(checkpoint: str | Path, target: Target) -> str:
    """The ``prune --to`` budget text that makes ``checkpoint`` fit ``target``."""
    from ppgedge.compress.prune import int8_flash_bytes
    from ppgedge.models.checkpoint import load_checkpoint
    from ppgedge.models.registry import count_macs

    ckpt = load_checkpoint(checkpoint)
    model = ckpt.build()
    fmt = ckpt.data_format
    macs = count_macs(model, len(fmt.channels), fmt.window_samples)
    limit = target_mac_limit(target)
    if macs > limit:
        return f"{limit} macs"
    if int8_flash_bytes(model) > target.budget.flash_kb * 1024:
        return f"{target.budget.flash_kb:g}kb flash"
    return f"{limit} macs"  # already fits: prune reports "nothing to do"
