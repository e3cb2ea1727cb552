"""Int8 quantisation in the TFLite scheme: post-training calibration and QAT.

The scheme is the one TFLite Micro runs: int8 weights, symmetric per output channel; int8
activations, asymmetric per tensor; int32 biases; batch norm folded into the convolutions
(the quantizer is in :mod:`ppgedge.compress.pt2e`). Two ways in:

* :func:`ptq` calibrates observers on representative windows (post-training quantisation), the
  baseline that quantisation-aware training has to beat;
* :func:`qat` starts from the same kind of calibration, then trains the fake-quantised graph
  (soft targets, or a distillation loss from a teacher), freezes batch-norm statistics and
  observers for the last epoch, and keeps the epoch with the best fake-quant validation MAE.

Both save a :class:`QuantizedArtifact` (:mod:`ppgedge.compress.quantized_artifact`);
:func:`to_tflite` (:mod:`ppgedge.compress.to_tflite`) converts it without recalibration. The
names of those modules are re-exported here, where callers have always imported them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ppgedge.compress.pt2e import (
    FAKE_QUANT,
    QUANTIZER,
    QUANTIZER_CONFIG,
    Windows4D,
    build_prepared,
    calibrate,
    export_example,
    scheme,
    set_observers,
)
from ppgedge.compress.quantized_artifact import (
    ARTIFACT_SUFFIX,
    LEGACY_QUANTIZERS,
    SCHEMA,
    QuantizedArtifact,
    default_artifact_path,
    load_artifact,
    save_artifact,
    to_reference,
)
from ppgedge.compress.runtimes import tflm_mae, tflm_predict
from ppgedge.compress.tflite_file import scales_of_tflite, tflite_ops
from ppgedge.compress.to_tflite import scales_of_artifact, to_tflite
from ppgedge.data.fingerprint import dataset_sha256
from ppgedge.data.format import Dataset
from ppgedge.data.loader import WindowSource
from ppgedge.data.splits import Split
from ppgedge.errors import PpgedgeError
from ppgedge.evaluate.predict import check_compatible, eval_indices, mae_by_decoder
from ppgedge.models.checkpoint import Checkpoint, load_checkpoint, model_record
from ppgedge.train.objective import Objective, Supervised
from ppgedge.train.trainer import (
    EpochReport,
    TrainConfig,
    TrainingObserver,
    pick_device,
    warmup_cosine,
)

__all__ = [  # re-exported from the modules quantize.py was split into
    "ARTIFACT_SUFFIX",
    "FAKE_QUANT",
    "LEGACY_QUANTIZERS",
    "QUANTIZER",
    "QUANTIZER_CONFIG",
    "SCHEMA",
    "QuantizedArtifact",
    "Windows4D",
    "build_prepared",
    "calibrate",
    "default_artifact_path",
    "export_example",
    "load_artifact",
    "save_artifact",
    "scales_of_artifact",
    "scales_of_tflite",
    "scheme",
    "set_observers",
    "tflite_ops",
    "tflm_mae",
    "tflm_predict",
    "to_reference",
    "to_tflite",
]

PARTS = ("train", "val", "test", "all")
QAT_METHODS = ("hard", "soft", "dkd")  # logit-based: the exported graph exposes no feature maps

# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def part_indices(dataset: Dataset, base: Checkpoint, part: str) -> tuple[np.ndarray, str]:
    """Windows of one part of the checkpoint's own split when it was trained on this dataset;
    every window otherwise (or for ``all``)."""
    if part not in PARTS:
        raise PpgedgeError(f"unknown part '{part}': use {', '.join(PARTS)}")
    try:
        return eval_indices(dataset, base, part)
    except PpgedgeError:
        return np.arange(len(dataset)), "all windows (the model's split is not of this dataset)"


def draw_windows(indices: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A seeded, sorted sample of ``n`` indices (all of them when there are fewer)."""
    if n < 1:
        raise PpgedgeError(f"need at least one calibration window (got {n})")
    rng = np.random.default_rng(seed)
    if len(indices) <= n:
        return np.sort(np.asarray(indices, dtype=np.int64))
    return np.sort(rng.choice(np.asarray(indices, dtype=np.int64), size=n, replace=False))


def _source(dataset: Dataset, indices: np.ndarray, base: Checkpoint) -> WindowSource:
    fmt = base.data_format
    return WindowSource(dataset, indices, fmt.channels, preprocessing=fmt.preprocessing)


