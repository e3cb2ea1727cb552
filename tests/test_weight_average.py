"""Weight averaging (``[run] ema_decay``): validation and the checkpoint see the exponential
moving average of the weights; off, nothing changes (not even cache keys); an interrupted run
resumes to the same averaged model; bad values are one-line errors."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch
from test_train import _InterruptAfter

from ppgedge.data.format import Dataset
from ppgedge.data.splits import holdout
from ppgedge.errors import PpgedgeError
from ppgedge.pipeline.config import validate
from ppgedge.train.trainer import TrainConfig, train
from ppgedge.train.weight_average import averaged_model

CFG = TrainConfig(arch="resnet_micro", epochs=3, patience=10, seed=5)


def _weights_close(a: dict, b: dict, **tol) -> bool:
    return all(torch.allclose(a[k].float(), b[k].float(), **tol) for k in a)


def test_the_average_is_what_training_keeps(tiny_dataset: Dataset, tmp_path: Path) -> None:
    split = holdout(tiny_dataset.subjects, seed=0)
    plain = train(tiny_dataset, split, tmp_path / "plain.pt", CFG, device="cpu")
    # a vanishing decay makes the average the latest weights: the same model as without it,
    # so validation, early stopping and the kept weights all read the averaged copy
    latest = train(
        tiny_dataset, split, tmp_path / "l.pt", replace(CFG, ema_decay=1e-12), device="cpu"
    )
    assert _weights_close(plain.state_dict, latest.state_dict, atol=1e-5, rtol=1e-4)
    assert latest.metrics["best_epoch"] == plain.metrics["best_epoch"]
    averaged = train(
        tiny_dataset, split, tmp_path / "a.pt", replace(CFG, ema_decay=0.9), device="cpu"
    )
    assert averaged.training["config"]["ema_decay"] == 0.9
    assert not _weights_close(plain.state_dict, averaged.state_dict, atol=1e-5, rtol=1e-4)


def test_an_interrupted_averaged_run_resumes_to_the_same_model(
    tiny_dataset: Dataset, tmp_path: Path
) -> None:
    split = holdout(tiny_dataset.subjects, seed=0)
    cfg = replace(CFG, ema_decay=0.9)
    straight = train(tiny_dataset, split, tmp_path / "s.pt", cfg, device="cpu")
    out = tmp_path / "i.pt"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_dataset, split, out, cfg, device="cpu", observer=_InterruptAfter(2))
    assert "ema" in torch.load(tmp_path / "i.pt.resume", weights_only=True)
    observer = _InterruptAfter(-1)
    resumed = train(tiny_dataset, split, out, cfg, device="cpu", observer=observer)
    assert observer.first_epoch == 2
    for key, value in straight.state_dict.items():
        torch.testing.assert_close(resumed.state_dict[key], value, msg=key)


def test_off_changes_no_key_and_bad_values_are_refused() -> None:
    import hashlib
    import json

    # the digest (resume files, caches) of a configuration without averaging is the one it
    # had before the option existed
    old = {k: v for k, v in asdict(CFG).items() if k not in ("ema_decay", "mix_max")}
    blob = json.dumps({"config": old, "x": 1}, sort_keys=True, default=str)
    assert CFG.digest({"x": 1}) == hashlib.sha256(blob.encode()).hexdigest()[:16]
    assert replace(CFG, ema_decay=0.9).digest({"x": 1}) != CFG.digest({"x": 1})
    assert averaged_model(torch.nn.Linear(2, 2), 0.0) is None
    with pytest.raises(ValueError, match="ema_decay"):
        averaged_model(torch.nn.Linear(2, 2), 1.0)
    assert validate({"run": {"ema_decay": 0.99}}, "t.toml")["run"]["ema_decay"] == 0.99
    for bad in (1.0, -0.1):
        with pytest.raises(PpgedgeError, match=r"\[run\] ema_decay must be 0"):
            validate({"run": {"ema_decay": bad}}, "t.toml")
