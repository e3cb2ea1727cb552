"""The tracker's label prior (scaled likelihoods), scored once on the motion benchmark's seed
runs (issue #16).

The network's logits are posteriors: they hold the training heart-rate distribution ``q``.
The tracker adds a window's logits to the track's score window after window, so ``q`` is
counted once per window and a long track is pulled toward the common heart rates, the
failure the folds whose test heart rates lie above the training pool's show (fold 4). With
a label power ``tau`` the tracker divides each window's posterior by ``q^tau`` after the first
window of a sequence (ppgedge.models.tracker; ``q`` is the training labels widened by the
time stretch the training drew); ``tau`` in {off, 1} joins the validation grid. Decided by
argument before any score (docs/motion-benchmark.md, "Tracker label prior"). This re-decodes
the 18 runs of benchmarks/motion_seeds.py (defaults, 6 scenarios x seeds 0-2; no retraining)
for the teacher and the deployed int8 model (TFLite Micro) with the grid as it was (with the
re-acquire cost J, posteriors) and with the label power; each run's decoder and tracker
settings are chosen on its validation subjects both times, the test subjects only scored.

Writes ``benchmarks/results/label_prior.{json,md}``. Run after motion_seeds.py:
``.venv/bin/python benchmarks/label_prior.py`` (inference and decoding only, ~10 min).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from reacquire import Grid, Grids, intro, study_main, tables

from ppgedge.evaluate.tracking import GRID_JUMP, GRID_LABEL_POWER
from ppgedge.models.tracker import LABEL_FLOOR

GRIDS: Grids = {
    "posteriors": Grid(GRID_JUMP),
    "label prior": Grid(GRID_JUMP, GRID_LABEL_POWER),
}


def markdown(doc: dict[str, Any]) -> str:
    g0, g1 = GRIDS
    powers = ", ".join("off" if t is None else f"{t:g}" for t in GRID_LABEL_POWER)
    head = intro(
        doc,
        "Tracker label prior",
        f"as it was ({g0}: half width x weight x re-acquire cost, 175 settings) and with the "
        f"label power tau ({g1}: tau in {powers}; 350; the training label histogram widened "
        f"by the training's time stretch, {LABEL_FLOOR:g} of it uniform)",
    )
    return "\n".join(head + tables(doc, GRIDS)) + "\n"


def main() -> None:
    record = {name: asdict(g) for name, g in GRIDS.items()}
    study_main("label_prior", __doc__.splitlines()[0], GRIDS, record, markdown)


if __name__ == "__main__":
    main()
