"""Validation at the door, escaping, resume files (issue 13, items 4, 5 and 7).

Every bad input is refused by the real command line before any work: exit 2, exactly one line on
stderr, nothing on stdout, no traceback, no ESC byte. User-provided text that is accepted (file
names, activity names, sources) is shown literally: controls as visible escapes, Rich markup and
Markdown not interpreted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cli_helpers import ppgedge

from ppgedge.data.format import Dataset
from ppgedge.data.splits import holdout
from ppgedge.errors import PpgedgeError
from ppgedge.textsafe import markdown_text, printable, safe_text
from ppgedge.train.trainer import TrainConfig, TrainingObserver, train

ESC = "\x1b"
HOSTILE = "[/bold]x" + ESC + "[31m[link=evil]"  # closes a tag never opened, colours, links
PATH_HOSTILE = "[bold]x" + ESC + "[31m[link=evil]"  # the same without a path separator


def cli(*args: object, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return ppgedge(*args, cwd=cwd, env=env)


def refused(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    """Exit 2, one line on stderr naming ``needle``, no partial output, no terminal control."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Traceback" not in out and ESC not in out, out
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert needle in proc.stderr, proc.stderr
    assert proc.stdout == "", proc.stdout


# ------------------------------------------------------------------------------- datasets
def _variant(
    base: Path,
    dest: Path,
    meta: Callable[[dict[str, Any]], Any] | None = None,
    raw: str | None = None,
    arrays: dict[str, Callable[[np.ndarray], np.ndarray]] | None = None,
) -> Path:
    """A copy of ``base`` with meta.json edited (or replaced by ``raw``) and arrays rewritten."""
    shutil.copytree(base, dest)
    if raw is not None:
        (dest / "meta.json").write_text(raw)
    elif meta is not None:
        doc = json.loads((base / "meta.json").read_text())
        meta(doc)
        (dest / "meta.json").write_text(json.dumps(doc))
    for name, edit in (arrays or {}).items():
        np.save(dest / f"{name}.npy", edit(np.load(base / f"{name}.npy")))
    return dest


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for p in parents:
            doc = doc[p] if not p.isdigit() else doc[int(p)]
        if last.isdigit():
            doc[int(last)] = value
        else:
            doc[last] = value

    return edit


def _poke(index: tuple[int, ...], value: float) -> Callable[[np.ndarray], np.ndarray]:
    def edit(a: np.ndarray) -> np.ndarray:
        a = a.copy()
        a[index] = value
        return a

    return edit


META_CASES: dict[str, tuple[dict[str, Any], str]] = {
    "nan rate": ({"raw": ('"sample_rate_hz": 32.0', '"sample_rate_hz": NaN')}, "sample_rate_hz"),
    "infinite window": ({"raw": ('"window_s": 8.0', '"window_s": Infinity')}, "window_s"),
    "negative hop": ({"meta": _set("format.hop_s", -2.0)}, "hop_s"),
    "rate 1e9": ({"meta": _set("format.sample_rate_hz", 1e9)}, "10 kHz"),
    "unknown channel": ({"meta": _set("format.channels", ["ppg", "ecg"])}, "channels"),
    "deep nesting": (
        {"raw": ('"provenance": {', '"deep": ' + "[" * 100_000 + "]" * 100_000 + ', "x": {')},
        "nested",
    ),
    "no windows": ({"meta": _set("n_windows", 0)}, "at least one window"),
    "windows as text": ({"meta": _set("n_windows", "12")}, "n_windows"),
    "markup subject": ({"meta": _set("subjects.0", "[/bold]x")}, "subject name"),
    "ESC subject": ({"meta": _set("subjects.0", "s" + ESC + "[2J")}, "subject name"),
    "split separator in subject": ({"meta": _set("subjects.0", "a,b;val=c")}, "subject name"),
    "ESC activity": ({"meta": _set("activities.0", ESC + "]8;;http://e" + "\a")}, "activity"),
    "non-string recording": ({"meta": _set("recordings.0", {"a": 1})}, "recording name"),
    "meta is a list": ({"raw_text": "[1, 2, 3]"}, "schema"),
}


