"""The tracker's re-acquire move, scored once on the motion benchmark's seed runs (issue #16).

Over three seeds the tracked decoder lowers SPC across activities (xact) from 17.03 to 12.70
BPM but raises fold 4 from 16.38 to 20.43 (motion_seeds.md). The re-acquire move (a floor
``-J`` on the filter's transition term, ppgedge.models.tracker; ``J`` on the validation grid
next to the half width and weight) was added by argument before any score
(docs/motion-benchmark.md, "Tracker re-acquire"). This re-decodes the 18 runs of
benchmarks/motion_seeds.py (the defaults, 6 scenarios x seeds 0-2; no retraining) for the
teacher and the deployed int8 model (TFLite Micro), with the validation grid without ``J``
(the tracker as it was) and with it; each run's decoder and tracker settings are chosen on its
validation subjects both times, the test subjects only scored.

Writes ``benchmarks/results/reacquire.{json,md}``. Run after motion_seeds.py:
``.venv/bin/python benchmarks/reacquire.py`` (inference and decoding only, ~10 min).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from motion import (
    FOLDS,
    OUT,
    SCENARIOS,
    TARGETS,
    VERDICT_VARIANT,
    _float_logits,
    _int8_logits,
    _split,
    run_dataset,
    score_model,
    stretch_of,
    write_results,
)
from motion_seeds import SEEDS, _name

from ppgedge import __version__
from ppgedge.evaluate.tracking import GRID_JUMP
from ppgedge.export.verify import resolve_export
from ppgedge.models.checkpoint import load_checkpoint


@dataclass(frozen=True)
class Grid:
    """A decoding of the runs: the tracker's validation grid and the decoder rule."""

    jumps: tuple[float | None, ...]  # re-acquire costs
    label_powers: tuple[float | None, ...] = (None,)
    decoder_margin: float = 0.0  # 0: the decoder with the lowest validation MAE


Grids = dict[str, Grid]
GRIDS: Grids = {"without J": Grid((None,)), "with J": Grid(GRID_JUMP)}


def score_folder(job: tuple[str, int], grids: Grids = GRIDS) -> dict[str, Any]:
    """Teacher and int8 of one run folder, decoded with each grid."""
    torch.set_num_threads(1)
    scenario, seed = job
    run = OUT / f"{_name(scenario, seed)}_{VERDICT_VARIANT}"
    teacher = load_checkpoint(run / "teacher" / "teacher.pt")
    split = _split(teacher)
    ds = run_dataset(run, teacher)
    parts = split.indices(ds.subject_names())
    t_logits = {p: _float_logits(teacher, ds, parts[p]) for p in ("val", "test")}
    tfl = next((run / "export").glob("*.tflite"))
    _, art, _ = resolve_export(tfl)
    q = {p: _int8_logits(tfl, art, ds, parts[p]) for p in ("val", "test")}
    scale = q["test"][1]
    row: dict[str, Any] = {"scenario": scenario, "seed": seed}
    t_stretch, q_stretch = stretch_of(teacher), stretch_of(art.base)
    for grid, g in grids.items():
        rule = (g.jumps, g.label_powers, g.decoder_margin)
        t = score_model("teacher", t_logits, teacher.decode, ds, parts, None, *rule, t_stretch)
        i = score_model(
            "int8", {p: v[0] for p, v in q.items()}, art.decode, ds, parts, scale, *rule, q_stretch
        )
        row[grid] = {
            "teacher": t["mae_chosen"],
            "teacher_decoder": t["chosen_decoder"],
            "int8": i["mae_chosen"],
            "int8_decoder": i["chosen_decoder"],
            "int8_jump": i["tracker"].get("jump"),
            "int8_label_power": i["tracker"].get("label_power"),
            "int8_val": i["val_mae_by_decoder"][i["chosen_decoder"]],
            "int8_own": i["mae"],
        }
    print(scenario, seed, {g: round(row[g]["int8"], 2) for g in grids}, flush=True)
    return row


def summarise(rows: list[dict[str, Any]], grids: Grids = GRIDS) -> dict[str, Any]:
    out: dict[str, Any] = {"scenarios": {}, "targets": {}}
    for s in dict.fromkeys(r["scenario"] for r in rows):
        rs = [r for r in rows if r["scenario"] == s]
        out["scenarios"][s] = {
            g: {
                "int8": float(np.mean([r[g]["int8"] for r in rs])),
                "teacher": float(np.mean([r[g]["teacher"] for r in rs])),
                "gap": float(np.mean([r[g]["int8"] - r[g]["teacher"] for r in rs])),
                "val": float(np.mean([r[g]["int8_val"] for r in rs])),
            }
            for g in grids
        }
    for g in grids:
        per_seed = []
        for seed in sorted({r["seed"] for r in rows}):
            got = {r["scenario"]: r[g] for r in rows if r["seed"] == seed}
            if "xact" in got and all(f in got for f in FOLDS):
                per_seed.append(
                    {
                        "xact": got["xact"]["int8"],
                        "folds": float(np.mean([got[f]["int8"] for f in FOLDS])),
                        "gap": float(max(got[f]["int8"] - got[f]["teacher"] for f in FOLDS)),
                    }
                )
        if per_seed:
            out["targets"][g] = {
                "xact_int8": float(np.mean([p["xact"] for p in per_seed])),
                "xact_seeds_meeting": sum(p["xact"] <= TARGETS["xact_int8"] for p in per_seed),
                "fold_mean_int8": float(np.mean([p["folds"] for p in per_seed])),
                "fold_gap_max": float(np.mean([p["gap"] for p in per_seed])),
                "seeds": len(per_seed),
            }
    return out


