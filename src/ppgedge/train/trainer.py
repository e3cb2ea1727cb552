"""Supervised training of any zoo model: soft Gaussian targets, AdamW, cosine schedule, early
stopping on validation subjects, and a resume file written every epoch.

The same seed gives the same model on the same device: shuffling and augmentation draw from a
generator seeded by ``(seed, epoch)``, so a run resumed after an interruption continues exactly
where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ppgedge.atomic import atomic_path
from ppgedge.data.fingerprint import dataset_sha256
from ppgedge.data.format import BPM_MIN, Dataset, resolve_channels
from ppgedge.data.loader import WindowSource
from ppgedge.data.splits import Split
from ppgedge.errors import PpgedgeError
from ppgedge.evaluate.predict import check_compatible, mae_by_decoder, predict_logits
from ppgedge.evaluate.tracking import fit_tracker
from ppgedge.models.checkpoint import (
    Checkpoint,
    checkpoint_from_model,
    load_checkpoint,
    model_record,
    save_checkpoint,
)
from ppgedge.models.registry import count_macs, count_parameters, create_model, format_kwargs
from ppgedge.models.tracker import LabelStretch
from ppgedge.train.motion_augment import motion_augment
from ppgedge.train.objective import Objective, Supervised
from ppgedge.train.time_stretch import MODES as STRETCH_MODES
from ppgedge.train.time_stretch import Neighbours, time_stretch, two_sided_stretch
from ppgedge.train.weight_average import averaged_model


@dataclass
class TrainConfig:
    """Everything that decides the trained weights (hashed to validate a resume)."""

    arch: str = "resnet_base"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    channels: str = "all"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-2
    label_sigma_bpm: float = 1.5
    patience: int = 8
    augment: bool = True
    stretch_p: float = 0.5
    max_stretch: float = 1.25
    time_stretch: str = "both"  # "both" (faster and slower), "slower", "off": time_stretch.py
    motion_aug_p: float = 0.0  # share of windows given accelerometer-driven augmentation
    seed: int = 0
    ema_decay: float = 0.0  # EMA of the weights per step, what validation sees (0: off)
    mix_max: float = 0.0  # mix in up to this share of another window, labels kept (0: off)

    def digest(self, extra: dict[str, Any]) -> str:
        config = asdict(self)
        for knob in ("ema_decay", "mix_max"):  # absent when off: resume files of earlier
            if not config[knob]:  # versions still fit
                del config[knob]
        blob = json.dumps({"config": config, **extra}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def training_config_of(ckpt: Checkpoint) -> TrainConfig:
    """The settings a checkpoint was trained with (augmentation, batch size, learning rate...),
    or the defaults where it records none a TrainConfig accepts (an imported model)."""
    known = {f.name for f in fields(TrainConfig)}
    base = {k: v for k, v in (ckpt.training.get("config") or {}).items() if k in known}
    try:
        return TrainConfig(**base)
    except TypeError:
        return TrainConfig()


@dataclass
class EpochReport:
    epoch: int
    epochs: int
    train_loss: float
    val_mae: float
    best_val_mae: float
    seconds: float
    resumed: bool = False


class TrainingObserver:
    """Receives progress; the CLI renders it with Rich, tests and benchmarks ignore it."""

    def start(self, total_epochs: int, batches_per_epoch: int, first_epoch: int) -> None: ...

    def batch(self, mean_loss: float) -> None:
        """Called after each batch with the running mean loss of the epoch."""

    def epoch(self, report: EpochReport) -> None: ...


def pick_device(requested: str = "auto") -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise PpgedgeError("--device cuda requested but no CUDA device is available: use cpu")
    return torch.device(requested)


def drawn_stretch(cfg: TrainConfig) -> LabelStretch | None:
    """The label-scaled time stretch :func:`augment_batch` draws under ``cfg`` (None: none)."""
    if cfg.time_stretch not in STRETCH_MODES:
        raise PpgedgeError(
            f"unknown time_stretch '{cfg.time_stretch}': use one of {', '.join(STRETCH_MODES)}"
        )
    if cfg.time_stretch == "off" or cfg.stretch_p <= 0 or cfg.max_stretch <= 1:
        return None
    return LabelStretch(cfg.time_stretch, cfg.max_stretch, cfg.stretch_p)


def label_stretch(cfg: TrainConfig) -> LabelStretch | None:
    """The time stretch a network trained under ``cfg`` saw (None: none, also without
    augmentation), for the tracker's label prior."""
    return drawn_stretch(cfg) if cfg.augment else None


