"""Ctrl-C and ``kill -9`` at the long stages of a real ``ppgedge run`` (teacher training: kill,
QAT: Ctrl-C, export: both), one after another in the same run directory: each leaves no
half-written artifact (every file at a final artifact path loads; temporary files are hidden
``.name.tmp-*`` / ``.name.old-*`` names), Ctrl-C exits 130 with one "interrupted" line and no
traceback, and the next run resumes and finishes, skipping what was done. (``test_pipeline``
kills one run during distillation.)"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pipeline_helpers import TINY

from ppgedge.pipeline.manifest import LOCK, content_hash

# long enough stages to land a signal in: 6 teacher epochs, 4 QAT epochs
CONFIG = TINY.replace('arch = "resnet_micro"\nepochs = 1', 'arch = "resnet_micro"\nepochs = 6')
CONFIG = CONFIG.replace("[qat]\nepochs = 1", "[qat]\nepochs = 4")
INTERRUPTED = "interrupted: rerun the same command to resume"
TIMEOUT_S = 300
FINAL_OUTPUT = {"teacher": "teacher/teacher.pt", "qat": "qat/model.qat.int8.pt", "export": "export"}


def _json(path: Path) -> object:
    return json.loads(path.read_text())


def _loaders() -> dict[str, Callable[[Path], object]]:
    from ppgedge.compress.quantize import load_artifact
    from ppgedge.data.format import Dataset
    from ppgedge.models.checkpoint import load_checkpoint
    from ppgedge.profile.tflite_reader import read_tflite

    return {
        "data/dataset.ppgds": Dataset,
        "teacher/teacher.pt": load_checkpoint,
        "distill/student.pt": load_checkpoint,
        "prune/pruned.pt": load_checkpoint,
        "qat/model.qat.int8.pt": load_artifact,
        "export/export.json": _json,
        "export/ppg_hr.tflite": read_tflite,
        "export/tflm/ppg_hr.tflite": read_tflite,
        "export/tflm/manifest.json": _json,
        "verify/verify.json": _json,
        "profile/profile.json": _json,
        "check/check.json": _json,
        "manifest.json": _json,
    }


def assert_nothing_half_written(out: Path) -> None:
    """Every final artifact that exists loads; the export folder is whole; temporary files are
    hidden; every stage the manifest calls done has outputs with the recorded hashes."""
    for rel, load in _loaders().items():
        if (out / rel).exists():
            load(out / rel)
    if (out / "export").exists():
        assert (out / "export" / "export.json").is_file(), "export folder without its manifest"
        for f in (out / "export" / "tflm" / "manifest.json", out / "export" / "export.json"):
            listed = _json(f)["files"] if f.exists() else []
            for entry in listed if isinstance(listed, list) else listed.values():
                assert (f.parent / entry["path"]).exists(), entry
    for p in out.rglob("*"):
        rel = p.relative_to(out)
        if any(part.startswith(".") for part in rel.parts):
            continue  # staging folders, .name.tmp-* files and the lock are hidden
        assert not re.search(r"\.tmp|partial|\.old\b", p.name), f"visible temporary file {rel}"
    if (out / "manifest.json").exists():
        for stage, entry in _json(out / "manifest.json")["stages"].items():
            assert entry["status"] == "done", stage
            for rel, digest in entry["outputs"].items():
                assert content_hash(out / rel) == digest, f"{rel} of stage {stage}"


class Run:
    """``ppgedge run --config`` in a subprocess, its stdout lines collected as they come."""

    def __init__(self, cfg: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="120")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ppgedge", "run", "--config", str(cfg)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self.stderr = ""
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr = self.proc.stderr.read()

    def after(self, stage: str) -> list[str]:
        """Lines printed after the stage's own line (finished or skipped); None before it."""
        for i in range(len(self.lines) - 1, -1, -1):
            if self.lines[i].startswith(f"{stage}:") and not _starting(self.lines[i]):
                return self.lines[i + 1 :]
        return None  # type: ignore[return-value]

    def interrupt_when(self, ready: Callable[[], bool], sig: signal.Signals) -> int:
        deadline = time.monotonic() + TIMEOUT_S
        while not ready():
            if self.proc.poll() is not None:
                pytest.fail(f"run ended before the signal:\n{self.output()}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"the stage never started:\n{self.output()}")
            time.sleep(0.05)
        self.proc.send_signal(sig)
        return self.wait()

    def wait(self) -> int:
        rc = self.proc.wait(timeout=TIMEOUT_S)
        for t in self._threads:
            t.join(timeout=10)
        return rc

    def output(self) -> str:
        return "\n".join(self.lines[-30:]) + "\n" + self.stderr[-3000:]


def _starting(line: str) -> bool:
    """The line a stage prints when it starts (``teacher: running ...``), not its result."""
    return line.rstrip().endswith("running ...")


def training(run: Run, after_stage: str, next_stage: str) -> Callable[[], bool]:
    """True once an epoch line is printed after ``after_stage`` and before ``next_stage``."""

    def ready() -> bool:
        tail = run.after(after_stage)
        return (
            tail is not None
            and any(" epoch " in f" {line.lstrip()}" for line in tail)
            and not any(line.startswith(f"{next_stage}:") and not _starting(line) for line in tail)
        )

    return ready


def exporting(run: Run, out: Path) -> Callable[[], bool]:
    """True while the export stage is writing its staging folder."""
    return lambda: run.after("qat") is not None and any(out.glob(".export.tmp-*"))


def assert_clean_interrupt(run: Run, rc: int) -> None:
    assert rc == 130, run.output()
    assert "Traceback" not in run.stderr, run.stderr
    assert run.stderr.strip().splitlines()[-1:] == [INTERRUPTED], run.stderr


@pytest.mark.slow
def test_interrupted_everywhere_then_resumed(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "run"
    # each signal lands once in a training stage and once in export's staging (both training
    # stages share one trainer, so the other two pairings add time, not coverage)
    plan = [
        ("teacher", signal.SIGKILL),
        ("qat", signal.SIGINT),
        ("export", signal.SIGINT),
        ("export", signal.SIGKILL),
    ]
    previous = {"teacher": "data", "qat": "prune"}
    following = {"teacher": "distill", "qat": "export"}
    for stage, sig in plan:
        run = Run(cfg)
        if stage == "export":
            ready = exporting(run, out)
        else:
            ready = training(run, previous[stage], following[stage])
        rc = run.interrupt_when(ready, sig)
        if sig == signal.SIGINT:
            assert_clean_interrupt(run, rc)
            assert not (out / LOCK).exists(), "Ctrl-C left the run locked"
        else:
            assert rc == -signal.SIGKILL, run.output()
        assert_nothing_half_written(out)
        done = _json(out / "manifest.json")["stages"] if (out / "manifest.json").exists() else {}
        assert stage not in done, f"{stage} recorded as done though it was interrupted"
        # the signal landed inside the stage: its final output is not there yet
        assert not (out / FINAL_OUTPUT[stage]).exists(), f"{stage} had finished already"

    final = Run(cfg)
    assert final.wait() == 0, final.output()
    skipped = [ln.split(":")[0] for ln in final.lines if "unchanged, skipped" in ln]
    assert skipped == ["data", "teacher", "distill", "prune", "qat"], final.output()
    assert_nothing_half_written(out)
    assert not (out / LOCK).exists()
    leftovers = [p.name for p in out.rglob(".*")]
    assert leftovers == [], f"staging left by the killed runs was not cleaned up: {leftovers}"
    stages = _json(out / "manifest.json")["stages"]
    assert all(stages[s]["status"] == "done" for s in ("export", "verify", "check")), stages


def test_interrupt_inside_a_gc_callback_prints_no_traceback() -> None:
    """Ctrl-C that lands in a garbage-collection callback (JAX registers one) or a ``__del__``
    cannot be raised there; Python would print "Exception ignored ... Traceback". The CLI's
    handlers record it silently (the run stops at its next check); other exceptions that Python
    cannot raise are still reported."""
    code = (
        "import gc, sys\n"
        "from ppgedge.cli.app import install_interrupt_handlers\n"
        "from ppgedge.errors import check_interrupt, note_interrupt\n"
        "install_interrupt_handlers()\n"
        "def cb(phase, info):\n"
        "    if phase == 'start':\n"
        "        note_interrupt()\n"
        "        raise KeyboardInterrupt\n"
        "gc.callbacks.append(cb)\n"
        "gc.collect()\n"
        "gc.callbacks.remove(cb)\n"
        "class Bad:\n"
        "    def __del__(self):\n"
        "        raise ValueError('a real bug')\n"
        "Bad()\n"
        "try:\n"
        "    check_interrupt()\n"
        "except KeyboardInterrupt:\n"
        "    print('recorded')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "recorded"
    assert "KeyboardInterrupt" not in proc.stderr
    assert "ValueError: a real bug" in proc.stderr  # still shown: not an interrupt


def test_an_interrupt_swallowed_while_staging_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Ctrl-C that a library swallowed while an artifact was staged (the CLI's handler noted
    it) discards the staging: the target is not created and no hidden staging is left. A write
    that starts after the interrupt (a resume checkpoint, the manifest) is published."""
    from ppgedge import errors
    from ppgedge.atomic import atomic_path, write_text_atomic

    monkeypatch.setattr(errors, "_interrupted", False)
    target = tmp_path / "artifact.txt"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("half of the work")
        errors.note_interrupt()  # what the SIGINT handler does when the raise is eaten
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    write_text_atomic(target, "written after the interrupt")
    assert target.read_text() == "written after the interrupt"


def test_export_stops_at_an_interrupt_the_converter_swallowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resnet_bundle: Path
) -> None:
    """The failure CI once saw: Ctrl-C landed in JAX's garbage-collection callback while the
    converter imported it, export ran on and published; now export stops after the conversion
    and leaves neither the folder nor its staging."""
    from ppgedge import errors
    from ppgedge.export import run as export_run

    real = export_run.to_tflite

    def swallowed(*args, **kwargs):
        errors.note_interrupt()
        return real(*args, **kwargs)

    monkeypatch.setattr(errors, "_interrupted", False)
    monkeypatch.setattr(export_run, "to_tflite", swallowed)
    out = tmp_path / "export"
    with pytest.raises(KeyboardInterrupt):
        export_run.export(resnet_bundle.parent / "resnet.ptq.int8.pt", out, formats=("tflite",))
    assert list(tmp_path.iterdir()) == []
