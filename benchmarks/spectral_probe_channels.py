"""Which channels the spectral head needs: a validation-only study for the next step of #16.

``spectral_probe.py`` found that a small network over the spectrum, beside the deployed int8
model, lowers the folds' error a lot. Its spectral features cost the firmware a DFT per
channel, so the head's input channels are a cost question: all four (PPG and the three
accelerometer axes, what the probe used) or the PPG alone (a quarter of the cost). This trains
the probe on each set for every run of the motion benchmark (the four folds and xact, seeds
0-2) and scores **validation subjects only**: the probe alone, the int8 model plus the probe
per window (the weight chosen on validation, as in spectral_probe.py) and with the tracker
fitted on validation (its validation MAE). No test subject is scored.

Rule, fixed before these runs: the next step builds the head on the PPG alone if its mean
validation MAE of the int8 model plus the probe, tracked, over the 15 runs, is at most the
all-channel probe's + 0.10 BPM; otherwise on all four channels.

Writes ``benchmarks/results/spectral_probe_channels.{json,md}``. Run after motion_seeds.py:
``.venv/bin/python benchmarks/spectral_probe_channels.py`` (about 3 min on 2 cores).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from motion import write_results
from spectral_probe import SCENARIOS, SEEDS, probe

from ppgedge import __version__

CHANNEL_SETS = ("all", "ppg")
MARGIN_BPM = 0.10


def _summary(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean validation MAE over the runs, per channel set."""
    out = {}
    for ch in CHANNEL_SETS:
        rs = [r for r in runs if r["channels"] == ch]
        out[ch] = {
            "probe": float(np.mean([r["val"]["probe"]["all"] for r in rs])),
            "int8": float(np.mean([r["val"]["int8"]["all"] for r in rs])),
            "int8_combined": float(np.mean([r["val"]["int8_combined"]["all"] for r in rs])),
            "int8_tracked": float(np.mean([r["int8_tracked"]["val_mae"] for r in rs])),
            "int8_combined_tracked": float(
                np.mean([r["int8_combined_tracked"]["val_mae"] for r in rs])
            ),
        }
    return out


def _markdown(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    lines = [
        "# Spectral head channels, validation only (`benchmarks/spectral_probe_channels.py`)",
        "",
        f"ppgedge {doc['version']}, {doc['date']}, 2 CPU cores. The probe of spectral_probe.py "
        "trained on all four channels or on the PPG alone, for the four folds and xact at seeds "
        "0-2 (15 runs each); validation MAE in BPM, mean over the runs. No test subject scored.",
        "",
        "| channels | probe alone | int8 | int8 + probe | int8 tracked | int8 + probe tracked |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for ch in CHANNEL_SETS:
        v = s[ch]
        lines.append(
            f"| {ch} | {v['probe']:.2f} | {v['int8']:.2f} | {v['int8_combined']:.2f} | "
            f"{v['int8_tracked']:.2f} | {v['int8_combined_tracked']:.2f} |"
        )
    lines += [
        "",
        "Per scenario (int8 + probe tracked, mean over seeds): "
        + "; ".join(
            f"{sc} "
            + " / ".join(
                f"{ch} {np.mean([r['int8_combined_tracked']['val_mae'] for r in doc['runs'] if r['scenario'] == sc and r['channels'] == ch]):.2f}"  # noqa: E501
                for ch in CHANNEL_SETS
            )
            for sc in SCENARIOS
        ),
        "",
        f"Rule (fixed before the runs): PPG alone if its int8 + probe tracked validation MAE is "
        f"at most all channels' + {MARGIN_BPM:.2f} BPM. Verdict: **{doc['verdict']}**. "
        f"{doc['seconds']:.0f} s in all.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    runs = []
    with tempfile.TemporaryDirectory(prefix="spectral-channels-") as tmp:
        for scenario in SCENARIOS:
            for seed in SEEDS:
                for ch in CHANNEL_SETS:
                    r = probe(scenario, seed, Path(tmp), channels=ch, scored=("val",))
                    runs.append({"scenario": scenario, "seed": seed, "channels": ch, **r})
    summary = _summary(runs)
    ppg_ok = (
        summary["ppg"]["int8_combined_tracked"]
        <= summary["all"]["int8_combined_tracked"] + MARGIN_BPM
    )
    doc = {
        "schema": "ppgedge.bench.spectral_probe_channels/1",
        "version": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "runs": runs,
        "summary": summary,
        "verdict": "PPG alone" if ppg_ok else "all four channels",
        "seconds": time.perf_counter() - t0,
    }
    write_results("spectral_probe_channels", doc, _markdown(doc))


if __name__ == "__main__":
    main()