@pytest.fixture(scope="module")
def hostile_datasets(tiny_dataset_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("door-data")
    text = (tiny_dataset_path / "meta.json").read_text()
    for i, (spec, _) in enumerate(META_CASES.values()):
        raw = None
        if "raw" in spec:
            old, new = spec["raw"]
            assert old in text, old
            raw = text.replace(old, new, 1)
        raw = spec.get("raw_text", raw)
        _variant(tiny_dataset_path, root / f"case{i}.ppgds", meta=spec.get("meta"), raw=raw)
    return root


@pytest.mark.parametrize("case", list(META_CASES))
def test_data_info_refuses_a_hostile_meta_json(hostile_datasets: Path, case: str) -> None:
    i = list(META_CASES).index(case)
    refused(cli("data", "info", hostile_datasets / f"case{i}.ppgds"), META_CASES[case][1])


def _inf_every_50th(a: np.ndarray) -> np.ndarray:
    return np.where(np.arange(len(a))[:, None, None] % 50 == 1, np.inf, a).astype(a.dtype)


VALUE_CASES: dict[str, tuple[dict[str, Callable[[np.ndarray], np.ndarray]], str]] = {
    "NaN label": ({"y": _poke((3,), np.nan)}, "NaN or inf"),
    "label of 1e9": ({"y": _poke((2,), 1e9)}, "outside 30-209 BPM"),
    "label of 10": ({"y": _poke((2,), 10.0)}, "outside 30-209 BPM"),
    "NaN sample": ({"x": _poke((5, 0, 7), np.nan)}, "1 window(s) contain NaN or inf"),
    "inf samples": ({"x": _inf_every_50th}, "window(s) contain NaN or inf"),
    "NaN start time": ({"start_s": _poke((0,), np.nan)}, "start times"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(VALUE_CASES))
def test_poisoned_values_never_reach_training(
    tiny_dataset_path: Path, tmp_path: Path, case: str
) -> None:
    arrays, needle = VALUE_CASES[case]
    ds = _variant(tiny_dataset_path, tmp_path / "bad.ppgds", arrays=arrays)
    out = tmp_path / "m.pt"
    refused(cli("train", ds, "-m", "resnet_micro", "-o", out, "--epochs", "1"), needle)
    assert not out.exists() and not (tmp_path / "m.pt.resume").exists()


def test_samples_are_checked_in_bounded_chunks(
    tiny_dataset_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The NaN scan reads x.npy in chunks with pread, not through the map: a window in the
    last chunk is found, and the map's pages are never touched."""
    import ppgedge.data.format as fmt

    ds = _variant(tiny_dataset_path, tmp_path / "d.ppgds", arrays={"x": _poke((-1, 3, 9), np.inf)})
    monkeypatch.setattr(fmt, "SCAN_CHUNK_BYTES", 4096 * 3)  # three windows per chunk
    reads: list[int] = []
    real_preadv = os.preadv

    def counting_preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        reads.append(offset)
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", counting_preadv)
    with pytest.raises(PpgedgeError, match="1 window"):
        Dataset(ds)
    n = np.load(ds / "x.npy", mmap_mode="r").shape[0]
    assert len(reads) == -(-n // 3)  # every window read once, in chunks of three
    assert Dataset(tiny_dataset_path).x.shape[0] > 1  # a clean one still opens


# --------------------------------------------------------------------------------- config
def _toml(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


CONFIG_CASES = {
    "300-character export name": (f'[export]\nname = "{"a" * 300}"\n', "at most 64 characters"),
    "export name with markup": ('[export]\nname = "[/bold]x"\n', "plain file stem"),
    "unknown target": ('[target]\nname = "nosuchchip"\n', "unknown target 'nosuchchip'"),
    "missing target file": ('[target]\npath = "nope.toml"\n', "not a target .toml"),
    "missing targets dir": ('[target]\ntargets_dir = "nope"\n', "is not a folder"),
    "missing dataset": ('[data]\nsource = "dataset"\npath = "nope.ppgds"\n', "does not exist"),
    "missing teacher": ('[teacher]\npath = "nope.pt"\n', "does not exist"),
    "ESC in out": ('[run]\nout = "a\\u001b[31mb"\n', "control characters"),
    "NUL in a path": ('[data]\nsource = "dataset"\npath = "a\\u0000b"\n', "control characters"),
    "deep nesting": ("a = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
    "NaN budget": ("[budget]\nflash_kb = nan\n", "finite"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_run_config_is_checked_before_the_first_stage(tmp_path: Path, case: str) -> None:
    text, needle = CONFIG_CASES[case]
    cfg = _toml(tmp_path, "cfg", text + '[run]\nout = "run"\n' if "[run]" not in text else text)
    refused(cli("run", "--config", cfg), needle)
    assert not (tmp_path / "run").exists(), "a stage ran before the config was refused"


def test_profile_and_check_configs_are_checked_the_same_way(tmp_path: Path) -> None:
    deep = _toml(tmp_path, "deep", CONFIG_CASES["deep nesting"][0])
    model = Path(__file__).resolve().parents[2] / "shared/data/mlperf-tiny/ad01_int8.tflite"
    for command in ("check", "profile"):
        refused(cli(command, model, "--config", deep), "nested too deeply")
        refused(cli(command, model, "-t", deep), "nested too deeply")


def test_run_out_that_is_a_file_or_a_foreign_manifest(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("mine\n")
    refused(cli("run", "--out", tmp_path / "afile"), "afile")
    assert (tmp_path / "afile").read_text() == "mine\n"
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "manifest.json").write_text("[1, 2]\n")
    refused(cli("run", "--out", tmp_path / "r"), "manifest.json")


def test_manifest_holding_a_list_is_one_line(tmp_path: Path) -> None:
    from ppgedge.pipeline.manifest import RunManifest

    (tmp_path / "manifest.json").write_text("[1, 2]\n")
    with pytest.raises(PpgedgeError, match="not a ppgedge run manifest"):
        RunManifest.open(tmp_path, {})


# ---------------------------------------------------------------------------- CLI options
FLOAT_CASES = [
    (("train", "D", "-m", "resnet_micro", "-o", "m.pt", "--lr", "nan"), "--lr nan"),
    (("train", "D", "-m", "resnet_micro", "-o", "m.pt", "--weight-decay", "inf"), "--weight-decay"),
    (("data", "synth", "-o", "s.ppgds", "--rate", "nan"), "--rate nan"),
    (("data", "synth", "-o", "s.ppgds", "--minutes", "1e999"), "--minutes inf"),
    (("data", "import", "bami", "x", "-o", "s.ppgds", "--acc-scale", "-inf"), "--acc-scale"),
    (("check", "m.tflite", "-t", "nrf52840", "--max-regression", "NaN"), "--max-regression"),
]


@pytest.mark.parametrize(("args", "needle"), FLOAT_CASES, ids=[c[1] for c in FLOAT_CASES])
def test_non_finite_float_options_are_refused(
    tmp_path: Path, tiny_dataset_path: Path, args: tuple[str, ...], needle: str
) -> None:
    args = tuple(str(tiny_dataset_path) if a == "D" else a for a in args)
    refused(cli(*args, cwd=tmp_path), needle)
    assert list(tmp_path.iterdir()) == [], "nothing may be written"


def test_every_float_option_gets_the_check() -> None:
    """The check is attached once to every command: no float option is left out."""
    import inspect

    from ppgedge.cli import app

    def commands(t: Any) -> list[Any]:
        found = [c.callback for c in t.registered_commands]
        for g in t.registered_groups:
            found += commands(g.typer_instance)
        return found

    def has_float(f: Any) -> bool:
        return any(
            p.annotation in ("float", "float | None")
            for p in inspect.signature(f).parameters.values()
        )

    with_floats = [f for f in commands(app) if has_float(f)]
    assert len(with_floats) >= 5 and all(hasattr(f, "__wrapped__") for f in with_floats)


@pytest.fixture(scope="module")
def tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from test_check import fc_model

    return fc_model(tmp_path_factory.mktemp("door-tflite") / "m.tflite")


def test_check_outputs_that_cannot_be_written(tmp_path: Path, tflite: Path) -> None:
    (tmp_path / "afile").write_text("x")
    refused(
        cli("check", tflite, "-t", "nrf52840", "--junit", tmp_path / "afile" / "j.xml"), "afile"
    )
    refused(cli("check", tflite, "-t", "nrf52840", "--junit", "/proc/ppgedge-door.xml"), "--junit")
    refused(cli("check", tflite, "-t", "nrf52840", "--markdown", "/proc/door.md"), "--markdown")
    refused(
        cli(
            "check",
            tflite,
            "-t",
            "nrf52840",
            GITHUB_ACTIONS="true",
            GITHUB_STEP_SUMMARY="/proc/ppgedge-door-summary",
        ),
        "GITHUB_STEP_SUMMARY",
    )


def test_train_into_a_folder_is_refused_before_training(
    tiny_dataset_path: Path, tmp_path: Path
) -> None:
    (tmp_path / "out.pt").mkdir()
    proc = cli("train", tiny_dataset_path, "-m", "resnet_micro", "-o", tmp_path / "out.pt")
    refused(proc, "folder")
    assert list((tmp_path / "out.pt").iterdir()) == []
    assert not (tmp_path / "out.pt.resume").exists()
    with pytest.raises(PpgedgeError, match="folder"):  # run and distill reach it in process
        train(
            Dataset(tiny_dataset_path),
            holdout(Dataset(tiny_dataset_path).subjects, seed=0),
            tmp_path / "out.pt",
            TrainConfig(arch="resnet_micro", epochs=1),
        )


# ------------------------------------------------------------------------------- escaping
@pytest.fixture(scope="module")
def hostile_names(tiny_dataset_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid dataset in a folder whose name holds ESC and markup, with an activity name and
    a source full of markup and controls (activities and sources are free text)."""
    root = tmp_path_factory.mktemp("door-names")

    def edit(doc: dict[str, Any]) -> None:
        doc["activities"][0] = "[link=http://evil]click[/link]"
        doc["source"] = "[/bold]src" + ESC + "[2J"

    return _variant(tiny_dataset_path, root / ("d" + PATH_HOSTILE + ".ppgds"), meta=edit)


def test_data_info_shows_hostile_text_literally(hostile_names: Path) -> None:
    proc = cli("data", "info", hostile_names)
    assert proc.returncode == 0, proc.stderr
    assert ESC not in proc.stdout + proc.stderr
    assert "[link=http://evil]click[/link]" in proc.stdout  # shown, not a hyperlink
    assert "[/bold]src\\x1b[2J" in proc.stdout
    assert "d[bold]x\\x1b[31m[link=evil].ppgds" in proc.stdout
    doc = json.loads(cli("data", "info", hostile_names, "--json").stdout)
    assert doc["windows_per_activity"]["[link=http://evil]click[/link]"] > 0


def test_error_messages_are_escaped(tmp_path: Path) -> None:
    missing = tmp_path / ("no" + PATH_HOSTILE + "\nsecond line")
    proc = cli("data", "info", missing)
    refused(proc, "not a ppgedge dataset")
    assert "no[bold]x\\x1b[31m[link=evil]\\nsecond line" in proc.stderr


def test_check_reports_escape_the_model_name(tmp_path: Path, tflite: Path) -> None:
    model = tmp_path / ("m" + PATH_HOSTILE + ".tflite")
    shutil.copy(tflite, model)
    summary = tmp_path / "summary.md"
    proc = cli(
        "check",
        model,
        "-t",
        "nrf52840",
        "--junit",
        tmp_path / "j.xml",
        "--markdown",
        tmp_path / "c.md",
        cwd=tmp_path,
        GITHUB_ACTIONS="true",
        GITHUB_STEP_SUMMARY=str(summary),
    )
    assert proc.returncode == 0, proc.stderr
    texts = [proc.stdout, proc.stderr, *(p.read_text() for p in (tmp_path / "j.xml", summary))]
    texts.append((tmp_path / "c.md").read_text())
    assert all(ESC not in t for t in texts)
    assert "m[bold]x\\x1b[31m[link=evil].tflite" in proc.stdout  # the table title, literally
    props = ET.parse(tmp_path / "j.xml").getroot().iter("property")  # valid XML
    assert any("\\x1b" in p.get("value", "") for p in props)
    assert "m\\[bold\\]x\\\\x1b\\[31m\\[link=evil\\].tflite" in (tmp_path / "c.md").read_text()


def test_text_helpers() -> None:
    assert printable("a\x1b[31m\u202eb\n") == "a\\x1b[31m\\u202eb\\n"
    assert printable("tab\there\n", keep="\n\t") == "tab\there\n"
    assert safe_text("[/bold]x") == "\\[/bold]x"
    assert markdown_text("a|b [x](http://e) <img> `c`") == (
        "a\\|b \\[x\\]\\(http://e\\) \\<img\\> \\`c\\`"
    )


# ---------------------------------------------------------------------------- resume files
class _StopAfterFirstEpoch(TrainingObserver):
    def epoch(self, report: Any) -> None:
        raise KeyboardInterrupt


@pytest.fixture(scope="module")
def interrupted(tiny_dataset_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The resume file a `ppgedge train ... --epochs 2` interrupted after epoch 1 leaves (the
    configuration digest matches what that command line computes)."""
    out = tmp_path_factory.mktemp("door-resume") / "m.pt"
    ds = Dataset(tiny_dataset_path)
    with pytest.raises(KeyboardInterrupt):
        train(
            ds,
            holdout(ds.subjects, seed=0),
            out,
            TrainConfig(arch="resnet_micro", epochs=2),
            device="cpu",
            observer=_StopAfterFirstEpoch(),
        )
    resume = out.with_name("m.pt.resume")
    assert resume.exists()
    return resume


def _broken_state(resume: Path, dest: Path) -> None:
    saved = torch.load(resume, weights_only=True)
    saved["model"] = {"not.a.weight": torch.zeros(1)}
    torch.save(saved, dest)


RESUME_CASES: dict[str, Callable[[Path, Path], None]] = {
    "truncated": lambda r, d: d.write_bytes(r.read_bytes()[: r.stat().st_size // 2]),
    "empty": lambda r, d: d.write_bytes(b""),
    "text": lambda r, d: d.write_text("not a resume file\n"),
    "a list": lambda r, d: torch.save([1, 2, 3], d),
    "weights of another model": _broken_state,
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_unusable_resume_file_is_named_and_restart_discards_it(
    interrupted: Path, tiny_dataset_path: Path, tmp_path: Path, case: str
) -> None:
    resume = tmp_path / "m.pt.resume"
    RESUME_CASES[case](interrupted, resume)
    args = ("train", tiny_dataset_path, "-m", "resnet_micro", "-o", tmp_path / "m.pt")
    proc = cli(*args, "--epochs", "2")
    refused(proc, "--restart")
    assert "m.pt.resume" in proc.stderr and resume.exists()
    if case == "truncated":  # --restart gets past it, and the file does not block again
        proc = cli(*args, "--epochs", "1", "--restart")
        assert proc.returncode == 0, proc.stderr
        assert (tmp_path / "m.pt").is_file() and not resume.exists()


def test_a_good_resume_file_still_resumes(
    interrupted: Path, tiny_dataset_path: Path, tmp_path: Path
) -> None:
    shutil.copy(interrupted, tmp_path / "m.pt.resume")
    proc = cli("train", tiny_dataset_path, "-m", "resnet_micro", "-o", tmp_path / "m.pt",
               "--epochs", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "resuming after epoch 1" in proc.stdout
    assert not (tmp_path / "m.pt.resume").exists()