def augment_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    rng: np.random.Generator,
    channels: tuple[str, ...],
    cfg: TrainConfig,
    neighbours: Neighbours | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Wrist orientation varies between wearers: flip accelerometer axes' signs at random; add a
    little noise; optionally stretch time (see :mod:`ppgedge.train.time_stretch`) and inject
    motion (see :mod:`ppgedge.train.motion_augment`). The PPG keeps its polarity (it is
    physiological). ``cfg.time_stretch = "both"`` stretches the clean windows first, so they
    join their successors (``neighbours``) exactly; without ``neighbours`` no window can be sped
    up, and those drawn faster are slowed down instead."""
    stretch = drawn_stretch(cfg)
    if stretch is not None and stretch.mode == "both":
        near = neighbours.for_batch() if neighbours is not None else (None, None, 0)
        x, y = two_sided_stretch(x, y, rng, cfg.max_stretch, cfg.stretch_p, *near)
    acc = [i for i, c in enumerate(channels) if c.startswith("acc")]
    if acc:
        signs = rng.choice([-1.0, 1.0], size=(x.shape[0], len(acc))).astype(np.float32)
        x = x.clone()
        x[:, acc] = x[:, acc] * torch.from_numpy(signs)[:, :, None]
    if cfg.motion_aug_p > 0:
        x = motion_augment(x, rng, channels, cfg.motion_aug_p)
    if stretch is not None and stretch.mode == "slower":
        x, y = time_stretch(x, y, rng, cfg.max_stretch, cfg.stretch_p)
        y = y.clamp(min=BPM_MIN)
    if cfg.mix_max > 0:
        x = mix_windows(x, rng, cfg.mix_max)
    noise = torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32))
    return x + 0.05 * noise, y


def mix_windows(x: torch.Tensor, rng: np.random.Generator, mix_max: float) -> torch.Tensor:
    """Half the windows become ``(1 - a) x_i + a x_j`` with another window ``j`` of the batch
    and ``a`` uniform in ``[0, mix_max)``, every channel alike; the labels stay ``x_i``'s (``a``
    stays under one half). For distillation ("function matching"): the teacher labels the
    mixed window the student sees, so the student learns the teacher's response to a second
    rhythm in the signal, not only on the recorded windows."""
    b = x.shape[0]
    if b < 2:
        return x
    a = np.where(rng.random(b) < 0.5, rng.uniform(0.0, mix_max, b), 0.0).astype(np.float32)
    other = (np.arange(b) + rng.integers(1, b, b)) % b  # never the window itself
    w = torch.from_numpy(a).to(x.device)[:, None, None]
    return (1 - w) * x + w * x[torch.from_numpy(other).to(x.device)]


def warmup_cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, warmup_fraction: float = 0.05
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first steps, then cosine decay to zero."""
    warmup = max(1, int(warmup_fraction * total_steps))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _resume_path(out: Path) -> Path:
    return out.with_name(out.name + ".resume")


def _finished_with(out: Path, digest: str) -> Checkpoint | None:
    """The checkpoint at ``out`` if a training of this configuration digest finished it."""
    if not out.is_file():
        return None
    try:
        ckpt = load_checkpoint(out)
    except PpgedgeError:  # unreadable: trained again and replaced, as without reuse
        return None
    return ckpt if ckpt.training.get("digest") == digest else None


def _unusable_resume(path: Path, why: str) -> PpgedgeError:
    return PpgedgeError(
        f"{path}: {why}, so training cannot resume from it: rerun the same command with "
        f"--restart to discard it and train from the first epoch (or delete the file)"
    )


