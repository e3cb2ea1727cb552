"""Generic layout for your own recordings: NPZ or CSV, one file per recording.

``path`` is one recording file or a folder; every ``*.npz`` and ``*.csv`` in the folder
(not its subfolders) is a recording, except ``*.labels.csv`` sidecars. All times are in
seconds from the recording's first sample. Only the channels being imported are required:
a PPG-only import (``channels="ppg"``) needs no accelerometer data, an ACC-only one no PPG.

NPZ (``numpy.savez``; read with ``allow_pickle=False``, so no object arrays)
---------------------------------------------------------------------------
=====================  =========  ===========================================================
key                    shape      meaning
=====================  =========  ===========================================================
``ppg``                (N,)       PPG samples, any unit (windows are z-scored for the models)
``acc``                (M, 3)     accelerometer x, y, z, in g
``rate_hz``            scalar     sample rate of both ``ppg`` and ``acc``, or instead:
``ppg_rate_hz``        scalar     sample rate of ``ppg``
``acc_rate_hz``        scalar     sample rate of ``acc``
``hr_bpm``             (K,)       reference heart rate, BPM, one value per reference window
``hr_times_s``         (K,)       centre time of each reference window, increasing
``beat_times_s``       (B,)       alternative to ``hr_bpm``: reference beat times, increasing
``subject``            scalar     optional subject id string (overrides ``subject_from``)
``activity``           (S,) str   optional activity name per segment
``activity_start_s``   (S,)       segment start, seconds (inclusive)
``activity_end_s``     (S,)       segment end, seconds (exclusive)
=====================  =========  ===========================================================

With ``hr_bpm`` the label of a window is the reference interpolated at the window centre
(exact when the reference is on the same 8 s / 2 s grid); with ``beat_times_s`` it is
60 / mean inter-beat interval inside the window.

CSV
---
``<stem>.csv``: a header row, then one row per sample; columns in any order, others ignored::

    time_s,ppg,acc_x,acc_y,acc_z

The sample rate is inferred from ``time_s``, which must be increasing and uniform: every
interval within 1% of the mean interval (write ``time_s`` with enough decimals).

``<stem>.labels.csv`` beside it: ``time_s,hr_bpm`` with one row per reference window
(``time_s`` = window centre, same clock as the signal's ``time_s``) and an optional
``activity`` column naming the activity of that window (empty = unknown).

Subjects
--------
``subject_from="stem"`` (default): the subject id is the file stem, so one file per subject.
``subject_from="prefix"``: the part of the stem before the first ``_``, so ``s01_walk.csv`` and
``s01_run.npz`` are both subject ``s01`` and stay on the same side of a subject-wise split.
"""

from __future__ import annotations

import csv
import math
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ppgedge.data.format import DataFormat, WindowedData
from ppgedge.data.importers._common import ACC_CHANNELS, existing_path, natural_key, need_acc
from ppgedge.data.windowing import Recording, window_recordings
from ppgedge.errors import PpgedgeError

SUBJECT_FROM = ("stem", "prefix")
RATE_TOLERANCE = 0.01
LABELS_SUFFIX = ".labels.csv"


def _subject(stem: str, subject_from: str) -> str:
    return stem.split("_", 1)[0] if subject_from == "prefix" else stem


def _increasing(t: np.ndarray, path: Path, name: str) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64).ravel()
    if t.size == 0:
        raise PpgedgeError(f"{path}: '{name}' is empty")
    if not np.isfinite(t).all():
        raise PpgedgeError(f"{path}: '{name}' contains NaN or inf: fix the times")
    if t.size > 1 and not (np.diff(t) > 0).all():
        raise PpgedgeError(f"{path}: '{name}' must be strictly increasing: sort the rows")
    return t


def _rate(value: Any, path: Path, name: str) -> float:
    try:
        rate = float(np.asarray(value).item())
    except (TypeError, ValueError):
        raise PpgedgeError(f"{path}: '{name}' must be one number (Hz)") from None
    if not np.isfinite(rate) or rate <= 0:
        raise PpgedgeError(f"{path}: '{name}' is {rate}, expected a positive rate in Hz")
    return rate


