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
    MotionSubject,
    draw_motion_subject,
    wrist_motion,
)
from ppgedge.data.synth_session import (
    ACC_LSB_G,
    ACC_RANGE_G,
    ACTIVITIES,
    ALL_ACTIVITIES,
    DEFAULT_RATE_HZ,
    GRID_HZ,
    HR_MAX_BPM,
    HR_MIN_BPM,
    POSTURE_TAU_S,
    VERSION,
    Segment,
    Subject,
    draw_session,
    draw_subject,
)
from ppgedge.data.windowing import Recording, window_recordings
from ppgedge.errors import PpgedgeError


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


def _per_segment(t: np.ndarray, segs: list[Segment], attr: str) -> np.ndarray:
    """Piecewise-constant per-segment value at each time."""
    edges = np.array([g.start_s for g in segs[1:]])
    values = np.array([getattr(g, attr) for g in segs], dtype=np.float64)
    return values[np.searchsorted(edges, t, side="right")]


def _heart_rate(
    rng: np.random.Generator, s: Subject, segs: list[Segment], duration_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """HR path on the coarse grid: first-order kinetics towards each segment's target."""
    n = int(np.ceil(duration_s * GRID_HZ)) + 2
    tg = np.arange(n) / GRID_HZ
    target = _per_segment(tg, segs, "hr_target")
    exercise = _per_segment(tg, segs, "run_weight") + 0.5 * _per_segment(tg, segs, "walk_weight")
    # Cardiovascular drift while running, and pace fluctuations.
    starts = _per_segment(tg, segs, "start_s")
    run = _per_segment(tg, segs, "run_weight") > 0
    target = target + np.where(run, np.minimum(0.03 * (tg - starts), 8.0), 0.0)
    target = target + (1.0 + 3.0 * exercise) * _smooth_noise(rng, n, GRID_HZ, 30.0)
    dt = 1.0 / GRID_HZ
    k_up, k_down = 1 - np.exp(-dt / s.tau_up_s), 1 - np.exp(-dt / s.tau_down_s)
    hr = np.empty(n)
    h = s.hr_rest
    for i, tgt in enumerate(target.tolist()):
        h += (tgt - h) * (k_up if tgt > h else k_down)
        hr[i] = h
    hr += s.drift_bpm * _smooth_noise(rng, n, GRID_HZ, 60.0)
    return tg, np.clip(hr, HR_MIN_BPM, HR_MAX_BPM)


def _beats(
    rng: np.random.Generator,
    s: Subject,
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
    s: Subject,
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
    s: Subject,
    segs: list[Segment],
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
    rng: np.random.Generator, s: Subject, t: np.ndarray, motion: np.ndarray, rate: float
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

    subject: Subject
    segments: list[Segment]
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
    s = draw_subject(rng)
    ms: MotionSubject | None = draw_motion_subject(mrng) if mrng is not None else None
    segs = draw_session(rng, s, duration_s, mrng)
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
    posture = _lowpass(m.gravity - m.gravity[:, :1], rate, POSTURE_TAU_S)
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
