"""`ppgedge targets / profile / check` as CI meets them: exit codes, JSON, JUnit, Markdown,
annotations, baselines, user targets and budget overrides. Models are built here with the
flatbuffer schema (no torch, no ../shared), so these tests run anywhere."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from cli_helpers import assert_user_error, ppgedge
from typer.testing import CliRunner

from ppgedge.cli import app
from ppgedge.errors import PpgedgeError
from ppgedge.profile import targets as targets_mod
from ppgedge.profile.tflite_reader import schema

runner = CliRunner()
TFLM_FLOAT_MODEL = Path(sys.modules["flatbuffers"].__file__).parents[1] / (
    "tflite_micro/python/tflite_micro/sine_float.tflite"
)


def fc_model(path: Path, n_in: int = 64, n_out: int = 16, dtype: str = "INT8") -> Path:
    """A one-layer FULLY_CONNECTED .tflite (int8 by default), written with the schema module."""
    fb = schema()
    tt = getattr(fb.TensorType, dtype)

    def quant(scale: float) -> object:
        q = fb.QuantizationParametersT()
        q.scale, q.zeroPoint = [scale], [0]
        return q

    def tensor(name: str, shape: list[int], ttype: int, buffer: int, scale: float) -> object:
        t = fb.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), shape, ttype, buffer
        t.quantization = quant(scale)
        return t

    def buffer(data: bytes | None = None) -> object:
        b = fb.BufferT()
        b.data = list(data) if data else None
        return b

    rng = np.random.default_rng(0)
    weights = rng.integers(-127, 127, (n_out, n_in), dtype=np.int8).tobytes()
    bias = np.zeros(n_out, np.int32).tobytes()
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.FULLY_CONNECTED
    code.version = 1
    op = fb.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType = fb.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = fb.FullyConnectedOptionsT()
    sub = fb.SubGraphT()
    sub.tensors = [
        tensor("input", [1, n_in], tt, 0, 0.1),
        tensor("weights", [n_out, n_in], fb.TensorType.INT8, 1, 0.01),
        tensor("bias", [n_out], fb.TensorType.INT32, 2, 0.001),
        tensor("output", [1, n_out], tt, 0, 0.2),
    ]
    sub.inputs, sub.outputs, sub.operators = [0], [3], [op]
    model = fb.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [sub]
    model.buffers = [buffer(), buffer(weights), buffer(bias)]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


BOARD = """
name = "testboard"
title = "Test board"
core = "cortex-m4f"
clock_mhz = 64
flash_kb = 512
sram_kb = 128
dsp = true
fpu = "fpv4-sp"
active_ua_per_mhz = 50
supply_v = 3.0
sleep_ua = 2.0

[sources]
clock_mhz = "made up for the tests"

[budget]
flash_kb = {flash}
sram_kb = 64
latency_ms = 50
energy_uj = 100
period_s = 2.0
"""


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    return fc_model(tmp_path / "fc.tflite")


@pytest.fixture()
def board_dir(tmp_path: Path) -> Path:
    d = tmp_path / "boards"
    d.mkdir()
    (d / "testboard.toml").write_text(BOARD.format(flash=200))
    return d


def invoke(*args: object, env: dict[str, str] | None = None):
    return runner.invoke(app, [str(a) for a in args], env=env or {})


# ---------------------------------------------------------------------------- targets
def test_builtin_targets_list_and_show() -> None:
    res = invoke("targets", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema"] == "ppgedge.targets/1"
    names = {t["name"] for t in doc["targets"]}
    assert {"nrf52832", "nrf52840", "nrf5340", "stm32l4r5", "stm32wb55", "stm32h743"} <= names
    assert {"apollo3-blue", "apollo4-plus"} <= names
    res = invoke("targets", "show", "nrf5340", "--json")
    assert res.exit_code == 0, res.output
    shown = json.loads(res.stdout)
    assert shown["core"] == "cortex-m33f" and "2.7 mA" in shown["sources"]["active_ua_per_mhz"]
    assert invoke("targets").exit_code == 0
    assert "source" in invoke("targets", "show", "apollo3-blue").stdout


def test_every_builtin_number_has_a_source_and_a_sane_budget() -> None:
    found = targets_mod.available()
    assert len(found) >= 8
    for t in found.values():
        for key in ("core", "clock_mhz", "flash_kb", "sram_kb", "dsp", "fpu"):
            assert key in t.sources, f"{t.name}: no source for {key}"
        for key in ("active_ua_per_mhz", "supply_v"):
            assert key in t.sources, f"{t.name}: no source for {key}"
        if t.sleep_ua is not None:
            assert "sleep_ua" in t.sources
        b = t.budget
        assert b.flash_kb <= t.flash_kb / 2 and b.sram_kb <= t.sram_kb / 2, t.name
        assert b.period_s == 2.0 and b.rationale, t.name


def test_targets_ship_as_package_data() -> None:
    """The profiles live inside the package (so an installed ppgedge finds them) and the
    repository's targets/ shows the same files."""
    root = Path(__file__).resolve().parents[1]
    assert targets_mod.BUILTIN_DIR.is_relative_to(root / "src" / "ppgedge")
    assert sorted(p.name for p in (root / "targets").glob("*.toml")) == sorted(
        p.name for p in targets_mod.BUILTIN_DIR.glob("*.toml")
    )
    pyproject = (root / "pyproject.toml").read_text()
    assert '"ppgedge.profile" = ["targets_data/*.toml", "codesize_data/*.json"]' in pyproject


