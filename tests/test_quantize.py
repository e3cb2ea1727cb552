"""Int8 quantisation (PTQ and QAT through PT2E) on a tiny model: artifacts, scales, TFLite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ppgedge.compress import quantize as Q  # noqa: E402
from ppgedge.data.format import Dataset  # noqa: E402
from ppgedge.errors import PpgedgeError  # noqa: E402
from ppgedge.models.checkpoint import load_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def ptq_result(tiny_checkpoint: Path, tiny_dataset: Dataset, tmp_path_factory) -> Q.QuantResult:
    out = tmp_path_factory.mktemp("ptq") / f"tiny.ptq{Q.ARTIFACT_SUFFIX}"
    return Q.ptq(
        tiny_checkpoint, tiny_dataset, out, n_windows=64, part="train", seed=0, measure_tflm=True
    )


@pytest.fixture(scope="module")
def qat_result(tiny_checkpoint: Path, tiny_dataset: Dataset, tmp_path_factory) -> Q.QuantResult:
    # two epochs: the second runs with batch norm and quantiser ranges frozen
    out = tmp_path_factory.mktemp("qat") / f"tiny.qat{Q.ARTIFACT_SUFFIX}"
    return Q.qat(tiny_checkpoint, tiny_dataset, None, out, epochs=2, n_calibration=64, lr=3e-4)


@pytest.fixture(scope="module")
def qat_tflite(qat_result: Q.QuantResult) -> Path:
    return Q.to_tflite(qat_result.path, qat_result.path.with_suffix(".tflite"))


def _windows(art: Q.QuantizedArtifact, dataset: Dataset, n: int = 64) -> np.ndarray:
    idx, _ = Q.part_indices(dataset, art.base, "val")
    return Q._source(dataset, idx[:n], art.base).windows(np.arange(min(n, len(idx))))


@pytest.mark.parametrize("which", ["ptq_result", "qat_result"])
def test_artifact_rebuilds_close_to_float(which: str, request, tiny_dataset: Dataset) -> None:
    result: Q.QuantResult = request.getfixturevalue(which)
    raw = torch.load(result.path, weights_only=True)  # plain containers and tensors only
    assert raw["schema"] == Q.SCHEMA and raw["base"]["schema"] == "ppgedge.checkpoint/1"
    assert all(isinstance(v, torch.Tensor) for v in raw["prepared_state"].values())
    assert any(k.endswith(".scale") or k.endswith("min_val") for k in raw["prepared_state"])

    art = Q.load_artifact(result.path)
    assert art.is_qat == (which == "qat_result")
    assert art.parent and art.parent["sha256"]
    assert art.lineage[-1]["stage"] == ("qat" if art.is_qat else "ptq")
    assert {"float_val_mae", "fakequant_val_mae"} <= set(art.metrics)
    x = torch.from_numpy(_windows(art, tiny_dataset))
    with torch.no_grad():
        ref = art.base.build()(x)
        fq = art.reference()(x.unsqueeze(2))
    agree = (ref.argmax(1) == fq.argmax(1)).float().mean().item()
    assert agree >= 0.8, agree
    assert abs(art.metrics["fakequant_val_mae"] - art.metrics["float_val_mae"]) < 2.0


def test_ptq_reports_deployed_gap(ptq_result: Q.QuantResult) -> None:
    m = ptq_result.metrics
    assert ptq_result.artifact.training["calibration"]["windows"] == 64
    assert ptq_result.artifact.training["calibration"]["part"].startswith("train subjects")
    assert abs(m["tflm_val_mae"] - m["fakequant_val_mae"]) < 1.0
    assert m["tflm_gap_bpm"] == pytest.approx(m["tflm_val_mae"] - m["float_val_mae"])
    assert "prepared_state" not in ptq_result.artifact.describe()


def test_qat_fake_quant_equals_exported_graph(qat_result: Q.QuantResult, tiny_dataset) -> None:
    """What QAT trained with (fake-quant scales) is what convert_pt2e exports."""
    art = qat_result.artifact
    prepared = art.prepared()
    for name, mod in prepared.named_modules():
        if hasattr(mod, "fake_quant_enabled"):
            scale, zp = mod.calculate_qparams()
            assert torch.equal(scale, mod.scale), name
            assert torch.equal(zp.to(mod.zero_point.dtype), mod.zero_point), name
    x = torch.from_numpy(_windows(art, tiny_dataset, 16)).unsqueeze(2)
    with torch.no_grad():
        torch.testing.assert_close(prepared(x), Q.to_reference(prepared)(x), atol=1e-5, rtol=0)


def test_qat_scales_survive_export(qat_result: Q.QuantResult, qat_tflite: Path) -> None:
    ours, tfl = Q.scales_of_artifact(qat_result.path), Q.scales_of_tflite(qat_tflite)
    assert tfl["input"]["dtype"] == "INT8" and tfl["output"]["dtype"] == "INT8"
    np.testing.assert_allclose(tfl["input"]["scale"], ours["input"]["scale"], rtol=1e-6)
    np.testing.assert_array_equal(tfl["input"]["zero_point"], ours["input"]["zero_point"])
    np.testing.assert_allclose(tfl["output"]["scale"], ours["output"]["scale"], rtol=1e-6)
    np.testing.assert_array_equal(tfl["output"]["zero_point"], ours["output"]["zero_point"])
    assert [w["op"] for w in ours["weights"]] == [w["op"] for w in tfl["weights"]]
    assert ours["weights"][0]["param"] == "stem.0.weight"
    for a, b in zip(ours["weights"], tfl["weights"], strict=True):
        assert len(a["scale"]) == len(b["scale"]) > 1  # per output channel
        np.testing.assert_allclose(b["scale"], a["scale"], rtol=1e-6)
        assert not b["zero_point"].any()  # symmetric weights
    ops = set(tfl["ops"])
    assert {"CONV_2D", "FULLY_CONNECTED"} <= ops
    assert not ops & {"QUANTIZE", "DEQUANTIZE"}


def test_tflite_runs_in_tflm_close_to_fake_quant(
    qat_result: Q.QuantResult, qat_tflite: Path, tiny_dataset: Dataset
) -> None:
    art = qat_result.artifact
    x = _windows(art, tiny_dataset, 32)
    deployed = Q.tflm_predict(qat_tflite, x)
    with torch.no_grad():
        ref = art.reference()(torch.from_numpy(x).unsqueeze(2)).numpy()
    step = float(Q.scales_of_tflite(qat_tflite)["output"]["scale"][0])
    assert deployed.shape == ref.shape == (len(x), 180)
    assert np.abs(deployed - ref).max() <= 3 * step + 1e-6
    assert (deployed.argmax(1) == ref.argmax(1)).mean() >= 0.9


def test_qat_with_teacher_distils(
    tiny_checkpoint: Path, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    out = tmp_path / f"d{Q.ARTIFACT_SUFFIX}"
    r = Q.qat(
        tiny_checkpoint,
        tiny_dataset,
        None,
        out,
        epochs=1,
        n_calibration=32,
        teacher=tiny_checkpoint,
        method="dkd",
        cache_dir=tmp_path / "cache",
    )
    assert r.artifact.training["method"] == "qat+distill:dkd"
    assert r.artifact.lineage[-1]["teacher"]["sha256"]
    with pytest.raises(PpgedgeError, match="logits only"):
        Q.qat(tiny_checkpoint, tiny_dataset, None, out, teacher=tiny_checkpoint, method="feature")


def test_calibration_errors(tiny_checkpoint: Path, tiny_dataset: Dataset, tmp_path: Path) -> None:
    with pytest.raises(PpgedgeError, match="calibration window"):
        Q.ptq(tiny_checkpoint, tiny_dataset, tmp_path / "a.int8.pt", n_windows=0)
    with pytest.raises(PpgedgeError, match="unknown part"):
        Q.ptq(tiny_checkpoint, tiny_dataset, tmp_path / "a.int8.pt", part="nope")
    base = load_checkpoint(tiny_checkpoint)
    prepared = Q.build_prepared(base, is_qat=False)
    with pytest.raises(PpgedgeError, match="no calibration windows"):
        Q.calibrate(prepared, np.zeros((0, 4, 256), np.float32), base.data_format)
    with pytest.raises(PpgedgeError, match="shape"):
        Q.calibrate(prepared, np.zeros((8, 3, 256), np.float32), base.data_format)
    with pytest.raises(PpgedgeError, match="NaN"):
        Q.calibrate(prepared, np.full((8, 4, 256), np.nan, np.float32), base.data_format)
    assert not (tmp_path / "a.int8.pt").exists()


class _Payload:
    marker = ""

    def __reduce__(self):
        return (exec, (f"open({_Payload.marker!r}, 'w').write('ran')",))


def test_loading_runs_no_code_and_refuses_foreign_files(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    _Payload.marker = str(tmp_path / "ran.txt")
    evil = tmp_path / f"evil{Q.ARTIFACT_SUFFIX}"
    torch.save({"schema": Q.SCHEMA, "base": _Payload()}, evil)
    with pytest.raises(PpgedgeError, match="refused"):
        Q.load_artifact(evil)
    assert not (tmp_path / "ran.txt").exists()

    junk = tmp_path / f"junk{Q.ARTIFACT_SUFFIX}"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(PpgedgeError):
        Q.load_artifact(junk)
    other = tmp_path / f"other{Q.ARTIFACT_SUFFIX}"
    torch.save({"schema": "something/1", "x": torch.zeros(1)}, other)
    with pytest.raises(PpgedgeError, match="not a ppgedge quantised model"):
        Q.load_artifact(other)
    with pytest.raises(PpgedgeError, match="float checkpoint"):
        Q.load_artifact(tiny_checkpoint)
    with pytest.raises(PpgedgeError, match="no such"):
        Q.load_artifact(tmp_path / "missing.int8.pt")
    with pytest.raises(PpgedgeError, match="not a readable .tflite"):
        Q.scales_of_tflite(junk)


def _activation_grids_of_reference(art: Q.QuantizedArtifact) -> set[tuple[float, int]]:
    grids = set()
    for n in art.reference().graph.nodes:
        if n.op == "call_function" and str(n.target).startswith(
            "quantized_decomposed.quantize_per_tensor"
        ):
            grids.add((round(float(n.args[1]), 9), int(n.args[2])))
    return grids


def _activation_grids_of_tflite(path: Path) -> set[tuple[float, int]]:
    from ai_edge_litert.interpreter import Interpreter

    grids = set()
    for d in Interpreter(str(path)).get_tensor_details():
        q = d["quantization_parameters"]
        if d["dtype"] == np.int8 and len(q["scales"]) == 1:  # per-tensor: activations
            grids.add((round(float(q["scales"][0]), 9), int(q["zero_points"][0])))
    return grids


@pytest.fixture(scope="module")
def mlp_ptq(tiny_dataset: Dataset, tmp_path_factory) -> Q.QuantResult:
    """An MLP (avg-pool decimation, Linear+ReLU): the patterns litert-torch leaves unfused."""
    from ppgedge.data.splits import holdout
    from ppgedge.train.trainer import TrainConfig, train

    tmp = tmp_path_factory.mktemp("mlp")
    split = holdout(tiny_dataset.subjects, seed=0)
    train(
        tiny_dataset, split, tmp / "mlp.pt", TrainConfig(arch="mlp_micro", epochs=1), device="cpu"
    )
    return Q.ptq(tmp / "mlp.pt", tiny_dataset, tmp / f"mlp{Q.ARTIFACT_SUFFIX}", n_windows=64)


def test_fake_quant_rounds_where_the_tflite_rounds(mlp_ptq: Q.QuantResult) -> None:
    """Every int8 grid the PyTorch graph rounds onto is a tensor of the .tflite: no rounding
    the device does not do (Linear+ReLU is one FULLY_CONNECTED with a fused ReLU), and the
    input decimation averages int8 values (AVERAGE_POOL_2D on the quantised input)."""
    art = mlp_ptq.artifact
    tfl = Q.to_tflite(art, mlp_ptq.path.with_suffix(".tflite"))
    ref = _activation_grids_of_reference(art)
    assert ref <= _activation_grids_of_tflite(tfl)
    graph = art.reference().graph
    pool = next(n for n in graph.nodes if n.target == torch.ops.aten.avg_pool2d.default)
    assert "dequantize_per_tensor" in str(pool.args[0].target)
    for relu in (n for n in graph.nodes if n.target == torch.ops.aten.relu.default):
        assert relu.args[0].target == torch.ops.aten.linear.default


def test_artifact_from_before_the_fused_annotations_is_refused(
    mlp_ptq: Q.QuantResult, tmp_path: Path
) -> None:
    raw = torch.load(mlp_ptq.path, weights_only=True)
    raw["scheme"]["quantizer"] = Q.LEGACY_QUANTIZERS[0]
    old = tmp_path / f"old{Q.ARTIFACT_SUFFIX}"
    torch.save(raw, old)
    with pytest.raises(PpgedgeError, match="re-create it"):
        Q.load_artifact(old).prepared()


def test_a_state_that_no_longer_fits_says_why(ptq_result: Q.QuantResult) -> None:
    """Same libraries, different graph (the model's code changed since the artifact was
    saved): the message must not blame the versions."""
    import dataclasses

    art = ptq_result.artifact
    state = dict(art.prepared_state)
    state.pop(next(iter(state)))
    stale = dataclasses.replace(art, prepared_state=state)
    with pytest.raises(PpgedgeError, match="libraries are the same.*re-create it") as err:
        stale.prepared()
    assert "\n" not in str(err.value)
    other = dataclasses.replace(stale, scheme={**art.scheme, "versions": {"torch": "0.0"}})
    with pytest.raises(PpgedgeError, match=r"other library versions \({'torch': '0.0'}"):
        other.prepared()
