"""Seeded synthetic wrist PPG + 3-axis accelerometer with a known heart rate.

Real wrist data is hard because motion corrupts the PPG: during running the arm swing and
footstrikes couple into the optical signal and often dominate the pulse in the spectrum, sometimes
at a frequency close to the heart rate. This generator reproduces that structure so models,
compression and deployment can be exercised end to end without downloading a data set:

* a session of activity segments (rest, walk, run, recovery, then random repeats of 1-3 min)
  drives first-order heart-rate kinetics (faster rise than fall) towards pace- and
  fitness-dependent targets, with slow drift, clamped to 40-200 BPM;
* beats are integrated from the instantaneous heart rate with respiratory sinus arrhythmia (the
  breathing rate rises with effort) and beat-to-beat variability, both larger at rest, so every
  window's label is exact: 60 / mean inter-beat interval;
* each beat places a per-subject pulse (systolic and diastolic waves with a dicrotic notch,
  widths scaling partly with the interval) after a pulse transit time, modulated by respiration
  and riding on baseline wander;
* the accelerometer carries gravity at a slowly changing wrist orientation, arm swing at half the
  step rate with harmonics at the step rate, footstrike impacts, gestures and fidgeting when
  still, and sensor noise;
* the PPG picks up motion through a per-subject coupling (linear per-axis gains plus a
  nonlinear term on the dynamic acceleration, posture-dependent contact pressure, tendon
  movement when fidgeting, motion-dependent pulse amplitude) whose strength drifts with the
  sensor's contact; then noise bursts, sensor noise, and clipping at per-subject ADC rails;
* some motion artifact is not explained by the accelerometer (tissue and venous movement at the
  arm-swing and step rhythms with its own wandering frequency and phase), and low-perfusion
  episodes of 4-20 s sink the pulse towards the noise, so even a model that sees the
  accelerometer keeps a real error while moving, as on real recordings.

Running cadence partly follows the running heart rate, so about half of the running time has
cadence within 10 BPM of the heart rate, the case spectral trackers cannot separate. With the
defaults (16 subjects x 10 min, seed 0, 8 s windows) the spectral-peak baseline errs by about
4.7 BPM at rest and 34 BPM while running (synth/2).

Every subject draws its parameters from its own random stream derived from ``(seed, k)``, so
subject ``k`` is the same whatever ``n_subjects`` is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, lfilter, lfilter_zi, sosfiltfilt

from ppgedge.data.format import DataFormat, WindowedData
from ppgedge.data.synth_motion import (
    MOTION_ACTIVITIES,
    NEXT_WITH_MOTION,
    MotionSubject,
    draw_motion_subject,
    segment_targets,
    wrist_motion,
)
from ppgedge.data.windowing import Recording, window_recordings
from ppgedge.errors import PpgedgeError

ACTIVITIES = ("rest", "walk", "run", "recovery")
ALL_ACTIVITIES = ACTIVITIES + MOTION_ACTIVITIES  # with ``motion=True``
VERSION = "synth/2"
DEFAULT_RATE_HZ = 64.0
HR_MIN_BPM, HR_MAX_BPM = 40.0, 200.0
ACC_RANGE_G = 8.0  # accelerometer full scale, +-g
ACC_LSB_G = 1.0 / 256.0  # 12-bit over +-8 g

_GRID_HZ = 4.0  # heart-rate kinetics are slow: integrate them on a coarse grid
_POSTURE_TAU_S = 0.5  # mechanical lag of contact pressure behind the wrist's orientation
_SEG_MIN_S, _SEG_MAX_S = 60.0, 180.0
# After the first rest-walk-run-recovery cycle, what tends to follow what.
_NEXT: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "rest": (("walk", "run"), (0.6, 0.4)),
    "walk": (("run", "rest", "recovery"), (0.6, 0.2, 0.2)),
    "run": (("recovery", "walk"), (0.65, 0.35)),
    "recovery": (("rest", "walk", "run"), (0.4, 0.35, 0.25)),
}


@dataclass
class _Subject:
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


def _draw_subject(rng: np.random.Generator) -> _Subject:
    """Draw one subject; the order of draws is part of the format (``synth/1``)."""
    u = rng.uniform
    hr_rest = u(45.0, 85.0)
    fitness = u(0.0, 1.0)
    hr_max = min(u(180.0, 206.0), HR_MAX_BPM)
    lin_gain = u(0.11, 0.36)
    return _Subject(
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
class _Segment:
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


def _draw_session(
    rng: np.random.Generator,
    s: _Subject,
    duration_s: float,
    mrng: np.random.Generator | None = None,
) -> list[_Segment]:
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
    segs: list[_Segment] = []
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


def _segment(rng: np.random.Generator, s: _Subject, t0: float, t1: float, name: str) -> _Segment:
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
    return _Segment(t0, t1, name, float(target), float(cadence), walk_w, run_w, pitch, roll)


def _smooth_noise(rng: np.random.Generator, n: int, rate: float, tau_s: float) -> np.ndarray:
    """Unit-variance noise through two one-pole low-passes: slow random processes."""
    a = float(np.exp(-1.0 / (tau_s * rate)))
    warm = int(min(4.0 * tau_s * rate, 20 * n)) + 1
    w = rng.standard_normal(n + warm)
    y = lfilter([1 - a], [1, -a], lfilter([1 - a], [1, -a], w))[warm:]
    var = (1 - a) ** 4 * (1 + a * a) / (1 - a * a) ** 3
    return y / np.sqrt(var)


def _lowpass(x: np.ndarray, rate: float, tau_s: float) -> np.ndarray:
    """Causal one-pole low-pass starting at steady state: smooth transitions between segments."""
    a = float(np.exp(-1.0 / (tau_s * rate)))
    b, den = [1 - a], [1, -a]
    y, _ = lfilter(b, den, x, axis=-1, zi=lfilter_zi(b, den) * x[..., :1])
    return y


def _per_segment(t: np.ndarray, segs: list[_Segment], attr: str) -> np.ndarray:
    """Piecewise-constant per-segment value at each time."""
    edges = np.array([g.start_s for g in segs[1:]])
    values = np.array([getattr(g, attr) for g in segs], dtype=np.float64)
    return values[np.searchsorted(edges, t, side="right")]


def _heart_rate(
    rng: np.random.Generator, s: _Subject, segs: list[_Segment], duration_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """HR path on the coarse grid: first-order kinetics towards each segment's target."""
    n = int(np.ceil(duration_s * _GRID_HZ)) + 2
    tg = np.arange(n) / _GRID_HZ
    target = _per_segment(tg, segs, "hr_target")
    exercise = _per_segment(tg, segs, "run_weight") + 0.5 * _per_segment(tg, segs, "walk_weight")
    # Cardiovascular drift while running, and pace fluctuations.
    starts = _per_segment(tg, segs, "start_s")
    run = _per_segment(tg, segs, "run_weight") > 0
    target = target + np.where(run, np.minimum(0.03 * (tg - starts), 8.0), 0.0)
    target = target + (1.0 + 3.0 * exercise) * _smooth_noise(rng, n, _GRID_HZ, 30.0)
    dt = 1.0 / _GRID_HZ
    k_up, k_down = 1 - np.exp(-dt / s.tau_up_s), 1 - np.exp(-dt / s.tau_down_s)
    hr = np.empty(n)
    h = s.hr_rest
    for i, tgt in enumerate(target.tolist()):
        h += (tgt - h) * (k_up if tgt > h else k_down)
        hr[i] = h
    hr += s.drift_bpm * _smooth_noise(rng, n, _GRID_HZ, 60.0)
    return tg, np.clip(hr, HR_MIN_BPM, HR_MAX_BPM)


