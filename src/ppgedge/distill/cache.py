"""Teacher logits over a whole dataset, computed once and cached on disk.

A large teacher is the slowest part of logit distillation, and its outputs never change while the
teacher and the data stay the same: every student, method and seed distilled from one teacher on
one dataset reads the same ``(N, 180)`` float32 array. Rows are in dataset order and cover every
window, so any split indexes them directly.

The key hashes the teacher's content, the dataset's content, the channels and preprocessing the
teacher is fed and :data:`CACHE_VERSION`; a changed file gets a new key, never a stale hit. Files
are written atomically and checked (shape, dtype) on every read: a corrupt or truncated file is
recomputed, not trusted.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ppgedge.atomic import atomic_path
from ppgedge.data.fingerprint import dataset_sha256
from ppgedge.data.format import Dataset
from ppgedge.data.loader import WindowSource
from ppgedge.distill.teachers import Teacher, check_teacher_matches
from ppgedge.errors import PpgedgeError
from ppgedge.models.bpm import N_CLASSES

CACHE_VERSION = "ppgedge.teacher-logits/1"
CACHE_SUBDIR = "teacher-logits"


@dataclass
class CacheResult:
    """The logits (memory-mapped, read-only), whether they came from the cache, and the file."""

    logits: np.ndarray  # float32 (N, 180)
    hit: bool
    path: Path


def default_cache_dir() -> Path:
    """``$PPGEDGE_CACHE/teacher-logits``, else ``$XDG_CACHE_HOME`` or ``~/.cache`` + ppgedge."""
    root = os.environ.get("PPGEDGE_CACHE")
    if root:
        return Path(root).expanduser() / CACHE_SUBDIR
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ppgedge" / CACHE_SUBDIR


def cache_key(teacher: Teacher, dataset: Dataset) -> str:
    """What the logits depend on: teacher bytes, data bytes, the input the teacher is fed."""
    fmt = teacher.data_format
    parts = [
        CACHE_VERSION,
        teacher.sha256,
        dataset_sha256(dataset.path),
        ",".join(fmt.channels),
        fmt.preprocessing,
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def _read(path: Path, n: int) -> np.ndarray | None:
    """The cached array if it is intact, else None (missing, unreadable, wrong shape/dtype)."""
    if not path.is_file():
        return None
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if arr.shape != (n, N_CLASSES) or arr.dtype != np.float32:
        return None
    return arr


def teacher_logits(
    teacher: Teacher,
    dataset: Dataset,
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
) -> CacheResult:
    """Logits of ``teacher`` for every window of ``dataset``, in order, from cache when possible."""
    check_teacher_matches(teacher, dataset)
    n = len(dataset)
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / f"{cache_key(teacher, dataset)}.npy"
    cached = _read(path, n)
    if cached is not None:
        return CacheResult(cached, True, path)

    fmt = teacher.data_format
    source = WindowSource(dataset, np.arange(n), fmt.channels, preprocessing=fmt.preprocessing)
    teacher.to(device)
    try:
        with atomic_path(path) as tmp:
            # written straight into a memory map, so a dataset larger than RAM still fits
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, N_CLASSES))
            for pos, x, _ in source.batches(batch_size):
                logits = teacher.logits(x.to(device)).cpu().numpy()
                if not np.isfinite(logits).all():
                    raise PpgedgeError(
                        f"teacher {teacher.path} gave NaN/inf logits on windows "
                        f"{int(pos[0])}-{int(pos[-1])} of {dataset.path}: the teacher is broken "
                        "or does not take this data's preprocessing"
                    )
                out[pos] = logits
            out.flush()
            del out
    except OSError as exc:
        raise PpgedgeError(
            f"{directory}: cannot write the teacher-logits cache ({exc.strerror or exc}): "
            "set PPGEDGE_CACHE to a writable directory"
        ) from None
    result = _read(path, n)
    if result is None:  # only if the file vanished or was clobbered between write and read
        raise PpgedgeError(f"{path}: teacher-logits cache unreadable right after writing it")
    return CacheResult(result, False, path)
