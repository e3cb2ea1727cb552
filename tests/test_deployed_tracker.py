"""The bundle's tracker is fitted on the exported model's int8 outputs (TFLite Micro, validation
subjects), not carried over from the float checkpoint; eval and verify score that record; when
the training data is gone the float record is kept and the manifest says so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_user_error, ppgedge

from ppgedge.atomic import file_sha256
from ppgedge.compress import quantize as Q
from ppgedge.compress.runtimes import output_qparams, run_raw
from ppgedge.data.format import Dataset
from ppgedge.data.loader import WindowSource
from ppgedge.data.splits import Split
from ppgedge.evaluate.tracking import fit_tracker
from ppgedge.export.deployed_tracker import deployed_decoding
from ppgedge.export.run import export, parse_formats
from ppgedge.export.verify import verify
from ppgedge.train.trainer import label_stretch, training_config_of

FORMATS = parse_formats("tflite,tflm")


@pytest.fixture(scope="module")
def artifact(tiny_checkpoint: Path, tiny_dataset: Dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("deployed-tracker") / "m.ptq.int8.pt"
    return Q.ptq(tiny_checkpoint, tiny_dataset, out, n_windows=64).path


@pytest.fixture(scope="module")
def exported(artifact: Path, tmp_path_factory):
    return export(artifact, tmp_path_factory.mktemp("ex") / "export", formats=FORMATS)


def test_export_fits_the_tracker_on_the_exported_int8_outputs(exported, tiny_dataset) -> None:
    """The record equals fit_tracker on TFLite Micro's int8 outputs of the validation windows
    of the very .tflite exported, and the bundle, eval and verify all use it."""
    art = exported.artifact
    tfl = exported.files["tflite"]
    split = Split.from_dict(art.base.training["split"])
    parts = split.indices(tiny_dataset.subject_names())
    fmt = art.data_format
    x = WindowSource(tiny_dataset, parts["val"], fmt.channels).windows(np.arange(len(parts["val"])))
    raw = run_raw(tfl, x, "tflm").astype(np.int64)
    want = fit_tracker(
        tiny_dataset,
        parts["train"],
        parts["val"],
        raw,
        float(output_qparams(tfl)[0]),
        stretch=label_stretch(training_config_of(art.base)),
    )
    manifest = json.loads((exported.out_dir / "export.json").read_text())
    got = manifest["tracker"]
    assert got["logits"] == "int8" and got["tflite_sha256"] == file_sha256(tfl)
    assert got["prior"] == want["prior"] and got["decoder"] == want["decoder"]
    assert got["val_mae_by_decoder"] == want["val_mae_by_decoder"]
    assert got["fitted_on"].startswith(f"TFLite Micro int8 outputs of {len(x)} validation")
    assert got["float_record"]["decoder"] == art.base.tracker["decoder"]
    # the per-window decoder is chosen on the same int8 outputs, and the bundle computes it
    maes = want["val_mae_by_decoder"]
    best = min((d for d in ("argmax", "expectation", "smoothed")), key=maes.get)
    assert got["window_decoder"] == manifest["decode"] == best
    config = next((exported.out_dir / "tflm").glob("*_config.h")).read_text()
    assert f"_DECODER_{best.upper()}\n" in config.split("_DECODER_SMOOTHED 2")[1]
    # the bundle's C tables come from this record
    bundle = json.loads((exported.out_dir / "tflm" / "manifest.json").read_text())["tracker"]
    assert bundle["prior"] == got["prior"] and bundle["val_decoder"] == got["decoder"]
    assert bundle["fitted_on"] == got["fitted_on"]
    # eval and verify score the exported record, not the checkpoint's
    assert deployed_decoding(tfl, art) == (best, got)
    report = verify(exported.out_dir, tiny_dataset)
    assert report.decoder == best
    assert report.tracking["fitted_on"] == "int8"
    assert report.tracking["half_width"] == got["prior"]["half_width"]


def test_the_decoder_choice_scores_what_the_firmware_computes(exported, tiny_dataset) -> None:
    """The validation MAEs the bundle's decoder is chosen on are those of the C decoders, which
    dequantise the int8 outputs first: the expectation's softmax on raw int8 codes would be
    sharpened by 1 / scale (the choice was made on that until this was fixed). verify on the
    validation subjects measures the chosen per-window decoder at the same MAE."""
    import torch

    from ppgedge.compress.runtimes import dequantize
    from ppgedge.models.bpm import DECODERS, decode

    art = exported.artifact
    tfl = exported.files["tflite"]
    parts = Split.from_dict(art.base.training["split"]).indices(tiny_dataset.subject_names())
    fmt = art.data_format
    x = WindowSource(tiny_dataset, parts["val"], fmt.channels).windows(np.arange(len(parts["val"])))
    scale, zero = output_qparams(tfl)
    assert abs(scale - 1.0) > 0.05  # else raw codes and logits would decode alike
    logits = torch.from_numpy(dequantize(run_raw(tfl, x, "tflm"), scale, zero))
    y = np.asarray(tiny_dataset.y[parts["val"]], np.float64)
    got = json.loads((exported.out_dir / "export.json").read_text())["tracker"]
    for m in DECODERS:
        want = float(np.abs(decode(logits, m).numpy() - y).mean())
        assert got["val_mae_by_decoder"][m] == pytest.approx(want, abs=1e-4), m
    report = verify(exported.out_dir, tiny_dataset, part="val")
    assert report.mae_tflm == pytest.approx(got["val_mae_by_decoder"][report.decoder], abs=1e-4)


def test_a_replaced_tflite_is_not_scored_with_the_export_record(exported, tmp_path) -> None:
    """The record names the .tflite it was fitted on by hash: another model in its place (or a
    copy without export.json) falls back to the checkpoint's record."""
    art = exported.artifact
    alien = tmp_path / "x.tflite"
    alien.write_bytes(exported.files["tflite"].read_bytes())
    float_choice = (art.decode, art.base.tracker)
    assert deployed_decoding(alien, art) == float_choice  # no export.json beside it
    folder = tmp_path / "copy"
    shutil.copytree(exported.out_dir, folder)
    tfl = folder / exported.files["tflite"].name
    tfl.write_bytes(tfl.read_bytes()[:-1] + b"\x01")
    assert deployed_decoding(tfl, art) == float_choice