def _beats(
    rng: np.random.Generator,
    s: _Subject,
    t: np.ndarray,
    hr: np.ndarray,
    exercise: np.ndarray,
    resp_phase: np.ndarray,
    rate: float,
) -> np.ndarray:
    """Beat times: integrate HR with RSA, then add beat-to-beat variability (larger at rest)."""
    depth = s.rsa * (1.0 - exercise) ** 2 + 0.003
    inst = hr * (1.0 + depth * np.sin(resp_phase))
    phase = np.cumsum(inst / 60.0) / rate
    phase -= phase[0]
    first = rng.uniform(0.0, 1.0)
    marks = first + np.arange(int(np.floor(phase[-1] - first)) + 1)
    tb = np.interp(marks, phase, t)
    ibi = np.diff(tb)
    e_b = np.interp(tb[:-1], t, exercise)
    eps = lfilter([1.0], [1.0, -0.4], rng.standard_normal(ibi.size)) * np.sqrt(1 - 0.16)
    ibi = ibi * (1.0 + s.hrv_sd * (1.0 - 0.85 * e_b) * eps)
    ibi = np.clip(ibi, 60.0 / HR_MAX_BPM, 60.0 / HR_MIN_BPM)
    beats = tb[0] + np.concatenate([[0.0], np.cumsum(ibi)])
    return beats[beats < t[-1]]