def _load_resume(path: Path) -> dict[str, Any]:
    """The resume file as a dict; truncated, foreign or corrupt files are one line naming the
    file and how to discard it (never a traceback, and never silently trusted)."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001  zip, pickle and tensor errors of every kind
        name = exc.__class__.__name__
        raise _unusable_resume(path, f"truncated or not a ppgedge resume file ({name})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("digest"), str):
        raise _unusable_resume(path, "not a ppgedge resume file (no configuration digest)")
    return saved


def _apply_resume(
    path: Path,
    saved: dict[str, Any],
    epochs: int,
    model: nn.Module,
    objective: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    ema: nn.Module | None = None,
) -> dict[str, Any]:
    """Load a resume file of this very configuration into the training objects; return its
    loop state. Anything missing or mismatched is an unusable file, named in one line."""
    state = saved.get("state")
    keys = {"epoch", "best_val", "best_epoch", "bad_epochs", "history", "best_state"}
    if (
        not isinstance(state, dict)
        or not keys <= set(state)
        or not isinstance(state["epoch"], int)
        or not 0 <= state["epoch"] <= epochs
        or not isinstance(state["bad_epochs"], int)
        or not isinstance(state["history"], list)
        or not (state["best_state"] is None or isinstance(state["best_state"], dict))
    ):
        raise _unusable_resume(path, "its training state is incomplete or inconsistent")
    try:
        model.load_state_dict(saved["model"])
        objective.load_state_dict(saved["objective"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if ema is not None:
            ema.load_state_dict(saved["ema"])
        best = state["best_state"]
        if best is not None and set(best) != set(model.state_dict()):
            raise ValueError("best weights do not match the model")
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        name = exc.__class__.__name__
        raise _unusable_resume(path, f"its weights do not fit this model ({name})") from None
    return state


def train(
    dataset: Dataset,
    split: Split,
    out: str | Path,
    cfg: TrainConfig,
    *,
    init_from: str | Path | None = None,
    device: str = "auto",
    observer: TrainingObserver | None = None,
    restart: bool = False,
    objective: Objective | None = None,
    reuse_finished: bool = False,
) -> Checkpoint:
    """Train ``cfg.arch`` on ``split.train``, stop early on ``split.val``, save to ``out``.

    ``init_from`` starts from a checkpoint's weights (fine-tuning; it becomes the parent).
    If ``out + '.resume'`` exists from an interrupted run with the same configuration, training
    continues from its last finished epoch unless ``restart`` is set. ``objective`` decides the
    loss (default: supervised soft targets); a distillation objective names the teacher, which
    becomes the parent unless ``init_from`` is given. With ``reuse_finished`` (and without
    ``restart``) a checkpoint already at ``out`` that this very configuration finished is
    returned as it is: a stage that trains twice (the distilled and the from-scratch student)
    and is interrupted in its second training does not repeat its first one.
    """
    out = Path(out)
    if out.is_dir():  # found before training, not when the checkpoint is saved at the end
        raise PpgedgeError(f"{out} is a folder: give a file name for the checkpoint")
    observer = observer or TrainingObserver()
    dev = pick_device(device)
    channels = resolve_channels(cfg.channels)
    fmt = dataset.fmt.with_channels(channels)
    parts = split.indices(dataset.subject_names())
    if len(parts["train"]) == 0 or len(parts["val"]) == 0:
        raise PpgedgeError(
            f"split '{split.name}' leaves no training or no validation windows in {dataset.path}"
        )
    parent_ckpt = load_checkpoint(init_from) if init_from else None
    kwargs = dict(cfg.arch_kwargs)
    if parent_ckpt is not None:
        check_compatible(parent_ckpt.data_format, dataset)
        if parent_ckpt.arch != cfg.arch or tuple(parent_ckpt.data_format.channels) != channels:
            raise PpgedgeError(
                f"--init {init_from} is a {parent_ckpt.arch} on "
                f"{list(parent_ckpt.data_format.channels)}; fine-tuning needs the same "
                f"architecture and channels ({cfg.arch}, {list(channels)})"
            )
        kwargs = dict(parent_ckpt.arch_kwargs)
    kwargs.setdefault("in_channels", len(channels))
    knobs = format_kwargs(cfg.arch, fmt.window_samples, fmt.sample_rate_hz, channels)
    for key, value in knobs.items():
        kwargs.setdefault(key, value)

    torch.manual_seed(cfg.seed)
    # a parent (fine-tuning, or a pruned model) rebuilds itself, including changed layer shapes
    model = parent_ckpt.build() if parent_ckpt is not None else create_model(cfg.arch, **kwargs)
    model.to(dev)
    objective = (objective or Supervised(cfg.label_sigma_bpm)).to(dev)
    batch_channels = objective.input_channels() or channels
    train_src = WindowSource(dataset, parts["train"], batch_channels)
    val_src = WindowSource(dataset, parts["val"], channels)
    two_sided = cfg.augment and cfg.time_stretch == "both"
    neighbours = Neighbours.of(train_src) if two_sided else None
    ema = averaged_model(model, cfg.ema_decay)  # what validation and the checkpoint see
    trainable = [*model.parameters(), *objective.parameters()]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = -(-len(train_src) // cfg.batch_size)
    scheduler = warmup_cosine(optimizer, cfg.epochs * steps_per_epoch)
    data_hash = dataset_sha256(dataset.path)
    digest = cfg.digest(
        {
            "dataset": data_hash,
            "split": split.to_dict(),
            "init": parent_ckpt and model_record(init_from, parent_ckpt)["sha256"],
            "objective": objective.describe(),
        }
    )
    if reuse_finished and not restart:
        finished = _finished_with(out, digest)
        if finished is not None:
            return finished
    state: dict[str, Any] = {
        "epoch": 0,
        "best_val": float("inf"),
        "best_epoch": -1,
        "bad_epochs": 0,
        "history": [],
        "best_state": None,
    }
    resume_file = _resume_path(out)
    resumed = False
    if restart:
        resume_file.unlink(missing_ok=True)  # a corrupt file must not outlive --restart
    elif resume_file.exists():
        saved = _load_resume(resume_file)
        if saved.get("digest") == digest:
            state = _apply_resume(
                resume_file, saved, cfg.epochs, model, objective, optimizer, scheduler, ema
            )
            resumed = True
    observer.start(cfg.epochs, steps_per_epoch, state["epoch"])
    t_start = time.perf_counter()
    for epoch in range(state["epoch"], cfg.epochs):
        if state["bad_epochs"] >= cfg.patience:
            break
        t0 = time.perf_counter()
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 1000 + epoch)
        model.train()
        objective.train()
        total, count = 0.0, 0
        for pos, x, y in train_src.batches(cfg.batch_size, rng):
            if cfg.augment:
                near = neighbours.at(pos) if neighbours is not None else None
                x, y = augment_batch(x, y, rng, batch_channels, cfg, near)
            rows = torch.from_numpy(train_src.indices[pos])
            x, y = x.to(dev), y.to(dev)
            loss = objective.losses(model, x, y, rows, epoch, cfg.augment)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(trainable, 5.0)
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update_parameters(model)
            total += loss.item() * len(y)
            count += len(y)
            observer.batch(total / count if count else 0.0)
        judged = model if ema is None else ema.module
        val = mae_by_decoder(judged, val_src, dev)
        val_mae = min(val.values())
        if val_mae < state["best_val"] - 1e-4:
            state.update(
                best_val=val_mae,
                best_epoch=epoch,
                bad_epochs=0,
                best_state={k: v.detach().cpu().clone() for k, v in judged.state_dict().items()},
            )
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch + 1
        state["history"].append(
            {
                "epoch": epoch + 1,
                "train_loss": total / max(count, 1),
                **{f"val_mae_{k}": v for k, v in val.items()},
            }
        )
        with atomic_path(resume_file) as tmp:
            torch.save(
                {
                    "digest": digest,
                    "model": model.state_dict(),
                    "objective": objective.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    **({} if ema is None else {"ema": ema.state_dict()}),
                    "state": state,
                },
                tmp,
            )
        observer.epoch(
            EpochReport(
                epoch + 1,
                cfg.epochs,
                total / max(count, 1),
                val_mae,
                state["best_val"],
                time.perf_counter() - t0,
                resumed,
            )
        )
        resumed = False

    model.load_state_dict(state["best_state"])
    val = mae_by_decoder(model, val_src, dev)
    decoder = min(val, key=val.get)
    tracker = fit_tracker(
        dataset,
        train_src.indices,
        val_src.indices,
        predict_logits(model, val_src, dev),
        stretch=label_stretch(cfg),
    )
    metrics = {
        "val_mae": val[decoder],
        "val_mae_by_decoder": val,
        "best_epoch": state["best_epoch"] + 1,
        "epochs_run": state["epoch"],
        "parameters": count_parameters(model),
        "macs": count_macs(model.cpu(), len(channels), fmt.window_samples),
        "train_seconds_this_session": round(time.perf_counter() - t_start, 2),
    }
    training = {
        "config": asdict(cfg),
        "dataset": str(dataset.path),
        "dataset_sha256": data_hash,
        "dataset_source": dataset.source,
        "split": split.to_dict(),
        "digest": digest,  # what reuse_finished compares
        "device": str(dev),
        "history": state["history"],
        "objective": objective.describe(),
        "method": objective.method
        if objective.method != "supervised" or parent_ckpt is None
        else "fine-tune",
    }
    parent = (
        model_record(init_from, parent_ckpt)
        if parent_ckpt is not None
        else objective.parent_record()
    )
    stage = {"stage": training["method"], "arch": cfg.arch, "dataset": dataset.source}
    if objective.parent_record() is not None:
        stage["teacher"] = objective.parent_record()
    lineage = [*(parent_ckpt.lineage if parent_ckpt else []), stage]
    ckpt = checkpoint_from_model(
        model.cpu(),
        fmt,
        decode=decoder,
        tracker=tracker,
        metrics=metrics,
        training=training,
        parent=parent,
        lineage=lineage,
    )
    save_checkpoint(ckpt, out)
    resume_file.unlink(missing_ok=True)
    return ckpt
