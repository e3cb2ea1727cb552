"""BAMI-format wrist recordings: one ``.mat`` per subject, 50 Hz.

Variables::

    rawPPG   (3, N) uint16   three PPG channels, sensor counts
    rawAcc   (3, N) uint16   accelerometer x, y, z, offset by +32768
    bpm_ecg  (K,)            ECG reference, value k covers seconds [2k, 2k + 8): centre 2k + 4 s

Choices, recorded in the provenance:

- ``ppg`` is the mean of the three PPG rows (one PPG channel, as every other source has, with
  less sensor noise than any single row).
- ``acc = (raw - 32768) * acc_scale`` with ``acc_scale`` defaulting to 1/2048 g per count, an
  assumption (a +-16 g, 16-bit sensor); the models z-score each window, so the scale only
  matters for reading the stored data, not for training or inference.
- Subject id ``bami_<file stem>``; no activity labels (stored as unknown).
- (N, 3) arrays are accepted and transposed.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ppgedge.data.format import DataFormat, WindowedData
from ppgedge.data.importers._common import (
    existing_path,
    load_mat,
    natural_key,
    need_acc,
    reference_series,
    reference_times,
)
from ppgedge.data.windowing import Recording, window_recordings
from ppgedge.errors import PpgedgeError

RATE_HZ = 50.0
ACC_OFFSET = 32768.0
DEFAULT_ACC_SCALE = 1.0 / 2048.0
_HINT = "a BAMI .mat with rawPPG (3,N), rawAcc (3,N) and bpm_ecg"


def _rows3(arr: np.ndarray, path: Path, name: str) -> np.ndarray:
    """Orient a 3-channel array as (3, N)."""
    if arr.ndim == 2 and arr.shape[0] != 3 and arr.shape[1] == 3:
        arr = arr.T
    if arr.ndim != 2 or arr.shape[0] != 3:
        raise PpgedgeError(f"{path}: '{name}' has shape {arr.shape}, expected (3, N)")
    return arr.astype(np.float64)


def _recording(
    path: Path, channels: tuple[str, ...], acc_scale: float, name: str | None = None
) -> Recording:
    wanted = []
    if "ppg" in channels:
        wanted.append("rawPPG")
    if need_acc(channels):
        wanted.append("rawAcc")
    wanted.append("bpm_ecg")
    mat = load_mat(path, wanted, hint=_HINT)
    signals: dict[str, tuple[np.ndarray, float]] = {}
    if "rawPPG" in mat:
        signals["ppg"] = (_rows3(mat["rawPPG"], path, "rawPPG").mean(axis=0), RATE_HZ)
    if "rawAcc" in mat:
        acc = (_rows3(mat["rawAcc"], path, "rawAcc") - ACC_OFFSET) * acc_scale
        for i, c in enumerate(("acc_x", "acc_y", "acc_z")):
            signals[c] = (acc[i], RATE_HZ)
    bpm = reference_series(mat["bpm_ecg"], path, "bpm_ecg")
    return Recording(
        name=name or path.stem,
        subject=f"bami_{name or path.stem}",
        signals=signals,
        labels_bpm=bpm,
        label_times_s=reference_times(bpm.size),
    )


MAX_DEPTH = 3  # BAMI as distributed: BAMI-1/, BAMI-2/ with one .mat per subject


def find_mat_files(root: Path) -> list[Path]:
    """Every ``.mat`` in ``root`` and its sub-folders (up to MAX_DEPTH, hidden ones skipped),
    in a stable human order: the dataset as distributed, not only a flat folder."""
    found = [
        p
        for p in root.rglob("*.mat")
        if p.is_file()
        and len(p.relative_to(root).parts) <= MAX_DEPTH
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(found, key=lambda p: [natural_key(Path(q)) for q in p.relative_to(root).parts])


def subject_names(root: Path, files: list[Path]) -> list[str]:
    """File stems, prefixed by their sub-folder where two folders hold the same stem (BAMI-1/S1
    and BAMI-2/S1 are different people)."""
    stems = [f.stem for f in files]
    repeated = {s for s in stems if stems.count(s) > 1}
    names = [
        f"{f.parent.name}_{f.stem}" if f.stem in repeated and f.parent != root else f.stem
        for f in files
    ]
    return [re.sub(r"[^\w.+@-]", "_", n) for n in names]  # as subject names must be


def import_bami(
    path: str | Path,
    fmt: DataFormat,
    *,
    drop_out_of_range: bool = False,
    acc_scale: float = DEFAULT_ACC_SCALE,
) -> WindowedData:
    """Import BAMI recordings: one ``.mat`` file or a folder of them (one per subject)."""
    try:
        acc_scale = float(acc_scale)
    except (TypeError, ValueError):
        raise PpgedgeError(f"acc_scale {acc_scale!r} is not a number: pass g per count") from None
    if not math.isfinite(acc_scale) or acc_scale <= 0:
        raise PpgedgeError(f"acc_scale {acc_scale} must be a positive number of g per count")
    root = existing_path(path, "a BAMI .mat file or a folder of them")
    files = [root] if root.is_file() else find_mat_files(root)
    if not files:
        raise PpgedgeError(
            f"{root}: no .mat files in it or its sub-folders: pass {_HINT}, or a folder of them"
        )
    names = subject_names(root, files)
    recs = [_recording(f, fmt.channels, acc_scale, n) for f, n in zip(files, names, strict=True)]
    provenance = {
        "importer": "bami",
        "path": str(root.resolve()),
        "native_rate_hz": RATE_HZ,
        "ppg": "mean of the 3 rawPPG rows, sensor counts",
        "acc": f"(rawAcc - 32768) * {acc_scale:g} g per count"
        + (" (assumed default)" if acc_scale == DEFAULT_ACC_SCALE else ""),
        "labels": "bpm_ecg value k covers [2k, 2k+8) s: centre 2k+4 s",
        "subjects": "bami_<file stem> (bami_<sub-folder>_<stem> where stems repeat)",
        "files": [str(f.relative_to(root)) if root.is_dir() else f.name for f in files],
    }
    return window_recordings(
        recs, fmt, source="bami", provenance=provenance, drop_out_of_range=drop_out_of_range
    )
