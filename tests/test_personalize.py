"""``ppgedge personalize``: the re-fit touches only the final layer's int32 bias bytes, undoes a
clear bias offset, writes a bundle holding exactly the new model, and refuses bad input in one
line with exit code 2."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ppgedge.compress.bias_calibration import (
    branch_logits,
    calibration_inputs,
    fc_inputs,
    final_layer,
    with_bias,
)
from ppgedge.compress.runtimes import output_qparams, run_raw
from ppgedge.data.format import Dataset
from ppgedge.data.loader import WindowSource
from ppgedge.errors import PpgedgeError
from ppgedge.export.personalize import _scores, personalize, subject_windows
from ppgedge.export.run import export
from ppgedge.models.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def exported(tiny_checkpoint: Path, tiny_dataset_path: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pers") / "export"
    export(tiny_checkpoint, out, formats=("tflite",), data=tiny_dataset_path, calib_windows=64)
    return out


def _held_out(tiny_checkpoint: Path) -> str:
    return load_checkpoint(tiny_checkpoint).training["split"]["test"][0]


def _doctor_and_refit(tfl: Path, layer, offset: np.ndarray, data: Path, subject: str):
    """Add ``offset`` to the final bias of ``tfl`` in place, personalise it on one minute of
    ``subject`` into ``tfl``'s folder's sibling ``bundle``, and check the fit pulled most of
    the offset on classes 120-139 back. Returns (doctored bytes, result, new .tflite,
    manifest)."""
    bad, changed = with_bias(tfl.read_bytes(), layer, layer.bias + offset)
    assert changed and all(layer.bias_offset <= o < layer.bias_offset + 720 for o in changed)
    tfl.write_bytes(bad)
    out = tfl.parent.parent / "bundle"
    r = personalize(tfl, data, subject, 1.0, out, l2=1e-3, basis="free")
    manifest = json.loads((out / "manifest.json").read_text())
    new_tfl = out / f"{manifest['identifier']}.tflite"
    refit = final_layer(new_tfl).bias.astype(np.int64)
    pushed = slice(120, 140)
    removed = (layer.bias[pushed] + offset[pushed] - refit[pushed]) / offset[pushed]
    assert removed.mean() > 0.5, removed  # the fit pulls the pushed-up classes back
    return bad, r, new_tfl, manifest


def test_refit_changes_only_bias_bytes_and_undoes_an_offset(
    exported: Path, tiny_checkpoint: Path, tiny_dataset_path: Path, tmp_path: Path
) -> None:
    """Push the logits of 150-169 BPM up to saturation (a wrong prior); calibrating on one
    minute must pull most of that bias back. (A bias fit on one resting minute of a 2-epoch
    model need not help its later running minutes: the curve is benchmarks/personalize.py.)"""
    doctored = tmp_path / "export"
    doctored.mkdir()
    tfl = doctored / "m.tflite"  # a bare .tflite: argmax decoding (the tiny model's own
    shutil.copyfile(next(exported.glob("*.tflite")), tfl)  # decoder sees near-flat logits)
    layer = final_layer(tfl)
    offset = np.zeros_like(layer.bias)
    offset[120:140] = np.round(255 * layer.output_scale / layer.bias_scale[120:140])  # 150-169 BPM
    subject = _held_out(tiny_checkpoint)
    bad, r, new_tfl, manifest = _doctor_and_refit(tfl, layer, offset, tiny_dataset_path, subject)
    # on the calibration minute itself the personalised model is far better than the doctored
    ds = Dataset(tiny_dataset_path)
    cal, rest = subject_windows(ds, subject, 1.0, ds.fmt.window_s)
    src = WindowSource(ds, cal, ds.fmt.channels)
    x_cal = src.windows(np.arange(len(src)))
    after, _ = _scores(new_tfl, x_cal, ds, cal, "argmax")
    assert after < 0.5 * _scores(tfl, x_cal, ds, cal, "argmax")[0]
    c = r.changed
    assert c["outside_bias"] == 0 and c["bytes_changed"] > 0
    assert c["bias_bytes"] == [layer.bias_offset, layer.bias_offset + 4 * layer.bias.size]
    # the bundle carries the personalised model: the doctored bytes except inside the bias
    new = new_tfl.read_bytes()
    diff = np.flatnonzero(np.frombuffer(new, np.uint8) != np.frombuffer(bad, np.uint8))
    assert len(new) == len(bad) and diff.size == c["bytes_changed"]
    assert diff.min() >= layer.bias_offset and diff.max() < c["bias_bytes"][1]
    assert manifest["provenance"]["personalized"]["subject"] == subject
    # calibration windows come first in recording order, scoring windows after them
    assert len(cal) == r.calibration_windows and len(rest) == r.evaluation_windows
    assert ds.start_s[cal].max() + ds.fmt.window_s <= 60.0 <= ds.start_s[rest].min()


def test_a_classifier_summed_with_a_branch_is_refitted_through_the_sum(
    tiny_checkpoint: Path, tiny_dataset_path: Path, tmp_path: Path
) -> None:
    """resnet_small_spectral ends in ADD(classifier, spectral head): the classifier's bias is
    refitted with the head's logits added (both from TFLite Micro), and only its bytes move."""
    from ppgedge.compress.quantize import ptq, to_tflite
    from ppgedge.models.checkpoint import checkpoint_from_model, save_checkpoint
    from ppgedge.models.registry import create_model

    ds = Dataset(tiny_dataset_path)
    model = create_model("resnet_small_spectral")
    ckpt = save_checkpoint(checkpoint_from_model(model, ds.fmt), tmp_path / "s.pt")
    art = ptq(ckpt, ds, tmp_path / "s.int8.pt", n_windows=16).path
    tfl = to_tflite(art, tmp_path / "export" / "s.tflite")  # bare: argmax decoding
    layer = final_layer(tfl)
    assert layer.branch is not None
    subject = _held_out(tiny_checkpoint)
    # what the fit optimises is what the device outputs, classifier + branch, within the
    # rounding of the classifier's output and of the ADD (away from int8 saturation)
    cal, _ = subject_windows(ds, subject, 1.0, ds.fmt.window_s)
    x = WindowSource(ds, cal, ds.fmt.channels).windows(np.arange(len(cal)))
    fc = layer.accumulate(fc_inputs(tfl, layer, x)) + layer.bias * layer.bias_scale
    out_scale, out_zp = output_qparams(tfl)
    raw = run_raw(tfl, x, "tflm").reshape(len(x), -1).astype(float)
    inside = (raw > -128) & (raw < 127)  # (a few outputs of this untrained model saturate)
    device = (raw - out_zp) * out_scale
    fit_view = fc + branch_logits(tfl, layer, x)
    # what personalize uses: both from one pass over the cut model, the same values
    feats, branch = calibration_inputs(tfl, layer, x)
    assert np.array_equal(feats, fc_inputs(tfl, layer, x))
    assert np.array_equal(branch, branch_logits(tfl, layer, x))
    step = layer.output_scale + out_scale
    assert inside.mean() > 0.9 and np.abs(fit_view - device)[inside].max() <= 2 * step
    assert np.abs(fc - device)[inside].max() > 10 * step  # without the branch: far off
    offset = np.zeros_like(layer.bias)  # 40 classifier output steps up on 150-169 BPM
    offset[120:140] = np.round(40 * layer.output_scale / layer.bias_scale[120:140])
    bad, r, new_tfl, _ = _doctor_and_refit(tfl, layer, offset, tiny_dataset_path, subject)
    assert r.changed["outside_bias"] == 0 and r.changed["bytes_changed"] > 0
    diff = np.flatnonzero(
        np.frombuffer(new_tfl.read_bytes(), np.uint8) != np.frombuffer(bad, np.uint8)
    )
    assert diff.min() >= layer.bias_offset and diff.max() < r.changed["bias_bytes"][1]


