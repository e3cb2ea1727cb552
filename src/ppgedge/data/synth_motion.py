"""Non-periodic, high-amplitude wrist motion for the synthetic generator (``motion=True``).

Walking and running move the wrist in a rhythm the accelerometer describes well. The hard real
recordings (IEEE SPC 2015's arm-exercise and boxing test sets) are different: the wrist jerks,
turns and stops at irregular times, several g at a time, so the artifact is broadband and its
timing is not a cadence a tracker can lock onto. Three activities model that:

* ``arm``: repetitions of a forearm / upper-arm exercise (raises, curls, rotations), each a
  smooth out-and-back movement of 0.8-2.5 s and 0.5-2 g along a direction that changes with
  every set, with irregular pauses and large wrist rotations;
* ``boxing``: combinations of 1-4 punches (a sharp extension and stop, 2-6 g, 0.15-0.3 s each)
  separated by irregular guard phases with bouncing footwork;
* ``stairs``: climbing at 75-110 steps per minute with strong, uneven footstrikes, a small arm
  swing, and a turn with a pause at every landing.

The motion reaches the PPG through the subject's existing coupling (the generator high-passes
the true wrist motion and feeds it through the same linear, nonlinear, posture and amplitude
terms). Every draw here comes from the subject's own *motion* stream, ``(seed, k, 1)``, so
turning motion on never changes the draws of the default generator's stream for the
parameters, and ``motion=False`` reproduces ``synth/2`` bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MOTION_ACTIVITIES = ("arm", "boxing", "stairs")

# Transitions once motion activities are in the mix (after the first cycle).
NEXT_WITH_MOTION: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "rest": (("walk", "run", "arm", "boxing", "stairs"), (0.3, 0.2, 0.2, 0.15, 0.15)),
    "walk": (("run", "rest", "recovery", "stairs"), (0.4, 0.2, 0.2, 0.2)),
    "run": (("recovery", "walk"), (0.65, 0.35)),
    "recovery": (("rest", "walk", "run", "arm", "boxing"), (0.3, 0.2, 0.2, 0.15, 0.15)),
    "arm": (("rest", "recovery", "boxing"), (0.4, 0.4, 0.2)),
    "boxing": (("recovery", "rest", "arm"), (0.6, 0.2, 0.2)),
    "stairs": (("recovery", "walk", "rest"), (0.5, 0.3, 0.2)),
}


@dataclass
class MotionSubject:
    """How hard one subject moves in the motion activities (drawn from the motion stream)."""

    arm_g: float  # peak acceleration of one exercise repetition
    arm_rep_s: float  # typical repetition duration
    arm_rot_deg: float  # wrist rotation per repetition
    punch_g: float
    punch_s: float
    guard_bounce_g: float
    stair_cadence: float
    stair_impact_g: float
    stair_swing_g: float


def draw_motion_subject(rng: np.random.Generator) -> MotionSubject:
    u = rng.uniform
    return MotionSubject(
        arm_g=u(0.5, 2.0),
        arm_rep_s=u(1.0, 2.2),
        arm_rot_deg=u(30.0, 90.0),
        punch_g=u(2.0, 6.0),
        punch_s=u(0.15, 0.3),
        guard_bounce_g=u(0.05, 0.3),
        stair_cadence=u(75.0, 110.0),
        stair_impact_g=u(0.8, 2.2),
        stair_swing_g=u(0.1, 0.4),
    )


def segment_targets(
    rng: np.random.Generator, name: str, hr_rest: float, hr_max: float
) -> tuple[float, float, float, float, float]:
    """(HR target, cadence, walk weight, pitch, roll) of a motion segment, from the segment
    stream. Boxing is the hardest effort, arm exercise the lightest."""
    u = rng.uniform
    reserve = hr_max - hr_rest
    if name == "arm":
        return hr_rest + reserve * u(0.25, 0.45), u(30.0, 60.0), 0.0, u(-40.0, 20.0), u(-40, 40)
    if name == "boxing":
        return hr_rest + reserve * u(0.6, 0.85), u(60.0, 120.0), 0.0, u(-20.0, 30.0), u(-30, 30)
    # stairs: climbing raises the heart rate more than walking at a lower cadence
    return hr_rest + reserve * u(0.45, 0.7), u(75.0, 110.0), 0.4, u(-80.0, -50.0), u(-20, 20)


def _pulse(n: int, kind: str) -> np.ndarray:
    """A movement's acceleration shape over ``n`` samples: out-and-back (``smooth``) or a sharp
    extension followed by a stop (``punch``); both integrate to ~zero velocity."""
    x = np.linspace(0.0, 1.0, n)
    if kind == "punch":
        return np.sin(2 * np.pi * x) * np.exp(-((x - 0.4) ** 2) / 0.08)
    return np.sin(2 * np.pi * x) * np.hanning(n)


def wrist_motion(
    rng: np.random.Generator,
    m: MotionSubject,
    names: np.ndarray,
    t: np.ndarray,
    rate: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dynamic acceleration (3, n) in g, wrist rotation (2, n) in degrees, step impacts (n,)
    in g) for the samples whose activity ``names`` is a motion activity."""
    n = t.size
    dyn = np.zeros((3, n))
    turn = np.zeros((2, n))
    impacts = np.zeros(n)
    for name in MOTION_ACTIVITIES:
        on = np.flatnonzero(names == name)
        if on.size == 0:
            continue
        # contiguous runs of this activity
        breaks = np.flatnonzero(np.diff(on) != 1) + 1
        for run in np.split(on, breaks):
            i0, i1 = int(run[0]), int(run[-1]) + 1
            if name == "arm":
                _arm(rng, m, dyn, turn, i0, i1, rate)
            elif name == "boxing":
                _boxing(rng, m, dyn, turn, i0, i1, rate)
            else:
                _stairs(rng, m, dyn, turn, impacts, i0, i1, rate)
    return dyn, turn, impacts