def _check_data(dataset: Dataset, base: Checkpoint) -> None:
    check_compatible(base.data_format, dataset)
    if dataset.x.shape[2] != base.data_format.window_samples:
        raise PpgedgeError(
            f"{dataset.path}: windows have {dataset.x.shape[2]} samples, the model takes "
            f"{base.data_format.window_samples}"
        )


def _split_of(dataset: Dataset, base: Checkpoint) -> Split | None:
    split_d = base.training.get("split")
    if not split_d or base.training.get("dataset_sha256") != dataset_sha256(dataset.path):
        return None
    return Split.from_dict(split_d)


def _mae(
    model: nn.Module, source: WindowSource, decoder: str, device: torch.device | None = None
) -> float:
    return float(mae_by_decoder(model, source, device or torch.device("cpu"))[decoder])


# ---------------------------------------------------------------------------------------------
# PTQ and QAT
# ---------------------------------------------------------------------------------------------


@dataclass
class QuantResult:
    """What ``ptq``/``qat`` made: the artifact, where it was written, its headline metrics."""

    artifact: QuantizedArtifact
    path: Path
    metrics: dict[str, Any]


def _finish(
    art: QuantizedArtifact,
    out: Path,
    measure_tflm: bool,
    eval_src: WindowSource | None,
) -> QuantResult:
    """Optionally measure the deployed int8 MAE (TFLite Micro), then save."""
    if measure_tflm and eval_src is not None and len(eval_src):
        tmp = out.with_name(f".{out.name}.measure.tflite")
        try:
            to_tflite(art, tmp)
            art.metrics["tflm_val_mae"] = tflm_mae(tmp, eval_src, art.decode)
        finally:
            tmp.unlink(missing_ok=True)
        art.metrics["tflm_gap_bpm"] = art.metrics["tflm_val_mae"] - art.metrics["float_val_mae"]
    save_artifact(art, out)
    return QuantResult(art, out, art.metrics)


def ptq(
    ckpt_path: str | Path,
    dataset: Dataset,
    out: str | Path,
    *,
    n_windows: int = 512,
    part: str = "train",
    seed: int = 0,
    measure_tflm: bool = False,
) -> QuantResult:
    """Post-training quantisation: calibrate on ``n_windows`` windows drawn (seeded) from
    ``part`` of the checkpoint's split, no training. Metrics are on its validation subjects
    (every window when the checkpoint was not trained on ``dataset``)."""
    t0 = time.perf_counter()
    out = Path(out)
    base = load_checkpoint(ckpt_path)
    _check_data(dataset, base)
    pool, described = part_indices(dataset, base, part)
    calib_idx = draw_windows(pool, n_windows, seed)
    if len(calib_idx) == 0:
        raise PpgedgeError(f"no calibration windows in {described} of {dataset.path}")
    calib = _source(dataset, calib_idx, base).windows(np.arange(len(calib_idx)))
    prepared = build_prepared(base, is_qat=False)
    seen = calibrate(prepared, calib, base.data_format)

    split = _split_of(dataset, base)
    eval_idx = split.indices(dataset.subject_names())["val"] if split else np.arange(len(dataset))
    eval_src = _source(dataset, eval_idx, base)
    metrics: dict[str, Any] = {"eval_windows": len(eval_idx)}
    if len(eval_idx):
        metrics["float_val_mae"] = _mae(base.build(), eval_src, base.decode)
        metrics["fakequant_val_mae"] = _mae(
            Windows4D(to_reference(prepared)), eval_src, base.decode
        )
        metrics["fakequant_gap_bpm"] = metrics["fakequant_val_mae"] - metrics["float_val_mae"]
    metrics["seconds"] = round(time.perf_counter() - t0, 2)
    art = QuantizedArtifact(
        base=base,
        scheme=scheme(is_qat=False),
        prepared_state=_state(prepared),
        metrics=metrics,
        training={
            "method": "ptq",
            "dataset": str(dataset.path),
            "dataset_sha256": dataset_sha256(dataset.path),
            "calibration": {"windows": seen, "part": described, "seed": seed},
            "eval_part": "val subjects" if split else "all windows",
        },
        parent=model_record(ckpt_path, base),
        lineage=[*base.lineage, {"stage": "ptq", "arch": base.arch, "dataset": dataset.source}],
    )
    return _finish(art, out, measure_tflm, eval_src)


