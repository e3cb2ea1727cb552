"""The integer reference: the artifact's own PyTorch graph, run in TFLite Micro's int8
arithmetic, equals the TFLite Micro host runtime on the exported .tflite bit for bit (residual
ADD + MEAN in a QAT ResNet, depthwise convolutions, Linear+ReLU after an int8 average pool, a
spectral head beside a ResNet);
operators it does not know are refused with one line."""

from __future__ import annotations

import copy
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from ppgedge.compress import quantize as Q  # noqa: E402
from ppgedge.compress.integer_reference import (  # noqa: E402
    input_qparams,
    integer_forward,
    integer_logits,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
)
from ppgedge.compress.pt2e import build_prepared  # noqa: E402
from ppgedge.compress.runtimes import quantize, run_raw  # noqa: E402
from ppgedge.data.format import Dataset  # noqa: E402
from ppgedge.data.loader import WindowSource  # noqa: E402
from ppgedge.data.splits import holdout  # noqa: E402
from ppgedge.errors import PpgedgeError  # noqa: E402
from ppgedge.models import create_model, list_models  # noqa: E402
from ppgedge.models.checkpoint import checkpoint_from_model  # noqa: E402
from ppgedge.train.trainer import TrainConfig, train  # noqa: E402


def _windows(dataset: Dataset, art: Q.QuantizedArtifact, n: int = 96) -> np.ndarray:
    idx = np.linspace(0, len(dataset) - 1, n).astype(np.int64)
    fmt = art.data_format
    return WindowSource(dataset, idx, fmt.channels, preprocessing=fmt.preprocessing).windows(
        np.arange(n)
    )


@pytest.fixture(scope="module")
def artifacts(tiny_checkpoint: Path, tiny_dataset: Dataset, tmp_path_factory) -> dict:
    """QAT of the trained ResNet (residual add, mean); PTQ of a depthwise CNN, an MLP and a
    ResNet with a spectral head (fixed pooling convolution and DFT, a class-major RESHAPE,
    unpadded convolutions, the final sum of two logit vectors), each trained one epoch
    (untrained, the depthwise CNN answers one class for every window); QAT of the last."""
    work = tmp_path_factory.mktemp("intref")
    qat = Q.qat(tiny_checkpoint, tiny_dataset, None, work / "r.int8.pt", epochs=1, n_calibration=64)
    out = {"resnet_micro_qat": qat.artifact}
    split = holdout(tiny_dataset.subjects, seed=0)
    calib = _windows(tiny_dataset, qat.artifact, 32)
    for arch in ("dscnn_small", "mlp_micro", "resnet_small_spectral"):
        ckpt = work / f"{arch}.pt"
        # one-sided stretch: with the two-sided default, one epoch leaves dscnn_small's
        # output constant on these windows, and a constant output proves nothing about rounding
        cfg = TrainConfig(arch=arch, epochs=1, seed=0, time_stretch="slower")
        train(tiny_dataset, split, ckpt, cfg, device="cpu")
        out[arch] = Q.ptq_windows(ckpt, calib, work / f"{arch}.int8.pt").artifact
    spectral = work / "resnet_small_spectral.pt"
    out["resnet_small_spectral_qat"] = Q.qat(
        spectral, tiny_dataset, None, work / "s.int8.pt", epochs=1, n_calibration=64
    ).artifact
    return out


NAMES = [
    "resnet_micro_qat",
    "dscnn_small",
    "mlp_micro",
    "resnet_small_spectral",
    "resnet_small_spectral_qat",
]
LAYOUT_OPS = ("view", "reshape", "permute", "flatten", "squeeze", "unsqueeze")


@pytest.mark.parametrize("name", NAMES)
def test_integer_reference_equals_tflm_bit_for_bit(
    name: str, artifacts: dict, tiny_dataset: Dataset, tmp_path: Path
) -> None:
    art = artifacts[name]
    tfl = Q.to_tflite(art, tmp_path / "m.tflite")
    x = _windows(tiny_dataset, art)
    ours = integer_logits(art.reference(), x)
    tflm = run_raw(tfl, x, "tflm")
    assert ours.dtype == np.int8 and ours.shape == tflm.shape == (len(x), 180)
    assert len(np.unique(tflm.argmax(1))) > 1  # not a degenerate constant output
    np.testing.assert_array_equal(ours, tflm)


