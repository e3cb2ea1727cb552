"""``ppgedge distill`` as a function: teacher + dataset + student name -> student checkpoint.

The student trains in the same loop, schedule and data as a from-scratch model (the trainer),
with the loss replaced by the chosen distiller. ``progressive`` distils teacher -> assistant ->
student in one call; cross-modal students simply name fewer channels than the teacher sees.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ppgedge.data.format import Dataset, resolve_channels
from ppgedge.data.splits import Split
from ppgedge.distill.cache import teacher_logits
from ppgedge.distill.methods import DISTILLERS, create_distiller
from ppgedge.distill.objective import DistillObjective
from ppgedge.distill.teachers import Teacher, check_teacher_matches, load_teacher
from ppgedge.errors import PpgedgeError
from ppgedge.models import create_model
from ppgedge.models.checkpoint import Checkpoint
from ppgedge.models.registry import format_kwargs
from ppgedge.train.trainer import TrainConfig, TrainingObserver, pick_device, train

METHODS = (*DISTILLERS, "progressive")

# Tuned on the synthetic default (benchmarks/distill.py): see the README's distillation section.
DEFAULT_HPARAMS: dict[str, dict[str, Any]] = {
    "hard": {"weight": 0.5},
    "soft": {"temperature": 4.0, "alpha": 0.5},
    "dkd": {"ce_weight": 1.0, "alpha": 1.0, "beta": 8.0, "temperature": 4.0},
    "feature": {"logit": "soft", "temperature": 4.0, "alpha": 0.5},
}


def build_distiller(
    method: str, student: str, teacher: Teacher, cfg: TrainConfig, overrides: dict[str, Any]
):
    """The distiller for ``method`` with our defaults, the warm-up scaled to the run's epochs,
    and (for ``feature``) adaptors sized from a probe of both networks."""
    kwargs = {**DEFAULT_HPARAMS[method], **overrides}
    if method == "dkd":
        kwargs.setdefault("warmup_epochs", max(1, cfg.epochs // 5))
    if method == "feature":
        import torch

        probe = create_model(student, **_student_kwargs(student, cfg, teacher)).eval()
        x = torch.zeros(2, len(resolve_channels(cfg.channels)), teacher.data_format.window_samples)
        with torch.no_grad():
            s_feats, _ = probe.forward_with_features(x)
            xt = torch.zeros(2, len(teacher.data_format.channels), x.shape[-1])
            t_feats, _ = teacher.features(xt)
        kwargs.setdefault("student_channels", [f.shape[1] for f in s_feats])
        kwargs.setdefault("teacher_channels", [f.shape[1] for f in t_feats])
    return create_distiller(method, **kwargs)


def _student_kwargs(student: str, cfg: TrainConfig, teacher: Teacher) -> dict[str, Any]:
    kwargs = dict(cfg.arch_kwargs)
    channels = resolve_channels(cfg.channels)
    kwargs.setdefault("in_channels", len(channels))
    fmt = teacher.data_format
    knobs = format_kwargs(student, fmt.window_samples, fmt.sample_rate_hz, channels)
    for key, value in knobs.items():
        kwargs.setdefault(key, value)
    return kwargs


def distill(
    teacher_path: str | Path,
    dataset: Dataset,
    split: Split,
    student: str,
    out: str | Path,
    cfg: TrainConfig,
    *,
    method: str = "dkd",
    hparams: dict[str, Any] | None = None,
    assistant: str = "resnet_medium",
    assistant_method: str | None = None,
    cache_dir: str | Path | None = None,
    device: str = "auto",
    observer: TrainingObserver | None = None,
    restart: bool = False,
    reuse_finished: bool = False,
    _label: str | None = None,
) -> Checkpoint:
    """Distil ``teacher_path`` into a new ``student`` trained on ``split`` of ``dataset``
    (``reuse_finished``: see :func:`ppgedge.train.trainer.train`)."""
    if method not in METHODS:
        raise PpgedgeError(f"unknown method '{method}': use one of {', '.join(METHODS)}")
    out = Path(out)
    if method == "progressive":
        base = assistant_method or "dkd"
        if base == "progressive":
            raise PpgedgeError("--assistant-method must be one of the single-step methods")
        ta_out = out.with_name(out.stem + ".assistant" + out.suffix)
        common: dict[str, Any] = {
            "method": base,
            "hparams": hparams,
            "cache_dir": cache_dir,
            "device": device,
            "observer": observer,
            "restart": restart,
        }
        channels = ",".join(load_teacher(teacher_path, dataset.fmt).data_format.channels)
        ta_cfg = replace(cfg, arch=assistant, arch_kwargs={}, channels=channels)
        # an assistant this very configuration (teacher, data, settings) finished is reused
        distill(
            teacher_path, dataset, split, assistant, ta_out, ta_cfg, **common, reuse_finished=True
        )
        return distill(
            ta_out,
            dataset,
            split,
            student,
            out,
            cfg,
            **common,
            reuse_finished=reuse_finished,
            _label=f"progressive({base}, assistant {assistant})",
        )

    teacher = load_teacher(teacher_path, dataset.fmt)
    check_teacher_matches(teacher, dataset)
    student_channels = resolve_channels(cfg.channels)
    dataset.channel_index(student_channels)
    cfg = replace(cfg, arch=student)
    distiller = build_distiller(method, student, teacher, cfg, hparams or {})
    cached = None
    if not distiller.needs_features:
        cached = teacher_logits(teacher, dataset, cache_dir=cache_dir, device="cpu").logits
    teacher.to(pick_device(device))
    objective = DistillObjective(
        teacher, distiller, student_channels, cached_logits=cached, label=_label
    )
    return train(
        dataset,
        split,
        out,
        cfg,
        device=device,
        observer=observer,
        restart=restart,
        objective=objective,
        reuse_finished=reuse_finished,
    )