def ptq_windows(
    ckpt_path: str | Path, windows: np.ndarray, out: str | Path, *, source: str = "array"
) -> QuantResult:
    """Post-training quantisation from representative windows the user supplies (N, C, T),
    already preprocessed; no evaluation data, so no MAE is recorded."""
    t0 = time.perf_counter()
    base = load_checkpoint(ckpt_path)
    prepared = build_prepared(base, is_qat=False)
    seen = calibrate(prepared, windows, base.data_format)
    art = QuantizedArtifact(
        base=base,
        scheme=scheme(is_qat=False),
        prepared_state=_state(prepared),
        metrics={"seconds": round(time.perf_counter() - t0, 2)},
        training={"method": "ptq", "calibration": {"windows": seen, "source": source}},
        parent=model_record(ckpt_path, base),
        lineage=[*base.lineage, {"stage": "ptq", "arch": base.arch, "dataset": source}],
    )
    return _finish(art, Path(out), False, None)


def _state(prepared: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in prepared.state_dict().items()}


def _objective(
    teacher: str | Path | None,
    method: str,
    hparams: dict[str, Any] | None,
    base: Checkpoint,
    dataset: Dataset,
    epochs: int,
    sigma: float,
    cache_dir: str | Path | None,
) -> Objective:
    if teacher is None:
        return Supervised(sigma)
    if method not in QAT_METHODS:
        raise PpgedgeError(
            f"QAT distillation supports {', '.join(QAT_METHODS)} (got '{method}'): the "
            "quantised graph exposes logits only"
        )
    from ppgedge.distill.cache import teacher_logits
    from ppgedge.distill.objective import DistillObjective
    from ppgedge.distill.run import build_distiller
    from ppgedge.distill.teachers import check_teacher_matches, load_teacher

    t = load_teacher(teacher, dataset.fmt)
    check_teacher_matches(t, dataset)
    channels = tuple(base.data_format.channels)
    cfg = TrainConfig(
        arch=base.arch,
        arch_kwargs=dict(base.arch_kwargs),
        channels=",".join(channels),
        epochs=epochs,
    )
    distiller = build_distiller(method, base.arch, t, cfg, hparams or {})
    cached = teacher_logits(t, dataset, cache_dir=cache_dir, device="cpu").logits
    return DistillObjective(t, distiller, channels, cached_logits=cached, label=f"qat-{method}")