def test_without_its_training_data_export_keeps_the_float_tracker_and_says_so(
    artifact: Path, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    art = Q.load_artifact(artifact)
    art.base.training["dataset"] = str(tmp_path / "moved.ppgds")  # recorded, but gone
    art.training.pop("dataset")
    lost = Q.save_artifact(art, tmp_path / "lost.int8.pt")
    result = export(lost, tmp_path / "a", formats=FORMATS)
    rec = result.manifest["tracker"]
    assert "prior" in rec and rec["logits"] == "float" and "tflite_sha256" not in rec
    assert rec["fitted_on"].startswith("float logits (its training data")
    assert "--data" in result.manifest["tracker_note"]
    assert result.manifest["decode"] == art.decode
    # --data says where the dataset is now (same SHA-256): the int8 fit again
    moved = tmp_path / "moved.ppgds"
    shutil.copytree(tiny_dataset.path, moved)
    again = export(lost, tmp_path / "b", formats=FORMATS, data=moved)
    assert again.manifest["tracker"]["logits"] == "int8"
    # another dataset is refused in one line, and nothing is written
    other = tmp_path / "other.ppgds"
    shutil.copytree(tiny_dataset.path, other)
    meta = json.loads((other / "meta.json").read_text())
    meta["source"] = "edited"
    (other / "meta.json").write_text(json.dumps(meta))
    proc = ppgedge("export", lost, "-o", tmp_path / "c", "--format", "tflite", "--data", other)
    assert_user_error(proc, "is not the dataset this model was trained on")
    assert not (tmp_path / "c").exists()


def test_a_corrupt_or_huge_export_manifest_is_one_line(exported, tiny_dataset, tmp_path) -> None:
    """verify on a folder whose export.json is broken, not an object or huge: one line, exit 2
    (it was a JSONDecodeError / AttributeError traceback); a bare .tflite beside such a file is
    read as a foreign model and keeps the artifact-free decoding."""
    from ppgedge.export.verify import resolve_export

    folder = tmp_path / "copy"
    shutil.copytree(exported.out_dir, folder)
    manifest = folder / "export.json"
    for text, needle in (
        ('{"tracker": [1,', "not a readable export manifest"),
        ("[1, 2]", "not a JSON object"),
        ('{"files": {"tflite": {"path": 5}}}', "the export has no .tflite"),
        (" " * (17 << 20), "is not an export manifest"),
    ):
        manifest.write_text(text)
        assert_user_error(ppgedge("verify", folder, tiny_dataset.path), needle)
    tfl = folder / exported.files["tflite"].name
    manifest.write_text("[1, 2]")
    _, art, notes = resolve_export(tfl)
    assert art is None and "read as a bare .tflite" in notes[0]
    proc = ppgedge("eval", tfl, tiny_dataset.path)  # eval says so too
    assert proc.returncode == 0 and "not a JSON object" in proc.stdout, proc.stderr
    assert deployed_decoding(tfl, exported.artifact) == (
        exported.artifact.decode,
        exported.artifact.base.tracker,
    )
