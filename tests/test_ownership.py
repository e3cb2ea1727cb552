"""ppgedge never destroys what it did not write (SECURITY.md, "Ownership").

Each case plants a user's tree (files, a sub-folder, hidden names that look like staging), points
a real command at it through the command line, and asserts: exit 2 with one line, no traceback,
the planted tree byte-for-byte and mode-for-mode unchanged, within 10 s. The lock cases check
that a lock is never taken over unless it provably belongs to a dead process on this host.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import assert_user_error, ppgedge

from ppgedge.errors import PpgedgeError
from ppgedge.ownership import CHECKPOINT, DATASET, claim, remove_staging
from ppgedge.pipeline.manifest import LOCK, RunLock

# names a user may well have, several of them shaped like the staging names of older versions
USER_FILES = {
    "thesis.tex": b"\\documentclass{article}",
    "sub/notes.md": b"# notes",
    ".x.old": b"mine",
    ".x.old-2": b"mine too",
    ".x.partial": b"also mine",
    "deep/er/.x.tmp-abcdefgh": b"and this",
    "report.md": b"my report",
    "teacher/teacher.pt": b"not a checkpoint",
    "data/dataset.ppgds/meta.json": b'{"mine": true}',
}


def plant(root: Path) -> Path:
    for rel, data in USER_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def tree_digest(root: Path) -> str:
    """Every entry under ``root`` (hidden ones too): relative name, type, mode and content."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        h.update(f"{p.relative_to(root)}|{st.st_mode:o}|".encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def refused(*args: str, needle: str, cwd: Path, planted: Path) -> None:
    before = tree_digest(planted)
    t0 = time.perf_counter()
    proc = ppgedge(*args, cwd=cwd)
    assert time.perf_counter() - t0 < 10
    assert_user_error(proc, needle)
    assert tree_digest(planted) == before, f"ppgedge {' '.join(args)} changed the user's files"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return plant(tmp_path / "home")


