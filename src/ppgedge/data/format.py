"""The one dataset format every stage reads.

A dataset is a directory (by convention ``NAME.ppgds``) of plain ``.npy`` arrays plus
``meta.json``; no pickles anywhere, and the window array is memory-mapped so training streams
from disk instead of loading everything into RAM::

    meta.json       schema, source, data format (rate, window, hop, channels), names, provenance
    x.npy           float32 (N, C, T)  windows at the common rate, physical units, not normalised
    y.npy           float32 (N,)       reference heart rate per window, BPM
    subject.npy     int32   (N,)       index into meta["subjects"]
    activity.npy    int16   (N,)       index into meta["activities"], -1 when unknown
    recording.npy   int32   (N,)       index into meta["recordings"]
    start_s.npy     float32 (N,)       window start within its recording, seconds

The per-window normalisation the models see (:mod:`ppgedge.data.preprocess`) is applied when
batches are drawn, so the stored data stays in sensor units and one dataset serves every
preprocessing choice.
"""

from __future__ import annotations

import json
import math
import os
import re
import tokenize
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ppgedge.atomic import atomic_path
from ppgedge.errors import PpgedgeError
from ppgedge.ownership import DATASET

SCHEMA = "ppgedge.dataset/1"
ALL_CHANNELS: tuple[str, ...] = ("ppg", "acc_x", "acc_y", "acc_z")
CHANNEL_GROUPS: dict[str, tuple[str, ...]] = {
    "all": ALL_CHANNELS,
    "ppg": ("ppg",),
    "acc": ("acc_x", "acc_y", "acc_z"),
}
BPM_MIN, BPM_MAX = 30, 209  # inclusive: 180 classes, one per BPM
ARRAYS = ("x", "y", "subject", "activity", "recording", "start_s")

# Limits on what a dataset folder from elsewhere may claim, checked when it is opened.
META_MAX_BYTES = 64 << 20  # meta.json: names and provenance, never array data
META_MAX_DEPTH = 32  # nesting of meta.json (provenance is a few levels deep)
MAX_RATE_HZ = 10_000.0  # as the run config: no wrist PPG is sampled faster
MAX_WINDOW_SAMPLES = 1 << 20
NAME_MAX_CHARS = 128
# subject names are typed into --split specs (holdout:test=a,b;val=c, loso:NAME) and printed in
# CI logs: word characters and . + @ - only (no spaces, separators, brackets or controls)
SUBJECT_NAME = re.compile(r"[\w.+@-]+")
SCAN_CHUNK_BYTES = 16 << 20  # samples are checked for NaN/inf this much at a time


def check_format(fmt: DataFormat, where: str) -> DataFormat:
    """Refuse a data format no model can use: non-finite or non-positive rate, window or hop,
    fewer than 8 samples per window or 1 per hop, unknown or repeated channels."""
    from ppgedge.data.preprocess import KNOWN

    for key in ("sample_rate_hz", "window_s", "hop_s"):
        value = getattr(fmt, key)
        if not math.isfinite(value) or value <= 0:
            raise PpgedgeError(f"{where}: {key} {value!r} must be a finite positive number")
    if fmt.sample_rate_hz > MAX_RATE_HZ:
        raise PpgedgeError(f"{where}: sample_rate_hz {fmt.sample_rate_hz:g} is above 10 kHz")
    if not 8 <= fmt.window_samples <= MAX_WINDOW_SAMPLES or fmt.hop_samples < 1:
        raise PpgedgeError(
            f"{where}: {fmt.window_s:g} s windows and {fmt.hop_s:g} s hops at "
            f"{fmt.sample_rate_hz:g} Hz must give 8 to {MAX_WINDOW_SAMPLES} samples per window "
            "and at least 1 per hop"
        )
    chans = fmt.channels
    if not chans or len(set(chans)) != len(chans) or any(c not in ALL_CHANNELS for c in chans):
        raise PpgedgeError(
            f"{where}: channels {list(chans)!r} must be distinct names among "
            f"{', '.join(ALL_CHANNELS)}"
        )
    if fmt.preprocessing not in KNOWN:
        raise PpgedgeError(
            f"{where}: unknown preprocessing {fmt.preprocessing!r} (this version knows "
            f"{', '.join(KNOWN)})"
        )
    return fmt


