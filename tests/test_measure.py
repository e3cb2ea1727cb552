"""The real firmware build: TFLite Micro + CMSIS-NN for a Cortex-M4, run in QEMU.

Once per test session the runtime is compiled from ../shared/vendor/tflm-src into a cache in
pytest's temporary directory (about 2 minutes on 2 cores); every test after that links against
it. One small zoo model (the session's trained resnet_micro, int8 by PTQ) runs in
qemu-system-arm: its int8 outputs must equal the TFLite Micro Python runtime's bit for bit, its
C preprocessing Python's, and the arena, flash and instruction counts must be measured and
consistent. Bad input gives one line and exit 2. Without the toolchain, QEMU or the sources the
tests skip locally and fail in CI ($CI set), where .ci/run installs them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import ppgedge
from firmware_helpers import TFLM_SRC

from ppgedge.compress.tflite_file import read_model, schema  # noqa: E402
from ppgedge.data.format import DataFormat  # noqa: E402
from ppgedge.errors import PpgedgeError  # noqa: E402
from ppgedge.export import bundle as B  # noqa: E402
from ppgedge.export import op_resolver as OPR  # noqa: E402
from ppgedge.firmware import measure as M  # noqa: E402
from ppgedge.firmware.sources import locate  # noqa: E402
from ppgedge.profile import codesize  # noqa: E402
from ppgedge.profile.cycles import instruction_cpi  # noqa: E402
from ppgedge.profile.report import profile  # noqa: E402
from ppgedge.profile.targets import resolve  # noqa: E402


def test_outputs_are_bit_exact_and_preprocessing_identical(measured) -> None:
    assert measured.exact["bit_exact"] and measured.exact["max_diff"] == 0
    assert measured.exact["windows"] == 6
    pre = measured.preprocessing
    assert pre is not None and pre["identical_windows"] == 6 and pre["max_diff"] == 0


def test_arena_is_measured_on_the_32_bit_core(measured, resnet_bundle: Path) -> None:
    ar = measured.arena
    # the 64-bit host estimate is an upper bound; the device needs less, and at least what
    # arena_used_bytes() reports after AllocateTensors
    assert 0 < ar["used"] <= ar["smallest"] <= ar["declared"]
    assert ar["smallest"] < ar["tried_with"]
    assert 0 < measured.stack_bytes < 64 * 1024


def test_flash_split_adds_up_and_profile_is_within_3_percent(measured, resnet_bundle) -> None:
    fl = measured.flash
    parts = ("model", "framework", "kernels", "libc", "app")
    assert sum(fl[p] for p in parts) == fl["total"]
    size = resnet_bundle.stat().st_size
    assert size <= fl["model"] <= size + 16  # the array, aligned
    assert fl["framework"] > 10_000 and fl["kernels"] > 10_000
    est = profile(resnet_bundle, resolve("nrf52840")).to_dict()["totals"]["flash"]["total_bytes"]
    assert abs(est - fl["total"]) / fl["total"] <= 0.03, (est, fl)


def test_instructions_per_operator_and_cycles(measured) -> None:
    ins = measured.instructions
    ops = measured.model["ops"]
    assert [r["op"] for r in ins["per_op"]] == ops
    assert all(r["instructions"] > 0 for r in ins["per_op"])
    per_op_total = sum(r["instructions"] for r in ins["per_op"])
    assert per_op_total < ins["invoke"] < per_op_total * 1.05
    assert ins["preprocess"] > 1000 and ins["decode"] > 0
    assert ins["per_op_type"]["CONV_2D"] > ins["per_op_type"]["PAD"]
    cpi = instruction_cpi("cortex-m4").cpi
    assert measured.cycles["invoke"] == pytest.approx(ins["invoke"] * cpi)
    assert "not model time" in measured.note


def test_bundle_registers_int8_kernels_that_exist_in_the_sources(resnet_bundle: Path) -> None:
    regs = locate(TFLM_SRC).registrations
    for op in OPR.INT8_REGISTRATIONS:
        assert f"Register_{op}_INT8" in regs, op
        assert (
            TFLM_SRC / "tflite-micro/tensorflow/lite/micro/kernels" / OPR.INT8_REGISTRATIONS[op]
        ).is_file()
    header = (resnet_bundle.parent / "tflm" / "resnet_micro_op_resolver.h").read_text()
    assert "AddConv2D(tflite::Register_CONV_2D_INT8())" in header
    assert "#error" in header and "TF_LITE_STATIC_MEMORY" in header
    readme = (resnet_bundle.parent / "tflm" / "README.md").read_text()
    assert "-DTF_LITE_STATIC_MEMORY" in readme and "--gc-sections" in readme


def test_bundle_arena_from_the_32_bit_measurement(resnet_bundle, fw_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("PPGEDGE_CACHE", str(fw_cache))
    manifest = json.loads((resnet_bundle.parent / "tflm" / "manifest.json").read_text())
    res = B.write_bundle(
        resnet_bundle,
        tmp_path / "tflm",
        name="resnet_micro",
        data_format=DataFormat.from_dict(manifest["data_format"]),
        decode=manifest["decode"],
        tflm_src=TFLM_SRC,
    )
    dev = res.arena.device
    assert dev is not None and dev["core"] == "cortex-m4"
    assert res.arena.total <= 1.05 * dev["smallest"] + 64
    assert res.arena.total < dev["host_estimate"]
    config = (res.path / "resnet_micro_config.h").read_text()
    assert f"RESNET_MICRO_ARENA_SIZE {res.arena.total}u" in config
    assert "measured on a 32-bit cortex-m4" in " ".join(config.replace("*", " ").split())


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return ppgedge(*args, env={"PATH": os.environ.get("PATH", ""), **(env or {})})


def _one_line_error(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert needle in proc.stderr, proc.stderr


def test_cli_measure_json(measured, resnet_bundle: Path, fw_cache: Path) -> None:
    proc = _cli(
        "profile", resnet_bundle, "-t", "nrf52840", "--measure", "--tflm-src", TFLM_SRC,
        "--windows", "2", "--json", env={"PPGEDGE_CACHE": str(fw_cache)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["measured"]["schema"] == M.SCHEMA
    assert doc["measured"]["exact"]["bit_exact"]
    # the runtime library compiled by the session fixture is reused: nothing is compiled again
    assert doc["measured"]["build"]["runtime_objects_compiled"] == 0
    assert doc["measured"]["seconds"]["build"] < 60
    assert doc["measured"]["flash"] == measured.flash
    cmp = doc["comparison"]
    assert cmp["flash"]["linked_bytes"] == measured.flash["total"]
    assert len(cmp["cycles"]["per_layer"]) == len(measured.model["ops"])
    text = _cli(
        "profile", resnet_bundle, "-t", "nrf52840", "--measure", "--tflm-src", TFLM_SRC,
        "--windows", "1", env={"PPGEDGE_CACHE": str(fw_cache)},
    )  # fmt: skip
    assert text.returncode == 0 and "bit-exact" in text.stdout and "ESTIMATE" in text.stdout


def test_bad_input_one_line_exit_2(resnet_bundle: Path, fw_cache: Path, tmp_path: Path) -> None:
    env = {"PPGEDGE_CACHE": str(fw_cache)}
    args = ("profile", resnet_bundle, "-t", "nrf52840", "--measure")
    _one_line_error(_cli(*args, "--tflm-src", tmp_path / "nope", env=env), "not found")
    _one_line_error(_cli(*args, env=env), "PPGEDGE_TFLM_SRC")
    # a toolchain but no emulator on PATH
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in (
        "arm-none-eabi-gcc",
        "arm-none-eabi-g++",
        "arm-none-eabi-ar",
        "arm-none-eabi-size",
    ):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    no_qemu = {**env, "PATH": str(bin_dir)}
    _one_line_error(_cli(*args, "--tflm-src", TFLM_SRC, env=no_qemu), "qemu-system-arm not found")
    _one_line_error(
        _cli(*args, "--tflm-src", TFLM_SRC, env={**env, "PATH": ""}), "arm-none-eabi-gcc"
    )
    _one_line_error(
        _cli(*args, "--tflm-src", TFLM_SRC, "--timeout", "0.001", env=env), "did not finish"
    )
    # a model larger than the board's 4 MB of code memory (an unused 4.5 MB buffer)
    model = read_model(resnet_bundle)
    buf = schema().BufferT()
    buf.data = np.zeros(4_500_000, np.uint8)
    model.buffers.append(buf)
    import flatbuffers

    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    big = tmp_path / "big.tflite"
    big.write_bytes(bytes(builder.Output()))
    _one_line_error(
        _cli("profile", big, "-t", "nrf52840", "--measure", "--tflm-src", TFLM_SRC, env=env),
        "does not fit the emulated mps2-an386",
    )


def test_unknown_core_is_refused() -> None:
    with pytest.raises(PpgedgeError, match="no emulated board"):
        M.measure("x.tflite", "cortex-m0plus", tflm_src=TFLM_SRC)


def test_codesize_counts_the_bundle_application(resnet_bundle: Path) -> None:
    from ppgedge.profile.tflite_reader import read_tflite

    for core in ("cortex-m4", "cortex-m33", "cortex-m7"):
        app = codesize.table(core)["bundle_app"]["bytes"]
        items = codesize.runtime_items(read_tflite(resnet_bundle), core)
        assert app > 0 and [i.bytes for i in items if i.name.startswith("application")] == [app]