def test_data_commands_never_replace_a_users_folder(tmp_path: Path, home: Path) -> None:
    synth = ("data", "synth", "--subjects", "2", "--minutes", "1")
    refused(*synth, "-o", home, needle="did not write", cwd=tmp_path, planted=home)
    refused(*synth, "-o", home / "thesis.tex", needle="is a file", cwd=tmp_path, planted=home)
    refused(*synth, "-o", "..", needle="parent of the current", cwd=home / "sub", planted=home)
    refused(*synth, "-o", ".", needle="the current directory", cwd=home, planted=home)
    refused(*synth, "-o", "/", needle="filesystem root", cwd=tmp_path, planted=home)
    # a folder ppgedge wrote may be written again; an empty one may be filled
    (tmp_path / "empty").mkdir()
    for target in ("empty", "ds.ppgds", "ds.ppgds"):
        proc = ppgedge(*synth, "-o", target, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging left behind"


def test_home_directory_is_refused(tmp_path: Path, home: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ppgedge", "data", "synth", "-o", str(home), "--subjects", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"HOME": str(home), "PATH": ""},
        timeout=60,
    )
    assert_user_error(proc, "your home directory")


def test_run_refuses_a_folder_it_did_not_make_before_any_work(tmp_path: Path, home: Path) -> None:
    config = tmp_path / "ppgedge.toml"
    config.write_text(f'[run]\nout = "{home}"\n')
    refused("run", "--config", config, needle="did not write", cwd=tmp_path, planted=home)
    refused("run", "--out", home / "thesis.tex", needle="is a file", cwd=tmp_path, planted=home)
    refused("run", "--out", ".", needle="current directory", cwd=home, planted=home)


def test_outputs_of_other_commands_are_claimed(tmp_path: Path, home: Path, tiny_checkpoint) -> None:
    thesis = home / "thesis.tex"
    for args in (
        ("train", tmp_path / "missing.ppgds", "-m", "resnet_micro", "-o", thesis),
        ("distill", tmp_path / "missing.ppgds", "-t", tiny_checkpoint, "-o", thesis),
        ("prune", tiny_checkpoint, "--to", "50%", "-o", thesis),
        ("qat", tiny_checkpoint, "-o", thesis),
        ("export", tiny_checkpoint, "-o", home),
        ("sweep", tmp_path / "missing.ppgds", "-t", tiny_checkpoint, "-o", home),
    ):
        refused(*args, needle=str(args[-1]), cwd=tmp_path, planted=home)


def test_check_reports_never_overwrite_a_users_file(tmp_path: Path, home: Path) -> None:
    model = Path(__file__).resolve().parents[2] / "shared/data/mlperf-tiny/ad01_int8.tflite"
    if not model.is_file():
        pytest.skip(f"{model} absent (../shared beside the clone)")
    for opt in ("--junit", "--markdown"):
        refused(
            "check",
            model,
            "-t",
            "nrf52840",
            opt,
            home / "thesis.tex",
            needle=opt,
            cwd=tmp_path,
            planted=home,
        )
    junit = tmp_path / "check.xml"
    for _ in range(2):  # the second run replaces the first run's report
        proc = ppgedge("check", model, "-t", "nrf52840", "--junit", junit, cwd=tmp_path)
        assert proc.returncode in (0, 1), proc.stderr
    assert b'name="ppgedge check"' in junit.read_bytes()


def test_claim_accepts_only_ppgedge_artifacts(tmp_path: Path, tiny_checkpoint) -> None:
    assert claim(tiny_checkpoint, CHECKPOINT) == tiny_checkpoint
    fake = tmp_path / "x.pt"
    fake.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(PpgedgeError, match="not a ppgedge checkpoint"):
        claim(fake, CHECKPOINT)
    ds = tmp_path / "d"
    ds.mkdir()
    (ds / "meta.json").write_text(json.dumps({"schema": "someone.else/1"}))
    with pytest.raises(PpgedgeError, match="no ppgedge meta.json"):
        claim(ds, DATASET)
    (ds / "meta.json").write_text(json.dumps({"schema": "ppgedge.dataset/1"}))
    assert claim(ds, DATASET) == ds
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(PpgedgeError, match="broken symbolic link"):
        claim(link, DATASET)


def test_a_marker_does_not_launder_someone_elses_files(tmp_path: Path, tiny_dataset_path) -> None:
    """A dataset folder (replaced as a whole) holding a file its meta.json does not list is not
    ppgedge's to replace: copying a real meta.json into a thesis folder must not cost the thesis."""
    import shutil

    folder = tmp_path / "copy.ppgds"
    shutil.copytree(tiny_dataset_path, folder)
    assert claim(folder, DATASET) == folder  # a dataset ppgedge wrote, as it wrote it
    (folder / "thesis.tex").write_bytes(b"mine")
    before = tree_digest(folder)
    refused("data", "synth", "-o", folder, "--subjects", "1", "--minutes", "1",
            needle="'thesis.tex', which its meta.json does not list", cwd=tmp_path,
            planted=folder)  # fmt: skip
    assert tree_digest(folder) == before


def test_staging_cleanup_takes_only_staging_names_and_never_recurses(tmp_path: Path) -> None:
    folder = plant(tmp_path / "run")
    ours = [folder / ".teacher.pt.tmp-a1b2c3d4", folder / ".export.old-zz99__aa"]
    ours[0].write_bytes(b"half")
    (ours[1] / "tflm").mkdir(parents=True)
    (folder / "deep" / ".teacher.pt.tmp-a1b2c3d4").write_bytes(b"theirs, below")
    before = {p for p in folder.rglob("*") if p not in ours and ours[1] not in p.parents}
    removed = remove_staging(folder, ["teacher.pt", "export"])
    assert sorted(removed) == sorted(ours)
    assert {p for p in folder.rglob("*")} == before
    assert remove_staging(folder, ["other"]) == []


# ------------------------------------------------------------------------------------- lock
def _lock_text(**fields) -> str:
    return json.dumps({"schema": "ppgedge.lock/1", "host": socket.gethostname(), **fields})


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("", "not a ppgedge lock"),  # a lock between create and write, in older versions
        ("{", "not a ppgedge lock"),
        ('{"pid": "12x", "host": "h"}', "not a ppgedge lock"),
        ('{"pid": 1, "host": "some-other-machine"}', "on host some-other-machine"),
        ("[1, 2]", "not a ppgedge lock"),
    ],
)
def test_unreadable_or_foreign_locks_are_held(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / LOCK).write_text(content)
    with pytest.raises(PpgedgeError, match=needle) as err, RunLock(tmp_path):
        pass
    assert f"delete {tmp_path / LOCK}" in str(err.value)
    assert (tmp_path / LOCK).read_text() == content


def test_lock_of_a_dead_process_is_taken_over_and_a_live_one_is_not(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout
    (tmp_path / LOCK).write_text(_lock_text(pid=int(dead)))
    with RunLock(tmp_path):
        mine = json.loads((tmp_path / LOCK).read_text())
        assert mine["pid"] == os.getpid() and mine["schema"] == "ppgedge.lock/1"
        with pytest.raises(PpgedgeError, match="in use by another ppgedge run"), RunLock(tmp_path):
            pass
    assert not (tmp_path / LOCK).exists()
    assert not list(tmp_path.iterdir()), "lock staging left behind"


RACE = """
import os, sys, time
from pathlib import Path
from ppgedge.errors import PpgedgeError
from ppgedge.pipeline.manifest import RunLock
run, gate, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
(gate / str(os.getpid())).touch()
while len(list(gate.iterdir())) < n:  # every racer imported: go together
    time.sleep(0.001)
try:
    with RunLock(run):
        time.sleep(2.0)
    print("won")
except PpgedgeError:
    print("lost")
"""


def test_one_of_many_racing_runs_gets_the_lock(tmp_path: Path) -> None:
    run, gate = tmp_path / "run", tmp_path / "gate"
    run.mkdir(), gate.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(run), str(gate), "6"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outcomes = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert sorted(outcomes) == ["lost"] * 5 + ["won"], outcomes
    assert not list(run.iterdir()), "the lock or its staging was left behind"
