"""Export: every zoo architecture converts to a deployable full-int8 .tflite (rules read off the
flatbuffer), runs in TFLite Micro, agrees with LiteRT within one int8 step; a pruned + QAT
student exports to all formats and verifies; bad input is one line and exit 2, no partial output.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import assert_user_error, ppgedge  # noqa: E402

from ppgedge.compress import quantize as Q  # noqa: E402
from ppgedge.compress.bias_calibration import final_layer  # noqa: E402
from ppgedge.compress.integer_reference import integer_logits  # noqa: E402
from ppgedge.compress.prune import prune  # noqa: E402
from ppgedge.compress.runtimes import run_raw  # noqa: E402
from ppgedge.compress.tflite_file import read_model, schema  # noqa: E402
from ppgedge.data.format import Dataset  # noqa: E402
from ppgedge.data.splits import holdout  # noqa: E402
from ppgedge.errors import PpgedgeError  # noqa: E402
from ppgedge.export.rules import check_int8_rules  # noqa: E402
from ppgedge.export.run import export, parse_formats  # noqa: E402
from ppgedge.export.verify import verify  # noqa: E402
from ppgedge.models.checkpoint import checkpoint_from_model, save_checkpoint  # noqa: E402
from ppgedge.models.registry import create_model, list_models  # noqa: E402


def _windows(dataset: Dataset, n: int = 8) -> np.ndarray:
    from ppgedge.data.loader import WindowSource

    src = WindowSource(dataset, np.arange(n), dataset.fmt.channels)
    return src.windows(np.arange(n))


def _shapes(model: torch.nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


# resnet1d without arguments builds resnet_base's network: exported once, as resnet_base
SAME_AS = {"resnet1d": "resnet_base"}


@pytest.mark.slow
@pytest.mark.parametrize("arch", [e.name for e in list_models() if e.name not in SAME_AS])
def test_every_zoo_architecture_exports_deployable_int8(
    arch: str, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    model = create_model(arch)
    for twin in (t for t, same in SAME_AS.items() if same == arch):
        twin_model = create_model(twin)
        assert type(twin_model) is type(model) and _shapes(twin_model) == _shapes(model), twin
    ckpt = save_checkpoint(checkpoint_from_model(model, tiny_dataset.fmt), tmp_path / "m.pt")
    art = Q.ptq(ckpt, tiny_dataset, tmp_path / "m.int8.pt", n_windows=16).path
    tfl = Q.to_tflite(art, tmp_path / "m.tflite")
    rules = check_int8_rules(tfl)
    assert rules.ok, rules.violations
    assert "TRANSPOSE" not in rules.ops and "QUANTIZE" not in rules.ops
    assert rules.input["shape"] == [1, 1, tiny_dataset.fmt.window_samples, 4]
    x = _windows(tiny_dataset)
    tflm = run_raw(tfl, x, "tflm").astype(int)
    litert = run_raw(tfl, x, "litert").astype(int)
    assert tflm.shape == (len(x), 180)
    assert np.abs(tflm - litert).max() <= 1
    # the PyTorch graph in TFLite Micro's integer arithmetic: what verify compares against
    assert np.array_equal(integer_logits(Q.load_artifact(art).reference(), x).astype(int), tflm)
    if arch == "resnet_small_spectral":  # the output is a sum: the classifier feeds an ADD
        layer = final_layer(tfl)
        assert layer.branch is not None and layer.bias.size == 180
        assert layer.op_index < layer.branch.add_op_index


@pytest.fixture(scope="module")
def qat_student(tiny_checkpoint: Path, tiny_dataset: Dataset, tmp_path_factory) -> Path:
    """tiny student -> pruned to 50 % -> one QAT epoch: the chain a real student goes through."""
    work = tmp_path_factory.mktemp("export")
    split = holdout(tiny_dataset.subjects, seed=0)
    pruned = prune(
        tiny_checkpoint,
        tiny_dataset,
        split,
        work / "pruned.pt",
        "70%",
        steps=1,
        finetune_epochs=0,
        final_epochs=1,
        device="cpu",
    )
    assert pruned.checkpoint.metrics["parameters"] <= 0.7 * 2_508
    out = work / "student.qat.int8.pt"
    Q.qat(work / "pruned.pt", tiny_dataset, None, out, epochs=1, n_calibration=64)
    return out


@pytest.fixture(scope="module")
def exported(qat_student: Path, tmp_path_factory):
    return export(
        qat_student, tmp_path_factory.mktemp("out") / "export", formats=parse_formats("all")
    )


def test_export_writes_every_format_with_a_manifest(exported) -> None:
    out = exported.out_dir
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["schema"] == "ppgedge.export/1"
    assert set(manifest["files"]) == {"tflite", "tflm", "onnx"}
    assert (out / manifest["files"]["tflite"]["path"]).stat().st_size == manifest["files"][
        "tflite"
    ]["bytes"]
    assert manifest["data_format"]["channels"] == ["ppg", "acc_x", "acc_y", "acc_z"]
    assert manifest["onnx"]["max_abs_diff"] < 1e-3 and manifest["onnx"]["argmax_agreement"] == 1.0
    assert (out / "tflm").is_dir() and any((out / "tflm").glob("*_model_data.c"))
    assert not list(out.parent.glob(".export.tmp-*"))


def test_qat_scales_survive_export(exported) -> None:
    ours, tfl = (
        Q.scales_of_artifact(exported.artifact_path),
        Q.scales_of_tflite(exported.files["tflite"]),
    )
    assert np.allclose(ours["input"]["scale"], tfl["input"]["scale"], rtol=1e-6)
    assert [int(z) for z in ours["input"]["zero_point"]] == [
        int(z) for z in tfl["input"]["zero_point"]
    ]
    assert len(ours["weights"]) == len(tfl["weights"])
    for a, b in zip(ours["weights"], tfl["weights"], strict=True):
        assert np.allclose(a["scale"], b["scale"], rtol=1e-5)


def test_verify_reports_runtimes_and_pytorch(exported, tiny_dataset: Dataset) -> None:
    report = verify(exported.out_dir, tiny_dataset)
    assert report.windows > 0 and report.part.startswith("test subjects")
    assert report.max_step_diff_tflite_vs_tflm <= 1
    assert report.checks["litert_within_1_step"]
    assert report.mae_pytorch is not None and report.mae_float is not None
    # the PyTorch graph in integer arithmetic computes what TFLite Micro computes, bit for bit
    assert report.max_step_diff_pytorch_vs_tflm == 0
    assert report.argmax_agreement_pytorch == 1.0
    assert report.checks["argmax_agreement_ge_99pct"]
    assert 0.0 <= report.argmax_agreement_fake_quant <= 1.0
    assert report.within_1bpm_fake_quant >= report.argmax_agreement_fake_quant
    d = report.to_dict()
    assert d["schema"] == "ppgedge.verify/3" and d["ok"] == report.ok
    assert d["mae_gap_fake_quant"] == pytest.approx(report.mae_tflm - report.mae_pytorch)
    # the artifact and a bare .tflite verify too (the latter without a PyTorch comparison)
    assert verify(exported.artifact_path, tiny_dataset).windows == report.windows
    bare = exported.out_dir.parent / "bare.tflite"
    bare.write_bytes(exported.files["tflite"].read_bytes())
    foreign = verify(bare, tiny_dataset)
    assert foreign.mae_pytorch is None and foreign.notes


def test_verify_gates_on_the_integer_reference_not_the_fake_quant_gap() -> None:
    """A bit-exact export whose fake-quant simulation reads 0.3 BPM off passes (the gap is
    the simulation's float rounding); an export the integer reference disagrees with, or
    could not be compared with, fails whatever its MAE."""
    from ppgedge.export.verify import VerifyReport

    def report(agreement: float | None, mae_pytorch: float) -> VerifyReport:
        return VerifyReport(
            tflite="m.tflite", windows=400, part="test", decoder="argmax",
            max_step_diff_tflite_vs_tflm=1, windows_differing=0.1, mae_tflm=16.3,
            mae_litert=16.3, mae_pytorch=mae_pytorch, argmax_agreement_pytorch=agreement,
        )  # fmt: skip

    assert report(1.0, 16.0).ok and "mae_within_0.1_bpm" not in report(1.0, 16.0).checks
    assert not report(0.95, 16.3).ok
    assert not report(None, 16.3).ok


def test_eval_scores_the_artifact_and_the_tflite_as_deployed(exported, tiny_dataset) -> None:
    """`ppgedge eval` on an .int8.pt (fake-quant) and a .tflite (TFLite Micro) gives the same
    windows and the MAEs verify measured, beside the spectral baseline."""
    from ppgedge.export.evaluate_deployed import evaluate_any

    report = verify(exported.out_dir, tiny_dataset)
    tfl = evaluate_any(exported.files["tflite"], tiny_dataset.path)
    art = evaluate_any(exported.artifact_path, tiny_dataset.path)
    assert tfl["n_windows"] == art["n_windows"] == report.windows
    (tfl_name,) = [n for n in tfl["models"] if "TFLite Micro" in n and "tracked" not in n]
    (art_name,) = [n for n in art["models"] if "fake-quant" in n and "tracked" not in n]
    assert tfl["models"][tfl_name]["overall"]["mae"] == pytest.approx(report.mae_tflm)
    # the tracker on the same int8 outputs, as verify tracks them (the model carries one)
    tracked = tfl["models"][f"{tfl_name} (tracked)"]["overall"]["mae"]
    assert report.mae_tflm_tracked is not None and tracked == pytest.approx(report.mae_tflm_tracked)
    assert art["models"][art_name]["overall"]["mae"] == pytest.approx(report.mae_pytorch)
    assert tfl["models"]["spectral baseline"]["overall"]["mae"] == pytest.approx(
        report.mae_spectral
    )
    proc = ppgedge("eval", exported.files["tflite"], tiny_dataset.path, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n_windows"] == report.windows


def _doctored(src: Path, dst: Path, op_index: int, builtin: str) -> Path:
    fb = schema()
    model = read_model(src)
    code = fb.OperatorCodeT()
    code.builtinCode = getattr(fb.BuiltinOperator, builtin)
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    code.version = 1
    model.operatorCodes.append(code)
    model.subgraphs[0].operators[op_index].opcodeIndex = len(model.operatorCodes) - 1
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    dst.write_bytes(bytes(builder.Output()))
    return dst


def test_rules_name_forbidden_and_missing_ops(exported, tmp_path: Path) -> None:
    src = exported.files["tflite"]
    r = check_int8_rules(_doctored(src, tmp_path / "t.tflite", 1, "TRANSPOSE"))
    assert not r.ok and "TRANSPOSE at layer" in r.violations[0]
    r = check_int8_rules(_doctored(src, tmp_path / "s.tflite", 1, "SEGMENT_SUM"))
    assert any("SEGMENT_SUM" in v and "TensorFlow Lite Micro" in v for v in r.violations)


def test_float_checkpoint_exports_with_calibration(
    tiny_checkpoint: Path, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    res = export(
        tiny_checkpoint,
        tmp_path / "e",
        formats=("tflite",),
        data=tiny_dataset.path,
        calib_windows=32,
    )
    assert check_int8_rules(res.files["tflite"]).ok
    assert res.files["artifact"].is_file()
    # calibration from a .npy of raw windows
    npy = tmp_path / "calib.npy"
    np.save(npy, np.asarray(tiny_dataset.x[:16], dtype=np.float32))
    res2 = export(tiny_checkpoint, tmp_path / "e2", formats=("tflite",), data=npy)
    assert check_int8_rules(res2.files["tflite"]).ok


def test_export_bad_input_is_one_line_and_leaves_nothing(
    tiny_checkpoint: Path, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    out = tmp_path / "never"
    assert_user_error(ppgedge("export", tiny_checkpoint, "-o", out), "calibration data")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model at all")
    assert_user_error(ppgedge("export", junk, "-o", out), "junk.pt")
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((0, 4, tiny_dataset.fmt.window_samples), np.float32))
    assert_user_error(ppgedge("export", tiny_checkpoint, "--data", empty, "-o", out), "empty")
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((4, 3, 100), np.float32))
    assert_user_error(ppgedge("export", tiny_checkpoint, "--data", wrong, "-o", out), "shape")
    assert_user_error(ppgedge("export", tiny_checkpoint, "--format", "tfjs", "-o", out), "tfjs")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".never")]
    with pytest.raises(PpgedgeError, match="ppgedge did not write"):
        keep = tmp_path / "keep"
        keep.mkdir()
        (keep / "precious.txt").write_text("x")
        export(tiny_checkpoint, keep, formats=("onnx",))
    assert (keep / "precious.txt").read_text() == "x"


def test_verify_without_integer_reference_misses_the_agreement_check(
    exported, tiny_dataset: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator the integer reference lacks: a note and a missed check, never a pass."""
    import ppgedge.export.verify as V

    def unsupported(*_a, **_k):
        raise PpgedgeError("integer reference: unsupported operation 'sigmoid' at node 'x'")

    monkeypatch.setattr(V, "integer_logits", unsupported)
    report = V.verify(exported.out_dir, tiny_dataset)
    assert report.argmax_agreement_pytorch is None
    assert not report.checks["argmax_agreement_ge_99pct"] and not report.ok
    assert any("sigmoid" in n for n in report.notes)
    assert report.argmax_agreement_fake_quant is not None
