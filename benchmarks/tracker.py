"""Tracker benchmark: per-window vs tracked MAE of deployed int8 models, and the C tracker's cost.

For each ``NAME=EXPORT:DATASET`` (an ``ppgedge export`` folder, or its ``.tflite``, and the
dataset its model was trained on), on the model's own split:

1. int8 logits of the validation and test subjects' windows from the TFLite Micro runtime
   (the device's arithmetic);
2. the transition prior from the training subjects' labels (``fit_prior``); the half width and
   weight from the validation grid (``choose_tracker``, int8 arithmetic at the output scale);
   the decoder (argmax / smoothed / expectation / tracked) with the lowest validation MAE;
3. test subjects scored once for every decoder (the chosen one marked), windows ordered by
   recording and start time, reset at recordings and gaps (counted);
4. the bundle's C tracker compiled for the host on every test sequence: bit-exact with Python
   (all windows), and for the Cortex-M4 (QEMU mps2-an386, -Os) on the first ``--qemu-windows``
   windows: instructions per update (exact counts; cycles not modelled), state bytes.

Writes ``benchmarks/results/tracker.json`` and ``tracker.md``.
Run: ``.venv/bin/python benchmarks/tracker.py [NAME=EXPORT:DATASET ...]`` (default: the main
job's synthetic model, ``benchmarks/out/main_job``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ppgedge import __version__
from ppgedge.compress.runtimes import output_qparams, run_raw
from ppgedge.data.format import Dataset
from ppgedge.data.loader import WindowSource
from ppgedge.evaluate.predict import eval_indices
from ppgedge.evaluate.tracking import (
    GRID_HALF_WIDTH,
    GRID_JUMP,
    GRID_LABEL_POWER,
    GRID_WEIGHT,
    TRACKED,
    choose_decoder,
    choose_tracker,
    mae_by_decoder_tracked,
    prior_from_training,
    track_windows,
)
from ppgedge.export.tracker_c import STATE_BYTES
from ppgedge.export.verify import resolve_export
from ppgedge.firmware.tracker_run import run_host, run_qemu
from ppgedge.models import tracker as T
from ppgedge.train.trainer import label_stretch, training_config_of

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT = [
    f"synthetic={ROOT}/benchmarks/out/main_job/export:{ROOT}/benchmarks/out/main_job/data/"
    "dataset.ppgds"
]


def int8_logits(tfl: Path, art, dataset: Dataset, idx: np.ndarray) -> np.ndarray:
    fmt = art.data_format
    x = WindowSource(dataset, idx, fmt.channels, preprocessing=fmt.preprocessing).windows(
        np.arange(len(idx))
    )
    return run_raw(tfl, x, "tflm").reshape(len(idx), -1)


def one(name: str, export: Path, data: Path, qemu_windows: int) -> dict:
    t0 = time.perf_counter()
    tfl, art, _ = resolve_export(export)
    dataset = Dataset(data)
    scale = float(output_qparams(tfl)[0])
    idx = {p: eval_indices(dataset, art.base, p)[0] for p in ("train", "val", "test")}
    q = {p: int8_logits(tfl, art, dataset, idx[p]) for p in ("val", "test")}
    prior0 = prior_from_training(dataset, idx["train"], label_stretch(training_config_of(art.base)))
    prior, choice = choose_tracker(prior0, q["val"], dataset, idx["val"], scale)
    val = mae_by_decoder_tracked(q["val"], dataset, idx["val"], prior, scale)
    test = mae_by_decoder_tracked(q["test"], dataset, idx["test"], prior, scale)
    chosen = choose_decoder(val)
    tr = track_windows(q["test"], dataset, idx["test"], prior, scale)
    # the C tracker on the test sequences, in (recording, start) order with the reset flags
    t = idx["test"]
    order = T.sequence_order(dataset.recording[t], dataset.start_s[t])
    xs = q["test"][order].astype(np.int8)
    starts = ~T.consecutive(dataset.recording[t][order], dataset.start_s[t][order], prior.hop_s)
    ref_idx, ref_margin = T.filter_sequence(
        xs, prior.int_costs(scale), starts, prior.int_jump(scale), prior.int_label_offsets(scale)
    )
    host = run_host(prior, scale, xs, starts)
    host_exact = bool(
        np.array_equal(host.bpm, ref_idx + 30) and np.array_equal(host.margin, ref_margin)
    )
    n = min(qemu_windows, len(xs))
    m4 = run_qemu(prior, scale, xs[:n], starts[:n])
    m4_exact = bool(
        np.array_equal(m4.bpm, ref_idx[:n] + 30) and np.array_equal(m4.margin, ref_margin[:n])
    )
    ins = m4.instructions[~starts[:n]]  # updates that ran the transition step
    first = m4.instructions[starts[:n]]
    return {
        "name": name,
        "export": _rel(export),
        "dataset": _rel(data),
        "windows": {p: int(len(v)) for p, v in idx.items()},
        "output_scale": scale,
        "prior": {"n_pairs": prior0.n_pairs, "counts": list(prior0.counts)},
        "chosen": {
            "half_width": prior.half_width,
            "weight": prior.weight,
            "jump": prior.jump,
            "int_jump": prior.int_jump(scale),
            "label_power": prior.label_power,
            "configurations": choice["configurations"],
            "decoder": chosen,
            "int_costs": prior.int_costs(scale).tolist(),
        },
        "val_mae": val,
        "test_mae": test,
        "test_mae_chosen": test[chosen],
        "test_sequences": tr.sequences,
        "test_gap_resets": tr.gaps,
        "c_host_bit_exact": host_exact,
        "c_host_windows": int(len(xs)),
        "cortex_m4": {
            "bit_exact": m4_exact,
            "windows": n,
            "instructions_per_update_mean": float(ins.mean()) if len(ins) else None,
            "instructions_per_update_max": int(ins.max()) if len(ins) else None,
            "instructions_first_window": int(first.mean()) if len(first) else None,
            "state_bytes": m4.state_bytes,
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _rel(path: Path) -> str:
    p = path.resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(path)


def table(rows: list[dict]) -> str:
    lines = [
        "| data | test windows | argmax | smoothed | expectation | tracked | chosen on val "
        "| K | weight | J | tau | C bit-exact (host / M4) | instr./update (M4) | state B |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        t, c, m4 = r["test_mae"], r["chosen"], r["cortex_m4"]
        lines.append(
            f"| {r['name']} | {r['windows']['test']} | {t['argmax']:.2f} | {t['smoothed']:.2f} "
            f"| {t['expectation']:.2f} | {t[TRACKED]:.2f} | {c['decoder']} "
            f"({r['test_mae_chosen']:.2f}) | {c['half_width']} | {c['weight']:g} "
            f"| {'-' if c.get('jump') is None else format(c['jump'], 'g')} "
            f"| {'-' if c.get('label_power') is None else format(c['label_power'], 'g')} "
            f"| {'yes' if r['c_host_bit_exact'] else 'NO'} ({r['c_host_windows']}) / "
            f"{'yes' if m4['bit_exact'] else 'NO'} ({m4['windows']}) "
            f"| {m4['instructions_per_update_mean']:,.0f} "
            f"(max {m4['instructions_per_update_max']:,}) "
            f"| {m4['state_bytes']} |"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", default=DEFAULT, help="NAME=EXPORT:DATASET")
    ap.add_argument("--qemu-windows", type=int, default=200)
    ap.add_argument("--md-only", action="store_true", help="re-render tracker.md from the JSON")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    if args.md_only:  # re-render the table from the last results
        rows = json.loads((RESULTS / "tracker.json").read_text())["runs"]
    for spec in [] if args.md_only else args.runs:
        name, _, rest = spec.partition("=")
        export, _, data = rest.rpartition(":")
        rows.append(one(name, Path(export), Path(data), args.qemu_windows))
        print(json.dumps({k: rows[-1][k] for k in ("name", "test_mae", "chosen")}))
    doc = {
        "schema": "ppgedge.bench.tracker/1",
        "ppgedge_version": __version__,
        "python": platform.python_version(),
        "grid": {
            "half_width": list(GRID_HALF_WIDTH),
            "weight": list(GRID_WEIGHT),
            "jump": list(GRID_JUMP),
            "label_power": list(GRID_LABEL_POWER),
        },
        "state_bytes_declared": STATE_BYTES,
        "runs": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tracker.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = [
        "# Temporal tracker (`benchmarks/tracker.py`)",
        "",
        f"ppgedge {__version__}. Test-subject MAE (BPM) of the deployed int8 model (TFLite Micro "
        "runtime) per decoder; the transition prior from the training subjects' labels, its half "
        "width K, weight, re-acquire cost J and label power tau (- = none) chosen on the "
        "validation subjects "
        f"({len(GRID_HALF_WIDTH)} x {len(GRID_WEIGHT)} x {len(GRID_JUMP)} x "
        f"{len(GRID_LABEL_POWER)} = "
        f"{len(GRID_HALF_WIDTH) * len(GRID_WEIGHT) * len(GRID_JUMP) * len(GRID_LABEL_POWER)} "
        "configurations), the "
        "decoder chosen on validation too; test subjects scored once per decoder. Windows in "
        "recording/start order, reset at every recording and gap. The C tracker: bit-exact "
        "check against Python on the host (all test windows) and on the Cortex-M4 in QEMU "
        "(mps2-an386, -Os), instructions per update counted there (exact for this build; "
        "cycles are not modelled), state bytes = sizeof the C state.",
        "",
        table(rows),
        "",
        "Runs (model = the `ppgedge run` export, data = the dataset it was trained on; its own "
        "split):",
        "",
        *(
            f"- {r['name']}: `{r['export']}`"
            f" on `{Path(r['dataset']).name}`; {r['windows']['train']}/{r['windows']['val']}/"
            f"{r['windows']['test']} train/val/test windows; {r['test_sequences']} test "
            f"sequences, {r['test_gap_resets']} resets at gaps; validation MAE "
            + ", ".join(f"{k} {v:.2f}" for k, v in r["val_mae"].items())
            + f"; prior from {r['prior']['n_pairs']} training window pairs"
            for r in rows
        ),
        "",
    ]
    (RESULTS / "tracker.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