@pytest.mark.parametrize("arch", [e.name for e in list_models()])
def test_layout_ops_keep_their_inputs_int8_grid(arch: str, tiny_dataset: Dataset) -> None:
    """A reshape, view or permute converts to a RESHAPE, which keeps its input's scale, so QAT
    must observe its output with its input's observer: a second one is a requantisation the
    device never does (seen with a spectral head whose ``reshape`` the quantizer did not
    share, ``view`` it does: 1-step output differences in 96 % of windows)."""
    ckpt = checkpoint_from_model(create_model(arch), tiny_dataset.fmt)
    prepared = build_prepared(ckpt, is_qat=True)
    pairs = 0
    for node in prepared.graph.nodes:
        if node.op != "call_module" or not node.args:
            continue
        src, moved = node.args[0], False
        while src.op == "call_function" and any(k in str(src.target) for k in LAYOUT_OPS):
            src, moved = src.args[0], True
        if moved and src.op == "call_module":
            pairs += 1
            observer = prepared.get_submodule(str(node.target))
            assert observer is prepared.get_submodule(str(src.target)), (
                f"{node.name} observes the output of a layout op apart from its input"
            )
    assert pairs  # every zoo model has a flatten after its pooling


def test_a_reshape_keeps_its_producers_observer(tiny_dataset: Dataset, monkeypatch) -> None:
    """The quantizer shares a ``reshape``'s grid like a ``view``'s: the spectral head written
    with ``reshape`` (as it first was) passes the layout check too."""
    from ppgedge.models import spectral

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = self.act(self.dft(self.pool(spectral.as_4d(x)).flatten(1)))
        grid = parts.reshape(-1, 1, self.bins, spectral.PARTS).permute(0, 3, 1, 2)
        return self.convs(grid).flatten(1)

    monkeypatch.setattr(spectral.SpectralHead, "forward", forward)
    test_layout_ops_keep_their_inputs_int8_grid("resnet_small_spectral", tiny_dataset)


def test_unsupported_operator_is_one_line(artifacts: dict, tiny_dataset: Dataset) -> None:
    art = artifacts["resnet_micro_qat"]
    ref = art.reference()
    scale, zp = input_qparams(ref)
    x = torch.from_numpy(quantize(_windows(tiny_dataset, art, 4), scale, zp).astype(np.int64))
    doctored = copy.deepcopy(ref)
    relu = next(n for n in doctored.graph.nodes if n.target == torch.ops.aten.relu.default)
    relu.target = torch.ops.aten.sigmoid.default
    doctored.recompile()
    with pytest.raises(PpgedgeError, match="unsupported operation 'aten.sigmoid.default'"):
        integer_forward(doctored, x.unsqueeze(2), scale, zp)


def _scalar_mbqm(x: int, m: int, shift: int) -> int:
    """TFLite's double-rounding MultiplyByQuantizedMultiplier, one int32 at a time (C semantics:
    int32 wrap-around on the left shift, truncating division)."""
    x = (x * (1 << max(shift, 0)) + 2**31) % 2**32 - 2**31
    ab = x * m
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    high = -((-(ab + nudge)) // (1 << 31)) if ab + nudge < 0 else (ab + nudge) // (1 << 31)
    exp = max(-shift, 0)
    mask = (1 << exp) - 1
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> exp) + (1 if (high & mask) > threshold else 0)


def test_fixed_point_primitives_match_scalar_semantics() -> None:
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(1.0) == (1 << 30, 1)
    assert quantize_multiplier(0.0) == (0, 0)
    rng = random.Random(0)
    xs, ms, shifts = [], [], []
    for _ in range(2000):
        real = rng.uniform(1e-5, 4.0)
        m, s = quantize_multiplier(real)
        assert abs(m * 2.0 ** (s - 31) - real) <= real * 2**-30
        xs.append(rng.randint(-(2**24), 2**24) if rng.random() < 0.5 else rng.randint(-300, 300))
        ms.append(m)
        shifts.append(s)
    got = multiply_by_quantized_multiplier(
        torch.tensor(xs), torch.tensor(ms), torch.tensor(shifts)
    ).tolist()
    assert got == [_scalar_mbqm(x, m, s) for x, m, s in zip(xs, ms, shifts, strict=True)]
