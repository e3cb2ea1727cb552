"""Run a checkpoint (or the spectral baseline) over a dataset and report its errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ppgedge.data.fingerprint import dataset_sha256
from ppgedge.data.format import DataFormat, Dataset
from ppgedge.data.loader import WindowSource
from ppgedge.data.splits import Split
from ppgedge.errors import PpgedgeError
from ppgedge.evaluate.metrics import error_summary, full_report
from ppgedge.evaluate.spectral import spectral_bpm
from ppgedge.models.bpm import DECODERS, decode
from ppgedge.models.checkpoint import Checkpoint


def check_compatible(model_fmt: DataFormat, dataset: Dataset) -> None:
    """A model only sees data in the rate and window it was trained on."""
    d = dataset.fmt
    if (
        abs(d.sample_rate_hz - model_fmt.sample_rate_hz) > 1e-6
        or abs(d.window_s - model_fmt.window_s) > 1e-6
    ):
        raise PpgedgeError(
            f"{dataset.path}: dataset is {d.sample_rate_hz:g} Hz / {d.window_s:g} s windows, the "
            f"model expects {model_fmt.sample_rate_hz:g} Hz / {model_fmt.window_s:g} s: "
            "re-import the data with --rate and --window to match"
        )
    dataset.channel_index(model_fmt.channels)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    source: WindowSource,
    device: torch.device | str = "cpu",
    batch_size: int = 256,
) -> torch.Tensor:
    model = model.to(device).eval()
    out = [model(x.to(device)).float().cpu() for _, x, _ in source.batches(batch_size)]
    return torch.cat(out) if out else torch.zeros(0, 180)


def mae_by_decoder(
    model: nn.Module, source: WindowSource, device: torch.device | str = "cpu"
) -> dict[str, float]:
    """MAE of each decoder (argmax, expectation) on ``source``."""
    logits = predict_logits(model, source, device)
    return {m: error_summary(decode(logits, m).numpy(), source.y)["mae"] for m in DECODERS}


def choose_decoder(ckpt: Checkpoint, dataset: Dataset) -> tuple[str, dict[str, float]]:
    """The decoder with the lower MAE on the checkpoint's validation subjects, as training
    chooses it (for models assembled after training, such as ensembles)."""
    idx, _ = eval_indices(dataset, ckpt, "val")
    source = WindowSource(dataset, idx, ckpt.data_format.channels)
    maes = mae_by_decoder(ckpt.build(), source)
    return min(maes, key=maes.get), maes


@dataclass
class Evaluation:
    """Predictions and the error report for one model on one set of windows."""

    name: str
    pred: np.ndarray
    true: np.ndarray
    report: dict[str, Any]
    logits: torch.Tensor | None = None  # (N, 180) in the order of the windows, for tracking


def evaluate_checkpoint(
    ckpt: Checkpoint,
    dataset: Dataset,
    indices: np.ndarray,
    *,
    name: str = "model",
    device: str = "cpu",
) -> Evaluation:
    check_compatible(ckpt.data_format, dataset)
    source = WindowSource(
        dataset, indices, ckpt.data_format.channels, preprocessing=ckpt.data_format.preprocessing
    )
    logits = predict_logits(ckpt.build(), source, device)
    pred = decode(logits, ckpt.decode).numpy()
    ev = evaluation(name, pred, dataset, indices)
    ev.logits = logits
    return ev


def evaluate_spectral(dataset: Dataset, indices: np.ndarray) -> Evaluation:
    ppg = dataset.channel_index(["ppg"])[0]
    pred = (
        np.concatenate(
            [
                spectral_bpm(
                    np.asarray(dataset.x[indices[i : i + 4096], ppg]), dataset.fmt.sample_rate_hz
                )
                for i in range(0, len(indices), 4096)
            ]
        )
        if len(indices)
        else np.zeros(0)
    )
    return evaluation("spectral baseline", pred, dataset, indices)


def evaluation(name: str, pred: np.ndarray, dataset: Dataset, indices: np.ndarray) -> Evaluation:
    true = np.asarray(dataset.y[indices], np.float64)
    report = full_report(
        pred, true, dataset.subject_names(indices), dataset.activity_names(indices)
    )
    return Evaluation(name, pred, true, report)


def eval_indices(dataset: Dataset, ckpt: Checkpoint | None, part: str) -> tuple[np.ndarray, str]:
    """Which windows to evaluate: the checkpoint's own test subjects when it was trained on this
    dataset (``part='auto'``), a named part of its split, or every window."""
    if part == "all":
        return np.arange(len(dataset)), "all windows"
    split_d = (ckpt.training.get("split") if ckpt is not None else None) or None
    same_data = ckpt is not None and ckpt.training.get("dataset_sha256") == dataset_sha256(
        dataset.path
    )
    if split_d is None or not same_data:
        if part == "auto":
            return np.arange(len(dataset)), "all windows (model was not trained on this dataset)"
        raise PpgedgeError(
            f"--part {part}: the model's split does not belong to {dataset.path}; use --part all"
        )
    split = Split.from_dict(split_d)
    part = "test" if part == "auto" else part
    if part not in ("train", "val", "test"):
        raise PpgedgeError(f"unknown --part '{part}': use auto, train, val, test or all")
    idx = split.indices(dataset.subject_names())[part]
    return idx, f"{part} subjects ({', '.join(getattr(split, part))})"