def _direction(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(3)
    return v / np.linalg.norm(v)


def _arm(rng, m: MotionSubject, dyn, turn, i0: int, i1: int, rate: float) -> None:
    """Sets of 6-15 repetitions, each of its own duration and strength, pauses between sets."""
    i = i0 + int(rng.uniform(0.0, 2.0) * rate)
    while i < i1:
        axis = _direction(rng)
        rot = rng.normal(0.0, m.arm_rot_deg, size=2)
        for _ in range(int(rng.integers(6, 16))):
            dur = int(m.arm_rep_s * rng.uniform(0.6, 1.6) * rate)
            j = min(i + dur, i1)
            if j - i < 4:
                break
            amp = m.arm_g * rng.uniform(0.5, 1.3)
            wobble = 0.25 * _direction(rng)
            dyn[:, i:j] += np.outer(amp * (axis + wobble), _pulse(j - i, "smooth"))
            turn[:, i:j] += np.outer(rot * rng.uniform(0.6, 1.2), np.hanning(j - i))
            i = j + int(rng.exponential(0.4) * rate)
            if i >= i1:
                return
        i += int(rng.uniform(3.0, 15.0) * rate)  # rest between sets


def _boxing(rng, m: MotionSubject, dyn, turn, i0: int, i1: int, rate: float) -> None:
    """Punch combinations at irregular times over a bouncing guard."""
    span = i1 - i0
    tt = np.arange(span) / rate
    bounce_hz = rng.uniform(1.5, 2.5)
    phase = 2 * np.pi * np.cumsum(bounce_hz * (1 + 0.2 * rng.standard_normal(span)) / rate)
    dyn[2, i0:i1] += m.guard_bounce_g * np.sin(phase)
    turn[:, i0:i1] += rng.normal(0.0, 10.0, size=(2, 1)) * np.sin(2 * np.pi * 0.2 * tt)
    i = i0 + int(rng.uniform(0.2, 1.5) * rate)
    while i < i1:
        for _ in range(int(rng.integers(1, 5))):
            dur = int(m.punch_s * rng.uniform(0.8, 1.3) * rate)
            j = min(i + max(dur, 4), i1)
            if j - i < 4:
                return
            axis = np.array([1.0, 0.0, 0.0]) * rng.choice([-1.0, 1.0]) + 0.5 * _direction(rng)
            dyn[:, i:j] += np.outer(
                m.punch_g * rng.uniform(0.6, 1.2) * axis, _pulse(j - i, "punch")
            )
            turn[:, i:j] += np.outer(rng.normal(0.0, 25.0, size=2), np.hanning(j - i))
            i = j + int(rng.uniform(0.1, 0.35) * rate)
        i += int(rng.exponential(1.2) * rate + 0.3 * rate)


def _stairs(rng, m: MotionSubject, dyn, turn, impacts, i0: int, i1: int, rate: float) -> None:
    """Flights of 10-16 steps with uneven footstrikes, each ended by a turn at the landing."""
    i = i0
    while i < i1:
        for _ in range(int(rng.integers(10, 17))):
            step = int(60.0 / (m.stair_cadence * rng.uniform(0.85, 1.15)) * rate)
            j = min(i + step, i1)
            if j - i < 4:
                return
            impacts[i] += m.stair_impact_g * rng.uniform(0.5, 1.4)
            dyn[:, i:j] += np.outer(m.stair_swing_g * _direction(rng), _pulse(j - i, "smooth"))
            i = j
        j = min(i + int(rng.uniform(1.5, 4.0) * rate), i1)  # the landing: turn, slow down
        if j - i >= 4:
            turn[:, i:j] += np.outer(rng.normal(0.0, 40.0, size=2), np.hanning(j - i))
            dyn[:, i:j] += np.outer(
                rng.uniform(0.3, 1.0) * _direction(rng), _pulse(j - i, "smooth")
            )
        i = j
