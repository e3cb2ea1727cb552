"""The decoder margin, decided on fresh synthetic seeds, then scored once on the motion
benchmark's seed runs (issue #16).

A run's decoder is the one with the lowest validation MAE; with two or three validation
subjects (often without the motion the tracker is for) a per-window decoder wins on
differences of a few per cent. The candidate rule (``evaluate.tracking.choose_decoder``,
``DECODER_MARGIN``): keep ``tracked`` unless a per-window decoder's validation MAE is below
0.9 x the tracker's. Rule fixed before these runs (docs/motion-benchmark.md, "Decoder
margin"): on the synthetic motion scenario at run seeds 4, 5 and 6 (development data no
configuration was scored on; the defaults' chains), adopt the margin if the int8 (TFLite Micro,
chosen decoder) MAE is at most the plain minimum's + 0.10 BPM in every seed. Then the 18 runs
of motion_seeds.py are re-decoded with and without it and reported once, whatever the verdict.
Both decodings use the label-prior grid (the default).

Writes ``benchmarks/results/decoder_margin.{json,md}``. Run after motion_seeds.py:
``.venv/bin/python benchmarks/decoder_margin.py`` (3 chains, then decoding: ~25 min).
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from motion import OUT, VERDICT_VARIANT, run_chain, write_results
from motion_seeds import _name
from reacquire import Grid, Grids, intro, score_all, summarise, tables

from ppgedge import __version__
from ppgedge.evaluate.tracking import DECODER_MARGIN, GRID_JUMP, GRID_LABEL_POWER

DEV_SEEDS = (4, 5, 6)
NON_INFERIORITY = 0.10  # BPM per dev seed
GRIDS: Grids = {
    "plain minimum": Grid(GRID_JUMP, GRID_LABEL_POWER, 0.0),
    "margin": Grid(GRID_JUMP, GRID_LABEL_POWER, DECODER_MARGIN),
}
DEV_GRIDS: Grids = {"posteriors": Grid(GRID_JUMP), **GRIDS}


def verdict(dev_rows: list[dict[str, Any]]) -> dict[str, Any]:
    g0, g1 = GRIDS
    diffs = {str(r["seed"]): r[g1]["int8"] - r[g0]["int8"] for r in dev_rows}
    return {
        "rule": f"int8 MAE with the margin <= plain minimum + {NON_INFERIORITY:.2f} BPM in "
        "every dev seed",
        "differences": diffs,
        "adopt": all(d <= NON_INFERIORITY for d in diffs.values()),
    }


def markdown(doc: dict[str, Any]) -> str:
    v = doc["verdict"]
    head = intro(
        doc,
        "Decoder margin",
        f"with the label prior and the decoder of lowest validation MAE (plain minimum) and "
        f"with `tracked` kept unless a per-window decoder is below {1 - DECODER_MARGIN:g} x "
        "its validation MAE (margin)",
    )
    lines = [
        "",
        "## Decision on development data (synthetic, run seeds "
        + ", ".join(map(str, DEV_SEEDS))
        + ")",
        "",
        "| seed | int8 posteriors | int8 label prior, plain minimum | int8 label prior, margin "
        "| decoders (plain / margin) |",
        "|---|---|---|---|---|",
    ]
    for r in doc["dev_runs"]:
        a, b, c = (r[g] for g in DEV_GRIDS)
        lines.append(
            f"| {r['seed']} | {a['int8']:.2f} | {b['int8']:.2f} | {c['int8']:.2f} | "
            f"{b['int8_decoder']} / {c['int8_decoder']} |"
        )
    lines += [
        "",
        f"Rule: {v['rule']}. Differences: "
        + ", ".join(f"seed {s} {d:+.2f}" for s, d in v["differences"].items())
        + f". **{'Adopted' if v['adopt'] else 'Not adopted'}.**",
        "",
        "## The 18 seed runs (reported once)",
    ]
    return "\n".join(head + lines + tables(doc, GRIDS)) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2, help="chains / run folders at once")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    dev = [("synthetic", s) for s in DEV_SEEDS]
    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(lambda j: run_chain(_name(*j), VERDICT_VARIANT, {}), dev))
    dev_rows = score_all(DEV_GRIDS, args.jobs, dev)
    rows = score_all(GRIDS, args.jobs)
    doc = {
        "schema": "ppgedge.benchmark.decoder_margin/1",
        "ppgedge": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "grids": {name: asdict(g) for name, g in DEV_GRIDS.items()},
        "dev_runs": dev_rows,
        "verdict": verdict(dev_rows),
        "runs": rows,
        "summary": summarise(rows, GRIDS),
    }
    write_results("decoder_margin", doc, markdown(doc))


if __name__ == "__main__":
    main()
