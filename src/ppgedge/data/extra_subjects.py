"""Synthetic motion subjects lent to the training subjects of a small dataset (issue #16).

A few real recordings rarely hold what the wearer will do: the SPC 2015 treadmill subjects run
but never box, and one fold's test subjects reach heart rates its training subjects never
do. ``[data] synthetic_motion = N`` adds N subjects from ppgedge's own generator in its motion
sessions (arm exercise, boxing and stairs beside rest, walking and running), labelled by the
generator's beats, to the **training** subjects only. They are set aside before the split, so
the validation and test subjects (and how validation subjects are chosen) are those of the
same run without them; their names (``simmotion00``, ...) say what they are in every report.

Their seed is the run seed on a stream of its own, so they are never copies of the data's own
synthetic subjects (``syn00``, ... at the run seed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from ppgedge.data.format import DataFormat, Dataset, WindowedData
from ppgedge.data.merge import dataset_chunks
from ppgedge.data.stream_writer import write_dataset_chunks
from ppgedge.errors import PpgedgeError

PREFIX = "simmotion"
MINUTES = 6.0  # per subject: about 177 windows of 8 s every 2 s
MAX_SUBJECTS = 64  # bounds what one setting can make us generate (64 x 6 min)
_STREAM = 0x6D6F74  # "mot": the extra subjects' own seed stream


def subject_names(n: int) -> tuple[str, ...]:
    """The names the ``n`` extra subjects carry (their recordings share them)."""
    return tuple(f"{PREFIX}{k:02d}" for k in range(n))


def extra_seed(run_seed: int) -> int:
    """The generator seed of the extra subjects: the run seed on a stream of its own."""
    return int(np.random.SeedSequence([run_seed, _STREAM]).generate_state(1)[0])


def check_count(n: int) -> None:
    if not 0 <= n <= MAX_SUBJECTS:
        raise PpgedgeError(
            f"[data] synthetic_motion must be 0-{MAX_SUBJECTS} subjects, got {n}: 0 turns it off"
        )


def synthetic_motion_subjects(n: int, run_seed: int, fmt: DataFormat) -> WindowedData:
    """``n`` generator subjects in motion sessions, windowed in ``fmt``, renamed
    ``simmotionKK``."""
    from ppgedge.data.synth import synthesize

    check_count(n)
    data = synthesize(n, MINUTES, extra_seed(run_seed), fmt, motion=True)
    rename = dict(zip([f"syn{k:02d}" for k in range(n)], subject_names(n), strict=True))
    provenance = {**data.provenance, "role": "training subjects only", "run_seed": run_seed}
    return replace(
        data,
        subjects=[rename[s] for s in data.subjects],
        recordings=[rename.get(r, f"{PREFIX}-{r}") for r in data.recordings],
        provenance=provenance,
    )


def with_extra_subjects(
    base: Dataset | WindowedData, n: int, run_seed: int, out: str | Path
) -> Path:
    """Write ``base`` plus ``n`` synthetic motion subjects as one dataset at ``out``."""
    taken = sorted(set(base.subjects) & set(subject_names(n)))
    if taken:  # refused before anything is generated
        raise PpgedgeError(
            f"the data already has subject(s) {taken}, the names of the synthetic motion "
            "subjects: rename them or set [data] synthetic_motion = 0"
        )
    extra = synthetic_motion_subjects(n, run_seed, base.fmt)
    where = str(base.path) if isinstance(base, Dataset) else base.source
    provenance = {
        "base": {"source": base.source, "where": where, "provenance": _provenance(base)},
        "synthetic_motion": {"subjects": list(extra.subjects), **extra.provenance},
    }

    def chunks() -> Iterator[WindowedData]:
        yield from dataset_chunks(base) if isinstance(base, Dataset) else (base,)
        yield extra

    return write_dataset_chunks(chunks(), out, base.fmt, source=base.source, provenance=provenance)


def _provenance(base: Dataset | WindowedData) -> dict:
    if isinstance(base, Dataset):
        return dict(base.meta.get("provenance") or {})
    return dict(base.provenance)


def training_only(subjects: list[str], n: int) -> tuple[list[str], tuple[str, ...]]:
    """``subjects`` split into the ones a split chooses from and the ``n`` extra ones."""
    extra = subject_names(n)
    missing = [s for s in extra if s not in subjects]
    if missing:
        raise PpgedgeError(
            f"the dataset lacks the synthetic motion subjects {missing}: rerun the data stage "
            "(ppgedge run --from data)"
        )
    return [s for s in subjects if s not in extra], extra
