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

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from typing import Any

from motion import SCENARIOS, write_results
from motion_seeds import SEEDS
from reacquire import Grids, score_folder, summarise, tables

from ppgedge import __version__
from ppgedge.evaluate.tracking import GRID_JUMP, GRID_LABEL_POWER
from ppgedge.models.tracker import LABEL_FLOOR

GRIDS: Grids = {
    "posteriors": (GRID_JUMP, (None,)),
    "label prior": (GRID_JUMP, GRID_LABEL_POWER),
}


def markdown(doc: dict[str, Any]) -> str:
    g0, g1 = GRIDS
    intro = [
        "# Tracker label prior on the motion benchmark's seed runs (issue #16)",
        "",
        f"ppgedge {doc['ppgedge']}, {doc['date']}. The 18 runs of motion_seeds.md (defaults, "
        "seeds 0-2), no retraining: each run's teacher and int8 model (TFLite Micro) decoded "
        "with the decoder and tracker settings its validation subjects choose from the grid "
        f"as it was ({g0}: half width x weight x re-acquire cost, 175 settings) and with the "
        f"label power tau ({g1}: tau in "
        f"{', '.join('off' if t is None else f'{t:g}' for t in GRID_LABEL_POWER)}; 350; the "
        "training label histogram widened by the training's time stretch, "
        f"{LABEL_FLOOR:g} of it uniform). Test MAE in BPM, mean over seeds; scored once, "
        "nothing chosen on it.",
    ]
    return "\n".join(intro + tables(doc, GRIDS)) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="run folders scored at once")
    args = ap.parse_args()
    jobs = [(s, seed) for seed in SEEDS for s in SCENARIOS]
    with ProcessPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(partial(score_folder, grids=GRIDS), jobs))
    doc = {
        "schema": "ppgedge.benchmark.label_prior/1",
        "ppgedge": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "grids": {g: {"jumps": list(j), "label_powers": list(t)} for g, (j, t) in GRIDS.items()},
        "runs": rows,
        "summary": summarise(rows, GRIDS),
    }
    write_results("label_prior", doc, markdown(doc))


if __name__ == "__main__":
    main()
