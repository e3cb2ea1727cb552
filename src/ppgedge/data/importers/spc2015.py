"""IEEE Signal Processing Cup 2015 (TROIKA) wrist PPG data.

Layout (see ``../shared/data/ieee-spc2015/README.md``), all channels at 125 Hz::

    Training_data/DATA_NN_TYPE0T.mat            sig: 6 rows ECG, PPG1, PPG2, acc x, y, z
    Training_data/DATA_NN_TYPE0T_BPMtrace.mat   BPM0: reference, one value per 8 s / 2 s window
    Extra_TrainingData/DATA_S04_T01.mat         sig: 6 rows, same as training
    Extra_TrainingData/BPM_S04_T01.mat          BPM0
    TestData/TEST_SNN_TNN.mat                   sig: 5 rows PPG1, PPG2, acc x, y, z (no ECG)
    TrueBPM/True_SNN_TNN.mat                    BPM0

Reference value k covers samples [250k, 250k + 1000), i.e. it is centred at 2k + 4 s.

Choices made here, recorded in the dataset provenance:

- The ``ppg`` channel is the mean of PPG1 and PPG2 (two green LEDs on the same wristband);
  averaging keeps one PPG channel, as every other source has, and lowers sensor noise.
- Accelerometer values are kept as stored (they span +-4, consistent with g at +-4 g).
- Subjects: the 12 training recordings are 12 people, ``spc_tr01``..``spc_tr12``; the test set
  is 8 people, ``spc_te01``..``spc_te08`` (T01 and T02 of one person share the id). The extra
  recording DATA_S04_T01 is test subject 4's arm-exercise session, so it is ``spc_te04`` and
  belongs to the ``test`` subset: putting it in ``train`` would leak that person into the test set.
- Activities: training is 30 s rest, running, 30 s rest -> "rest" [0, 30 s), "run",
  "recovery" [end - 30 s, end); T01 sessions are "arm" (arm exercise), T02 "boxing".
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ppgedge.data.format import DataFormat, WindowedData
from ppgedge.data.importers._common import existing_path, load_mat, natural_key, reference_times
from ppgedge.data.importers._common import reference_series as _series
from ppgedge.data.windowing import Recording, window_recordings
from ppgedge.errors import PpgedgeError

RATE_HZ = 125.0
SUBSETS = ("all", "train", "test")
CITATION = (
    'Z. Zhang, Z. Pi, B. Liu, "TROIKA: A general framework for heart rate monitoring using '
    'wrist-type photoplethysmographic signals during intensive physical exercise", '
    "IEEE Trans. Biomed. Eng. 62(2), 2015"
)
_TRAIN = re.compile(r"^DATA_(\d{2})_TYPE(\d{2})$")
_EXTRA = re.compile(r"^DATA_S(\d{2})_T(\d{2})$")
_TEST = re.compile(r"^TEST_S(\d{2})_T(\d{2})$")
_TEST_ACTIVITY = {1: "arm", 2: "boxing"}
_HINT = "an IEEE SPC 2015 file (DATA_NN_TYPE0T.mat, DATA_SNN_TNN.mat or TEST_SNN_TNN.mat)"


def _classify(path: Path) -> tuple[str, re.Match[str]] | None:
    for kind, pattern in (("train", _TRAIN), ("extra", _EXTRA), ("test", _TEST)):
        m = pattern.match(path.stem)
        if m:
            return kind, m
    return None


def _reference_path(path: Path, kind: str, m: re.Match[str]) -> Path:
    """The BPM0 file that goes with signal file ``path``."""
    if kind == "train":
        candidates = [path.with_name(f"{path.stem}_BPMtrace.mat")]
    elif kind == "extra":
        candidates = [path.with_name(f"BPM_S{m[1]}_T{m[2]}.mat")]
    else:
        name = f"True_S{m[1]}_T{m[2]}.mat"
        candidates = [
            path.parent.parent / "TrueBPM" / name,
            path.parent / "TrueBPM" / name,
            path.with_name(name),
        ]
    for c in candidates:
        if c.is_file():
            return c
    raise PpgedgeError(
        f"{path}: reference file {candidates[0].name} not found (looked in "
        f"{', '.join(str(c.parent) for c in candidates)}): keep the dataset's folder layout"
    )


def _signal_files(root: Path, subset: str) -> list[Path]:
    """Signal files under ``root`` (the dataset root or one of its folders), filtered by subset."""
    if root.is_file():
        files = [root]
    else:
        files = []
        for folder in (
            root / "Training_data",
            root / "TestData",
            root / "Extra_TrainingData",
            root,
        ):
            if folder.is_dir():
                files += sorted((p for p in folder.glob("*.mat") if _classify(p)), key=natural_key)
        files = list(dict.fromkeys(files))
        if not files:
            raise PpgedgeError(
                f"{root}: no IEEE SPC 2015 files found: pass the dataset root (with "
                "Training_data/, TestData/, TrueBPM/) or one DATA_*.mat / TEST_*.mat file"
            )
    out = []
    for f in files:
        c = _classify(f)
        if c is None:
            raise PpgedgeError(f"{f}: not a signal file: expected {_HINT}")
        group = "train" if c[0] == "train" else "test"
        if subset in ("all", group):
            out.append(f)
    if not out:
        raise PpgedgeError(f"{root}: no recordings in subset '{subset}': use subset all")
    return out


def _recording(path: Path, channels: tuple[str, ...]) -> Recording:
    classified = _classify(path)
    if classified is None:
        raise PpgedgeError(f"{path}: not a signal file: expected {_HINT}")
    kind, m = classified
    sig = load_mat(path, ["sig"], hint=_HINT)["sig"].astype(np.float64)
    rows = 5 if kind == "test" else 6
    if sig.ndim != 2 or sig.shape[0] != rows:
        raise PpgedgeError(
            f"{path}: 'sig' has shape {sig.shape}, expected ({rows}, N): "
            f"{'PPG1, PPG2, acc x, y, z' if rows == 5 else 'ECG, PPG1, PPG2, acc x, y, z'}"
        )
    sig = sig[rows - 5 :]  # drop ECG: rows are now PPG1, PPG2, acc x, y, z
    ref_path = _reference_path(path, kind, m)
    bpm = _series(
        load_mat(ref_path, ["BPM0"], hint="an SPC 2015 reference (BPM0)")["BPM0"], ref_path, "BPM0"
    )
    n = sig.shape[1]
    all_signals = {
        "ppg": (sig[:2].mean(axis=0), RATE_HZ),
        "acc_x": (sig[2], RATE_HZ),
        "acc_y": (sig[3], RATE_HZ),
        "acc_z": (sig[4], RATE_HZ),
    }
    if kind == "train":
        subject = f"spc_tr{int(m[1]):02d}"
        end = n / RATE_HZ
        segments = [(0.0, 30.0, "rest"), (30.0, end - 30.0, "run"), (end - 30.0, end, "recovery")]
    else:
        subject = f"spc_te{int(m[1]):02d}"
        name = _TEST_ACTIVITY.get(int(m[2]))
        if name is None:
            raise PpgedgeError(f"{path}: unknown session T{m[2]}: expected T01 or T02")
        segments = [(0.0, n / RATE_HZ, name)]
    return Recording(
        name=path.stem,
        subject=subject,
        signals={c: all_signals[c] for c in channels},
        labels_bpm=bpm,
        label_times_s=reference_times(bpm.size),
        activity_segments=segments,
    )


def import_spc2015(
    path: str | Path,
    fmt: DataFormat,
    *,
    drop_out_of_range: bool = False,
    subset: str = "all",
) -> WindowedData:
    """Import the IEEE SPC 2015 set (a root folder, one of its folders, or one signal file).

    ``subset``: "train" (12 treadmill recordings), "test" (10 test recordings plus the extra
    DATA_S04_T01 of test subject 4) or "all".
    """
    if subset not in SUBSETS:
        raise PpgedgeError(f"unknown subset '{subset}': use one of {', '.join(SUBSETS)}")
    root = existing_path(path, "the IEEE SPC 2015 folder or a DATA_*/TEST_*.mat file")
    recs = [_recording(f, fmt.channels) for f in _signal_files(root, subset)]
    provenance = {
        "importer": "spc2015",
        "path": str(root.resolve()),
        "subset": subset,
        "native_rate_hz": RATE_HZ,
        "ppg": "mean of PPG1 and PPG2",
        "acc": "as stored (values span +-4, consistent with g)",
        "labels": "BPM0 value k covers samples [250k, 250k+1000) at 125 Hz: centre 2k+4 s",
        "subjects": "training recordings spc_tr01..12; test subjects spc_te01..08 "
        "(DATA_S04_T01 is test subject 4)",
        "activities": "training rest [0,30 s) / run / recovery [end-30 s, end); "
        "test T01 arm, T02 boxing",
        "license": "academic research use only",
        "citation": CITATION,
    }
    return window_recordings(
        recs,
        fmt,
        source="ieee-spc2015",
        provenance=provenance,
        drop_out_of_range=drop_out_of_range,
    )
