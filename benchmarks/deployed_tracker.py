"""What the firmware reports, before and after export fitted the tracker on the int8 outputs
(issue #16).

Until this change a bundle shipped the tracker record (width, weight, re-acquire cost, label
power, and tracked-or-per-window) of the float checkpoint it was quantised from, fitted on
that checkpoint's float validation logits (refitted here with today's grid and decoder rule,
as the pipeline would have shipped it), while motion.py scored the int8 model with a record
it fitted itself on the int8 outputs: the benchmark's "chosen decoder" was not what the
firmware ran. Export now fits the record on the exported .tflite's int8 outputs of the
validation subjects (ppgedge.export.deployed_tracker). This script exports each of the 18 seed
runs of motion_seeds.py again with the current code (into a temporary folder; no retraining,
the .tflite is checked byte-identical to the run's), then scores on the test subjects, in
TFLite Micro's int8 outputs and the C tracker's arithmetic:

* ``float record``: the decoder and tracker the bundle shipped before (the artifact's);
* ``int8 record``: the ones export ships now;

and checks that the latter equals motion.py's own fit (same decoder and prior), so the
benchmark's figures are what the firmware reports. Nothing is chosen on test subjects.

Writes ``benchmarks/results/deployed_tracker.{json,md}``. Run after motion_seeds.py:
``.venv/bin/python benchmarks/deployed_tracker.py`` (18 exports and decoding, ~6 min).
"""

from __future__ import annotations

import argparse
import filecmp
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from motion import (
    OUT,
    VERDICT_VARIANT,
    _float_logits,
    _int8_logits,
    _split,
    run_dataset,
    score_model,
    stretch_of,
    write_results,
)
from motion_seeds import _name, score_seed_runs
from reacquire import intro, summarise, tables

from ppgedge import __version__
from ppgedge.evaluate.tracking import fit_tracker
from ppgedge.export.run import export, parse_formats
from ppgedge.export.verify import resolve_export
from ppgedge.models.checkpoint import load_checkpoint

GRIDS = ("float record", "int8 record")  # the two decodings


def _cell(teacher: dict[str, Any], scored: dict[str, Any], record: dict[str, Any]) -> dict:
    prior = record.get("prior") or {}
    return {
        "teacher": teacher["mae_chosen"],
        "teacher_decoder": teacher["chosen_decoder"],
        "int8": scored["mae_chosen"],
        "int8_decoder": scored["chosen_decoder"],
        "int8_jump": prior.get("jump"),
        "int8_label_power": prior.get("label_power"),
        "int8_val": scored["val_mae_by_decoder"][scored["chosen_decoder"]],
        "int8_own": scored["mae"],
        "half_width": prior.get("half_width"),
        "weight": prior.get("weight"),
        "val_on": record.get("logits", "float"),
    }


def reexport(run: Path, ds, folder: Path):
    """The run's QAT artifact exported again with the current code into ``folder`` (tflite and
    the TFLite Micro bundle, the tracker fitted on ``ds``): (result, seconds, whether the
    .tflite is byte-identical to the one the run shipped)."""
    shipped = next((run / "export").glob("*.tflite"))
    t0 = time.perf_counter()
    result = export(
        run / "qat" / "model.qat.int8.pt",
        folder,
        formats=parse_formats("tflite,tflm"),
        name=shipped.stem,
        data=ds.path,
    )
    seconds = time.perf_counter() - t0
    return result, seconds, filecmp.cmp(result.files["tflite"], shipped, shallow=False)