def check_names(kind: str, names: Sequence[object], where: str) -> list[str]:
    """Subject, activity and recording names: strings, 1-128 printable characters; subject
    names also safe to type in a --split spec. They reach terminals, CI logs and reports."""
    from ppgedge.textsafe import is_printable

    out: list[str] = []
    for name in names:
        ok = isinstance(name, str) and 0 < len(name) <= NAME_MAX_CHARS and is_printable(name)
        if ok and kind == "subject":
            ok = SUBJECT_NAME.fullmatch(name) is not None
        if not ok:
            rule = (
                "letters, digits and . _ + @ - only"
                if kind == "subject"
                else "printable characters only"
            )
            shown = repr(name)[:80]
            raise PpgedgeError(
                f"{where}: {kind} name {shown} is not allowed (1-{NAME_MAX_CHARS} characters, "
                f"{rule}): rename it at the source and re-create the dataset"
            )
        out.append(name)
    if kind == "subject" and len(set(out)) != len(out):
        raise PpgedgeError(f"{where}: {kind} names are not unique: re-create the dataset")
    return out


def _depth(obj: object, limit: int) -> bool:
    """True when ``obj`` nests lists and dicts at most ``limit`` deep (iterative: a hostile
    document cannot exhaust the stack)."""
    stack = [(obj, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth >= limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((c, depth + 1) for c in children)
    return True


def count_non_finite_windows(x: np.ndarray, file: Path) -> int:
    """Windows of ``x`` (N, C, T) holding a NaN or inf, read ``SCAN_CHUNK_BYTES`` at a time.

    A memory-mapped ``.npy`` is read with ``pread`` into one reused buffer: touching the map
    itself would make every page resident in this process (see :mod:`ppgedge.data.loader`), so a
    dataset larger than RAM is checked in bounded memory."""
    n = int(x.shape[0])
    if n == 0:
        return 0
    row_items = math.prod(x.shape[1:])
    row_bytes = max(1, row_items * x.dtype.itemsize)
    rows = max(1, SCAN_CHUNK_BYTES // row_bytes)
    bad = 0
    offset = getattr(x, "offset", None)
    if isinstance(x, np.memmap) and x.flags.c_contiguous and offset is not None:
        buf = np.empty(rows * row_items, dtype=x.dtype)
        raw = memoryview(buf).cast("B")
        fd = os.open(file, os.O_RDONLY)
        try:
            for start in range(0, n, rows):
                k = min(rows, n - start)
                want = k * row_bytes
                got = os.preadv(fd, [raw[:want]], int(offset) + start * row_bytes)
                if got != want:
                    raise PpgedgeError(f"{file}: truncated (short read): re-create the dataset")
                chunk = buf[: k * row_items].reshape(k, row_items)
                bad += int((~np.isfinite(chunk)).any(axis=1).sum())
        finally:
            os.close(fd)
        return bad
    for start in range(0, n, rows):
        chunk = np.asarray(x[start : start + rows]).reshape(-1, row_items)
        bad += int((~np.isfinite(chunk)).any(axis=1).sum())
    return bad


def resolve_channels(spec: str | Sequence[str]) -> tuple[str, ...]:
    """Turn ``"all"``, ``"ppg"``, ``"acc"`` or ``"ppg,acc_x"`` into a tuple of channel names."""
    if isinstance(spec, str):
        if spec in CHANNEL_GROUPS:
            return CHANNEL_GROUPS[spec]
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    names: list[str] = []
    for name in spec:
        expanded = CHANNEL_GROUPS.get(name, (name,))
        for ch in expanded:
            if ch not in ALL_CHANNELS:
                raise PpgedgeError(
                    f"unknown channel '{ch}': use one of {', '.join(ALL_CHANNELS)} "
                    "or a group all/ppg/acc"
                )
            if ch not in names:
                names.append(ch)
    if not names:
        raise PpgedgeError("no channels selected: use all, ppg, acc or a comma-separated list")
    return tuple(names)


@dataclass(frozen=True)
class DataFormat:
    """What a model needs to know about its input; stored in datasets and checkpoints."""

    sample_rate_hz: float = 32.0
    window_s: float = 8.0
    hop_s: float = 2.0
    channels: tuple[str, ...] = ALL_CHANNELS
    preprocessing: str = "zscore_per_window"

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sample_rate_hz))

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_s * self.sample_rate_hz))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataFormat:
        return cls(
            sample_rate_hz=float(d["sample_rate_hz"]),
            window_s=float(d["window_s"]),
            hop_s=float(d["hop_s"]),
            channels=tuple(d["channels"]),
            preprocessing=str(d.get("preprocessing", "zscore_per_window")),
        )

    def with_channels(self, channels: Sequence[str]) -> DataFormat:
        return DataFormat(
            self.sample_rate_hz, self.window_s, self.hop_s, tuple(channels), self.preprocessing
        )