def test_user_target_by_dir_env_and_path(
    model: Path, board_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    res = invoke("check", model, "--target", "testboard", "--targets-dir", board_dir, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["target"]["name"] == "testboard"
    res = invoke(
        "check", model, "--target", "testboard", "--json",
        env={"PPGEDGE_TARGETS": str(board_dir)},
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    res = invoke("profile", model, "--target", board_dir / "testboard.toml", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema"] == "ppgedge.profile/1" and doc["target"]["sleep_ua"] == 2.0
    listed = invoke("targets", "--targets-dir", board_dir, "--json")
    assert "testboard" in {t["name"] for t in json.loads(listed.stdout)["targets"]}
    monkeypatch.delenv("PPGEDGE_TARGETS", raising=False)
    with pytest.raises(PpgedgeError, match="unknown target 'testboard'; known targets: "):
        targets_mod.resolve("testboard")


def test_bad_user_targets_are_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BOARD.format(flash=200).replace("clock_mhz = 64", "clock_mhz = -1"))
    with pytest.raises(PpgedgeError, match="'clock_mhz' must be a positive number"):
        targets_mod.load_target_file(bad)
    bad.write_text(BOARD.format(flash=200).replace("sram_kb = 64", "sram_kb = 64\nram = 3"))
    with pytest.raises(PpgedgeError, match="unknown budget field"):
        targets_mod.load_target_file(bad)
    bad.write_text("this is = = not toml")
    with pytest.raises(PpgedgeError, match="not valid TOML"):
        targets_mod.load_target_file(bad)
    with pytest.raises(PpgedgeError, match="no cycle model for core 'cortex-m0plus'"):
        from ppgedge.profile.cycles import core_model

        core_model("cortex-m0plus")


# ------------------------------------------------------------------------------ check
def test_check_exit_codes_json_schema_and_budget_override(
    model: Path, board_dir: Path, tmp_path: Path
) -> None:
    ok = invoke("check", model, "-t", "testboard", "--targets-dir", board_dir, "--json")
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.stdout)
    assert doc["schema"] == "ppgedge.check/1" and doc["passed"] is True and doc["exit_code"] == 0
    assert [r["name"] for r in doc["results"]] == ["flash", "sram", "latency", "energy"]
    for r in doc["results"]:
        assert {"limit", "value", "margin", "margin_pct", "ok", "unit", "estimate"} <= set(r)
        assert r["margin"] == pytest.approx(r["limit"] - r["value"], abs=1e-3)
    latency = doc["results"][2]
    assert latency["estimate"] and latency["bound"] == "high"
    assert latency["value"] == pytest.approx(latency["band"][1])
    assert doc["profile"]["schema"] == "ppgedge.profile/1"
    assert "ESTIMATE" in doc["note"].upper()

    config = tmp_path / "ppgedge.toml"
    config.write_text(
        f'[target]\nname = "testboard"\ntargets_dir = "{board_dir.name}"\n\n'
        '[budget]\nsram_kb = 0.5\nlatency_bound = "mid"\n'
    )
    bad = invoke("check", model, "--config", config, "--json")
    assert bad.exit_code == 1, bad.output
    doc = json.loads(bad.stdout)
    assert doc["passed"] is False and doc["budget"]["sram_kb"] == 0.5
    sram = next(r for r in doc["results"] if r["name"] == "sram")
    assert not sram["ok"] and sram["margin"] < 0
    assert next(r for r in doc["results"] if r["name"] == "latency")["bound"] == "mid"
    assert doc["budget"]["flash_kb"] == 200  # not overridden: the target's own


def test_check_writes_junit_and_markdown_and_annotates(
    model: Path, board_dir: Path, tmp_path: Path
) -> None:
    tight = board_dir / "tight.toml"
    tight.write_text(BOARD.format(flash=1).replace('"testboard"', '"tight"'))
    junit, md = tmp_path / "out" / "check.xml", tmp_path / "check.md"
    summary = tmp_path / "summary.md"
    res = invoke(
        "check", model, "-t", "tight", "--targets-dir", board_dir,
        "--junit", junit, "--markdown", md,
        env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)},
    )  # fmt: skip
    assert res.exit_code == 1, res.output
    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites" and root.get("failures") == "1"
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {"flash", "sram", "latency", "energy"}
    assert cases["flash"].find("failure") is not None
    assert cases["sram"].find("failure") is None
    text = md.read_text()
    assert "❌" in text and "| flash |" in text and "estimates" in text
    assert text in summary.read_text()
    errors = [ln for ln in res.stdout.splitlines() if ln.startswith("::error ")]
    assert len(errors) == 1 and "title=ppgedge budget%3A flash" in errors[0]
    assert "EXCEEDS" in errors[0]
    passing = invoke(
        "check", model, "-t", "testboard", "--targets-dir", board_dir, "--json",
        env={"GITHUB_ACTIONS": "true"},
    )  # fmt: skip
    assert passing.exit_code == 0
    json.loads(passing.stdout)  # annotations went to stderr, stdout stays JSON
    assert "::notice" in passing.stderr


