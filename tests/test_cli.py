"""The command line as users meet it: real subprocesses, real exit codes, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_user_error, ppgedge  # noqa: F401

README = Path(__file__).resolve().parents[1] / "README.md"
CI_RUN = Path(__file__).resolve().parents[1] / ".ci" / "run"


def test_help_lists_every_command_and_version() -> None:
    proc = ppgedge("--help")
    assert proc.returncode == 0
    for cmd in ("data", "models", "train", "eval", "run"):
        assert f" {cmd} " in proc.stdout
    version = ppgedge("--version")
    assert version.returncode == 0 and version.stdout.startswith("ppgedge ")


def test_models_json_lists_zoo() -> None:
    doc = json.loads(ppgedge("models", "--json").stdout)
    assert doc["schema"] == "ppgedge.models/1"
    names = {m["name"] for m in doc["models"]}
    assert {"resnet_teacher", "resnet_micro", "mlp", "dscnn"} <= names
    assert all(m["parameters"] > 0 and m["macs"] > 0 for m in doc["models"])


def test_synth_info_train_eval(tmp_path: Path) -> None:
    ds = tmp_path / "syn.ppgds"
    proc = ppgedge("data", "synth", "-o", ds, "--subjects", "4", "--minutes", "2", "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(ppgedge("data", "info", ds, "--json").stdout)
    assert info["n_subjects"] == 4 and info["format"]["channels"] == [
        "ppg",
        "acc_x",
        "acc_y",
        "acc_z",
    ]
    ckpt = tmp_path / "m.pt"
    proc = ppgedge(
        "train",
        ds,
        "-m",
        "resnet_micro",
        "-o",
        ckpt,
        "--epochs",
        "1",
        "--split",
        "holdout:test=syn00;val=syn01",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(ppgedge("eval", ckpt, ds, "--json").stdout)
    assert doc["schema"] == "ppgedge.eval/1"
    assert set(doc["models"]["resnet_micro"]["per_subject"]) == {"syn00"}


def test_bad_inputs_exit_2_with_one_line(
    tmp_path: Path, tiny_dataset_path: Path, tiny_checkpoint: Path
) -> None:
    assert_user_error(ppgedge("data", "info", tmp_path / "nope"), "not a ppgedge dataset")
    assert_user_error(
        ppgedge(
            "train",
            tiny_dataset_path,
            "-m",
            "resnet_9000",
            "-o",
            tmp_path / "x.pt",
            "--epochs",
            "1",
        ),
        "unknown model",
    )
    assert not (tmp_path / "x.pt").exists()
    (tmp_path / "junk.pt").write_bytes(b"definitely not a checkpoint")
    assert_user_error(
        ppgedge("eval", tmp_path / "junk.pt", tiny_dataset_path),
        "not a loadable ppgedge checkpoint",
    )
    assert_user_error(
        ppgedge("eval", tiny_checkpoint, tiny_dataset_path, "--part", "sideways"), "not one of"
    )
    assert_user_error(
        ppgedge("data", "synth", "-o", tmp_path / "s", "--channels", "ecg"), "unknown channel"
    )


def test_nan_recording_is_refused_without_output(tmp_path: Path) -> None:
    t = np.arange(0, 30, 1 / 32)
    ppg = np.sin(2 * np.pi * 1.2 * t)
    ppg[100] = np.nan
    np.savez(
        tmp_path / "rec.npz",
        ppg=ppg,
        acc=np.zeros((t.size, 3)),
        rate_hz=32.0,
        hr_bpm=np.full(12, 72.0),
        hr_times_s=4.0 + 2.0 * np.arange(12),
    )
    out = tmp_path / "out.ppgds"
    assert_user_error(ppgedge("data", "import", "generic", tmp_path / "rec.npz", "-o", out), "NaN")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.ppgds")]


def test_ci_runs_the_readme_test_command() -> None:
    readme = README.read_text()
    ci = CI_RUN.read_text()
    test_cmd = next(line.strip() for line in ci.splitlines() if "pytest" in line)
    assert test_cmd in readme, "the README's test command and .ci/run have drifted apart"


@pytest.mark.parametrize("args", [("train", "--help"), ("eval", "--help"), ("data", "--help")])
def test_subcommand_help(args: tuple[str, ...]) -> None:
    assert ppgedge(*args).returncode == 0


def test_prune_cli_budget_outcomes(
    tmp_path: Path, tiny_dataset_path: Path, tiny_checkpoint: Path
) -> None:
    proc = ppgedge("prune", tiny_checkpoint, "--to", "10M", "-o", tmp_path / "p.pt")
    assert proc.returncode == 0, proc.stderr
    assert "nothing to do" in proc.stdout and not (tmp_path / "p.pt").exists()
    assert_user_error(
        ppgedge("prune", tiny_checkpoint, "--to", "10", "-o", tmp_path / "p.pt"),
        "smallest reachable",
    )
    assert not (tmp_path / "p.pt").exists()
    assert_user_error(ppgedge("prune", tiny_checkpoint, "--to", "lots"), "budget")


def _piped(*args: object) -> str:
    """A command as CI runs it: stdout a pipe, no COLUMNS, no terminal."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "ppgedge", *map(str, args)],
        capture_output=True,
        text=True,
        env={"PATH": ""},
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return proc.stdout + proc.stderr