@dataclass
class WindowedData:
    """Windows held in memory, as produced by the generator and the importers."""

    x: np.ndarray  # float32 (N, C, T)
    y: np.ndarray  # float32 (N,)
    subject: np.ndarray  # int32 (N,)
    activity: np.ndarray  # int16 (N,)
    recording: np.ndarray  # int32 (N,)
    start_s: np.ndarray  # float32 (N,)
    subjects: list[str]
    activities: list[str]
    recordings: list[str]
    fmt: DataFormat
    source: str
    provenance: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def of_subject(self, k: int) -> WindowedData:
        """Subject ``k``'s windows on their own, subject and recording codes renumbered: the
        unit a streaming writer appends one at a time."""
        idx = np.flatnonzero(self.subject == k)
        used, codes = np.unique(self.recording[idx], return_inverse=True)
        return replace(
            self,
            x=self.x[idx],
            y=self.y[idx],
            subject=np.zeros(len(idx), np.int32),
            activity=self.activity[idx],
            recording=codes.astype(np.int32),
            start_s=self.start_s[idx],
            subjects=[self.subjects[k]],
            recordings=[self.recordings[int(r)] for r in used],
        )


def validate_windows(data: WindowedData) -> None:
    """Refuse what would poison training: wrong shapes, NaN/inf, labels outside 30-209 BPM;
    and what the reader would refuse: an unusable format, unsafe names."""
    check_format(data.fmt, data.source)
    check_names("subject", data.subjects, data.source)
    check_names("activity", data.activities, data.source)
    check_names("recording", data.recordings, data.source)
    n = len(data)
    if n == 0:
        raise PpgedgeError(
            f"{data.source}: no complete window: recordings must be at least "
            f"{data.fmt.window_s:g} s long"
        )
    expected = (n, len(data.fmt.channels), data.fmt.window_samples)
    if data.x.shape != expected:
        raise PpgedgeError(f"{data.source}: windows have shape {data.x.shape}, expected {expected}")
    for name in ("y", "subject", "activity", "recording", "start_s"):
        if getattr(data, name).shape != (n,):
            raise PpgedgeError(f"{data.source}: '{name}' must have one value per window")
    if not np.isfinite(data.x).all():
        bad = int((~np.isfinite(data.x)).any(axis=(1, 2)).sum())
        raise PpgedgeError(
            f"{data.source}: {bad} window(s) contain NaN or inf samples: "
            "clean or interpolate the recording before importing"
        )
    if not np.isfinite(data.y).all():
        raise PpgedgeError(f"{data.source}: reference heart rate contains NaN or inf")
    out = (data.y < BPM_MIN) | (data.y > BPM_MAX + 0.5)
    if out.any():
        raise PpgedgeError(
            f"{data.source}: {int(out.sum())} label(s) outside {BPM_MIN}-{BPM_MAX} BPM "
            f"(min {data.y.min():.1f}, max {data.y.max():.1f}): the model has one class per BPM "
            f"in that range; fix the reference or pass --drop-out-of-range"
        )


def write_dataset(data: WindowedData, path: str | Path) -> Path:
    """Validate and write ``data`` as a dataset directory, atomically."""
    validate_windows(data)
    path = Path(path)
    meta = {
        "schema": SCHEMA,
        "source": data.source,
        "format": data.fmt.to_dict(),
        "n_windows": len(data),
        "subjects": list(data.subjects),
        "activities": list(data.activities),
        "recordings": list(data.recordings),
        "provenance": data.provenance,
    }
    with atomic_path(path, directory=True, kind=DATASET) as tmp:
        np.save(tmp / "x.npy", np.ascontiguousarray(data.x, dtype=np.float32))
        np.save(tmp / "y.npy", data.y.astype(np.float32))
        np.save(tmp / "subject.npy", data.subject.astype(np.int32))
        np.save(tmp / "activity.npy", data.activity.astype(np.int16))
        np.save(tmp / "recording.npy", data.recording.astype(np.int32))
        np.save(tmp / "start_s.npy", data.start_s.astype(np.float32))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


