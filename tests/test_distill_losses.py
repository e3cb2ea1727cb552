"""Distillation losses against formulas written out by hand in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppgedge.distill.methods import (
    DISTILLERS,
    DKDDistiller,
    FeatureDistiller,
    HardDistiller,
    SoftDistiller,
    create_distiller,
    default_pairs,
)
from ppgedge.distill.methods.dkd import dkd_terms, target_class, target_mask
from ppgedge.distill.methods.feature import attention_loss
from ppgedge.errors import PpgedgeError
from ppgedge.models.bpm import N_CLASSES
from ppgedge.models.registry import create_model

torch.set_num_threads(1)


# ---- numpy references ------------------------------------------------------------------------


def np_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_kl(p: np.ndarray, q: np.ndarray) -> float:
    """Mean over rows of KL(p || q)."""
    return float(np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=-1)))


def np_gt_ce(s: np.ndarray, bpm: np.ndarray, sigma: float = 1.5) -> float:
    centres = np.arange(30, 210, dtype=np.float64)
    target = np_softmax(-0.5 * ((centres[None, :] - bpm[:, None]) / sigma) ** 2)
    log_p = np.log(np_softmax(s))
    return float(np.mean(-np.sum(target * log_p, axis=1)))


def np_dkd(s: np.ndarray, t: np.ndarray, group: np.ndarray, T: float) -> tuple[float, float]:
    """TCKD and NCKD for one batch: ``group`` (B, C) bool marks the target classes."""
    ps, pt = np_softmax(s / T), np_softmax(t / T)
    tckd, nckd = [], []
    for i in range(s.shape[0]):
        g = group[i]
        bs = np.array([ps[i, g].sum(), ps[i, ~g].sum()])
        bt = np.array([pt[i, g].sum(), pt[i, ~g].sum()])
        tckd.append(np.sum(bt * np.log(bt / bs)))
        qs = ps[i, ~g] / ps[i, ~g].sum()
        qt = pt[i, ~g] / pt[i, ~g].sum()
        nckd.append(np.sum(qt * np.log(qt / qs)))
    return float(np.mean(tckd)) * T**2, float(np.mean(nckd)) * T**2


def logits_pair(seed: int, batch: int = 4, classes: int = N_CLASSES):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(batch, classes, generator=g, dtype=torch.float64) * 3
    t = torch.randn(batch, classes, generator=g, dtype=torch.float64) * 3
    bpm = 40 + 120 * torch.rand(batch, generator=g, dtype=torch.float64)
    return s, t, bpm


# ---- DKD -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dkd_terms_match_hand_formula_three_classes(seed: int) -> None:
    s, t, _ = logits_pair(seed, batch=5, classes=3)
    target = torch.tensor([0, 1, 2, 1, 0])
    for T in (1.0, 4.0):
        tckd, nckd = dkd_terms(s, t, target_mask(target, 3), T)
        group = np.eye(3, dtype=bool)[target.numpy()]
        ref_t, ref_n = np_dkd(s.numpy(), t.numpy(), group, T)
        assert tckd.item() == pytest.approx(ref_t, rel=1e-5, abs=1e-7)
        assert nckd.item() == pytest.approx(ref_n, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("seed", [3, 4])
def test_dkd_distiller_full_loss_and_warmup(seed: int) -> None:
    s, t, bpm = logits_pair(seed)
    dkd = DKDDistiller()  # reference defaults: ce 1, alpha 1, beta 8, T 4, warm-up 20
    target = np.clip(np.round(bpm.numpy()) - 30, 0, 179).astype(int)
    ref_t, ref_n = np_dkd(s.numpy(), t.numpy(), np.eye(N_CLASSES, dtype=bool)[target], 4.0)
    ref_ce = np_gt_ce(s.numpy(), bpm.numpy())
    for epoch, w in ((0, 0.0), (5, 0.25), (20, 1.0), (100, 1.0)):
        out = dkd(s, t, bpm, epoch=epoch)
        assert set(out) == {"loss", "ce", "tckd", "nckd"}
        assert out["tckd"].item() == pytest.approx(ref_t, rel=1e-5)
        assert out["nckd"].item() == pytest.approx(ref_n, rel=1e-5)
        assert out["ce"].item() == pytest.approx(ref_ce, rel=1e-5)
        expected = ref_ce + w * (1.0 * ref_t + 8.0 * ref_n)
        assert out["loss"].item() == pytest.approx(expected, rel=1e-5)
    assert DKDDistiller(warmup_epochs=0).warmup(0) == 1.0


def test_dkd_target_width_groups_neighbours() -> None:
    s, t, bpm = logits_pair(5)
    out = DKDDistiller(target_width_bpm=2, warmup_epochs=0)(s, t, bpm)
    target = np.clip(np.round(bpm.numpy()) - 30, 0, 179).astype(int)
    group = np.abs(np.arange(N_CLASSES)[None, :] - target[:, None]) <= 2
    ref_t, ref_n = np_dkd(s.numpy(), t.numpy(), group, 4.0)
    assert out["tckd"].item() == pytest.approx(ref_t, rel=1e-5)
    assert out["nckd"].item() == pytest.approx(ref_n, rel=1e-5)


def test_dkd_target_class_and_gradients() -> None:
    assert target_class(torch.tensor([20.0, 30.4, 72.6, 209.2, 250.0])).tolist() == [
        0,
        0,
        43,
        179,
        179,
    ]
    s, t, bpm = logits_pair(6)
    s = s.float().requires_grad_()
    out = DKDDistiller(warmup_epochs=0, target="teacher")(s, t.float(), bpm.float())
    out["loss"].backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()
    # identical logits: both KD terms vanish
    same = DKDDistiller(warmup_epochs=0)(t, t, bpm)
    assert abs(same["tckd"].item()) < 1e-9 and abs(same["nckd"].item()) < 1e-9


# ---- soft and hard ---------------------------------------------------------------------------


def test_soft_kd_zero_with_zero_gradient_for_equal_logits() -> None:
    _, t, bpm = logits_pair(7)
    s = t.clone().requires_grad_()
    out = SoftDistiller()(s, t, bpm)
    assert set(out) == {"loss", "kd", "ce"}
    assert out["kd"].item() == pytest.approx(0.0, abs=1e-6)
    (grad,) = torch.autograd.grad(out["kd"], s)
    assert torch.allclose(grad, torch.zeros_like(grad), atol=1e-7)


@pytest.mark.parametrize("T", [1.0, 4.0])
def test_soft_kd_matches_hand_formula(T: float) -> None:
    s, t, bpm = logits_pair(8)
    out = SoftDistiller(temperature=T, alpha=0.5)(s, t, bpm)
    ref_kd = np_kl(np_softmax(t.numpy() / T), np_softmax(s.numpy() / T)) * T**2
    ref_ce = np_gt_ce(s.numpy(), bpm.numpy())
    assert out["kd"].item() > 0
    assert out["kd"].item() == pytest.approx(ref_kd, rel=1e-5)
    assert out["loss"].item() == pytest.approx(ref_kd + 0.5 * ref_ce, rel=1e-5)


def test_hard_matches_hand_formula() -> None:
    s, t, bpm = logits_pair(9)
    out = HardDistiller(weight=0.3)(s, t, bpm)
    onehot = np.eye(N_CLASSES)[t.numpy().argmax(axis=1)]
    ref_kd = float(np.mean(-np.sum(onehot * np.log(np_softmax(s.numpy())), axis=1)))
    ref_ce = np_gt_ce(s.numpy(), bpm.numpy())
    assert set(out) == {"loss", "kd", "ce"}
    assert out["kd"].item() == pytest.approx(ref_kd, rel=1e-6)
    assert out["loss"].item() == pytest.approx(0.3 * ref_kd + 0.7 * ref_ce, rel=1e-6)


# ---- feature ---------------------------------------------------------------------------------


def test_default_pairs() -> None:
    assert default_pairs(5, 9) == [(1, 2), (3, 6), (4, 8)]  # ends of stages 1, 3, 4 of both
    assert default_pairs(3, 9) == [(1, 4), (2, 8)]
    assert default_pairs(1, 5) == [(0, 4)]
    assert default_pairs(9, 3) == [(5, 1), (8, 2)]
    for ns in range(1, 10):
        for nt in range(1, 10):
            for k in (1, 2, 3, 5):
                pairs = default_pairs(ns, nt, k)
                assert 1 <= len(pairs) <= k and pairs[-1] == (ns - 1, nt - 1)
                assert all(
                    a[0] < b[0] and a[1] < b[1] for a, b in zip(pairs[:-1], pairs[1:], strict=True)
                )
    with pytest.raises(ValueError):
        default_pairs(0, 3)


def _maps(seed: int, shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) for shape in shapes]


def test_feature_hint_learns_across_lengths_and_channels() -> None:
    s_feats = _maps(0, [(8, 3, 1, 16), (8, 6, 1, 8)])
    t_feats = _maps(1, [(8, 5, 1, 32), (8, 12, 1, 8)])
    s, t, bpm = (x.float() for x in logits_pair(10, batch=8))
    fd = FeatureDistiller([3, 6], [5, 12], pairs=[(0, 0), (1, 1)])
    out = fd(s, t, bpm, student_features=s_feats, teacher_features=t_feats)
    assert set(out) == {"loss", "kd", "ce", "hint"}
    assert out["loss"].item() == pytest.approx(
        out["kd"].item() + 0.5 * out["ce"].item() + out["hint"].item(), rel=1e-5
    )
    # a teacher map that is a channel mix of the (upsampled) student map can be learnt exactly
    mix = torch.randn(5, 3)
    t_feats[0] = torch.einsum("oc,bcht->boht", mix, s_feats[0].repeat_interleave(2, dim=-1))
    opt = torch.optim.Adam(fd.parameters(), lr=0.05)
    first = None
    for _ in range(30):
        hint = fd(s, t, bpm, student_features=s_feats, teacher_features=t_feats)["hint"]
        first = hint.item() if first is None else first
        opt.zero_grad()
        hint.backward()
        opt.step()
    assert hint.item() < 0.7 * first


def test_feature_vectors_and_resnet_maps() -> None:
    s, t, bpm = (x.float() for x in logits_pair(11, batch=4))
    fd = FeatureDistiller([5], [7])
    out = fd(s, t, bpm, student_features=_maps(2, [(4, 5)]), teacher_features=_maps(3, [(4, 7)]))
    assert torch.isfinite(out["loss"])

    student, teacher = create_model("resnet_micro"), create_model("resnet_small")
    x = torch.randn(4, 4, 1, 128)
    s_feats = student.forward_features(x)
    with torch.no_grad():
        t_feats = teacher.forward_features(x)
    fd = FeatureDistiller([f.shape[1] for f in s_feats], [f.shape[1] for f in t_feats], logit="dkd")
    out = fd(s, t, bpm, epoch=3, student_features=s_feats, teacher_features=t_feats)
    assert set(out) == {"loss", "ce", "tckd", "nckd", "hint"}
    out["loss"].backward()
    assert all(p.grad is not None for p in fd.adaptors.parameters())
    assert student.stem[0].weight.grad is not None
    with pytest.raises(ValueError, match="feature maps"):
        fd(s, t, bpm, student_features=s_feats, teacher_features=None)


def test_attention_transfer() -> None:
    f, g = _maps(4, [(4, 6, 1, 20), (4, 9, 1, 40)])
    assert attention_loss(f, f).item() == pytest.approx(0.0, abs=1e-9)
    assert attention_loss(3 * f, f).item() == pytest.approx(0.0, abs=1e-9)  # normalised maps
    assert attention_loss(f, g).item() > 0
    assert attention_loss(f[:, :, 0, 0], g).item() > 0  # (B, C) vectors resample too
    s, t, bpm = (x.float() for x in logits_pair(12, batch=4))
    fd = FeatureDistiller([6], [9], attention=True, logit="none")
    assert len(list(fd.parameters())) == 0  # no adaptor
    out = fd(s, t, bpm, student_features=[f], teacher_features=[g])
    assert set(out) == {"loss", "ce", "at"}
    assert out["loss"].item() == pytest.approx(out["ce"].item() + 1000 * out["at"].item())


# ---- registry --------------------------------------------------------------------------------


def test_create_distiller_and_errors() -> None:
    assert set(DISTILLERS) == {"hard", "soft", "dkd", "feature"}
    for name, kwargs in (
        ("hard", {}),
        ("soft", {"temperature": 2.0}),
        ("dkd", {"target_width_bpm": 2}),
        ("feature", {"student_channels": [4, 8], "teacher_channels": [8, 16, 32]}),
    ):
        d = create_distiller(name, **kwargs)
        assert d.name == name and d.needs_features == (name == "feature")
        assert create_distiller(name, **d.hparams()).hparams() == d.hparams()
    with pytest.raises(PpgedgeError, match="known: dkd, feature, hard, soft"):
        create_distiller("fitnet")
    with pytest.raises(PpgedgeError, match="soft"):
        create_distiller("soft", temprature=3.0)
    with pytest.raises(PpgedgeError):
        create_distiller("soft", temperature=-1.0)
    with pytest.raises(PpgedgeError):
        create_distiller("dkd", target="nearest")
    with pytest.raises(PpgedgeError):
        create_distiller("feature", student_channels=[4])  # teacher_channels missing
    with pytest.raises(PpgedgeError):
        create_distiller("feature", student_channels=[4], teacher_channels=[8], pairs=[(1, 0)])
