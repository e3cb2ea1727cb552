"""Same config and seed on the CPU, two runs in two folders: byte-identical ``.tflite`` and
firmware bundle. One run is the session's in-process ``tiny_pipeline`` (as first written), the
other a fresh ``ppgedge run`` process with the same thread count. The checkpoints in between hold
identical tensors; their files differ only by what they record about the run (creation time,
training seconds, absolute paths, parent-file hashes), which SECURITY.md ("Reproducibility")
lists."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline_helpers import TINY

ARTIFACTS = ("teacher/teacher.pt", "distill/student.pt", "prune/pruned.pt")


def _run(folder: Path, threads: int) -> Path:
    folder.mkdir()
    config = folder / "ppgedge.toml"
    config.write_text(TINY)
    threads_flag = ["--threads", str(threads)]
    proc = subprocess.run(
        [sys.executable, "-m", "ppgedge", *threads_flag, "run", "--config", config, "--json"],
        capture_output=True,
        text=True,
        timeout=900,
        env=dict(os.environ, COLUMNS="120"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder / "run"


def _files(root: Path) -> dict[str, bytes]:
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def _tensors(obj: object, prefix: str = "") -> dict[str, torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    if isinstance(obj, dict):
        out: dict[str, torch.Tensor] = {}
        for k, v in obj.items():
            out.update(_tensors(v, f"{prefix}/{k}"))
        return out
    return {}


@pytest.mark.slow
def test_same_config_and_seed_give_identical_tflite_and_bundle(tiny_pipeline, tmp_path) -> None:
    a, b = tiny_pipeline.first, _run(tmp_path / "b", tiny_pipeline.threads)
    assert a.parent != b.parent

    tflite_a, tflite_b = _files(a / "export"), _files(b / "export")
    deployable = [k for k in tflite_a if k.endswith(".tflite") or k.startswith("tflm/")]
    assert "ppg_hr.tflite" in deployable and "tflm/ppg_hr_model_data.c" in deployable
    assert "tflm/manifest.json" in deployable and "tflm/README.md" in deployable
    differ = [k for k in deployable if tflite_a[k] != tflite_b.get(k)]
    assert differ == [], f"not byte-identical between two runs: {differ}"
    assert sorted(k for k in tflite_b if k.startswith("tflm/")) == sorted(
        k for k in deployable if k.startswith("tflm/")
    )

    data_a, data_b = _files(a / "data"), _files(b / "data")
    assert data_a == data_b, "the synthetic dataset differs between runs"

    for rel in ARTIFACTS:  # the weights are identical; the files record run facts
        ta = _tensors(torch.load(a / rel, weights_only=True))
        tb = _tensors(torch.load(b / rel, weights_only=True))
        assert ta.keys() == tb.keys() and ta, rel
        for key in ta:
            assert torch.equal(ta[key], tb[key]), f"{rel}{key} differs"
    qa = _tensors(torch.load(a / "qat/model.qat.int8.pt", weights_only=True))
    qb = _tensors(torch.load(b / "qat/model.qat.int8.pt", weights_only=True))
    assert all(torch.equal(qa[k], qb[k]) for k in qa) and qa.keys() == qb.keys()

    pa = np.load(a / "verify" / "predictions.npz")
    pb = np.load(b / "verify" / "predictions.npz")
    np.testing.assert_array_equal(pa["pred"], pb["pred"])


def test_streamed_dataset_is_byte_identical_to_write_dataset(tmp_path: Path) -> None:
    """The streaming writer (one subject at a time, for data larger than memory) writes the very
    bytes ``write_dataset`` writes from everything at once; a failed chunk leaves nothing."""
    from ppgedge.data.format import DataFormat, Dataset, write_dataset
    from ppgedge.data.stream_writer import stream_dataset
    from ppgedge.data.synth import synthesize
    from ppgedge.errors import PpgedgeError

    fmt = DataFormat()
    full = synthesize(4, 1.5, 11, fmt)
    write_dataset(full, tmp_path / "whole.ppgds")

    streamed = tmp_path / "streamed.ppgds"
    with stream_dataset(streamed, fmt, source=full.source, provenance=full.provenance) as w:
        for k in range(len(full.subjects)):
            w.append(full.of_subject(k))
    assert _files(streamed) == _files(tmp_path / "whole.ppgds")
    assert len(Dataset(streamed)) == len(full)

    bad = full.of_subject(0)
    bad.y[3] = 400.0  # outside 30-209 BPM: refused like write_dataset refuses it
    with (
        pytest.raises(PpgedgeError, match="outside"),
        stream_dataset(tmp_path / "bad.ppgds", fmt, source="x") as w,
    ):
        w.append(full.of_subject(1))
        w.append(bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["streamed.ppgds", "whole.ppgds"]