class Dataset:
    """A dataset directory opened for reading; ``x`` is memory-mapped, never loaded whole."""

    def __init__(self, path: str | Path, *, mmap: bool = True) -> None:
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not self.path.is_dir() or not meta_path.is_file():
            raise PpgedgeError(
                f"{self.path}: not a ppgedge dataset (no meta.json): create one with "
                "'ppgedge data synth' or 'ppgedge data import'"
            )
        self.meta: dict[str, Any] = _read_meta(meta_path)
        n, fmt, names = _check_meta(self.meta, meta_path)
        arrays: dict[str, np.ndarray] = {}
        for name in ARRAYS:
            file = self.path / f"{name}.npy"
            try:
                with warnings.catch_warnings():  # numpy warns (stderr) on odd, corrupt headers
                    warnings.simplefilter("ignore")
                    arrays[name] = np.load(
                        file, mmap_mode="r" if mmap else None, allow_pickle=False
                    )
            except (
                OSError,
                ValueError,
                TypeError,
                EOFError,
                SyntaxError,
                tokenize.TokenError,
            ) as exc:
                raise PpgedgeError(
                    f"{file}: missing or corrupt ({exc.__class__.__name__}): re-create the dataset"
                ) from None
        want_x = (n, len(fmt.channels), fmt.window_samples)
        kinds = {
            "x": "f",
            "y": "f",
            "subject": "iu",
            "activity": "iu",
            "recording": "iu",
            "start_s": "f",
        }
        if (
            arrays["x"].shape != want_x
            or any(arrays[a].shape != (n,) for a in ARRAYS[1:])
            or any(arrays[a].dtype.kind not in k for a, k in kinds.items())
        ):
            raise PpgedgeError(
                f"{self.path}: array shapes disagree with meta.json (truncated copy?): "
                "re-create the dataset"
            )
        for name, low, listed in (("subject", 0, 0), ("activity", -1, 1), ("recording", 0, 2)):
            codes = arrays[name]
            if codes.min() < low or codes.max() >= len(names[listed]):
                raise PpgedgeError(
                    f"{self.path / (name + '.npy')}: indices outside meta.json's list (corrupt "
                    "copy?): re-create the dataset"
                )
        _check_values(self.path, arrays)
        self.fmt = fmt
        self.x: np.ndarray = arrays["x"]
        self.y: np.ndarray = arrays["y"]
        self.subject: np.ndarray = arrays["subject"]
        self.activity: np.ndarray = arrays["activity"]
        self.recording: np.ndarray = arrays["recording"]
        self.start_s: np.ndarray = arrays["start_s"]
        self.subjects: list[str] = names[0]
        self.activities: list[str] = names[1]
        self.recordings: list[str] = names[2]

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def source(self) -> str:
        return str(self.meta.get("source", "unknown"))

    def channel_index(self, channels: Sequence[str]) -> list[int]:
        """Indices of ``channels`` in this dataset; error if the dataset lacks one."""
        missing = [c for c in channels if c not in self.fmt.channels]
        if missing:
            raise PpgedgeError(
                f"{self.path}: dataset has channels {list(self.fmt.channels)}, "
                f"not {missing}: import it with those channels"
            )
        return [self.fmt.channels.index(c) for c in channels]

    def subject_names(self, idx: np.ndarray | None = None) -> np.ndarray:
        names = np.asarray(self.subjects, dtype=object)
        return names[self.subject if idx is None else self.subject[idx]]

    def activity_names(self, idx: np.ndarray | None = None) -> np.ndarray:
        names = np.asarray([*self.activities, "unknown"], dtype=object)
        codes = np.asarray(self.activity if idx is None else self.activity[idx]).astype(np.int64)
        return names[np.where(codes < 0, len(self.activities), codes)]

    def summary(self) -> dict[str, Any]:
        """Subjects, windows, HR range and activities, for ``ppgedge data info``."""
        y = np.asarray(self.y)
        per_subject = {name: int((self.subject == i).sum()) for i, name in enumerate(self.subjects)}
        acts = self.activity_names()
        per_activity: dict[str, int] = {}
        for a in acts:
            per_activity[a] = per_activity.get(a, 0) + 1
        return {
            "path": str(self.path),
            "source": self.source,
            "format": self.fmt.to_dict(),
            "n_windows": len(self),
            "n_subjects": len(self.subjects),
            "n_recordings": len(self.recordings),
            "hours": round((len(self) - 1) * self.fmt.hop_s / 3600 + self.fmt.window_s / 3600, 3)
            if len(self)
            else 0.0,
            "hr_bpm": {
                "min": float(y.min()),
                "mean": float(y.mean()),
                "max": float(y.max()),
                "std": float(y.std()),
            },
            "windows_per_subject": per_subject,
            "windows_per_activity": per_activity,
            "provenance": self.meta.get("provenance", {}),
        }