def _numeric(value: np.ndarray, path: Path, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise PpgedgeError(f"{path}: '{name}' is {arr.dtype} data, not numbers")
    return arr.astype(np.float64)


# ------------------------------------------------------------------------------------ NPZ


NPZ_KEYS = frozenset(
    {
        "ppg", "acc", "rate_hz", "ppg_rate_hz", "acc_rate_hz", "hr_bpm", "hr_times_s",
        "beat_times_s", "subject", "activity", "activity_start_s", "activity_end_s",
    }
)  # fmt: skip
# Decompressed bytes one NPZ file may hold (all members together): 128 MiB, or 8 times the file's
# size for larger files. A recording expands about 5x in memory while it is windowed, so this
# keeps any file of a few MB under 1 GB; 128 MiB of float64 is 70 hours of PPG at 64 Hz.
MAX_NPZ_INFLATED = 128 << 20
MAX_NPZ_RATIO = 8
MAX_NPZ_MEMBERS = 256
_NPZ_CHUNK = 1 << 20


def _npz_limit(path: Path) -> int:
    return max(MAX_NPZ_INFLATED, MAX_NPZ_RATIO * path.stat().st_size)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """The layout's arrays from an NPZ, read with every size checked before it is allocated.

    ``numpy.load`` trusts a member's header (it allocates the shape it claims) and inflates
    whatever a member holds, so a 2 MB file could take gigabytes. Here the members' declared
    sizes together must stay under :func:`_npz_limit`, a header must not claim more data than
    its member declares, and reading stops at that size (``zipfile`` never returns more than a
    member declares). Members outside the layout are never decompressed.
    """
    if not zipfile.is_zipfile(path):
        raise PpgedgeError(
            f"{path}: not a readable .npz (not a zip archive): save it with numpy.savez"
        )
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_NPZ_MEMBERS:
                raise PpgedgeError(
                    f"{path}: {len(infos)} arrays in one .npz, at most {MAX_NPZ_MEMBERS}: "
                    "save only the arrays of the generic layout"
                )
            declared, limit = sum(i.file_size for i in infos), _npz_limit(path)
            if declared > limit:
                raise PpgedgeError(
                    f"{path}: decompresses to {declared / 2**20:,.0f} MiB, over the "
                    f"{limit / 2**20:,.0f} MiB limit for this file (a compression bomb, or a "
                    "recording to split into several files)"
                )
            out: dict[str, np.ndarray] = {}
            for info in infos:
                key = info.filename.removesuffix(".npy")
                if key in NPZ_KEYS and key not in out:
                    out[key] = _npz_member(zf, info, path)
            return out
    except PpgedgeError:
        raise
    except ValueError as exc:
        raise PpgedgeError(
            f"{path}: not a readable .npz ({str(exc)[:160]}): re-save with numpy.savez"
        ) from None
    except (
        OSError,
        EOFError,
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        KeyError,
        RuntimeError,  # an encrypted member
        NotImplementedError,  # an unknown compression method
        zlib.error,
        SyntaxError,  # numpy parses a corrupt .npy header with ast/tokenize
        tokenize.TokenError,
        MemoryError,
    ) as exc:
        raise PpgedgeError(
            f"{path}: not a readable .npz ({exc.__class__.__name__}): re-save with numpy.savez"
        ) from None


def _npz_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """One ``.npy`` member: header first, then exactly the bytes it needs, chunk by chunk."""
    fmt = np.lib.format
    name = info.filename
    with zf.open(info) as fh:
        version = fmt.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fh)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(fh)
        else:
            raise ValueError(f"'{name}' is .npy version {version}, expected 1.0 or 2.0")
        if dtype.hasobject:
            raise PpgedgeError(
                f"{path}: holds object (pickled) arrays, which are refused: save plain numeric "
                "arrays and str arrays"
            )
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if max(count, nbytes) > info.file_size:
            raise ValueError(
                f"'{name}' claims shape {shape} of {dtype}, more than its {info.file_size} bytes"
            )
        raw = np.empty(nbytes, np.uint8)
        pos = 0
        while pos < nbytes:
            chunk = fh.read(min(_NPZ_CHUNK, nbytes - pos))
            if not chunk:
                raise ValueError(f"'{name}' is truncated ({pos} of {nbytes} data bytes)")
            raw[pos : pos + len(chunk)] = np.frombuffer(chunk, np.uint8)
            pos += len(chunk)
    if dtype.itemsize == 0:
        return np.zeros(shape, dtype)
    return raw.view(dtype).reshape(shape, order="F" if fortran else "C")