def score_folder(job: tuple[str, int]) -> dict[str, Any]:
    torch.set_num_threads(1)
    scenario, seed = job
    run = OUT / f"{_name(scenario, seed)}_{VERDICT_VARIANT}"
    teacher = load_checkpoint(run / "teacher" / "teacher.pt")
    ds = run_dataset(run, teacher)
    parts = _split(teacher).indices(ds.subject_names())
    with tempfile.TemporaryDirectory(prefix="deployed-tracker-") as tmp:
        result, seconds, identical = reexport(run, ds, Path(tmp) / "export")
        tfl = result.files["tflite"]
        now = result.manifest["tracker"]
        window_now = result.manifest["decode"]
        _, art, _ = resolve_export(tfl)
        q = {p: _int8_logits(tfl, art, ds, parts[p]) for p in ("val", "test")}
    scale = q["test"][1]
    logits = {p: v[0] for p, v in q.items()}
    stretch = stretch_of(art.base)
    # what export shipped before this change, with today's grid and decoder rule: the record
    # fitted on the float checkpoint's validation logits (the run folders' stored records
    # predate the label prior and the decoder margin)
    before = fit_tracker(
        ds, parts["train"], parts["val"], _float_logits(art.base, ds, parts["val"]), stretch=stretch
    )
    t_logits = {p: _float_logits(teacher, ds, parts[p]) for p in ("val", "test")}
    t = score_model(
        "teacher", t_logits, teacher.decode, ds, parts, None, stretch=stretch_of(teacher)
    )
    s_before = score_model("int8", logits, art.decode, ds, parts, scale, record=before)
    s_now = score_model("int8", logits, window_now, ds, parts, scale, record=now)
    refit = score_model("int8", logits, window_now, ds, parts, scale, stretch=stretch)
    same = (
        refit["chosen_decoder"] == s_now["chosen_decoder"] and refit["tracker"] == s_now["tracker"]
    )
    row = {
        "scenario": scenario,
        "seed": seed,
        "tflite_identical": identical,
        "export_seconds": round(seconds, 1),
        "tracker_fit_seconds": round(result.seconds.get("tracker", float("nan")), 2),
        "window_decoder": {"float record": art.decode, "int8 record": window_now},
        "equals_benchmark_fit": bool(same and refit["mae_chosen"] == s_now["mae_chosen"]),
        "float record": _cell(t, s_before, before),
        "int8 record": _cell(t, s_now, now),
    }
    print(scenario, seed, round(s_before["mae_chosen"], 2), round(s_now["mae_chosen"], 2))
    return row


def markdown(doc: dict[str, Any]) -> str:
    head = intro(
        doc,
        "The bundle's tracker fitted on the int8 outputs",
        "of the float checkpoint (the record a bundle shipped before: fitted on float "
        "validation logits) and of the record export now fits on the exported model's int8 "
        "validation outputs",
    )
    rows = doc["runs"]
    checks = [
        "",
        f"Every re-exported .tflite byte-identical to the run's: "
        f"{all(r['tflite_identical'] for r in rows)}. The int8 record equals motion.py's own "
        f"fit (decoder, prior, test MAE) in {sum(r['equals_benchmark_fit'] for r in rows)} of "
        f"{len(rows)} runs. Export time per run {min(r['export_seconds'] for r in rows):.1f}-"
        f"{max(r['export_seconds'] for r in rows):.1f} s, of which the tracker fit "
        f"{min(r['tracker_fit_seconds'] for r in rows):.2f}-"
        f"{max(r['tracker_fit_seconds'] for r in rows):.2f} s.",
        "",
        "Decisions that changed (decoder; K half width, w weight, J re-acquire cost):",
        "",
        "| scenario | seed | float record | int8 record | test MAE before | now |",
        "|---|---|---|---|---|---|",
    ]

    def shown(c: dict[str, Any], window: str) -> str:
        if c["int8_decoder"] != "tracked":
            return c["int8_decoder"]
        j = "" if c["int8_jump"] is None else f", J={c['int8_jump']:g}"
        return f"tracked (K={c['half_width']}, w={c['weight']:g}{j}; per window {window})"

    for r in rows:
        a, b = r["float record"], r["int8 record"]
        wa, wb = r["window_decoder"]["float record"], r["window_decoder"]["int8 record"]
        if shown(a, wa) != shown(b, wb):
            checks.append(
                f"| {r['scenario']} | {r['seed']} | {shown(a, wa)} | {shown(b, wb)} | "
                f"{a['int8']:.2f} | {b['int8']:.2f} |"
            )
    return "\n".join(head + checks + tables(doc, GRIDS)) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="run folders at once")
    args = ap.parse_args()
    rows = score_seed_runs(score_folder, args.jobs)
    doc = {
        "schema": "ppgedge.benchmark.deployed_tracker/1",
        "ppgedge": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "runs": rows,
        "summary": summarise(rows, GRIDS),
    }
    write_results("deployed_tracker", doc, markdown(doc))
    print("int8 record == benchmark fit:", all(r["equals_benchmark_fit"] for r in rows))
    print(np.round([r["int8 record"]["int8"] for r in rows], 2))


if __name__ == "__main__":
    main()