def _read_meta(meta_path: Path) -> dict[str, Any]:
    """meta.json as a dict: at most 64 MB, valid UTF-8 JSON, nested at most 32 deep."""
    try:
        size = meta_path.stat().st_size
        if size > META_MAX_BYTES:
            raise PpgedgeError(
                f"{meta_path}: {size:,} bytes is not dataset metadata (at most "
                f"{META_MAX_BYTES >> 20} MB): re-create the dataset"
            )
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PpgedgeError(
            f"{meta_path}: corrupt metadata ({exc}): re-create the dataset"
        ) from None
    except RecursionError:
        meta = None  # nested beyond the interpreter's limit: refused just below
    except OSError as exc:
        raise PpgedgeError(f"{meta_path}: cannot read ({exc.strerror})") from None
    if meta is None or not _depth(meta, META_MAX_DEPTH):
        raise PpgedgeError(
            f"{meta_path}: metadata nested more than {META_MAX_DEPTH} levels deep (corrupt or "
            "crafted): re-create the dataset"
        )
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        found = meta.get("schema") if isinstance(meta, dict) else None
        raise PpgedgeError(
            f"{meta_path.parent}: dataset schema {found!r} is not {SCHEMA!r}: "
            "re-create it with this version of ppgedge"
        )
    return meta


def _number(table: dict[str, Any], key: str, where: str) -> float:
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PpgedgeError(f"{where}: format.{key} must be a number, got {value!r}")
    return float(value)


def _check_meta(
    meta: dict[str, Any], meta_path: Path
) -> tuple[int, DataFormat, tuple[list[str], list[str], list[str]]]:
    """The window count, data format and names meta.json declares, each checked: a positive
    integer count, a usable format (:func:`check_format`), safe names (:func:`check_names`)."""
    where = str(meta_path)
    n = meta.get("n_windows")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise PpgedgeError(
            f"{where}: n_windows {n!r} must be a positive integer (a dataset holds at least one "
            "window): re-create the dataset"
        )
    f = meta.get("format")
    if not isinstance(f, dict):
        raise PpgedgeError(f"{where}: 'format' must be a table: re-create the dataset")
    channels = f.get("channels")
    preprocessing = f.get("preprocessing", "zscore_per_window")
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
        raise PpgedgeError(f"{where}: format.channels must be a list of channel names")
    if not isinstance(preprocessing, str):
        raise PpgedgeError(f"{where}: format.preprocessing must be a name")
    fmt = DataFormat(
        sample_rate_hz=_number(f, "sample_rate_hz", where),
        window_s=_number(f, "window_s", where),
        hop_s=_number(f, "hop_s", where),
        channels=tuple(channels),
        preprocessing=preprocessing,
    )
    check_format(fmt, where)
    if not isinstance(meta.get("source", ""), str):
        raise PpgedgeError(f"{where}: 'source' must be a string")
    lists = []
    kinds = (("subjects", "subject"), ("activities", "activity"), ("recordings", "recording"))
    for key, kind in kinds:
        value = meta.get(key)
        if not isinstance(value, list):
            raise PpgedgeError(f"{where}: '{key}' must be a list of names: re-create the dataset")
        lists.append(check_names(kind, value, where))
    if not lists[0] or not lists[2]:
        raise PpgedgeError(f"{where}: no subjects or no recordings listed: re-create the dataset")
    return n, fmt, (lists[0], lists[1], lists[2])


def _check_values(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Labels finite and within 30-209 BPM, start times and samples finite: what would train a
    garbage model with exit 0, or fail deep inside training, refused when the dataset opens."""
    y = np.asarray(arrays["y"], dtype=np.float64)
    if not np.isfinite(y).all():
        bad = int((~np.isfinite(y)).sum())
        raise PpgedgeError(
            f"{path / 'y.npy'}: {bad} heart-rate label(s) are NaN or inf: re-create the dataset "
            "from a clean reference"
        )
    out = (y < BPM_MIN) | (y > BPM_MAX + 0.5)
    if out.any():
        raise PpgedgeError(
            f"{path / 'y.npy'}: {int(out.sum())} label(s) outside {BPM_MIN}-{BPM_MAX} BPM (min "
            f"{y.min():.4g}, max {y.max():.4g}): re-import with --drop-out-of-range or fix the "
            "reference"
        )
    if not np.isfinite(np.asarray(arrays["start_s"], dtype=np.float64)).all():
        raise PpgedgeError(f"{path / 'start_s.npy'}: NaN or inf start times: re-create the dataset")
    bad = count_non_finite_windows(arrays["x"], path / "x.npy")
    if bad:
        raise PpgedgeError(
            f"{path / 'x.npy'}: {bad} window(s) contain NaN or inf samples: re-create the "
            "dataset from clean recordings"
        )


def open_dataset(path: str | Path) -> Dataset:
    return Dataset(path)
