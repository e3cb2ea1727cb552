"""Errors split by the reference heart rate against the training recordings' range: the range
comes from the model's own label histogram, empty bands stay strict JSON, and eval and verify
report it for float checkpoints and deployed models alike."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import ppgedge

from ppgedge.compress import quantize as Q
from ppgedge.data.format import BPM_MIN, Dataset
from ppgedge.data.splits import Split
from ppgedge.errors import PpgedgeError
from ppgedge.evaluate.coverage import (
    DEPLOYED,
    coverage,
    deployed_line,
    summary_line,
    trained_range,
)
from ppgedge.export.run import export, parse_formats
from ppgedge.export.verify import verify
from ppgedge.models.bpm import N_CLASSES
from ppgedge.models.checkpoint import load_checkpoint


def _record(lo: int, hi: int) -> dict:
    counts = [0] * N_CLASSES
    counts[lo - BPM_MIN] = 3
    counts[hi - BPM_MIN] = 1
    return {"prior": {"counts": [1, 2, 1], "half_width": 1, "weight": 1.0, "label_counts": counts}}


def test_bands_count_rounded_labels_and_keep_json_strict() -> None:
    assert trained_range(_record(60, 150)) == (60, 150)
    assert trained_range({}) is None
    assert trained_range({"prior": {"counts": [1], "half_width": 0, "weight": 1}}) is None
    # a hand-edited record is refused in one line, as the tracker refuses it
    bad = _record(60, 150)
    bad["prior"]["label_counts"] = [-1] * N_CLASSES
    with pytest.raises(PpgedgeError, match="label histogram"):
        trained_range(bad)
    true = np.array([59.4, 59.6, 100.0, 150.4, 150.6, 180.0])
    pred = np.array([59.4, 69.6, 101.0, 150.4, 160.6, 150.0])
    doc = coverage([("m", pred, true)], (60, 150))
    # 59.4 rounds below 60; 59.6 and 150.4 round into the range; 150.6 rounds above it
    assert doc["windows"] == {"below": 1, "inside": 3, "above": 2}
    bands = doc["models"]["m"]
    assert bands["below"]["mae"] == 0.0
    assert bands["inside"]["mae"] == pytest.approx((10 + 1 + 0) / 3)
    assert bands["above"]["mae"] == pytest.approx((10 + 30) / 2)
    line = summary_line(doc, "m")
    assert line.startswith("training recordings span 60-150 BPM")
    assert "1 of 6 windows below (17%): MAE 0.00" in line
    assert "2 of 6 windows above (33%): MAE 20.00 against 3.67 inside" in line
    # a band without windows is null, not NaN, so --json stays strict JSON
    empty = coverage([("m", np.array([100.0]), np.array([100.0]))], (60, 150))
    assert empty["models"]["m"]["above"] is None
    json.dumps(empty, allow_nan=False)
    assert summary_line(empty, "m").endswith("every window inside")
    assert coverage([("m", pred, true)], None) is None
    assert summary_line(None, "m") is None and deployed_line(doc, "tracked") is None


def test_eval_and_verify_split_errors_by_the_trained_range(
    tiny_checkpoint: Path, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    ckpt = load_checkpoint(tiny_checkpoint)
    parts = Split.from_dict(ckpt.training["split"]).indices(tiny_dataset.subject_names())
    labels = np.rint(np.asarray(tiny_dataset.y[parts["train"]]))
    want = [int(labels.min()), int(labels.max())]
    doc = json.loads(ppgedge("eval", tiny_checkpoint, tiny_dataset.path, "--json").stdout)
    cov = doc["coverage"]
    assert cov["trained_bpm"] == want
    assert sum(cov["windows"].values()) == doc["n_windows"]
    name = ckpt.arch
    inside = cov["models"][name]["inside"]
    assert inside["n"] == cov["windows"]["inside"]
    # the bands pool back to the overall MAE
    pooled = sum(b["mae"] * b["n"] for b in cov["models"][name].values() if b) / doc["n_windows"]
    assert pooled == pytest.approx(doc["models"][name]["overall"]["mae"])
    # the deployed model: verify's TFLite Micro predictions, with the same range
    art = Q.ptq(tiny_checkpoint, tiny_dataset, tmp_path / "m.ptq.int8.pt", n_windows=64).path
    ex = export(art, tmp_path / "export", formats=parse_formats("tflite,tflm"))
    report = verify(ex.out_dir, tiny_dataset)
    assert report.coverage["trained_bpm"] == want
    bands = report.coverage["models"][DEPLOYED]
    pooled = sum(b["mae"] * b["n"] for b in bands.values() if b) / report.windows
    assert pooled == pytest.approx(report.mae_tflm)
    assert deployed_line(report.coverage, report.decoder).startswith(
        f"training recordings span {want[0]}-{want[1]} BPM"
    )
    proc = ppgedge("eval", ex.files["tflite"], tiny_dataset.path)
    assert proc.returncode == 0, proc.stderr
    assert "by reference heart rate" in proc.stdout
    band = next(ln for ln in proc.stdout.splitlines() if f"{want[0]}-{want[1]}" in ln)
    assert "(trained)" in band or "(trained)" in proc.stdout.split(band, 1)[1].splitlines()[1]
