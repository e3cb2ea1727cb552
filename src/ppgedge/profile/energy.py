"""Energy per inference and average power: ESTIMATES derived from the cycle estimate.

Energy = time x active current x supply voltage, with time = cycles / clock and the active
current = the datasheet's run current per MHz x clock (CPU running from flash/NVM with cache, the
datasheets' CoreMark or Dhrystone scenario; an int8 kernel loop may draw somewhat more).
Average power over the inference period adds sleep power (sleep current x supply) for the rest
of the period when the profile cites a sleep current; otherwise it counts the inference alone
and says so. Peripherals, sensors and radio are not included.
"""

from __future__ import annotations

from dataclasses import dataclass

from ppgedge.profile.targets import Target


@dataclass(frozen=True)
class EnergyEstimate:
    """Per-inference energy (µJ), its time (ms) and average power (µW) at the period."""

    ms: float
    uj: float
    avg_uw: float
    sleep_included: bool
    fits_period: bool


def active_power_uw(target: Target) -> float:
    """µA/MHz x MHz x V = µW while the core runs."""
    return target.active_ua_per_mhz * target.clock_mhz * target.supply_v


def estimate(cycles: float, target: Target, period_s: float) -> EnergyEstimate:
    seconds = cycles / (target.clock_mhz * 1e6)
    uj = active_power_uw(target) * seconds
    sleep_uw = (target.sleep_ua or 0.0) * target.supply_v
    idle_s = max(period_s - seconds, 0.0)
    avg_uw = (uj + sleep_uw * idle_s) / period_s
    return EnergyEstimate(
        ms=seconds * 1e3,
        uj=uj,
        avg_uw=avg_uw,
        sleep_included=target.sleep_ua is not None,
        fits_period=seconds <= period_s,
    )
