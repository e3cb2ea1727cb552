"""``ppgedge run`` on a tiny config: every stage runs, a rerun skips all, a change reruns exactly
the stages it affects, corruption is named, the lock holds, config errors are one line, the exit
code follows the budget check, and a run killed during distillation resumes."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import assert_user_error, ppgedge
from pipeline_helpers import TINY, Recorder

from ppgedge.errors import PpgedgeError
from ppgedge.pipeline import load_run_config, run_pipeline
from ppgedge.pipeline.config import STAGES, TEMPLATE, validate, with_values
from ppgedge.pipeline.manifest import LOCK


def test_tiny_config_runs_every_stage(tiny_run) -> None:
    cfg, result, rec = tiny_run
    assert rec.ran == list(STAGES) and rec.skipped == []
    out = result.out
    assert out == cfg.base_dir / "run"
    for path in (
        "teacher/teacher.pt",
        "distill/student.pt",
        "prune/pruned.pt",
        "qat/model.qat.int8.pt",
        "export/ppg_hr.tflite",
        "export/tflm",
        "verify/verify.json",
        "profile/profile.json",
        "check/check.json",
        "report.md",
    ):
        assert (out / path).exists(), path
    for plot in ("mae_vs_size.png", "layers.png", "error_by_activity.png"):
        assert (out / "plots" / plot).read_bytes()[:4] == b"\x89PNG"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema"] == "ppgedge.run/1" and manifest["tools"]["torch"].startswith("2.13")
    distill = manifest["stages"]["distill"]
    assert distill["inputs"] and all(len(h) == 64 for h in distill["inputs"].values())
    assert distill["outputs"] == {"distill/student.pt": distill["outputs"]["distill/student.pt"]}
    assert [r["model"].split()[0] for r in result.summary] == [
        "spectral",
        "teacher",
        "student",
        "pruned",
        "int8",
    ]
    assert result.exit_code == 0 and result.summary[-1]["verdict"] == "fits"
    baseline = result.summary[0]  # what the models must beat, on the same test windows
    verify = json.loads((out / "verify" / "verify.json").read_text())
    assert baseline["model"].startswith("spectral baseline")
    assert baseline["test_mae"] == verify["mae_spectral"] > 0
    assert not (out / LOCK).exists()
    assert "| int8 QAT \\(TFLite Micro\\) |" in result.report.read_text()  # Markdown-escaped


def test_rerun_skips_and_changes_rerun_what_they_affect(tiny_run) -> None:
    cfg, first, _ = tiny_run
    rec = Recorder()
    run_pipeline(cfg, observer=rec)
    assert rec.ran == [] and rec.skipped == list(STAGES)

    rec = Recorder()
    run_pipeline(with_values(cfg, qat={"epochs": 2}), observer=rec)
    assert rec.skipped[:4] == ["data", "teacher", "distill", "prune"]
    assert rec.ran[:3] == ["qat", "export", "verify"]
    # profile/check are keyed on the .tflite's content: rerun only if the int8 model changed
    assert sorted(rec.ran + rec.skipped) == sorted(STAGES)

    rec = Recorder()
    run_pipeline(with_values(cfg, qat={"epochs": 2}), from_stage="verify", observer=rec)
    assert rec.ran == ["verify", "profile", "check"]

    # a budget the model cannot meet: only profile/check rerun, and the exit code says 1
    rec = Recorder()
    over = run_pipeline(with_values(cfg, qat={"epochs": 2}, budget={"flash_kb": 1.0}), observer=rec)
    assert rec.ran == ["profile", "check"] and over.exit_code == 1
    assert over.summary[-1]["verdict"].startswith("over budget: flash ")


def test_corrupt_artifact_is_named_and_lock_is_respected(tiny_run) -> None:
    cfg, result, _ = tiny_run
    pruned = result.out / "prune" / "pruned.pt"
    original = pruned.read_bytes()
    pruned.write_bytes(original[: len(original) // 2])
    try:
        with pytest.raises(PpgedgeError, match="pruned.pt changed since stage 'prune'"):
            run_pipeline(cfg)
    finally:
        pruned.write_bytes(original)

    lock = result.out / LOCK
    lock.write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))
    try:
        with pytest.raises(PpgedgeError, match="in use by another ppgedge run"):
            run_pipeline(cfg)
    finally:
        lock.unlink()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    lock.write_text(json.dumps({"pid": int(dead), "host": os.uname().nodename}))
    rec = Recorder()
    run_pipeline(cfg, observer=rec)  # a stale lock is taken over
    assert not lock.exists()


def test_rerun_removes_only_its_own_staging_and_refuses_foreign_entries(tiny_run) -> None:
    cfg, result, _ = tiny_run
    out = result.out
    ours = [out / "teacher" / ".teacher.pt.tmp-abcd1234", out / ".manifest.json.tmp-abcd1234"]
    theirs = [
        out / "notes" / ".x.old",  # a folder of the user's inside the run folder
        out / "verify" / "deep" / ".y.tmp-abcd1234",  # below an owned folder: never scanned
        out / ".x.partial",
        out / ".x.old-2",
    ]
    for p in ours + theirs:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    rec = Recorder()
    run_pipeline(cfg, observer=rec)
    assert rec.ran == [] and not any(p.exists() for p in ours)
    assert all(p.read_bytes() == b"x" for p in theirs)
    for p in theirs:
        p.unlink()

    # an entry the run would write that the manifest does not say it made: refused up front
    manifest = json.loads((out / "manifest.json").read_text())
    saved = (out / "manifest.json").read_text()
    manifest["owned"].remove("plots")
    (out / "manifest.json").write_text(json.dumps(manifest))
    try:
        with pytest.raises(PpgedgeError, match="plots exists and this run did not write it"):
            run_pipeline(cfg)
    finally:
        (out / "manifest.json").write_text(saved)


def test_a_copied_run_folder_skips_every_stage_and_files_follow_the_umask(tiny_run) -> None:
    cfg, result, _ = tiny_run
    copy = result.out.parent / "copied-run"
    shutil.copytree(result.out, copy)
    rec = Recorder()
    again = run_pipeline(cfg, out=copy, observer=rec)
    assert rec.ran == [] and rec.skipped == list(STAGES)
    assert again.exit_code == result.exit_code and again.summary == result.summary
    for doc in ("manifest.json", "report.md", "export/export.json", "verify/verify.json",
                "profile/profile.json", "check/check.json"):  # fmt: skip
        assert str(result.out) not in (copy / doc).read_text(), f"absolute path in {doc}"
    mask = os.umask(0)
    os.umask(mask)
    for p in (result.out / "report.md", result.out / "teacher" / "teacher.pt"):
        assert p.stat().st_mode & 0o777 == 0o666 & ~mask, p
    for p in (result.out / "export", result.out / "data" / "dataset.ppgds"):
        assert p.stat().st_mode & 0o777 == 0o777 & ~mask, p


def test_printed_check_commands_reproduce_the_runs_verdict(tiny_run) -> None:
    """The false green: a config with a tight [budget] failed the run, and the printed `check`
    command must fail the same way (it used to pass, dropping the budget with --target)."""
    cfg, result, _ = tiny_run
    tight = result.out.parent / "tight.toml"
    tight.write_text(TINY + "[budget]\nsram_kb = 1.0\n")
    over = run_pipeline(load_run_config(tight))
    assert over.exit_code == 1
    checks = [c for c in over.next_commands if c.startswith("ppgedge check")]
    assert checks and all("--config" in c for c in checks)
    for command in checks:
        args = shlex.split(command)[1:]
        args[args.index("--junit") + 1] = str(result.out.parent / "check.xml")
        assert ppgedge(*args).returncode == over.exit_code, command
    fits = [c for c in result.next_commands if c.startswith("ppgedge check")]
    for command in fits:
        args = shlex.split(command)[1:]
        args[args.index("--junit") + 1] = str(result.out.parent / "check-fits.xml")
        assert ppgedge(*args).returncode == result.exit_code == 0, command


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    assert validate({}, "x")["distill"]["method"] == "dkd"
    import tomllib

    assert validate(tomllib.loads(TEMPLATE), "template")["target"]["name"] == "nrf52840"
    # `ppgedge init` writes the defaults themselves, not a copy that drifts from them
    assert validate(tomllib.loads(TEMPLATE), "template") == validate({}, "template")
    cases = {
        "[distill]\nmethd = 'dkd'\n": "unknown key 'methd' in [distill]",
        "[qat]\nepochs = 'five'\n": "[qat] epochs must be int",
        "[teachr]\narch = 'x'\n": "unknown section [teachr]",
        "[budget]\nflash_kb = -4\n": "impossible budget",
        "[distill]\nmethod = 'magic'\n": "must be one of",
        "[data]\nsource = 'spc2015'\n": "needs a path",
        "not = [valid": "not valid TOML",
    }
    for i, (text, needle) in enumerate(cases.items()):
        path = tmp_path / f"bad{i}.toml"
        path.write_text(text)
        assert_user_error(ppgedge("run", "--config", path), needle)
    assert_user_error(ppgedge("run", "--config", tmp_path / "missing.toml"), "no such config")
    init = tmp_path / "new.toml"
    assert ppgedge("init", init).returncode == 0
    assert load_run_config(init)["data"]["source"] == "synthetic"
    assert_user_error(ppgedge("init", init), "exists")


@pytest.mark.slow
def test_run_killed_during_distillation_resumes(tmp_path: Path) -> None:
    """SIGKILL a real `ppgedge run` once distillation has written its per-epoch resume file;
    the rerun keeps data and teacher, resumes the student mid-way and finishes."""
    cfg = tmp_path / "ppgedge.toml"
    cfg.write_text(TINY.replace("epochs = 2\n[prune]", "epochs = 6\n[prune]"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ppgedge", "run", "--config", cfg, "--json"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    resume = tmp_path / "run" / "distill" / "student.pt.resume"
    deadline = time.monotonic() + 300
    while not resume.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert resume.exists(), "distillation never wrote its resume file"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run" / "distill" / "student.pt").exists()
    rec = Recorder()
    result = run_pipeline(load_run_config(cfg), observer=rec)
    assert rec.skipped == ["data", "teacher"] and rec.ran[0] == "distill"
    assert rec.first_epochs["dkd student"] >= 1, "distillation restarted instead of resuming"
    assert not resume.exists() and result.exit_code == 0
    lineage = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert lineage["stages"]["distill"]["status"] == "done"