def test_baseline_regression_gate(tmp_path: Path, board_dir: Path) -> None:
    small = fc_model(tmp_path / "small.tflite", 64, 16)
    big = fc_model(tmp_path / "big.tflite", 64, 64)
    base = invoke("check", small, "-t", "testboard", "--targets-dir", board_dir, "--json")
    assert base.exit_code == 0
    baseline = tmp_path / "baseline.json"
    baseline.write_text(base.stdout)
    args = ("check", big, "-t", "testboard", "--targets-dir", board_dir, "--baseline", baseline)
    worse = invoke(*args, "--json")
    assert worse.exit_code == 1, worse.output
    doc = json.loads(worse.stdout)
    assert all(r["ok"] for r in doc["results"])  # within budget, but it regressed
    deltas = {d["name"]: d for d in doc["baseline"]["deltas"]}
    assert deltas["flash"]["regressed"] and deltas["flash"]["delta_pct"] > 5
    assert doc["baseline"]["regressed"] is True
    assert invoke(*args, "--max-regression", "10000").exit_code == 0
    same = invoke("check", small, "-t", "testboard", "--targets-dir", board_dir,
                  "--baseline", baseline)  # fmt: skip
    assert same.exit_code == 0, same.output
    junit = tmp_path / "j.xml"
    assert invoke(*args, "--junit", junit).exit_code == 1
    names = [c.get("name") for c in ET.parse(junit).getroot().iter("testcase")]
    assert "regression.flash" in names
    other = base.stdout.replace('"name": "testboard"', '"name": "nrf52840"')
    (tmp_path / "other.json").write_text(other)
    res = invoke(*args[:-1], tmp_path / "other.json")
    assert isinstance(res.exception, PpgedgeError) and "made for target" in str(res.exception)
    bound = base.stdout.replace('"latency_bound": "high"', '"latency_bound": "low"')
    (tmp_path / "bound.json").write_text(bound)
    res = invoke(*args[:-1], tmp_path / "bound.json")
    assert isinstance(res.exception, PpgedgeError) and "'low' end of their band" in str(
        res.exception
    )
    # the regression is marked in its own row, and an unchanged metric says so (no '+0.0%')
    table = invoke(*args)
    flash_row = next(ln for ln in table.stdout.splitlines() if ln.startswith("│ flash"))
    assert "REGRESSED" in flash_row and "%" in flash_row
    same_rows = invoke("check", small, "-t", "testboard", "--targets-dir", board_dir,
                       "--baseline", baseline).stdout  # fmt: skip
    assert "unchanged" in same_rows and "+0.0%" not in same_rows
    (tmp_path / "junk.json").write_text('{"schema": "ppgedge.eval/1"}')
    res = invoke(*args[:-1], tmp_path / "junk.json")
    assert isinstance(res.exception, PpgedgeError) and "not a ppgedge check report" in str(
        res.exception
    )


