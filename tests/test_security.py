"""Nothing trusted blindly: files crafted to run code on load are refused without running it, the
readers of foreign formats cannot be driven into a crash or a memory blow-up, and a truncated
file given to a command is named in one line (exit 2). See SECURITY.md."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cli_helpers import assert_user_error, ppgedge

from ppgedge.errors import PpgedgeError


class Payload:
    """Pickles as ``func(arg)``: what a booby-trapped download does when it is unpickled."""

    def __init__(self, func: Any, arg: str) -> None:
        self.func, self.arg = func, arg

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return self.func, (self.arg,)


def payloads(marker: Path) -> dict[str, Payload]:
    return {
        "os.system": Payload(os.system, f"touch {marker}"),
        "builtins.exec": Payload(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
    }


def craft(work: Path, marker: Path, checkpoint: Path) -> dict[str, Path]:
    """Every kind of file a user is handed, each with a code-running payload (that would create
    ``marker``) inside an otherwise real-looking document."""
    from test_importers import dalia_dict

    p = payloads(marker)
    real = torch.load(checkpoint, weights_only=True)
    files: dict[str, Path] = {}

    ckpt = dict(real, metrics={**real["metrics"], "note": p["os.system"]})
    files["checkpoint"] = work / "model.pt"
    torch.save(ckpt, files["checkpoint"])
    files["checkpoint_legacy"] = work / "legacy.pt"
    torch.save(ckpt, files["checkpoint_legacy"], _use_new_zipfile_serialization=False)
    files["checkpoint_raw_pickle"] = work / "raw.pt"
    files["checkpoint_raw_pickle"].write_bytes(pickle.dumps(ckpt, protocol=4))

    artifact = {"schema": "ppgedge.quantized/1", "scheme": p["builtins.exec"], "base": real}
    files["artifact"] = work / "model.int8.pt"
    torch.save(artifact, files["artifact"])

    files["teacher"] = work / "teacher.pt"
    torch.save(dict(real, arch=p["builtins.exec"]), files["teacher"])
    # the same zip with a TorchScript-style constants.pkl: load_teacher takes it for TorchScript
    files["teacher_torchscript_like"] = work / "teacher_ts.pt"
    with (
        zipfile.ZipFile(files["teacher"]) as src,
        zipfile.ZipFile(files["teacher_torchscript_like"], "w") as dst,
    ):
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        root = src.namelist()[0].split("/")[0]
        dst.writestr(f"{root}/constants.pkl", pickle.dumps((p["os.system"],), protocol=2))

    subject = {k.decode(): v for k, v in dalia_dict(b"S1", 30).items()}
    subject["signal"] = {"wrist": {"BVP": p["os.system"], "ACC": np.zeros((960, 3))}}
    files["dalia"] = work / "S1" / "S1.pkl"
    files["dalia"].parent.mkdir()
    files["dalia"].write_bytes(pickle.dumps(subject, protocol=2))
    return files


@pytest.fixture(scope="module")
def crafted(tmp_path_factory, tiny_checkpoint: Path) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("crafted")
    marker = work / "pwned"
    return {"files": craft(work, marker, tiny_checkpoint), "marker": marker}


UNSAFE_LOAD = """
import os, pickle, sys, torch
marker = sys.argv[1]
for name, path in zip(sys.argv[2::2], sys.argv[3::2]):
    if os.path.exists(marker):
        os.remove(marker)
    try:
        if path.endswith(".pkl"):
            pickle.load(open(path, "rb"), encoding="latin1")
        else:
            torch.load(path, weights_only=False)
    except Exception:
        pass  # the payload has run by the time anything fails
    print(name, os.path.exists(marker))