def qat(
    ckpt_path: str | Path,
    dataset: Dataset,
    split: Split | None,
    out: str | Path,
    *,
    epochs: int = 5,
    lr: float = 1e-4,
    weight_decay: float = 0.0,
    batch_size: int = 64,
    n_calibration: int = 512,
    freeze_epoch: int | None = None,
    teacher: str | Path | None = None,
    method: str = "dkd",
    hparams: dict[str, Any] | None = None,
    label_sigma_bpm: float = 1.5,
    seed: int = 0,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    observer: TrainingObserver | None = None,
    measure_tflm: bool = False,
) -> QuantResult:
    """Quantisation-aware training of a float checkpoint.

    ``split`` defaults to the checkpoint's own (it must have been trained on ``dataset``).
    Fake quantisers start from a calibration on ``n_calibration`` training windows; epochs from
    ``freeze_epoch`` on (default: the last one, when there are two or more) run with batch-norm
    statistics and quantiser ranges frozen. The epoch with the best fake-quant validation MAE
    (the calibrated start counts as epoch 0) is kept. Augmentation is off: QAT fine-tunes.
    """
    t0 = time.perf_counter()
    out = Path(out)
    observer = observer or TrainingObserver()
    if epochs < 1:
        raise PpgedgeError("QAT needs at least one epoch")
    base = load_checkpoint(ckpt_path)
    _check_data(dataset, base)
    split = split or _split_of(dataset, base)
    if split is None:
        raise PpgedgeError(
            f"{ckpt_path} was not trained on {dataset.path}: give a split (--split) for QAT"
        )
    parts = split.indices(dataset.subject_names())
    if len(parts["train"]) == 0 or len(parts["val"]) == 0:
        raise PpgedgeError(f"split '{split.name}' leaves no training or no validation windows")
    dev = pick_device(device)
    freeze = max(1, epochs - 1) if freeze_epoch is None else freeze_epoch
    torch.manual_seed(seed)

    objective = _objective(
        teacher, method, hparams, base, dataset, epochs, label_sigma_bpm, cache_dir
    )
    channels = tuple(base.data_format.channels)
    batch_channels = objective.input_channels() or channels
    train_src = WindowSource(
        dataset, parts["train"], batch_channels, preprocessing=base.data_format.preprocessing
    )
    val_src = _source(dataset, parts["val"], base)

    prepared = build_prepared(base, is_qat=True)
    calib_idx = draw_windows(np.arange(len(train_src)), n_calibration, seed)
    calib = train_src.windows(calib_idx)
    if batch_channels != channels:
        calib = calib[:, [batch_channels.index(c) for c in channels]]
    seen = calibrate(prepared, calib, base.data_format)
    model = Windows4D(prepared).to(dev)
    objective.to(dev)

    float_mae = _mae(base.build(), val_src, base.decode, dev)
    set_observers(prepared, False)
    best = {"epoch": 0, "mae": _mae(model, val_src, base.decode, dev), "state": _state(prepared)}
    history: list[dict[str, Any]] = [{"epoch": 0, "val_mae_fakequant": best["mae"]}]

    trainable = [*model.parameters(), *objective.parameters()]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    steps = -(-len(train_src) // batch_size)
    scheduler = warmup_cosine(optimizer, epochs * steps)
    observer.start(epochs, steps, 0)
    for epoch in range(epochs):
        t_epoch = time.perf_counter()
        frozen = epoch >= freeze
        set_observers(prepared, not frozen)
        model.train(not frozen)  # frozen: batch norm uses (and keeps) its running statistics
        objective.train()
        rng = np.random.default_rng([seed, epoch])
        torch.manual_seed(seed * 1000 + epoch)
        total, count = 0.0, 0
        for pos, x, y in train_src.batches(batch_size, rng):
            rows = torch.from_numpy(train_src.indices[pos])
            loss = objective.losses(model, x.to(dev), y.to(dev), rows, epoch, False)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(trainable, 5.0)
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(y)
            count += len(y)
            observer.batch(total / max(count, 1))
        set_observers(prepared, False)
        mae = _mae(model, val_src, base.decode, dev)
        if mae < best["mae"] - 1e-4:
            best = {"epoch": epoch + 1, "mae": mae, "state": _state(prepared)}
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": total / max(count, 1),
                "val_mae_fakequant": mae,
                "frozen": frozen,
            }
        )
        observer.epoch(
            EpochReport(
                epoch + 1,
                epochs,
                total / max(count, 1),
                mae,
                best["mae"],
                time.perf_counter() - t_epoch,
            )
        )

    model.cpu()
    prepared.load_state_dict(best["state"])
    set_observers(prepared, False)
    prepared.eval()
    metrics = {
        "float_val_mae": float_mae,
        "fakequant_val_mae": best["mae"],
        "fakequant_gap_bpm": best["mae"] - float_mae,
        "calibrated_val_mae": history[0]["val_mae_fakequant"],
        "best_epoch": best["epoch"],
        "epochs_run": epochs,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    stage: dict[str, Any] = {"stage": "qat", "arch": base.arch, "dataset": dataset.source}
    if objective.parent_record() is not None:
        stage["teacher"] = objective.parent_record()
    art = QuantizedArtifact(
        base=base,
        scheme=scheme(is_qat=True),
        prepared_state=_state(prepared),
        metrics=metrics,
        training={
            "method": "qat" if teacher is None else f"qat+distill:{method}",
            "objective": objective.describe(),
            "dataset": str(dataset.path),
            "dataset_sha256": dataset_sha256(dataset.path),
            "split": split.to_dict(),
            "calibration": {"windows": seen, "part": "train", "seed": seed},
            "config": {
                "epochs": epochs,
                "lr": lr,
                "weight_decay": weight_decay,
                "batch_size": batch_size,
                "freeze_epoch": freeze,
                "seed": seed,
                "label_sigma_bpm": label_sigma_bpm,
                "device": str(dev),
            },
            "history": history,
        },
        parent=model_record(ckpt_path, base),
        lineage=[*base.lineage, stage],
    )
    return _finish(art, out, measure_tflm, val_src)