def test_profile_table_says_estimate(model: Path) -> None:
    res = runner.invoke(app, ["profile", str(model), "-t", "nrf52840"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "ESTIMATE" in res.stdout and "FULLY_CONNECTED" in res.stdout
    assert "floor" in res.stdout


# ------------------------------------------------------------- exit 2, in a real process
def test_input_errors_exit_2_with_one_line(tmp_path: Path, model: Path) -> None:
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    assert_user_error(ppgedge("check", junk, "-t", "nrf52840"), "not a TFLite model")
    assert_user_error(ppgedge("check", model, "-t", "esp32"), "known targets: apollo3-blue")
    fc_model(tmp_path / "float.tflite", dtype="FLOAT32")
    proc = ppgedge("profile", tmp_path / "float.tflite", "-t", "nrf52840")
    assert_user_error(proc, "not a full-int8 model")
    assert "ppgedge quantize CKPT --ptq" in proc.stderr
    proc = ppgedge("check", model, cwd=tmp_path)  # no config anywhere: the built-in target
    assert proc.returncode == 0 and proc.stdout.startswith("config: built-in"), proc.stdout
    (tmp_path / "ppgedge.toml").write_text('[budget]\nflash = 3\n[target]\nname = "nrf52840"\n')
    assert_user_error(ppgedge("check", model, cwd=tmp_path), "unknown budget field(s) flash")
    assert ppgedge("check", model, "--max-regression").returncode == 2  # usage error


def test_real_float_model_is_refused() -> None:
    if not TFLM_FLOAT_MODEL.is_file():
        pytest.skip("tflite-micro's sine_float.tflite example is not installed")
    res = invoke("profile", TFLM_FLOAT_MODEL, "-t", "nrf52840")
    assert isinstance(res.exception, PpgedgeError)
    assert "not a full-int8 model" in str(res.exception)


# ------------------------------------------------------------------------ accuracy budget
def _verify_doc(model: Path, mae: float, *, spectral: float = 19.3, float_mae: float = 3.0):
    import hashlib

    return {
        "schema": "ppgedge.verify/3",
        "tflite": str(model),
        "tflite_sha256": hashlib.sha256(model.read_bytes()).hexdigest(),
        "windows": 891,
        "part": "test subjects",
        "mae_tflm": mae,
        "mae_float": float_mae,
        "mae_spectral": spectral,
    }


def test_accuracy_is_a_budget_read_from_the_models_verify_report(tmp_path: Path) -> None:
    """A model that fits but is worse than the spectral baseline fails; a report made for
    another model, or an accuracy limit with no report, is exit 2 (never a silent pass)."""
    model = fc_model(tmp_path / "m.tflite")
    report = tmp_path / "verify.json"  # beside the model, as in an export folder
    report.write_text(json.dumps(_verify_doc(model, mae=26.4)))  # a constant-output model
    proc = ppgedge("check", model, "-t", "nrf52840", "--json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    mae = next(r for r in doc["results"] if r["name"] == "mae")
    assert not mae["ok"] and mae["limit"] == 19.3 and mae["basis"] == "spectral baseline"
    assert doc["accuracy"]["gated"] and doc["accuracy"]["windows"] == 891

    report.write_text(json.dumps(_verify_doc(model, mae=3.3)))
    proc = ppgedge("check", model, "-t", "nrf52840", "--json")
    assert proc.returncode == 0, proc.stdout
    names = [r["name"] for r in json.loads(proc.stdout)["results"]]
    assert names[-2:] == ["mae", "mae_increase"]

    report.write_text(json.dumps(_verify_doc(model, mae=4.5)))  # 1.5 BPM lost to int8
    assert ppgedge("check", model, "-t", "nrf52840").returncode == 1

    config = tmp_path / "ppgedge.toml"
    config.write_text("[budget]\nmae_bpm = 3.0\n")
    proc = ppgedge("check", model, "--config", config, "--verify", report, "--json")
    mae = next(r for r in json.loads(proc.stdout)["results"] if r["name"] == "mae")
    assert proc.returncode == 1 and mae["limit"] == 3.0 and mae["basis"] == "budget"

    other = _verify_doc(model, mae=3.3) | {"tflite_sha256": "0" * 64}
    report.write_text(json.dumps(other))
    assert_user_error(ppgedge("check", model, "-t", "nrf52840"), "made for another model")
    report.unlink()
    assert_user_error(ppgedge("check", model, "--config", config), "no verify report")
    proc = ppgedge("check", model, "-t", "nrf52840")  # a foreign model: said, not gated
    assert proc.returncode == 0 and "accuracy not gated" in proc.stdout


def test_ci_paths_are_relative_to_the_checkout(tmp_path: Path, monkeypatch) -> None:
    """::error file= and the JUnit model property attach to the repository's file only when
    relative to the working directory (an absolute runner path attaches to nothing)."""
    from ppgedge.profile.check import workspace_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    model = fc_model(tmp_path / "models" / "m.tflite")
    assert workspace_path(str(model)) == "models/m.tflite"
    assert workspace_path("/elsewhere/m.tflite") == "/elsewhere/m.tflite"
    (tmp_path / "ppgedge.toml").write_text("[budget]\nflash_kb = 1\n")  # found in the cwd
    res = invoke("check", model, "--junit", "j.xml", env={"GITHUB_ACTIONS": "true"})
    assert res.exit_code == 1 and "::error file=models/m.tflite," in res.stdout
    assert 'value="models/m.tflite"' in (tmp_path / "j.xml").read_text()
