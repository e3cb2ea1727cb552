"""Who the synthetic subjects are and what they do: per-subject physiology, pulse, motion and
sensor parameters, and the activity session (segments with heart-rate targets and cadence)
that drives them. :mod:`ppgedge.data.synth` turns both into signals; the constants here are
its public ones too (re-exported there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppgedge.data.synth_motion import MOTION_ACTIVITIES, NEXT_WITH_MOTION, segment_targets

ACTIVITIES = ("rest", "walk", "run", "recovery")
ALL_ACTIVITIES = ACTIVITIES + MOTION_ACTIVITIES  # with ``motion=True``
VERSION = "synth/2"
DEFAULT_RATE_HZ = 64.0
HR_MIN_BPM, HR_MAX_BPM = 40.0, 200.0
ACC_RANGE_G = 8.0  # accelerometer full scale, +-g
ACC_LSB_G = 1.0 / 256.0  # 12-bit over +-8 g

GRID_HZ = 4.0  # heart-rate kinetics are slow: integrate them on a coarse grid
POSTURE_TAU_S = 0.5  # mechanical lag of contact pressure behind the wrist's orientation
_SEG_MIN_S, _SEG_MAX_S = 60.0, 180.0
# After the first rest-walk-run-recovery cycle, what tends to follow what.
_NEXT: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "rest": (("walk", "run"), (0.6, 0.4)),
    "walk": (("run", "rest", "recovery"), (0.6, 0.2, 0.2)),
    "run": (("recovery", "walk"), (0.65, 0.35)),
    "recovery": (("rest", "walk", "run"), (0.4, 0.35, 0.25)),
}


@dataclass
class Subject:
    """Per-subject physiology, pulse shape, motion and sensor parameters."""

    hr_rest: float
    hr_max: float
    walk_gain: float  # BPM above rest at a normal walking pace
    run_frac: float  # fraction of heart-rate reserve at a normal running pace
    tau_up_s: float
    tau_down_s: float
    drift_bpm: float
    hrv_sd: float  # beat-to-beat interval variability at rest, fraction of the interval
    rsa: float  # respiratory sinus arrhythmia depth at rest, fraction of the heart rate
    resp_rest: float  # breaths per minute
    resp_ex: float
    walk_cadence: float  # steps per minute
    run_cadence: float
    cadence_lock: float  # how much running cadence follows the running heart rate
    # pulse shape, in seconds at a reference interval of 0.85 s
    sys_t: float
    sys_w: float
    dia_dt: float
    dia_w: float
    dia_amp: float
    notch_amp: float
    width_ibi: float  # share of the pulse widths that scales with the interval
    ptt_s: float
    resp_am: float
    resp_bw: float
    wander: float
    # accelerometer
    acc_walk: np.ndarray  # (3, 4) harmonic amplitudes of the arm-swing frequency, g
    acc_run: np.ndarray
    acc_phase: np.ndarray  # (3, 4)
    rot_walk: float  # arm-swing rotation, degrees
    rot_run: float
    rot_phase: float
    impact_walk: float  # footstrike peak, g
    impact_run: float
    gesture_rate: float  # small movements per minute at rest
    gesture_g: float
    gesture_deg: float
    fidget_rate: float  # per minute when still
    fidget_g: float
    acc_noise: float
    # PPG motion coupling (pulse-amplitude units per g)
    coup_lin: np.ndarray  # (3,)
    coup_dir: np.ndarray  # (3,) unit vector for the nonlinear term
    coup_nl: float
    coup_post: np.ndarray  # (3,) posture / contact pressure
    am_dir: np.ndarray  # (3,) unit vector for the motion amplitude modulation
    am_gain: float
    tendon: float  # PPG artifact per unit of fidgeting
    contact_var: float  # log-sd of the slow variation of the coupling
    tissue_hz: float
    delay_s: float
    burst_rate: float  # noise bursts per minute at rest
    ppg_noise: float
    # ADC
    dc: float
    amp_counts: float
    rail_lo: float  # headroom below / above the DC level, pulse amplitudes
    rail_hi: float


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _harmonics(rng: np.random.Generator, total_g: list[float]) -> np.ndarray:
    """(3, 4) per-axis amplitudes of the arm-swing harmonics: a subject-wide gain times a
    random split of each harmonic over the three axes."""
    split = rng.dirichlet(np.full(3, 2.0), size=len(total_g)).T
    return rng.uniform(0.7, 1.4) * np.asarray(total_g) * split


def draw_subject(rng: np.random.Generator) -> Subject:
    """Draw one subject; the order of draws is part of the format (``synth/1``)."""
    u = rng.uniform
    hr_rest = u(45.0, 85.0)
    fitness = u(0.0, 1.0)
    hr_max = min(u(180.0, 206.0), HR_MAX_BPM)
    lin_gain = u(0.11, 0.36)
    return Subject(
        hr_rest=hr_rest,
        hr_max=hr_max,
        walk_gain=u(18.0, 40.0) * (1.15 - 0.3 * fitness),
        run_frac=u(0.74, 0.93),
        tau_up_s=u(12.0, 30.0) * (1.2 - 0.4 * fitness),
        tau_down_s=u(35.0, 80.0) * (1.2 - 0.4 * fitness),
        drift_bpm=u(1.0, 3.0),
        hrv_sd=u(0.015, 0.04),
        rsa=u(0.02, 0.06),
        resp_rest=u(10.0, 18.0),
        resp_ex=u(28.0, 42.0),
        walk_cadence=u(95.0, 125.0),
        run_cadence=u(145.0, 185.0),
        cadence_lock=u(0.2, 0.7),
        sys_t=u(0.10, 0.16),
        sys_w=u(0.045, 0.075),
        dia_dt=u(0.17, 0.27),
        dia_w=u(0.06, 0.10),
        dia_amp=u(0.2, 0.55),
        notch_amp=u(0.03, 0.15),
        width_ibi=u(0.3, 0.7),
        ptt_s=u(0.18, 0.30),
        resp_am=u(0.05, 0.2),
        resp_bw=u(0.03, 0.15),
        wander=u(0.3, 1.2),
        acc_walk=_harmonics(rng, [0.5, 0.33, 0.13, 0.08]),
        acc_run=_harmonics(rng, [0.94, 0.85, 0.31, 0.17]),
        acc_phase=u(0.0, 2 * np.pi, size=(3, 4)),
        rot_walk=u(8.0, 25.0),
        rot_run=u(12.0, 35.0),
        rot_phase=u(0.0, 2 * np.pi),
        impact_walk=u(0.15, 0.5),
        impact_run=u(0.6, 1.8),
        gesture_rate=u(1.5, 5.0),
        gesture_g=u(0.05, 0.25),
        gesture_deg=u(15.0, 40.0),
        fidget_rate=u(0.8, 2.5),
        fidget_g=u(0.02, 0.08),
        acc_noise=u(0.004, 0.015),
        coup_lin=lin_gain * _unit(rng.standard_normal(3)),
        coup_dir=_unit(rng.standard_normal(3)),
        coup_nl=u(0.05, 0.3),
        coup_post=u(0.5, 2.0) * _unit(rng.standard_normal(3)),
        am_dir=_unit(rng.standard_normal(3)),
        am_gain=u(0.1, 0.4),
        tendon=u(0.4, 1.5),
        contact_var=u(0.3, 0.6),
        tissue_hz=u(3.0, 7.0),
        delay_s=u(0.0, 0.06),
        burst_rate=u(0.1, 0.5),
        ppg_noise=u(0.02, 0.12),
        dc=u(15000.0, 45000.0),
        amp_counts=u(300.0, 2000.0),
        rail_lo=u(1.8, 4.5),
        rail_hi=u(1.8, 4.5),
    )


@dataclass
class Segment:
    start_s: float
    end_s: float
    name: str
    hr_target: float
    cadence: float
    walk_weight: float  # how much walking-type motion (recovery may be a cool-down walk)
    run_weight: float
    pitch_deg: float
    roll_deg: float

    @property
    def code(self) -> float:
        return float(ALL_ACTIVITIES.index(self.name))


def draw_session(
    rng: np.random.Generator,
    s: Subject,
    duration_s: float,
    mrng: np.random.Generator | None = None,
) -> list[Segment]:
    """Activity segments: one full rest-walk-run-recovery cycle first, then random repeats.

    With a motion stream ``mrng`` the cycle is shorter and followed by one motion activity
    (chosen from the motion stream), and the repeats may be motion activities too."""
    names: list[str] = list(ACTIVITIES)
    table = _NEXT
    durs = rng.uniform(_SEG_MIN_S, _SEG_MAX_S, size=4)
    budget = 0.8 * duration_s  # all four activities always occur
    if mrng is not None:
        names.append(str(MOTION_ACTIVITIES[int(mrng.integers(len(MOTION_ACTIVITIES)))]))
        durs = np.append(durs, rng.uniform(_SEG_MIN_S, _SEG_MAX_S))
        budget = 0.9 * duration_s  # the motion activity always occurs as well
        table = NEXT_WITH_MOTION
    first = len(names)
    if durs.sum() > budget:
        durs *= budget / durs.sum()
    segs: list[Segment] = []
    t = 0.0
    k = 0
    while t < duration_s - 1e-9:
        if k < first:
            name, dur = names[k], float(durs[k])
        else:
            options, probs = table[segs[-1].name]
            name = str(options[rng.choice(len(options), p=probs)])
            dur = float(rng.uniform(_SEG_MIN_S, _SEG_MAX_S))
        end = min(t + dur, duration_s)
        if k >= first and duration_s - end < 30.0:
            end = duration_s  # no stub segment at the end
        segs.append(_segment(rng, s, t, end, name))
        t = end
        k += 1
    return segs


def _segment(rng: np.random.Generator, s: Subject, t0: float, t1: float, name: str) -> Segment:
    """Targets for one segment: pace-dependent heart rate and cadence, arm posture."""
    u = rng.uniform
    walk_w = run_w = 0.0
    cadence = s.walk_cadence
    if name in MOTION_ACTIVITIES:
        target, cadence, walk_w, pitch, roll = segment_targets(rng, name, s.hr_rest, s.hr_max)
    elif name == "rest":
        target = s.hr_rest + u(-2.0, 4.0)
        pitch, roll = u(-25.0, 25.0), u(-45.0, 45.0)
    elif name == "walk":
        pace = u(0.8, 1.25)
        target = s.hr_rest + s.walk_gain * pace
        cadence = float(np.clip(s.walk_cadence * (0.9 + 0.1 * pace) + u(-4.0, 4.0), 90, 130))
        walk_w = 1.0
        pitch, roll = u(-80.0, -55.0), u(-25.0, 25.0)
    elif name == "run":
        pace = u(0.88, 1.1)
        frac = float(np.clip(s.run_frac * pace, 0.6, 0.98))
        target = s.hr_rest + (s.hr_max - s.hr_rest) * frac
        own = s.run_cadence * (0.95 + 0.05 * pace) + u(-4.0, 4.0)
        # Runners settle near a cadence that often sits close to their running heart rate
        # (cadence-HR locking); this is the case spectral trackers get wrong.
        locked = target + rng.normal(0.0, 6.0)
        cadence = float(np.clip((1 - s.cadence_lock) * own + s.cadence_lock * locked, 140, 190))
        run_w = 1.0
        pitch, roll = u(-35.0, 10.0), u(-35.0, 15.0)
    else:  # recovery: standing or a slow cool-down walk while the heart rate falls
        target = s.hr_rest + u(6.0, 20.0)
        if rng.random() < 0.5:
            walk_w = u(0.4, 0.7)
            cadence = u(85.0, 100.0)
            pitch, roll = u(-80.0, -55.0), u(-25.0, 25.0)
        else:
            pitch, roll = u(-60.0, 20.0), u(-45.0, 45.0)
    return Segment(t0, t1, name, float(target), float(cadence), walk_w, run_w, pitch, roll)