def _pulses(
    rng: np.random.Generator,
    s: _Subject,
    t: np.ndarray,
    beats: np.ndarray,
    exercise: np.ndarray,
) -> np.ndarray:
    """Sum of per-beat pulse waves; widths scale partly with the beat's interval."""
    ibi = np.diff(beats)
    ibi = np.concatenate([ibi, ibi[-1:]]) if ibi.size else np.array([0.85])
    scale = (1 - s.width_ibi) + s.width_ibi * ibi / 0.85
    e_b = np.interp(beats, t, exercise)
    arrival = beats + s.ptt_s * (1.0 - 0.3 * e_b)
    amp = 1.0 + 0.05 * rng.standard_normal(beats.size)  # stroke volume varies beat to beat
    idx = np.searchsorted(beats, t, side="right") - 1
    out = np.zeros_like(t)
    sys_l, sys_r = 0.6 * s.sys_w, 1.2 * s.sys_w
    dia_t = s.sys_t + s.dia_dt
    notch_t = s.sys_t + 0.6 * s.dia_dt
    for back in range(4):
        k = idx - back
        ok = k >= 0
        kk = np.where(ok, k, 0)
        u = (t - arrival[kk]) / scale[kk]
        d = u - s.sys_t
        wave = np.exp(-0.5 * (d / np.where(d < 0, sys_l, sys_r)) ** 2)
        wave += s.dia_amp * np.exp(-0.5 * ((u - dia_t) / s.dia_w) ** 2)
        wave -= s.notch_amp * np.exp(-0.5 * ((u - notch_t) / 0.025) ** 2)
        out += np.where(ok, amp[kk] * wave, 0.0)
    return out


def _events(
    rng: np.random.Generator,
    duration_s: float,
    rate_per_min: float,
    weight_at: np.ndarray,
    rate: float,
) -> np.ndarray:
    """Poisson event start times whose rate is scaled by ``weight_at`` (per sample, <= 1)."""
    n = rng.poisson(rate_per_min * duration_s / 60.0)
    times = np.sort(rng.uniform(0.0, duration_s, size=n))
    keep = (
        rng.uniform(size=n) < weight_at[np.minimum((times * rate).astype(int), weight_at.size - 1)]
    )
    return times[keep]


@dataclass
class _Motion:
    acc: np.ndarray  # (3, n) as measured: noisy, clipped, quantised, g
    motion: np.ndarray  # (3, n) true specific force at the wrist, g
    gravity: np.ndarray  # (3, n)
    cadence: np.ndarray  # steps per minute
    tendon: np.ndarray  # fidgeting waveform, drives the tendon artifact


