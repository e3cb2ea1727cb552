"""PPG-DaLiA subject pickles (``SX/SX.pkl``), read with the restricted unpickler.

Each file is a Python 2 pickle of a dict; the parts used here::

    signal/wrist/BVP   (N, 1)  64 Hz   wrist PPG (Empatica E4)
    signal/wrist/ACC   (M, 3)  32 Hz   wrist accelerometer in 1/64 g  -> divided by 64 (g)
    label              (K,)            ECG heart rate per 8 s window, 2 s shift: centre 2k + 4 s
    activity           (A, 1)  4 Hz    codes 0..8 (0 = transient between activities)
    subject            str             e.g. "S1" -> subject id "dalia_s01"

The files are never unpickled unrestricted (:mod:`ppgedge.data.safe_pickle`): a pickle can
run code, and these are downloaded from the internet.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ppgedge.data.format import DataFormat, WindowedData
from ppgedge.data.importers._common import (
    existing_path,
    natural_key,
    need_acc,
    reference_series,
    reference_times,
    segments_from_codes,
)
from ppgedge.data.safe_pickle import DEFAULT_MAX_BYTES, safe_load
from ppgedge.data.windowing import Recording, window_recordings
from ppgedge.errors import PpgedgeError

BVP_RATE_HZ = 64.0
ACC_RATE_HZ = 32.0
ACTIVITY_RATE_HZ = 4.0
ACC_COUNTS_PER_G = 64.0
ACTIVITIES = {
    0: "transient",
    1: "sitting",
    2: "stairs",
    3: "table_soccer",
    4: "cycling",
    5: "driving",
    6: "lunch",
    7: "walking",
    8: "working",
}
CITATION = (
    'A. Reiss, I. Indlekofer, P. Schmidt, K. Van Laerhoven, "Deep PPG: Large-scale heart rate '
    'estimation with convolutional neural networks", Sensors 19(14), 2019'
)


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    files = sorted({*root.glob("*.pkl"), *root.glob("*/*.pkl")}, key=natural_key)
    if not files:
        raise PpgedgeError(
            f"{root}: no .pkl files: pass the PPG_FieldStudy folder (SX/SX.pkl) or one SX.pkl"
        )
    return files


def _get(d: Any, keys: tuple[str, ...], path: Path) -> Any:
    """``d[k0][k1]...`` with a message naming the missing key."""
    node = d
    for i, k in enumerate(keys):
        if not isinstance(node, dict) or k not in node:
            where = "/".join(keys[: i + 1])
            raise PpgedgeError(
                f"{path}: missing '{where}': not a PPG-DaLiA subject file "
                "(expected signal/wrist/BVP, signal/wrist/ACC, label, activity)"
            )
        node = node[k]
    return node


def _numeric(value: Any, path: Path, name: str, ndim_cols: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):  # ragged lists of arrays: not one numeric array
        raise PpgedgeError(f"{path}: '{name}' is not one numeric array (ragged lists)") from None
    if arr.dtype.kind not in "biuf":
        raise PpgedgeError(f"{path}: '{name}' is {arr.dtype} data, not numbers")
    arr = arr.astype(np.float64)
    if ndim_cols is not None:
        if arr.ndim == 1 and ndim_cols == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] != ndim_cols:
            raise PpgedgeError(f"{path}: '{name}' has shape {arr.shape}, expected (N, {ndim_cols})")
    return arr


def _subject_id(raw: Any, path: Path) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("latin1")
    name = str(raw).strip() if raw is not None else ""
    if not name:
        name = path.stem
    m = re.fullmatch(r"[Ss](\d+)", name)
    return f"dalia_s{int(m[1]):02d}" if m else f"dalia_{name.lower()}"


def _recording(path: Path, channels: tuple[str, ...], max_bytes: int) -> Recording:
    data = safe_load(path, encoding="latin1", max_bytes=max_bytes)
    if not isinstance(data, dict):
        raise PpgedgeError(
            f"{path}: holds a {type(data).__name__}, not a dict: not a PPG-DaLiA subject file"
        )
    signals: dict[str, tuple[np.ndarray, float]] = {}
    if "ppg" in channels:
        bvp = _numeric(_get(data, ("signal", "wrist", "BVP"), path), path, "BVP", 1)
        signals["ppg"] = (bvp[:, 0], BVP_RATE_HZ)
    if need_acc(channels):
        acc = _numeric(_get(data, ("signal", "wrist", "ACC"), path), path, "ACC", 3)
        acc = acc / ACC_COUNTS_PER_G
        for i, c in enumerate(("acc_x", "acc_y", "acc_z")):
            signals[c] = (acc[:, i], ACC_RATE_HZ)
    labels = reference_series(_numeric(_get(data, ("label",), path), path, "label"), path, "label")
    segments = []
    if "activity" in data:
        codes = _numeric(data["activity"], path, "activity")
        segments = segments_from_codes(codes, ACTIVITY_RATE_HZ, ACTIVITIES, path)
    return Recording(
        name=path.stem,
        subject=_subject_id(data.get("subject"), path),
        signals=signals,
        labels_bpm=labels,
        label_times_s=reference_times(labels.size),
        activity_segments=segments,
    )


def import_dalia(
    path: str | Path,
    fmt: DataFormat,
    *,
    drop_out_of_range: bool = False,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> WindowedData:
    """Import PPG-DaLiA: a folder of ``SX/SX.pkl`` or ``SX.pkl`` files, or one file."""
    root = existing_path(path, "the PPG-DaLiA folder or an SX.pkl file")
    recs = [_recording(f, fmt.channels, int(max_bytes)) for f in _files(root)]
    provenance = {
        "importer": "dalia",
        "path": str(root.resolve()),
        "ppg": "wrist BVP (Empatica E4), 64 Hz",
        "acc": "wrist ACC, 32 Hz, 1/64 g counts divided by 64 -> g",
        "labels": "label k is the ECG heart rate of the 8 s window starting at 2k s: centre 2k+4 s",
        "activities": "4 Hz codes 0..8 -> " + ", ".join(ACTIVITIES.values()),
        "citation": CITATION,
    }
    return window_recordings(
        recs, fmt, source="ppg-dalia", provenance=provenance, drop_out_of_range=drop_out_of_range
    )
