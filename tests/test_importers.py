"""Importers: tiny files written here in each source's exact format, the real SPC 2015 files
when present, and bad input (which must be a PpgedgeError, never a library traceback)."""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from ppgedge.data.format import DataFormat, write_dataset
from ppgedge.data.importers import FORMATS, import_dataset
from ppgedge.data.safe_pickle import safe_load
from ppgedge.errors import PpgedgeError

SPC_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ieee-spc2015"
HR = 72.0  # BPM of the synthetic PPG
FMT = DataFormat()  # 32 Hz, 8 s windows, 2 s hop


def ppg_wave(seconds: float, rate: float, hr: float = HR) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return np.sin(2 * np.pi * hr / 60.0 * t)


def n_ref(seconds: float) -> int:
    """Reference values (8 s windows, 2 s hop) that fit in a recording."""
    return int((seconds - 8) // 2) + 1


# ------------------------------------------------------------------------------ SPC 2015


def write_spc(root: Path, seconds: float = 90.0, *, bpm: np.ndarray | None = None) -> Path:
    """A miniature SPC 2015 tree: one training, one extra and one test recording."""
    rate = 125
    p = ppg_wave(seconds, rate)
    n = p.size
    acc = np.tile([[0.1], [0.2], [1.0]], (1, n))
    labels = bpm if bpm is not None else HR + 0.5 * np.arange(n_ref(seconds))
    train, extra, test, truth = (
        root / d for d in ("Training_data", "Extra_TrainingData", "TestData", "TrueBPM")
    )
    for d in (train, extra, test, truth):
        d.mkdir(parents=True)
    six = np.vstack([np.zeros(n), p, 3 * p, acc])
    savemat(train / "DATA_01_TYPE01.mat", {"sig": six})
    savemat(train / "DATA_01_TYPE01_BPMtrace.mat", {"BPM0": labels[:, None]})
    savemat(extra / "DATA_S04_T01.mat", {"sig": six})
    savemat(extra / "BPM_S04_T01.mat", {"BPM0": labels[:, None]})
    savemat(test / "TEST_S04_T02.mat", {"sig": six[1:]})
    savemat(truth / "True_S04_T02.mat", {"BPM0": labels[:, None]})
    return root


def test_spc2015_synthetic_tree(tmp_path: Path) -> None:
    root = write_spc(tmp_path / "spc")
    d = import_dataset("spc2015", root)
    k = n_ref(90)
    assert len(d) == 3 * k and d.x.shape == (3 * k, 4, FMT.window_samples)
    assert d.recordings == ["DATA_01_TYPE01", "TEST_S04_T02", "DATA_S04_T01"]
    assert d.subjects == ["spc_tr01", "spc_te04"]  # extra file = test subject 4
    np.testing.assert_allclose(d.y[:k], HR + 0.5 * np.arange(k), atol=1e-4)
    np.testing.assert_allclose(d.start_s[:3], [0, 2, 4])
    names = np.array(d.activities + ["unknown"])[d.activity]
    train = list(names[:k])
    # centres 4..28 rest, 30..58 run, 60..86 recovery
    assert train.count("rest") == 13 and train.count("run") == 15 and train.count("recovery") == 14
    assert set(names[k : 2 * k]) == {"boxing"} and set(names[2 * k :]) == {"arm"}
    np.testing.assert_allclose(d.x[:, 3].mean(), 1.0, atol=1e-3)  # acc_z kept as stored
    assert d.provenance["ppg"] == "mean of PPG1 and PPG2"
    write_dataset(d, tmp_path / "out.ppgds")


def test_spc2015_ppg_is_mean_and_subsets(tmp_path: Path) -> None:
    root = write_spc(tmp_path / "spc")
    fmt125 = DataFormat(sample_rate_hz=125.0, channels=("ppg",))
    d = import_dataset("spc2015", root / "Training_data" / "DATA_01_TYPE01.mat", fmt125)
    np.testing.assert_allclose(d.x[0, 0], 2 * ppg_wave(8, 125), atol=1e-5)  # (p + 3p) / 2
    assert len(import_dataset("spc2015", root, subset="train")) == n_ref(90)
    test = import_dataset("spc2015", root, subset="test")
    assert test.subjects == ["spc_te04"] and len(test) == 2 * n_ref(90)
    single = import_dataset("spc2015", root / "TestData" / "TEST_S04_T02.mat")  # ../TrueBPM
    assert len(single) == n_ref(90) and single.activities == ["boxing"]
    with pytest.raises(PpgedgeError, match="subset"):
        import_dataset("spc2015", root, subset="validation")


def test_spc2015_bad_input(tmp_path: Path) -> None:
    with pytest.raises(PpgedgeError, match="no such file"):
        import_dataset("spc2015", tmp_path / "nowhere")
    root = write_spc(tmp_path / "spc")
    f = root / "Training_data" / "DATA_01_TYPE01.mat"
    savemat(f, {"signal": np.zeros((6, 2000))})  # wrong variable name
    with pytest.raises(PpgedgeError, match="missing variable.*sig"):
        import_dataset("spc2015", f)
    f.write_text("not a mat file\n")
    with pytest.raises(PpgedgeError, match="not a readable .mat"):
        import_dataset("spc2015", f)
    savemat(f, {"sig": np.zeros((3, 20000))})
    with pytest.raises(PpgedgeError, match=r"expected \(6, N\)"):
        import_dataset("spc2015", f)
    sig = np.vstack([np.zeros(20000), ppg_wave(160, 125), ppg_wave(160, 125), np.ones((3, 20000))])
    sig[1, 5000] = np.nan
    savemat(f, {"sig": sig})
    with pytest.raises(PpgedgeError, match="NaN"):
        import_dataset("spc2015", f)
    savemat(f, {"sig": np.ones((6, 5 * 125))})
    with pytest.raises(PpgedgeError, match="shorter than one 8 s window"):
        import_dataset("spc2015", f)
    (root / "TrueBPM" / "True_S04_T02.mat").unlink()
    with pytest.raises(PpgedgeError, match="True_S04_T02.mat not found"):
        import_dataset("spc2015", root / "TestData" / "TEST_S04_T02.mat")
    with pytest.raises(PpgedgeError, match="not a signal file"):
        import_dataset("spc2015", root / "Training_data" / "DATA_01_TYPE01_BPMtrace.mat")


def test_labels_out_of_range_refused_at_write(tmp_path: Path) -> None:
    bpm = np.full(n_ref(60), 80.0)
    bpm[5], bpm[9] = 25.0, 230.0
    root = write_spc(tmp_path / "spc", 60, bpm=bpm)
    d = import_dataset("spc2015", root, subset="train")
    out = tmp_path / "bad.ppgds"
    with pytest.raises(PpgedgeError, match="2 label.*outside 30-209"):
        write_dataset(d, out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bad.ppgds")]
    kept = import_dataset("spc2015", root, subset="train", drop_out_of_range=True)
    assert len(kept) == n_ref(60) - 2 and kept.provenance["dropped_out_of_range_windows"] == 2
    write_dataset(kept, out)
    assert (out / "meta.json").is_file()


# ------------------------------------------------------------------------------ real SPC 2015


@pytest.mark.skipif(not SPC_ROOT.exists(), reason="IEEE SPC 2015 data not in ../shared/data")
def test_spc2015_real_files() -> None:
    train_file = SPC_ROOT / "Training_data" / "DATA_01_TYPE01.mat"
    bpm = loadmat(SPC_ROOT / "Training_data" / "DATA_01_TYPE01_BPMtrace.mat")["BPM0"].ravel()
    d = import_dataset("spc2015", train_file)
    assert len(d) == bpm.size == 148
    np.testing.assert_allclose(d.y, bpm, rtol=1e-6)  # 2 s grid: labels copied exactly
    assert d.fmt.sample_rate_hz == 32 and d.provenance["native_rate_hz"] == 125
    assert d.subjects == ["spc_tr01"] and set(d.activities) == {"rest", "run", "recovery"}
    t = import_dataset("spc2015", SPC_ROOT / "TestData" / "TEST_S01_T01.mat")
    ref = loadmat(SPC_ROOT / "TrueBPM" / "True_S01_T01.mat")["BPM0"].ravel()
    assert len(t) == ref.size == 142 and t.subjects == ["spc_te01"] and t.activities == ["arm"]
    assert t.x.shape == (142, 4, 256) and np.isfinite(t.x).all()


# ------------------------------------------------------------------------------ PPG-DaLiA


class Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes bytes as Python 2 ``str`` opcodes, as the real DaLiA files (Python 2) have them."""

    dispatch = pickle._Pickler.dispatch.copy()  # type: ignore[attr-defined]

    def save_bytes(self, obj: bytes) -> None:
        n = len(obj)
        op = (
            pickle.SHORT_BINSTRING + bytes([n])
            if n < 256
            else pickle.BINSTRING + struct.pack("<i", n)
        )
        self.write(op + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def write_py2_pickle(path: Path, obj: object) -> None:
    import io

    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    raw = buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)


def dalia_dict(subject: bytes, seconds: float = 60.0) -> dict:
    codes = np.repeat([1, 0, 7], int(seconds * 4) // 3)[:, None].astype(np.float64)
    return {
        b"subject": subject,
        b"signal": {
            b"wrist": {
                b"BVP": ppg_wave(seconds, 64)[:, None],
                b"ACC": np.tile([0.0, 32.0, 64.0], (int(seconds * 32), 1)),
                b"EDA": np.zeros((int(seconds * 4), 1)),
            },
            b"chest": {b"ECG": np.zeros((100, 1))},
        },
        b"label": np.full(n_ref(seconds), HR),
        b"activity": codes,
        b"questionnaire": {b"AGE": 30, b"WEIGHT": 70.5, b"Gender": b" m"},
        b"rpeaks": np.arange(10, dtype=np.int64),
    }


def test_dalia_python2_pickles(tmp_path: Path) -> None:
    write_py2_pickle(tmp_path / "S1" / "S1.pkl", dalia_dict(b"S1"))
    write_py2_pickle(tmp_path / "S10.pkl", dalia_dict(b"S10"))
    d = import_dataset("dalia", tmp_path)
    k = n_ref(60)
    assert len(d) == 2 * k and d.x.shape == (2 * k, 4, 256)
    assert d.subjects == ["dalia_s01", "dalia_s10"]
    np.testing.assert_allclose(d.y, HR)
    np.testing.assert_allclose(d.x[:, 1:].mean(axis=(0, 2)), [0.0, 0.5, 1.0], atol=1e-4)  # g
    names = list(np.array(d.activities)[d.activity[:k]])
    # 4 Hz codes: sitting [0,20) s, transient [20,40), walking [40,60); centres 4,6,...,56
    assert names.count("sitting") == 8 and names.count("transient") == 10
    assert names.count("walking") == 9
    ppg_only = import_dataset("dalia", tmp_path / "S10.pkl", FMT.with_channels(["ppg"]))
    assert ppg_only.x.shape == (k, 1, 256)


def test_dalia_python3_protocol2_pickle(tmp_path: Path) -> None:
    data = {k.decode(): v for k, v in dalia_dict(b"S3").items()}
    data["signal"] = {"wrist": {k.decode(): v for k, v in data["signal"][b"wrist"].items()}}
    data["subject"] = "S3"
    data["extra"] = {"set": {1, 2}, "scalar": np.float64(2.5), "bytes": b"\x00\xff"}
    (tmp_path / "S3.pkl").write_bytes(pickle.dumps(data, protocol=2))
    d = import_dataset("dalia", tmp_path / "S3.pkl")
    assert d.subjects == ["dalia_s03"] and len(d) == n_ref(60)
    loaded = safe_load(tmp_path / "S3.pkl")
    assert loaded["extra"]["bytes"] == b"\x00\xff" and loaded["extra"]["set"] == {1, 2}


def test_dalia_ragged_signal_is_one_line(tmp_path: Path) -> None:
    data = dalia_dict(b"S4")
    data[b"signal"][b"wrist"][b"BVP"] = [np.zeros(5), np.zeros(7)]  # not one array
    write_py2_pickle(tmp_path / "S4.pkl", data)
    with pytest.raises(PpgedgeError, match="not one numeric array"):
        import_dataset("dalia", tmp_path / "S4.pkl")


class Evil:
    def __init__(self, func: object, arg: str) -> None:
        self.func, self.arg = func, arg

    def __reduce__(self) -> tuple:
        return self.func, (self.arg,)


def test_malicious_pickles_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    cases = {
        "system": (os.system, f"touch {marker}", r"refusing to unpickle posix\.system"),
        "eval": (eval, f"__import__('os').system('touch {marker}')", r"builtins\.eval"),
        "popen": (subprocess.Popen, f"touch {marker}", r"subprocess\.Popen"),
    }
    for name, (func, arg, pattern) in cases.items():
        f = tmp_path / f"{name}.pkl"
        f.write_bytes(pickle.dumps({"signal": Evil(func, arg)}, protocol=2))
        with pytest.raises(PpgedgeError, match=pattern):
            safe_load(f)
        with pytest.raises(PpgedgeError, match="refusing to unpickle"):
            import_dataset("dalia", f)
        assert not marker.exists()
    # a Python 2 style reference to __builtin__.eval is mapped, then refused
    py2 = tmp_path / "py2eval.pkl"
    py2.write_bytes(b"\x80\x02c__builtin__\neval\nq\x00U\x031+1q\x01\x85q\x02Rq\x03.")
    with pytest.raises(PpgedgeError, match=r"refusing to unpickle builtins\.eval"):
        safe_load(py2)
    (tmp_path / "obj.pkl").write_bytes(pickle.dumps(np.array([1, "a"], dtype=object), 2))
    with pytest.raises(PpgedgeError, match="object-dtype"):
        safe_load(tmp_path / "obj.pkl")


def test_dalia_bad_input(tmp_path: Path) -> None:
    good = pickle.dumps({"label": np.ones(3)}, protocol=2)
    (tmp_path / "cut.pkl").write_bytes(good[: len(good) // 2])
    with pytest.raises(PpgedgeError, match="corrupt or truncated"):
        import_dataset("dalia", tmp_path / "cut.pkl")
    (tmp_path / "nosig.pkl").write_bytes(good)
    with pytest.raises(PpgedgeError, match="missing 'signal'"):
        import_dataset("dalia", tmp_path / "nosig.pkl")
    with pytest.raises(PpgedgeError, match="larger than"):
        import_dataset("dalia", tmp_path / "nosig.pkl", max_bytes=10)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PpgedgeError, match="no .pkl files"):
        import_dataset("dalia", tmp_path / "empty")
    data = dalia_dict(b"S2")
    data[b"activity"][5] = 11
    write_py2_pickle(tmp_path / "S2.pkl", data)
    with pytest.raises(PpgedgeError, match="unknown activity code"):
        import_dataset("dalia", tmp_path / "S2.pkl")


# ------------------------------------------------------------------------------ BAMI


def write_bami(path: Path, seconds: float = 60.0, *, acc: bool = True) -> None:
    n = int(seconds * 50)
    p = (30000 + 1000 * ppg_wave(seconds, 50)).astype(np.uint16)
    mat = {"rawPPG": np.vstack([p, p + 30, p + 60]), "bpm_ecg": np.full(n_ref(seconds), HR)}
    if acc:
        mat["rawAcc"] = np.tile(
            np.array([[32768], [32768 - 1024], [32768 + 2048]], np.uint16), (1, n)
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(path, mat)


def test_bami_as_distributed_in_sub_folders(tmp_path: Path) -> None:
    """BAMI ships as BAMI-1/ and BAMI-2/: both are walked, a repeated stem is told apart by its
    folder, and the files taken are recorded."""
    for rel in ("BAMI-1/S1.mat", "BAMI-2/S1.mat", "BAMI-2/S2.mat"):
        write_bami(tmp_path / "bami" / rel)
    d = import_dataset("bami", tmp_path / "bami")
    assert d.subjects == ["bami_BAMI-1_S1", "bami_BAMI-2_S1", "bami_S2"]
    assert d.provenance["files"] == ["BAMI-1/S1.mat", "BAMI-2/S1.mat", "BAMI-2/S2.mat"]


def test_bami(tmp_path: Path) -> None:
    write_bami(tmp_path / "bami" / "subject01.mat")
    write_bami(tmp_path / "bami" / "subject02.mat")
    d = import_dataset("bami", tmp_path / "bami")
    k = n_ref(60)
    assert len(d) == 2 * k and d.x.shape == (2 * k, 4, 256)
    assert d.subjects == ["bami_subject01", "bami_subject02"]
    assert d.activities == [] and (d.activity == -1).all()
    np.testing.assert_allclose(d.y, HR)
    np.testing.assert_allclose(d.x[:, 1:].mean(axis=(0, 2)), [0.0, -0.5, 1.0], atol=1e-4)
    np.testing.assert_allclose(d.x[:, 0].mean(), 30030, atol=5)  # mean of 3 PPG rows
    half = import_dataset("bami", tmp_path / "bami" / "subject01.mat", acc_scale=1 / 4096)
    np.testing.assert_allclose(half.x[:, 3].mean(), 0.5, atol=1e-4)
    write_bami(tmp_path / "ppgonly.mat", acc=False)
    assert len(import_dataset("bami", tmp_path / "ppgonly.mat", FMT.with_channels(["ppg"]))) == k
    with pytest.raises(PpgedgeError, match="missing variable.*rawAcc"):
        import_dataset("bami", tmp_path / "ppgonly.mat")
    with pytest.raises(PpgedgeError, match="acc_scale"):
        import_dataset("bami", tmp_path / "ppgonly.mat", acc_scale=-1)


# ------------------------------------------------------------------------------ generic


def test_generic_npz(tmp_path: Path) -> None:
    k = n_ref(60)
    np.savez(
        tmp_path / "s01_walk.npz",
        ppg=ppg_wave(60, 100),
        acc=np.tile([0.0, 0.0, 1.0], (6000, 1)),
        rate_hz=100.0,
        hr_bpm=np.full(k, HR),
        hr_times_s=4.0 + 2 * np.arange(k),
        activity=np.array(["sit", "walk"]),
        activity_start_s=[0.0, 30.0],
        activity_end_s=[30.0, 60.0],
    )
    beats = np.arange(0, 60, 60 / 90.0)  # 90 BPM
    np.savez(
        tmp_path / "s01_run.npz",
        ppg=ppg_wave(60, 50, 90),
        ppg_rate_hz=50,
        beat_times_s=beats,
        subject="alice",
    )
    ppg_fmt = FMT.with_channels(["ppg"])
    d = import_dataset("generic", tmp_path, ppg_fmt, subject_from="prefix")
    assert d.recordings == ["s01_run", "s01_walk"] and d.subjects == ["alice", "s01"]
    assert len(d) == 2 * k and d.x.shape == (2 * k, 1, 256)
    np.testing.assert_allclose(d.y[:k], 90.0, atol=0.5)
    np.testing.assert_allclose(d.y[k:], HR)
    walk = list(np.array(d.activities + ["unknown"])[d.activity[k:]])
    assert walk.count("sit") == 13 and walk.count("walk") == 14
    with pytest.raises(PpgedgeError, match="missing array 'acc'"):
        import_dataset("generic", tmp_path / "s01_run.npz")
    np.savez(tmp_path / "obj.npz", ppg=np.array([1, "x"], dtype=object))
    with pytest.raises(PpgedgeError, match="pickled"):
        import_dataset("generic", tmp_path / "obj.npz", ppg_fmt)
    (tmp_path / "zip.npz").write_bytes(b"PK garbage")
    with pytest.raises(PpgedgeError, match="not a readable .npz"):
        import_dataset("generic", tmp_path / "zip.npz", ppg_fmt)


def write_csv(
    path: Path,
    seconds: float = 60.0,
    rate: float = 64.0,
    *,
    acc: bool = True,
    activity: bool = True,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = 100.0 + np.arange(int(seconds * rate)) / rate  # clock need not start at 0
    cols = [t, ppg_wave(seconds, rate)]
    header = "time_s,ppg"
    if acc:
        cols += [np.zeros_like(t), np.zeros_like(t), np.ones_like(t)]
        header += ",acc_x,acc_y,acc_z"
    np.savetxt(path, np.column_stack(cols), delimiter=",", header=header, comments="", fmt="%.6f")
    k = n_ref(seconds)
    lines = ["time_s,hr_bpm" + (",activity" if activity else "")]
    for i in range(k):
        act = ("rest" if i < 10 else "cycling") if activity else None
        lines.append(f"{104 + 2 * i},{HR}" + (f",{act}" if act else ""))
    path.with_name(path.stem + ".labels.csv").write_text("\n".join(lines) + "\n")


def test_generic_csv(tmp_path: Path) -> None:
    write_csv(tmp_path / "bob.csv")
    d = import_dataset("generic", tmp_path)
    k = n_ref(60)
    assert len(d) == k and d.x.shape == (k, 4, 256) and d.subjects == ["bob"]
    np.testing.assert_allclose(d.y, HR)
    names = list(np.array(d.activities)[d.activity])
    assert names.count("rest") == 10 and names.count("cycling") == k - 10
    np.testing.assert_allclose(d.x[:, 3].mean(), 1.0, atol=1e-4)
    write_csv(tmp_path / "ppg" / "carol_1.csv", acc=False, activity=False)
    p = import_dataset(
        "generic",
        tmp_path / "ppg" / "carol_1.csv",
        FMT.with_channels(["ppg"]),
        subject_from="prefix",
    )
    assert p.subjects == ["carol"] and (p.activity == -1).all()
    with pytest.raises(PpgedgeError, match="missing column.*acc_x.*channels ppg"):
        import_dataset("generic", tmp_path / "ppg" / "carol_1.csv")


def test_generic_bad_input(tmp_path: Path) -> None:
    write_csv(tmp_path / "a.csv")
    lines = (tmp_path / "a.csv").read_text().splitlines()
    (tmp_path / "a.csv").write_text("\n".join(lines[:100] + lines[120:]) + "\n")  # a gap
    with pytest.raises(PpgedgeError, match="not uniform"):
        import_dataset("generic", tmp_path / "a.csv")
    write_csv(tmp_path / "b.csv")
    (tmp_path / "b.labels.csv").unlink()
    with pytest.raises(PpgedgeError, match="no labels file b.labels.csv"):
        import_dataset("generic", tmp_path / "b.csv")
    write_csv(tmp_path / "c.csv")
    lines = (tmp_path / "c.csv").read_text().splitlines()
    parts = lines[50].split(",")
    lines[50] = ",".join([parts[0], "nan", *parts[2:]])
    (tmp_path / "c.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(PpgedgeError, match="NaN"):
        import_dataset("generic", tmp_path / "c.csv")
    with pytest.raises(PpgedgeError, match="subject_from"):
        import_dataset("generic", tmp_path / "c.csv", subject_from="folder")
    with pytest.raises(PpgedgeError, match="not a recording"):
        import_dataset("generic", tmp_path / "c.labels.csv")


# ------------------------------------------------------------------------------ dispatch


def test_import_dataset_dispatch(tmp_path: Path) -> None:
    assert FORMATS == ("spc2015", "dalia", "bami", "generic")
    with pytest.raises(PpgedgeError, match="unknown dataset format 'wesad'"):
        import_dataset("wesad", tmp_path)
    with pytest.raises(PpgedgeError, match="no option.*subset"):
        import_dataset("bami", tmp_path, subset="train")


def test_merge_datasets_keeps_subjects_apart(tmp_path: Path) -> None:
    """data merge: same format only; a subject id in two datasets is refused unless --prefix
    renames them; windows and labels carried over exactly; the parts are in the provenance."""
    from ppgedge.data.format import DataFormat, Dataset, write_dataset
    from ppgedge.data.merge import merge_datasets
    from ppgedge.data.synth import synthesize

    a, b = tmp_path / "a.ppgds", tmp_path / "b.ppgds"
    write_dataset(synthesize(2, 1.0, 1, DataFormat()), a)
    write_dataset(synthesize(3, 1.0, 2, DataFormat()), b)
    with pytest.raises(PpgedgeError, match="'syn00' is in both"):
        merge_datasets([a, b], tmp_path / "m.ppgds")
    assert not (tmp_path / "m.ppgds").exists()
    merged = Dataset(merge_datasets([a, b], tmp_path / "m.ppgds", prefix=True))
    da, db = Dataset(a), Dataset(b)
    assert len(merged) == len(da) + len(db)
    assert merged.subjects == [f"a_{s}" for s in da.subjects] + [f"b_{s}" for s in db.subjects]
    np.testing.assert_array_equal(merged.x[len(da) :], db.x)
    np.testing.assert_array_equal(merged.y[: len(da)], da.y)
    assert [p["windows"] for p in merged.meta["provenance"]["merged"]] == [len(da), len(db)]
    c = tmp_path / "c.ppgds"
    write_dataset(synthesize(1, 1.0, 3, DataFormat(sample_rate_hz=25.0)), c)
    with pytest.raises(PpgedgeError, match="differs"):
        merge_datasets([a, c], tmp_path / "m2.ppgds", prefix=True)