def _accelerometer(
    rng: np.random.Generator,
    s: _Subject,
    segs: list[_Segment],
    t: np.ndarray,
    rate: float,
    extra: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> _Motion:
    """Gravity at a slowly changing orientation, arm swing, footstrikes, gestures, noise;
    ``extra`` adds the motion activities' (acceleration, rotation, impacts)."""
    n = t.size
    w_walk = _lowpass(_per_segment(t, segs, "walk_weight"), rate, 1.5)
    w_run = _lowpass(_per_segment(t, segs, "run_weight"), rate, 1.5)
    cadence = _lowpass(_per_segment(t, segs, "cadence"), rate, 3.0)
    cadence = cadence + 1.5 * _smooth_noise(rng, n, rate, 10.0)
    arm = 2 * np.pi * np.cumsum(cadence / 120.0) / rate + rng.uniform(0, 2 * np.pi)
    arm = arm + 0.15 * _smooth_noise(rng, n, rate, 2.0)
    stride = 1.0 + 0.12 * _smooth_noise(rng, n, rate, 3.0)

    dyn = np.zeros((3, n))
    for h in range(4):
        amp = s.acc_walk[:, h : h + 1] * w_walk + s.acc_run[:, h : h + 1] * w_run
        dyn += amp * stride * np.sin((h + 1) * arm + s.acc_phase[:, h : h + 1])

    # Small movements (gestures) mostly at rest and during recovery: a brief linear
    # acceleration plus a rotation of the wrist (raising, turning the hand).
    still = np.clip(1.0 - w_walk - w_run, 0.0, 1.0)
    is_rec = _per_segment(t, segs, "code") == float(ACTIVITIES.index("recovery"))
    weight = still * np.where(is_rec, 1.0, 0.5)
    turn = np.zeros((2, n))
    for t0 in _events(rng, float(t[-1]), 2.0 * s.gesture_rate, weight, rate):
        dur = rng.uniform(0.5, 3.0)
        i0, i1 = int(t0 * rate), min(int((t0 + dur) * rate), n)
        if i1 - i0 < 2:
            continue
        env = np.hanning(i1 - i0)
        wave = np.sin(2 * np.pi * rng.uniform(0.4, 2.5) * (t[i0:i1] - t0) + rng.uniform(0, 6.3))
        dyn[:, i0:i1] += rng.normal(0.0, s.gesture_g, size=(3, 1)) * env * wave
        turn[:, i0:i1] += rng.normal(0.0, s.gesture_deg, size=(2, 1)) * env
        turn[:, i0:i1] += rng.normal(0.0, 0.5 * s.gesture_deg, size=(2, 1)) * env * wave

    # Fidgeting (typing, tapping, finger play) barely moves the wrist but moves the tendons
    # under the sensor: small in the accelerometer, large in the PPG (through ``tendon``).
    tendon = np.zeros(n)
    for t0 in _events(rng, float(t[-1]), s.fidget_rate, still, rate):
        dur = rng.uniform(2.0, 8.0)
        i0, i1 = int(t0 * rate), min(int((t0 + dur) * rate), n)
        if i1 - i0 < 2:
            continue
        f = rng.uniform(0.8, 3.0) * np.exp(0.1 * _smooth_noise(rng, i1 - i0, rate, 0.5))
        phase = 2 * np.pi * np.cumsum(f) / rate + rng.uniform(0, 2 * np.pi)
        wave = np.hanning(i1 - i0) * np.sin(phase) * rng.uniform(0.5, 1.0)
        tendon[i0:i1] += wave
        dyn[:, i0:i1] += rng.normal(0.0, s.fidget_g, size=(3, 1)) * wave
    if extra is not None:
        dyn += extra[0]
        turn += extra[1]

    pitch = _lowpass(_per_segment(t, segs, "pitch_deg"), rate, 2.0)
    roll = _lowpass(_per_segment(t, segs, "roll_deg"), rate, 2.0)
    pitch = pitch + 5.0 * _smooth_noise(rng, n, rate, 8.0)
    roll = roll + 5.0 * _smooth_noise(rng, n, rate, 8.0)
    swing = (s.rot_walk * w_walk + s.rot_run * w_run) * stride
    pitch = np.deg2rad(pitch + turn[0] + swing * np.sin(arm + s.rot_phase))
    roll = np.deg2rad(roll + turn[1] + 0.3 * swing * np.sin(arm + s.rot_phase + 1.0))
    gravity = np.stack([-np.sin(pitch), np.cos(pitch) * np.sin(roll), np.cos(pitch) * np.cos(roll)])

    # Footstrikes: a damped ringing along the world vertical at every step (twice per swing).
    steps = np.flatnonzero(np.diff(np.floor(arm / np.pi)) > 0) + 1
    strength = (s.impact_walk * w_walk + s.impact_run * w_run)[steps]
    strength = strength * (1.0 + 0.2 * rng.standard_normal(steps.size))
    train = np.zeros(n)
    np.add.at(train, steps, np.maximum(strength, 0.0))
    if extra is not None:
        train += extra[2]
    tk = np.arange(int(0.15 * rate) + 1) / rate
    kernel = np.exp(-tk / 0.025) * np.cos(2 * np.pi * 9.0 * tk)
    impact = np.convolve(train, kernel)[:n]
    dyn += gravity * impact

    motion = gravity + dyn
    acc = np.clip(motion + s.acc_noise * rng.standard_normal((3, n)), -ACC_RANGE_G, ACC_RANGE_G)
    acc = np.round(acc / ACC_LSB_G) * ACC_LSB_G
    return _Motion(acc, motion, gravity, cadence, tendon)


def _noise_bursts(
    rng: np.random.Generator, s: _Subject, t: np.ndarray, motion: np.ndarray, rate: float
) -> np.ndarray:
    """Short broadband bursts and contact shifts, more frequent when moving (pulse units)."""
    n = t.size
    out = np.zeros(n)
    weight = (1.0 + 2.0 * motion) / 3.0
    for t0 in _events(rng, float(t[-1]), 3.0 * s.burst_rate, weight, rate):
        dur = rng.uniform(0.3, 2.5)
        i0, i1 = int(t0 * rate), min(int((t0 + dur) * rate), n)
        if i1 - i0 < 2:
            continue
        amp = rng.uniform(1.5, 6.0)
        noise = lfilter([0.3], [1, -0.7], rng.standard_normal(i1 - i0))
        out[i0:i1] += amp * np.hanning(i1 - i0) * noise / 0.42
        if rng.random() < 0.3:  # the sensor shifts on the skin: a decaying baseline step
            tail = np.arange(n - i0) / rate
            out[i0:] += rng.normal(0.0, 1.0) * np.exp(-tail / rng.uniform(1.0, 5.0))
    return out


@dataclass
class _Simulated:
    """One subject's simulation, with the internals the tests and diagnostics look at."""

    subject: _Subject
    segments: list[_Segment]
    t: np.ndarray
    hr: np.ndarray  # smooth HR path, BPM (labels come from ``beats``)
    beats: np.ndarray
    cadence: np.ndarray  # steps per minute
    ppg: np.ndarray
    acc: np.ndarray  # (3, n), g
    clipped: np.ndarray  # bool per PPG sample


def _subject_signals(
    rng: np.random.Generator,
    duration_s: float,
    rate: float,
    mrng: np.random.Generator | None = None,
) -> _Simulated:
    """Everything about one subject: parameters, session, HR, beats and the four channels.
    A motion stream ``mrng`` adds the motion activities (see :mod:`synth_motion`)."""
    s = _draw_subject(rng)
    ms: MotionSubject | None = draw_motion_subject(mrng) if mrng is not None else None
    segs = _draw_session(rng, s, duration_s, mrng)
    n = int(round(duration_s * rate))
    t = np.arange(n) / rate

    tg, hr_grid = _heart_rate(rng, s, segs, duration_s)
    hr = np.interp(t, tg, hr_grid)
    exercise = np.clip((hr - s.hr_rest) / (s.hr_max - s.hr_rest), 0.0, 1.0)
    resp_rate = s.resp_rest + (s.resp_ex - s.resp_rest) * exercise
    resp_rate = resp_rate + 1.5 * _smooth_noise(rng, n, rate, 20.0)
    resp_phase = 2 * np.pi * np.cumsum(resp_rate / 60.0) / rate + rng.uniform(0, 2 * np.pi)
    beats = _beats(rng, s, t, hr, exercise, resp_phase, rate)

    extra = None
    w_motion = np.zeros(n)
    if mrng is not None and ms is not None:
        names = np.array(ALL_ACTIVITIES)[_per_segment(t, segs, "code").astype(int)]
        extra = wrist_motion(mrng, ms, names, t, rate)
        w_motion = _lowpass(np.isin(names, MOTION_ACTIVITIES).astype(float), rate, 1.5)
    m = _accelerometer(rng, s, segs, t, rate, extra)
    # The artifact follows the true motion; the sensor's own noise does not reach the PPG.
    hp = sosfiltfilt(butter(2, 0.4, btype="highpass", fs=rate, output="sos"), m.motion, axis=1)

    pulse = _pulses(rng, s, t, beats, exercise)
    w_run = _lowpass(_per_segment(t, segs, "run_weight"), rate, 1.5)
    w_walk = _lowpass(_per_segment(t, segs, "walk_weight"), rate, 1.5)
    perfusion = (1.0 - 0.3 * w_run - 0.1 * w_walk) * (1.0 + s.resp_am * np.sin(resp_phase + 0.5))
    if extra is not None:
        perfusion = perfusion * (1.0 - 0.25 * w_motion)
    motion_am = np.clip(1.0 + s.am_gain * (s.am_dir @ hp), 0.2, 1.8)
    proj = s.coup_dir @ hp
    # Contact pressure follows the wrist's orientation (strap loading), with a mechanical lag.
    posture = _lowpass(m.gravity - m.gravity[:, :1], rate, _POSTURE_TAU_S)
    art = s.coup_lin @ hp + s.coup_nl * proj * proj + s.coup_post @ posture + s.tendon * m.tendon
    # How well the strap holds the sensor drifts (it loosens, sweat, the watch slides), so the
    # same motion corrupts some minutes far more than others.
    art = art * np.exp(s.contact_var * _smooth_noise(rng, n, rate, 15.0))
    a_t = float(np.exp(-2 * np.pi * s.tissue_hz / rate))
    art = lfilter([1 - a_t], [1, -a_t], art)
    shift = int(round(s.delay_s * rate))
    if shift:
        art = np.concatenate([np.full(shift, art[0]), art[:-shift]])
    wander = s.wander * (
        0.8 * _smooth_noise(rng, n, rate, 25.0) + 0.4 * _smooth_noise(rng, n, rate, 5.0)
    )
    riiv = s.resp_bw * np.sin(resp_phase)
    busy = w_walk + w_run if extra is None else w_walk + w_run + w_motion
    bursts = _noise_bursts(rng, s, t, np.clip(busy, 0, 1), rate)
    ppg_u = pulse * perfusion * motion_am + art + wander + riiv + bursts
    ppg_u = ppg_u + s.ppg_noise * rng.standard_normal(n)
    # Drawn after everything above, so the rest of the signal is as in synth/1.
    moving = np.clip(busy, 0.0, 1.0)
    ppg_u = pulse * perfusion * motion_am * (_low_perfusion(rng, t, moving, rate) - 1.0) + ppg_u
    ppg_u = ppg_u + _unobserved_artifact(rng, m.cadence, moving, rate)
    ppg = s.dc + s.amp_counts * ppg_u
    lo, hi = s.dc - s.rail_lo * s.amp_counts, s.dc + s.rail_hi * s.amp_counts
    ppg = np.round(np.clip(ppg, lo, hi))
    return _Simulated(s, segs, t, hr, beats, m.cadence, ppg, m.acc, (ppg <= lo) | (ppg >= hi))


def _unobserved_artifact(
    rng: np.random.Generator, cadence: np.ndarray, moving: np.ndarray, rate: float
) -> np.ndarray:
    """Motion artifact the accelerometer does not explain: venous and tissue movement at the
    arm-swing and step rhythms, with its own slowly wandering frequency, phase and strength.

    The accelerometer says roughly where in the spectrum it is, not its exact shape, so it can
    only be partly cancelled: what keeps real running windows hard when cadence is near the
    heart rate."""
    n = cadence.size
    gain = rng.uniform(0.2, 0.9)
    out = np.zeros(n)
    for harmonic, share in ((0.5, 0.6), (1.0, 1.0)):
        detune = 1.0 + 0.04 * _smooth_noise(rng, n, rate, 6.0)
        phase = 2 * np.pi * np.cumsum(harmonic * cadence / 60.0 * detune) / rate
        phase = phase + 1.5 * _smooth_noise(rng, n, rate, 3.0)
        strength = np.exp(0.6 * _smooth_noise(rng, n, rate, 8.0))
        out += share * strength * np.sin(phase + rng.uniform(0, 2 * np.pi))
    return gain * moving * out


def _low_perfusion(
    rng: np.random.Generator, t: np.ndarray, moving: np.ndarray, rate: float
) -> np.ndarray:
    """Multiplier of the pulse amplitude: episodes of 4-20 s (vasoconstriction, the sensor
    lifting off the skin) where the pulse sinks towards the noise, more often when moving.
    There the heart rate is not in the window at all, as in real recordings."""
    n = t.size
    factor = np.ones(n)
    duration = t[-1] - t[0]
    per_min = rng.uniform(0.3, 1.0)
    for start in np.sort(rng.uniform(0.0, duration, rng.poisson(per_min * duration / 60.0))):
        i0 = int(start * rate)
        if rng.random() > 0.35 + 0.65 * moving[min(i0, n - 1)]:
            continue
        i1 = min(n, i0 + int(rng.uniform(4.0, 20.0) * rate))
        depth = rng.uniform(0.05, 0.35)
        ramp = np.minimum(1.0, np.minimum(np.arange(i1 - i0), np.arange(i1 - i0)[::-1]) / rate)
        factor[i0:i1] = np.minimum(factor[i0:i1], 1.0 - (1.0 - depth) * ramp)
    return factor


def _subject_rng(seed: int, k: int, stream: int | None = None) -> np.random.Generator:
    """Subject ``k``'s own stream: independent of how many subjects are generated. Stream 1
    is the subject's motion stream (``motion=True``)."""
    key = (k,) if stream is None else (k, stream)
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _check(n_subjects: int, minutes_per_subject: float, seed: int, rate_hz: float) -> None:
    if n_subjects < 1:
        raise PpgedgeError(f"n_subjects must be at least 1, got {n_subjects}")
    if not minutes_per_subject * 60.0 >= 16.0:
        raise PpgedgeError(
            f"minutes_per_subject must give at least 16 s per subject, got {minutes_per_subject}"
        )
    if seed < 0:
        raise PpgedgeError(f"seed must be a non-negative integer, got {seed}")
    if not rate_hz >= 16.0:
        raise PpgedgeError(f"rate_hz must be at least 16 Hz, got {rate_hz}")


def generate_recordings(
    n_subjects: int = 16,
    minutes_per_subject: float = 10.0,
    seed: int = 0,
    rate_hz: float = DEFAULT_RATE_HZ,
    motion: bool = False,
) -> list[Recording]:
    """One continuous recording per subject ("syn00", "syn01", ...) at ``rate_hz``; with
    ``motion`` the sessions include arm exercise, boxing and stairs (see :mod:`synth_motion`)."""
    _check(n_subjects, minutes_per_subject, seed, rate_hz)
    recs = []
    for k in range(n_subjects):
        mrng = _subject_rng(seed, k, 1) if motion else None
        sim = _subject_signals(_subject_rng(seed, k), minutes_per_subject * 60.0, rate_hz, mrng)
        name = f"syn{k:02d}"
        recs.append(
            Recording(
                name=name,
                subject=name,
                signals={
                    "ppg": (sim.ppg, rate_hz),
                    "acc_x": (sim.acc[0], rate_hz),
                    "acc_y": (sim.acc[1], rate_hz),
                    "acc_z": (sim.acc[2], rate_hz),
                },
                beat_times_s=sim.beats,
                activity_segments=[(g.start_s, g.end_s, g.name) for g in sim.segments],
            )
        )
    return recs


def synthesize(
    n_subjects: int = 16,
    minutes_per_subject: float = 10.0,
    seed: int = 0,
    fmt: DataFormat | None = None,
    motion: bool = False,
) -> WindowedData:
    """Generate recordings and cut them into labelled windows in ``fmt`` (default format)."""
    recs = generate_recordings(n_subjects, minutes_per_subject, seed, DEFAULT_RATE_HZ, motion)
    provenance = {
        "generator": "ppgedge.data.synth",
        "version": VERSION,
        "seed": seed,
        "n_subjects": n_subjects,
        "minutes_per_subject": minutes_per_subject,
        "rate_hz": DEFAULT_RATE_HZ,
    }
    if motion:  # absent for the default, so default datasets keep their provenance
        provenance["motion"] = True
    return window_recordings(recs, fmt or DataFormat(), source="synthetic", provenance=provenance)