"""


def test_the_payloads_are_real(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Loaded the unsafe way (plain pickle, ``weights_only=False``), each crafted file runs its
    payload: the refusals below are refusals of files that really are dangerous."""
    marker = tmp_path / "ran"
    files = craft(tmp_path, marker, tiny_checkpoint)
    names = ["checkpoint", "checkpoint_legacy", "checkpoint_raw_pickle", "artifact", "teacher"]
    args = [str(a) for n in [*names, "dalia"] for a in (n, files[n])]
    proc = subprocess.run(
        [sys.executable, "-c", UNSAFE_LOAD, str(marker), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    ran = dict(line.split() for line in proc.stdout.splitlines())
    assert ran == {n: "True" for n in [*names, "dalia"]}, proc.stdout + proc.stderr


def test_foreign_code_is_refused_in_process(crafted: dict[str, Any]) -> None:
    from ppgedge.compress.quantize import load_artifact
    from ppgedge.data.importers import import_dataset
    from ppgedge.distill.teachers import load_teacher
    from ppgedge.models.checkpoint import load_checkpoint

    files, marker = crafted["files"], crafted["marker"]
    for name in ("checkpoint", "checkpoint_legacy", "checkpoint_raw_pickle"):
        with pytest.raises(PpgedgeError, match="refused, loading it would need"):
            load_checkpoint(files[name])
    with pytest.raises(PpgedgeError, match=r"would need exec"):
        load_artifact(files["artifact"])
    with pytest.raises(PpgedgeError, match=r"would need exec"):
        load_teacher(files["teacher"])
    # TorchScript's own unpickler resolves no Python globals: refused too
    with pytest.raises(PpgedgeError, match="posix.system"):
        load_teacher(files["teacher_torchscript_like"])
    with pytest.raises(PpgedgeError, match=r"refusing to unpickle posix\.system"):
        import_dataset("dalia", files["dalia"].parent.parent)
    assert not marker.exists()


def test_foreign_code_is_refused_by_the_cli(
    crafted: dict[str, Any], tiny_dataset_path: Path, tmp_path: Path
) -> None:
    files, marker = crafted["files"], crafted["marker"]
    assert_user_error(ppgedge("eval", files["checkpoint"], tiny_dataset_path), "model.pt")
    out = tmp_path / "export"
    assert_user_error(ppgedge("export", files["artifact"], "-o", out), "would need exec")
    student = tmp_path / "student.pt"
    assert_user_error(
        ppgedge(
            "distill",
            tiny_dataset_path,
            "--teacher",
            files["teacher"],
            "-s",
            "resnet_micro",
            "-o",
            student,
            "--epochs",
            "1",
        ),
        "teacher.pt",
    )
    ds = tmp_path / "dalia.ppgds"
    assert_user_error(ppgedge("data", "import", "dalia", files["dalia"], "-o", ds), "S1.pkl")
    assert not marker.exists()
    assert not out.exists() and not student.exists() and not ds.exists()


# ------------------------------------------------------------------------------ pickle internals
def _dtype_flag_bomb() -> bytes:
    """A float64 array whose pickled dtype state claims the 'holds Python objects' flags, which
    would make numpy read the raw bytes as object pointers."""
    raw = pickle.dumps(np.arange(4.0), protocol=2)
    state_end = raw.index(b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t") + 10
    return raw[:state_end] + b"K\x3f" + raw[state_end + 2 :]


def test_pickled_numpy_state_cannot_reach_numpy_unchecked(tmp_path: Path) -> None:
    from ppgedge.data.safe_pickle import safe_load

    bomb = tmp_path / "flags.pkl"
    bomb.write_bytes(_dtype_flag_bomb())
    arr = safe_load(bomb)
    assert arr.dtype == np.float64 and not arr.dtype.hasobject and arr.dtype.flags == 0
    np.testing.assert_array_equal(arr, np.arange(4.0))

    cases = {
        # NEWOBJ numpy.ndarray, then BUILD: numpy's own __setstate__ with the file's state
        "newobj.pkl": b"\x80\x02cnumpy\nndarray\nq\x00K\x03\x85q\x01\x81q\x02.",
        # bytearray(2**33): 8 GiB of zeros from a 40-byte file
        "bytearray.pkl": b"\x80\x02c__builtin__\nbytearray\n\x8a\x05\x00\x00\x00\x00\x02\x85R.",
        # a memo index of 2**30: the C unpickler would grow its memo table to match
        "memo.pkl": b"\x80\x02K\x01r\x00\x00\x00\x40.",
        "object_array.pkl": pickle.dumps(np.array([1, "a"], dtype=object), protocol=2),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        t0 = time.perf_counter()
        try:
            safe_load(tmp_path / name)
        except PpgedgeError as exc:
            assert "\n" not in str(exc)
        assert time.perf_counter() - t0 < 2.0, name


def _corrupt_mat_tag(path: Path, mdtype: bytes) -> None:
    """Rewrite the data type code of the numbers in a one-variable MATLAB v5 file."""
    data = bytearray(path.read_bytes())
    tag = data.index(b"\x09\x00\x00\x00", data.index(b"BPM0"))  # miDOUBLE after the name
    data[tag : tag + 4] = mdtype
    path.write_bytes(bytes(data))


def test_corrupt_mat_tags_are_refused_not_a_crash(tmp_path: Path) -> None:
    """scipy's MAT reader indexes a C table with the tag's type code: an unknown code (or an
    miMATRIX where numbers belong) used to crash the process with SIGSEGV."""
    from scipy.io import savemat

    from ppgedge.data.importers import import_dataset

    root = tmp_path / "spc" / "Training_data"
    root.mkdir(parents=True)
    savemat(root / "DATA_01_TYPE01.mat", {"sig": np.zeros((6, 125 * 20))})
    bpm = root / "DATA_01_TYPE01_BPMtrace.mat"
    for code in (b"\x09\xd2\x00\x00", b"\x0e\x00\x00\x00", b"\x13\x00\x00\x00"):
        savemat(bpm, {"BPM0": np.full((7, 1), 80.0)})
        _corrupt_mat_tag(bpm, code)
        with pytest.raises(PpgedgeError, match="not a readable .mat file"):
            import_dataset("spc2015", root / "DATA_01_TYPE01.mat")
    out = tmp_path / "out.ppgds"
    proc = ppgedge("data", "import", "spc2015", root / "DATA_01_TYPE01.mat", "-o", out)
    assert_user_error(proc, "DATA_01_TYPE01_BPMtrace.mat")  # exit 2, not -11 (SIGSEGV)
    assert not out.exists()


# ------------------------------------------------------------------------------ integrity
@pytest.fixture(scope="module")
def int8_files(tiny_checkpoint: Path, tiny_dataset, tmp_path_factory) -> dict[str, Path]:
    from ppgedge.compress.quantize import ptq, to_tflite

    work = tmp_path_factory.mktemp("int8")
    art = ptq(tiny_checkpoint, tiny_dataset, work / "m.int8.pt", n_windows=16).path
    return {"artifact": art, "tflite": to_tflite(art, work / "m.tflite")}


def _truncated(src: Path, dst: Path, fraction: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def test_truncated_files_given_to_commands_are_named(
    tiny_checkpoint: Path,
    tiny_dataset_path: Path,
    int8_files: dict[str, Path],
    tmp_path: Path,
) -> None:
    """A cut-off download or a disk-full copy: one line naming the file, exit 2, no output."""
    import shutil

    ckpt = _truncated(tiny_checkpoint, tmp_path / "cut.pt")
    assert_user_error(ppgedge("eval", ckpt, tiny_dataset_path), str(ckpt))

    art = _truncated(int8_files["artifact"], tmp_path / "cut.int8.pt")
    out = tmp_path / "export"
    assert_user_error(ppgedge("export", art, "-o", out, "--format", "tflite"), str(art))
    assert not out.exists()

    tfl = _truncated(int8_files["tflite"], tmp_path / "cut.tflite", 0.7)
    assert_user_error(ppgedge("profile", tfl, "--target", "nrf52840"), str(tfl))
    assert_user_error(ppgedge("verify", tfl, tiny_dataset_path), str(tfl))

    ds = tmp_path / "cut.ppgds"
    shutil.copytree(tiny_dataset_path, ds)
    _truncated(tiny_dataset_path / "x.npy", ds / "x.npy", 0.9)
    assert_user_error(ppgedge("data", "info", ds), str(ds / "x.npy"))
    assert_user_error(ppgedge("eval", tiny_checkpoint, ds), str(ds / "x.npy"))


def test_truncated_files_in_process(
    tiny_checkpoint: Path, tiny_dataset_path: Path, int8_files: dict[str, Path], tmp_path: Path
) -> None:
    """Every truncation point of the small files, and a spread of them for the large ones."""
    import shutil

    from ppgedge.compress.quantize import load_artifact
    from ppgedge.data.format import Dataset
    from ppgedge.models.checkpoint import load_checkpoint
    from ppgedge.profile.tflite_reader import read_tflite

    readers = {
        "checkpoint": (tiny_checkpoint, load_checkpoint),
        "artifact": (int8_files["artifact"], load_artifact),
        "tflite": (int8_files["tflite"], read_tflite),
    }
    for name, (src, read) in readers.items():
        data = src.read_bytes()
        for cut in np.linspace(0, len(data) - 1, 60).astype(int):
            path = tmp_path / f"{name}{src.suffix}"
            path.write_bytes(data[:cut])
            with pytest.raises(PpgedgeError, match=path.name):
                read(path)
    ds = tmp_path / "d.ppgds"
    shutil.copytree(tiny_dataset_path, ds)
    for array in ("x", "y", "subject", "activity", "recording", "start_s"):
        data = (tiny_dataset_path / f"{array}.npy").read_bytes()
        for cut in (0, 10, 127, len(data) // 2, len(data) - 1):
            (ds / f"{array}.npy").write_bytes(data[:cut])
            with pytest.raises(PpgedgeError, match=f"{array}.npy|truncated"):
                Dataset(ds)
        (ds / f"{array}.npy").write_bytes(data)


def test_run_manifest_names_a_changed_output(tmp_path: Path) -> None:
    """The manifest keeps a content hash of every stage output; a later run names the file that
    changed (truncated .tflite, edited bundle file) before using it."""
    from ppgedge.pipeline.manifest import RunManifest, outputs_of

    out = tmp_path / "run"
    tfl = out / "export" / "ppg_hr.tflite"
    bundle = out / "export" / "tflm" / "ppg_hr_model_data.c"
    bundle.parent.mkdir(parents=True)
    tfl.write_bytes(b"TFL3" * 100)
    bundle.write_text("const unsigned char model[] = {0};\n")
    manifest = RunManifest.open(out, {})
    manifest.record("export", {"status": "done", "key": "k", "outputs": outputs_of(out, [tfl])})
    outputs = outputs_of(out, [bundle.parent])
    manifest.record("bundle", {"status": "done", "key": "k", "outputs": outputs})
    assert manifest.is_fresh("export", "k") and manifest.is_fresh("bundle", "k")

    original = tfl.read_bytes()
    tfl.write_bytes(original[:200])
    with pytest.raises(PpgedgeError, match=r"ppg_hr\.tflite changed since stage 'export'"):
        RunManifest.open(out, {}).is_fresh("export", "k")
    tfl.write_bytes(original)
    bundle.write_text("const unsigned char model[] = {1};\n")
    with pytest.raises(PpgedgeError, match=r"tflm changed since stage 'bundle'"):
        RunManifest.open(out, {}).is_fresh("bundle", "k")