def _npz_recording(path: Path, channels: tuple[str, ...], subject_from: str) -> Recording:
    z = _load_npz(path)

    def need(key: str, why: str) -> np.ndarray:
        if key not in z:
            raise PpgedgeError(
                f"{path}: missing array '{key}' ({why}): add it (see the generic layout in "
                "ppgedge.data.importers.generic)"
            )
        return z[key]

    def rate_for(kind: str) -> float:
        key = f"{kind}_rate_hz"
        if key in z:
            return _rate(z[key], path, key)
        if "rate_hz" in z:
            return _rate(z["rate_hz"], path, "rate_hz")
        raise PpgedgeError(f"{path}: missing 'rate_hz' (or '{key}'): add the sample rate in Hz")

    signals: dict[str, tuple[np.ndarray, float]] = {}
    if "ppg" in channels:
        ppg = _numeric(need("ppg", "the PPG channel is being imported"), path, "ppg")
        if ppg.ndim != 1:
            raise PpgedgeError(f"{path}: 'ppg' has shape {ppg.shape}, expected (N,)")
        signals["ppg"] = (ppg, rate_for("ppg"))
    if need_acc(channels):
        acc = _numeric(
            need(
                "acc",
                "accelerometer channels are being imported; import with "
                "channels ppg if the recording has none",
            ),
            path,
            "acc",
        )
        if acc.ndim != 2 or acc.shape[1] != 3:
            raise PpgedgeError(f"{path}: 'acc' has shape {acc.shape}, expected (N, 3)")
        rate = rate_for("acc")
        for i, c in enumerate(ACC_CHANNELS):
            signals[c] = (acc[:, i], rate)

    labels: dict[str, Any] = {}
    if "beat_times_s" in z:
        labels["beat_times_s"] = _increasing(z["beat_times_s"], path, "beat_times_s")
    elif "hr_bpm" in z:
        hr = _numeric(z["hr_bpm"], path, "hr_bpm").ravel()
        times = _increasing(need("hr_times_s", "centre times of hr_bpm"), path, "hr_times_s")
        if hr.size != times.size:
            raise PpgedgeError(
                f"{path}: hr_bpm has {hr.size} values but hr_times_s {times.size}: "
                "give one centre time per value"
            )
        labels["labels_bpm"], labels["label_times_s"] = hr, times
    else:
        raise PpgedgeError(f"{path}: no reference: add 'hr_bpm' + 'hr_times_s' or 'beat_times_s'")

    segments: list[tuple[float, float, str]] = []
    if "activity" in z:
        names = np.asarray(z["activity"]).ravel()
        if names.dtype.kind not in "US":
            raise PpgedgeError(f"{path}: 'activity' must be an array of strings")
        start = _numeric(
            need("activity_start_s", "start of each activity"), path, "activity_start_s"
        ).ravel()
        end = _numeric(
            need("activity_end_s", "end of each activity"), path, "activity_end_s"
        ).ravel()
        if not names.size == start.size == end.size:
            raise PpgedgeError(
                f"{path}: activity, activity_start_s and activity_end_s differ in length"
            )
        for n, s, e in zip(names, start, end, strict=True):
            text = n.decode() if isinstance(n, bytes) else str(n)
            segments.append((float(s), float(e), text))

    subject = _subject(path.stem, subject_from)
    if "subject" in z:
        raw = np.asarray(z["subject"])
        if raw.dtype.kind not in "US" or raw.size != 1:
            raise PpgedgeError(f"{path}: 'subject' must be one string")
        subject = str(raw.ravel()[0])
    return Recording(
        name=path.stem, subject=subject, signals=signals, activity_segments=segments, **labels
    )


# ------------------------------------------------------------------------------------ CSV


def _read_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PpgedgeError(f"{path}: cannot read as CSV ({exc.__class__.__name__})") from None
    if not header:
        raise PpgedgeError(f"{path}: empty file: expected a header row time_s,ppg,...")
    return [h.strip() for h in header]


def _csv_signal(path: Path, channels: tuple[str, ...]) -> tuple[np.ndarray, list[str], float]:
    header = _read_header(path)
    wanted = ["time_s", *channels]
    missing = [c for c in wanted if c not in header]
    if missing:
        extra = " or import with channels ppg" if set(missing) <= set(ACC_CHANNELS) else ""
        raise PpgedgeError(
            f"{path}: missing column(s) {', '.join(missing)}: the header must name "
            f"time_s,{','.join(channels)}{extra}"
        )
    try:
        data = np.loadtxt(
            path,
            delimiter=",",
            skiprows=1,
            usecols=[header.index(c) for c in wanted],
            dtype=np.float64,
            ndmin=2,
            encoding="utf-8",
        )
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        msg = str(exc).splitlines()[0][:120] if str(exc) else exc.__class__.__name__
        raise PpgedgeError(f"{path}: bad CSV data ({msg}): every row needs numbers") from None
    if data.shape[0] < 2:
        raise PpgedgeError(f"{path}: fewer than 2 samples: nothing to window")
    t = _increasing(data[:, 0], path, "time_s")
    dt = (t[-1] - t[0]) / (t.size - 1)
    dev = np.abs(np.diff(t) - dt) / dt
    if dev.max() > RATE_TOLERANCE:
        row = int(np.argmax(dev)) + 2
        raise PpgedgeError(
            f"{path}: time_s is not uniform (interval off by {100 * dev.max():.1f}% near data "
            f"row {row}, limit 1%): resample to a constant rate or write time_s with more decimals"
        )
    return data, wanted, float(t[0])


