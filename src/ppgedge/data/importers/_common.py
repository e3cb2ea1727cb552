"""Helpers the importers share: path checks, guarded .mat loading, label grids, activities."""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ppgedge.data.importers.mat_guard import MatStructureError, check_mat_structure
from ppgedge.errors import PpgedgeError

ACC_CHANNELS = ("acc_x", "acc_y", "acc_z")


def existing_path(path: str | Path, what: str) -> Path:
    """``path`` as a Path, or a PpgedgeError saying it is missing."""
    p = Path(path).expanduser()
    if not p.exists():
        raise PpgedgeError(f"{p}: no such file or directory: pass the path to {what}")
    return p


def natural_key(path: Path) -> list[Any]:
    """Sort S2 before S10 so subject order is stable and human-looking."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def load_mat(path: Path, variables: Sequence[str], *, hint: str) -> dict[str, np.ndarray]:
    """``scipy.io.loadmat`` with every failure turned into a one-line PpgedgeError.

    ``hint`` names the expected format, so a wrong file gets a message that says what was
    expected rather than a scipy traceback.
    """
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    if not path.is_file():
        raise PpgedgeError(f"{path}: no such file: pass {hint}")
    try:  # scipy's reader can crash the process on corrupt tags: check them first
        check_mat_structure(path.read_bytes())
    except (MatStructureError, OSError) as exc:
        raise PpgedgeError(f"{path}: not a readable .mat file ({exc}): expected {hint}") from None
    try:
        mat = loadmat(path, variable_names=list(variables))
    except NotImplementedError:
        raise PpgedgeError(
            f"{path}: MATLAB v7.3 (HDF5) files are not supported: re-save it in MATLAB "
            "with save(..., '-v7')"
        ) from None
    except (
        MatReadError,
        ValueError,
        TypeError,
        OSError,
        EOFError,
        KeyError,
        IndexError,
        zlib.error,
        MemoryError,
        UnicodeError,
        AssertionError,
    ) as exc:
        msg = str(exc).splitlines()[0][:120] if str(exc) else exc.__class__.__name__
        raise PpgedgeError(f"{path}: not a readable .mat file ({msg}): expected {hint}") from None
    missing = [v for v in variables if v not in mat]
    if missing:
        raise PpgedgeError(f"{path}: missing variable(s) {', '.join(missing)}: expected {hint}")
    out: dict[str, np.ndarray] = {}
    for v in variables:
        arr = np.asarray(mat[v])
        if arr.dtype.kind not in "biuf":
            raise PpgedgeError(
                f"{path}: variable '{v}' is {arr.dtype} data, not numbers: expected {hint}"
            )
        out[v] = arr
    return out


def reference_times(n: int, window_s: float = 8.0, hop_s: float = 2.0) -> np.ndarray:
    """Centres of reference windows k covering [hop*k, hop*k + window): hop*k + window/2."""
    return np.arange(n, dtype=np.float64) * hop_s + window_s / 2


def reference_series(values: np.ndarray, path: Path, name: str) -> np.ndarray:
    """A 1-D float reference series; empty or non-1-D data is an error."""
    y = np.asarray(values, dtype=np.float64)
    if y.ndim > 1 and sorted(y.shape)[:-1] != [1] * (y.ndim - 1):
        raise PpgedgeError(f"{path}: '{name}' has shape {y.shape}, expected one value per window")
    y = y.ravel()
    if y.size == 0:
        raise PpgedgeError(f"{path}: '{name}' is empty: the file has no reference heart rate")
    return y


def segments_from_codes(
    codes: np.ndarray, rate_hz: float, names: dict[int, str], path: Path
) -> list[tuple[float, float, str]]:
    """Run-length encode a per-sample activity code series into (start_s, end_s, name)."""
    c = np.asarray(codes).ravel()
    if c.size == 0:
        return []
    if not np.isfinite(c.astype(np.float64)).all():
        raise PpgedgeError(f"{path}: activity codes contain NaN: expected integer codes")
    c = c.astype(np.int64)
    unknown = sorted(set(np.unique(c).tolist()) - set(names))
    if unknown:
        raise PpgedgeError(
            f"{path}: unknown activity code(s) {unknown}: expected {min(names)}..{max(names)}"
        )
    edges = np.flatnonzero(np.diff(c)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [c.size]])
    return [(s / rate_hz, e / rate_hz, names[int(c[s])]) for s, e in zip(starts, ends, strict=True)]


def need_acc(channels: Iterable[str]) -> bool:
    return any(c in ACC_CHANNELS for c in channels)
