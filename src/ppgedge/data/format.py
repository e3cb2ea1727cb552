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
    """Refuse what would poison training: wrong shapes, NaN/inf, labels outside 30-209 BPM."""
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
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PpgedgeError(
                f"{meta_path}: corrupt metadata ({exc}): re-create the dataset"
            ) from None
        if not isinstance(self.meta, dict) or self.meta.get("schema") != SCHEMA:
            found = self.meta.get("schema") if isinstance(self.meta, dict) else None
            raise PpgedgeError(
                f"{self.path}: dataset schema {found!r} is not {SCHEMA!r}: "
                "re-create it with this version of ppgedge"
            )
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
        try:
            n = int(self.meta.get("n_windows", -1))
            fmt = DataFormat.from_dict(self.meta["format"])
            names = [list(map(str, self.meta[k])) for k in ("subjects", "activities", "recordings")]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PpgedgeError(
                f"{meta_path}: corrupt metadata (field {exc}): re-create the dataset"
            ) from None
        want_x = (n, len(fmt.channels), fmt.window_samples)
        kinds = {"x": "f", "y": "f", "subject": "iu", "activity": "iu", "recording": "iu"}
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
            if n and (codes.min() < low or codes.max() >= len(names[listed])):
                raise PpgedgeError(
                    f"{self.path / (name + '.npy')}: indices outside meta.json's list (corrupt "
                    "copy?): re-create the dataset"
                )
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


def open_dataset(path: str | Path) -> Dataset:
    return Dataset(path)