def test_bad_input_is_one_line_exit_2(
    exported: Path, tiny_checkpoint: Path, tiny_dataset_path: Path, tmp_path: Path
) -> None:
    subject = _held_out(tiny_checkpoint)
    train_subject = load_checkpoint(tiny_checkpoint).training["split"]["train"][0]
    with pytest.raises(PpgedgeError, match="trained this model"):
        personalize(exported, tiny_dataset_path, train_subject, 1.0, tmp_path / "b0")
    with pytest.raises(PpgedgeError, match="unknown --subject 'nobody'"):
        personalize(exported, tiny_dataset_path, "nobody", 1.0, tmp_path / "b")
    with pytest.raises(PpgedgeError, match="--minutes 60: subject"):
        personalize(exported, tiny_dataset_path, subject, 60.0, tmp_path / "b")
    # through the command line: a float checkpoint is one line, exit code 2, nothing written
    proc = subprocess.run(
        [sys.executable, "-m", "ppgedge", "personalize", str(tiny_checkpoint),
         str(tiny_dataset_path), "--subject", subject, "--minutes", "1", "-o", str(tmp_path / "b")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "float checkpoint" in lines[0], proc.stderr
    assert not (tmp_path / "b").exists()


def test_the_personalised_bundle_keeps_the_exports_tracker_and_decoder(
    exported: Path, tiny_checkpoint: Path, tiny_dataset_path: Path, tmp_path: Path
) -> None:
    """Only the bias bytes change: the new bundle runs the tracker and per-window decoder the
    export fitted on the int8 outputs (it used to drop the tracker)."""
    shipped = json.loads((exported / "export.json").read_text())
    assert shipped["tracker"]["logits"] == "int8"
    personalize(exported, tiny_dataset_path, _held_out(tiny_checkpoint), 1.0, tmp_path / "b")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert manifest["tracker"]["prior"] == shipped["tracker"]["prior"]
    assert manifest["tracker"]["val_decoder"] == shipped["tracker"]["decoder"]
    assert manifest["decode"] == shipped["decode"]
    assert (tmp_path / "b" / f"{manifest['identifier']}_tracker.c").is_file()


def test_the_report_scores_the_value_the_bundle_reports(
    exported: Path, tiny_checkpoint: Path, tiny_dataset_path: Path, tmp_path: Path
) -> None:
    """Before and after, the tracked MAE over the scored windows is the bundle's tracker on
    each model's TFLite Micro int8 outputs (as verify computes it), and the report names which
    of per-window and tracked the bundle reports."""
    from ppgedge.compress.runtimes import output_qparams, run_raw
    from ppgedge.evaluate.tracking import tracked_evaluation

    shipped = json.loads((exported / "export.json").read_text())
    subject = _held_out(tiny_checkpoint)
    r = personalize(exported, tiny_dataset_path, subject, 1.0, tmp_path / "b")
    want = "tracked" if shipped["tracker"]["decoder"] == "tracked" else "per-window"
    assert r.reports == want
    ds = Dataset(tiny_dataset_path)
    fmt = load_checkpoint(tiny_checkpoint).data_format
    _, rest = subject_windows(ds, subject, 1.0, fmt.window_s)
    src = WindowSource(ds, rest, fmt.channels, preprocessing=fmt.preprocessing)
    x = src.windows(np.arange(len(rest)))
    before = exported / shipped["files"]["tflite"]["path"]
    after = next((tmp_path / "b").glob("*.tflite"))
    for tfl, got in ((before, r.mae_before_tracked), (after, r.mae_after_tracked)):
        raw = run_raw(tfl, x, "tflm").reshape(len(x), -1)
        ev, _ = tracked_evaluation("m", raw, ds, rest, shipped["tracker"], output_qparams(tfl)[0])
        assert got == pytest.approx(ev.report["overall"]["mae"])
    assert r.mae_before_tracked != r.mae_after_tracked or r.changed["bytes_changed"] == 0