def _csv_labels(
    path: Path, t0: float
) -> tuple[np.ndarray, np.ndarray, list[tuple[float, float, str]]]:
    sidecar = path.with_name(path.stem + LABELS_SUFFIX)
    if not sidecar.is_file():
        raise PpgedgeError(
            f"{path}: no labels file {sidecar.name} beside it: add one with columns time_s,hr_bpm"
        )
    try:
        with open(sidecar, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, skipinitialspace=True)
            fields = [f.strip() for f in (reader.fieldnames or [])]
            rows = [{k.strip(): v for k, v in r.items() if isinstance(k, str)} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PpgedgeError(f"{sidecar}: cannot read as CSV ({exc.__class__.__name__})") from None
    if "time_s" not in fields or "hr_bpm" not in fields:
        raise PpgedgeError(
            f"{sidecar}: header must include time_s,hr_bpm (and optionally activity)"
        )
    if not rows:
        raise PpgedgeError(f"{sidecar}: no label rows")
    try:
        times = np.array([float(r["time_s"]) for r in rows]) - t0
        hr = np.array([float(r["hr_bpm"]) for r in rows])
    except (TypeError, ValueError):
        raise PpgedgeError(f"{sidecar}: time_s and hr_bpm must be numbers on every row") from None
    times = _increasing(times, sidecar, "time_s")
    segments: list[tuple[float, float, str]] = []
    if "activity" in fields:
        # each label's activity holds from halfway to the previous label to halfway to the next
        mids = (times[1:] + times[:-1]) / 2
        starts = np.concatenate([[-np.inf], mids])
        ends = np.concatenate([mids, [np.inf]])
        for r, s, e in zip(rows, starts, ends, strict=True):
            name = (r.get("activity") or "").strip()
            if name:
                segments.append((float(s), float(e), name))
    return hr, times, segments


def _csv_recording(path: Path, channels: tuple[str, ...], subject_from: str) -> Recording:
    data, cols, t0 = _csv_signal(path, channels)
    t = data[:, 0]
    rate = (t.size - 1) / (t[-1] - t[0])
    signals = {c: (data[:, cols.index(c)], rate) for c in channels}
    hr, times, segments = _csv_labels(path, t0)
    return Recording(
        name=path.stem,
        subject=_subject(path.stem, subject_from),
        signals=signals,
        labels_bpm=hr,
        label_times_s=times,
        activity_segments=segments,
    )


# ------------------------------------------------------------------------------------ entry


def _files(root: Path) -> list[Path]:
    def is_recording(p: Path) -> bool:
        return p.suffix in (".npz", ".csv") and not p.name.endswith(LABELS_SUFFIX)

    if root.is_file():
        if not is_recording(root):
            raise PpgedgeError(
                f"{root}: not a recording: pass a .npz or a .csv (with <stem>.labels.csv beside it)"
            )
        return [root]
    files = sorted((p for p in root.iterdir() if p.is_file() and is_recording(p)), key=natural_key)
    if not files:
        raise PpgedgeError(f"{root}: no .npz or .csv recordings in this folder")
    return files


def import_generic(
    path: str | Path,
    fmt: DataFormat,
    *,
    drop_out_of_range: bool = False,
    subject_from: str = "stem",
) -> WindowedData:
    """Import recordings in the generic NPZ / CSV layout described in this module's docstring."""
    if subject_from not in SUBJECT_FROM:
        raise PpgedgeError(
            f"unknown subject_from '{subject_from}': use one of {', '.join(SUBJECT_FROM)}"
        )
    root = existing_path(path, "a .npz / .csv recording or a folder of them")
    recs = []
    for f in _files(root):
        load = _npz_recording if f.suffix == ".npz" else _csv_recording
        recs.append(load(f, fmt.channels, subject_from))
    provenance = {
        "importer": "generic",
        "path": str(root.resolve()),
        "subject_from": subject_from,
        "labels": "hr_bpm interpolated at window centres, or 60 / mean IBI of beat_times_s",
    }
    return window_recordings(
        recs, fmt, source="generic", provenance=provenance, drop_out_of_range=drop_out_of_range
    )