def intro(doc: dict[str, Any], title: str, grids_text: str) -> list[str]:
    """The heading and the paragraph that says what was re-decoded and how."""
    return [
        f"# {title} on the motion benchmark's seed runs (issue #16)",
        "",
        f"ppgedge {doc['ppgedge']}, {doc['date']}. The 18 runs of motion_seeds.md (defaults, "
        "seeds 0-2), no retraining: each run's teacher and int8 model (TFLite Micro) decoded "
        "with the decoder and tracker settings its validation subjects choose from the grid "
        f"{grids_text}. Test MAE in BPM, mean over seeds; scored once, nothing chosen on it.",
    ]


def markdown(doc: dict[str, Any]) -> str:
    g0, g1 = GRIDS
    jumps = ", ".join("none" if j is None else f"{j:g}" for j in GRID_JUMP)
    head = intro(
        doc,
        "Tracker re-acquire",
        f"without the re-acquire cost J ({g0}: 35 settings) and with it ({g1}: J in {jumps}; 175)",
    )
    return "\n".join(head + tables(doc, GRIDS)) + "\n"


def score_all(
    grids: Grids, jobs: int, todo: list[tuple[str, int]] | None = None
) -> list[dict[str, Any]]:
    """Every seed run (or the ``todo`` scenario, seed pairs) re-decoded with each grid,
    ``jobs`` run folders at once."""
    todo = todo or [(s, seed) for seed in SEEDS for s in SCENARIOS]
    with ProcessPoolExecutor(jobs) as pool:
        return list(pool.map(partial(score_folder, grids=grids), todo))


def tables(doc: dict[str, Any], grids: Grids) -> list[str]:
    """The per-scenario means, the per-run cells and the targets of two grids."""
    summ = doc["summary"]
    g0, g1 = grids
    lines = [
        "",
        f"| scenario | int8 {g0} | int8 {g1} | teacher {g0} | teacher {g1} | int8 - teacher "
        f"{g0} | {g1} | int8 val {g0} | {g1} |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s, v in summ["scenarios"].items():
        a, b = v[g0], v[g1]
        lines.append(
            f"| {s} | {a['int8']:.2f} | {b['int8']:.2f} | {a['teacher']:.2f} | "
            f"{b['teacher']:.2f} | {a['gap']:+.2f} | {b['gap']:+.2f} | {a['val']:.2f} | "
            f"{b['val']:.2f} |"
        )
    lines += ["", "Per run (int8; decoder chosen, J and tau chosen when tracked):", ""]
    lines += ["| scenario | seed | " + " | ".join(grids) + " |", "|---|---|---|---|"]
    for r in doc["runs"]:
        cells = []
        for g in grids:
            x = r[g]
            j = f", J={x['int8_jump']:g}" if x["int8_jump"] is not None else ""
            if x.get("int8_label_power") is not None:
                j += f", tau={x['int8_label_power']:g}"
            cells.append(f"{x['int8']:.2f} ({x['int8_decoder']}{j})")
        lines.append(f"| {r['scenario']} | {r['seed']} | " + " | ".join(cells) + " |")
    t = summ["targets"]
    if t:
        lines += ["", "## Targets (mean over seeds)", ""]
        for g, v in t.items():
            lines.append(
                f"- {g}: xact {v['xact_int8']:.2f} (target {TARGETS['xact_int8']}, met in "
                f"{v['xact_seeds_meeting']} of {v['seeds']} seeds), 4-fold mean "
                f"{v['fold_mean_int8']:.2f} (target {TARGETS['fold_mean_int8']}), largest fold "
                f"gap {v['fold_gap_max']:+.2f} (target {TARGETS['fold_gap']})"
            )
    return lines


def study_main(
    name: str,
    description: str,
    grids: Grids,
    grids_record: dict[str, Any],
    render: Callable[[dict[str, Any]], str],
) -> None:
    """Parse ``--jobs``, re-decode every seed run with ``grids``, write ``name``.{json,md}."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--jobs", type=int, default=2, help="run folders scored at once")
    args = ap.parse_args()
    rows = score_all(grids, args.jobs)
    doc = {
        "schema": f"ppgedge.benchmark.{name}/1",
        "ppgedge": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "grids": grids_record,
        "runs": rows,
        "summary": summarise(rows, grids),
    }
    write_results(name, doc, render(doc))


def main() -> None:
    record = {name: list(g.jumps) for name, g in GRIDS.items()}
    study_main("reacquire", __doc__.splitlines()[0], GRIDS, record, markdown)


if __name__ == "__main__":
    main()