def test_piped_output_is_never_cut() -> None:
    """CI logs: no table cell, option name or command is cut to '…' (it was at 80 columns)."""
    from ppgedge.cli import app

    commands = [[c.name or c.callback.__name__] for c in app.registered_commands]
    commands += [
        [g.name, c.name]
        for g in app.registered_groups
        for c in g.typer_instance.registered_commands
    ]
    assert len(commands) >= 15
    outputs = {" ".join(c): _piped(*c, "--help") for c in commands}
    model = Path(__file__).resolve().parents[2] / "shared/data/mlperf-tiny/kws_ref_model.tflite"
    outputs["targets"] = _piped("targets")
    outputs["targets show"] = _piped("targets", "show", "nrf52840")
    if model.is_file():
        outputs["profile"] = _piped("profile", model, "-t", "nrf52840")
        outputs["check"] = _piped("check", model, "-t", "nrf52840")
    cut = {name: text for name, text in outputs.items() if "…" in text}
    assert not cut, f"output cut in a pipe: {sorted(cut)}"


def test_one_config_everywhere(tmp_path: Path) -> None:
    """run, profile and check find ./ppgedge.toml the same way and say which config is in
    effect; --target replaces the part only, the [budget] overrides still apply."""
    import subprocess
    import sys

    model = Path(__file__).resolve().parents[2] / "shared/data/mlperf-tiny/ad01_int8.tflite"
    if not model.is_file():
        pytest.skip(f"{model} absent")
    (tmp_path / "ppgedge.toml").write_text('[target]\nname = "nrf5340"\n[budget]\nsram_kb = 1.0\n')

    def cli(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ppgedge", *map(str, args)],
            capture_output=True, text=True, cwd=tmp_path, env={"PATH": ""}, timeout=120,
        )  # fmt: skip

    proc = cli("check", model)
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the file's 1 KB SRAM budget
    assert proc.stdout.splitlines()[0].startswith("config: ppgedge.toml; target nrf5340")
    proc = cli("check", model, "--target", "nrf52840", "--json")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["target"]["name"] == "nrf52840"
    assert "replaces the config's nrf5340" in doc["config"] and doc["budget"]["sram_kb"] == 1.0
    proc = cli("profile", model)
    assert proc.stdout.splitlines()[0].startswith("config: ppgedge.toml")
    (tmp_path / "ppgedge.toml").write_text('[run]\nout = "elsewhere"\n[data]\nsubjects = 0\n')
    proc = cli("run")  # run reads the same file: its invalid [data] is refused, one line
    assert proc.returncode == 2 and "subjects" in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists() and not (tmp_path / "elsewhere").exists()


def test_fixed_value_sets_are_the_librarys_own() -> None:
    """The CLI spells its choices out (the defining modules import torch); they must not drift."""
    import importlib

    cli_app = importlib.import_module("ppgedge.cli.app")  # the module (the package exports app)
    from ppgedge.compress.prune import CRITERIA
    from ppgedge.compress.quantize import QAT_METHODS
    from ppgedge.data.importers import FORMATS
    from ppgedge.distill.methods import DISTILLERS
    from ppgedge.distill.run import METHODS

    assert cli_app.IMPORT_KINDS == FORMATS
    assert set(cli_app.DISTILL_METHODS) == set(METHODS)
    assert set(cli_app.FINETUNE_METHODS) == set(DISTILLERS)
    assert cli_app.QAT_METHODS == QAT_METHODS
    assert cli_app.PRUNE_CRITERIA == CRITERIA
    from ppgedge.train.time_stretch import MODES

    assert cli_app.TIME_STRETCH_MODES == MODES


def test_short_help_choices_and_documented_commands(tiny_checkpoint, tmp_path: Path) -> None:
    """-h works everywhere; a typo in a fixed set is a usage error naming the choices; the
    commands the README documents run as written (`prune --target`, `quantize` = PTQ)."""
    for args in (["-h"], ["data", "-h"], ["targets", "-h"], ["prune", "-h"]):
        proc = ppgedge(*args)
        assert proc.returncode == 0 and "Usage" in proc.stdout, args
    proc = ppgedge("distill", "d.ppgds", "-t", "t.pt", "-s", "resnet_micro",
                   "-o", tmp_path / "s.pt", "--method", "dkdd")  # fmt: skip
    assert proc.returncode == 2 and "dkd" in proc.stderr and "Traceback" not in proc.stderr
    prune = ("--steps", "1", "--finetune-epochs", "0", "--final-epochs", "0")
    target = ("--target", "nrf52840")
    proc = ppgedge("prune", tiny_checkpoint, *target, *prune, "-o", tmp_path / "p.pt")
    assert proc.returncode == 0, proc.stderr
    assert ppgedge("prune", tiny_checkpoint).returncode == 2  # neither --to nor --target
    out = tmp_path / "q.int8.pt"
    proc = ppgedge("quantize", tiny_checkpoint, "-o", out, "--no-tflm", "--windows", "32", "--json")
    assert proc.returncode == 0, proc.stderr
    from ppgedge.compress.quantize import load_artifact

    assert json.loads(proc.stdout)["artifact"] == str(out)
    assert load_artifact(out).training["method"] == "ptq"


def test_the_shipped_workflow_runs_its_check_step(tmp_path: Path) -> None:
    """.github/workflows/model-budget.yml (README) parses, and its check step, run locally with
    bash in a project folder, gates as `ppgedge check` does: exit 1 over budget, reports written."""
    import shutil
    import subprocess
    import sys

    import yaml  # the test extra installs it

    root = Path(__file__).resolve().parents[1]
    flow = yaml.safe_load((root / ".github/workflows/model-budget.yml").read_text())
    steps = flow["jobs"]["budget"]["steps"]
    (step,) = [s for s in steps if "ppgedge" in s.get("run", "") and "check" in s["run"]]
    model = Path(__file__).resolve().parents[2] / "shared/data/mlperf-tiny/ad01_int8.tflite"
    if not model.is_file():
        pytest.skip(f"{model} absent")
    (tmp_path / "export").mkdir()
    shutil.copy(model, tmp_path / "export" / "ppg_hr.tflite")
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "ppgedge").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ppgedge "$@"\n')
    (venv_bin / "ppgedge").chmod(0o755)

    def run_step(config: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / "ppgedge.toml").write_text(config)
        env = {**flow["env"], "PATH": "/usr/bin:/bin"}
        return subprocess.run(["bash", "-c", step["run"]], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    assert run_step("[budget]\nflash_kb = 900\n").returncode == 0
    proc = run_step("[budget]\nflash_kb = 900\nsram_kb = 1\n")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (tmp_path / "budget-junit.xml").is_file() and (tmp_path / "budget.md").is_file()
    assert 'failures="1"' in (tmp_path / "budget-junit.xml").read_text()


def test_threads_cap_pytorch_and_blas(tmp_path: Path) -> None:
    """--threads N (any command) and [run] threads set PyTorch's and the BLAS libraries'
    thread counts; 0 or a negative count is refused."""
    import os
    import subprocess
    import sys

    probe = (
        "import sys; from typer.testing import CliRunner; from ppgedge.cli import app; "
        "CliRunner().invoke(app, ['--threads', '1', 'models', '--json']); import torch, os; "
        "print(torch.get_num_threads(), os.environ['OMP_NUM_THREADS'])"
    )
    from ppgedge.threads import THREAD_VARIABLES

    clean = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}  # conftest sets 1
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=clean)
    assert out.stdout.split() == ["1", "1"], out.stderr
    from ppgedge.errors import PpgedgeError
    from ppgedge.pipeline.config import validate

    assert validate({"run": {"threads": 2}}, "x")["run"]["threads"] == 2
    with pytest.raises(PpgedgeError, match="threads"):
        validate({"run": {"threads": -1}}, "x")
