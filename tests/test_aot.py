"""The ahead-of-time C backend: generated C99 + CMSIS-NN against TFLite Micro + CMSIS-NN.

Reuses test_measure.py's session runtime cache and model (conftest: ``fw_cache``,
``resnet_bundle``): the generated C is compiled with ``-std=c99 -Wall -Wextra -Werror
-pedantic`` for the host and the Cortex-M4, run in QEMU and on the host, and must give the same
int8 outputs as the TFLM + CMSIS-NN image on the same windows. Unsupported operators are
refused with one line naming the layer (exit 2 on the command line).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import flatbuffers
import pytest
from firmware_helpers import TFLM_SRC

from ppgedge.aot.build import CMSIS_DEFINES, STRICT
from ppgedge.aot.bundle import write_aot_bundle
from ppgedge.aot.generate import generate, write
from ppgedge.aot.verify import compare
from ppgedge.compress.tflite_file import read_model
from ppgedge.errors import PpgedgeError

MLPERF = TFLM_SRC.parents[1] / "data" / "mlperf-tiny"


@pytest.fixture(scope="session")
def aot_vs_tflm(resnet_bundle: Path, tiny_dataset_path: Path, fw_cache: Path, measured_kept):
    """The AOT build against test_measure's TFLM run (the same 6 windows), not a second one."""
    return compare(resnet_bundle, "cortex-m4", windows=6, data=tiny_dataset_path,
                   tflm_src=TFLM_SRC, cache=fw_cache, reference=measured_kept)  # fmt: skip


def test_bit_exact_with_tflm_cmsis_nn_on_m4_and_host(aot_vs_tflm) -> None:
    r = aot_vs_tflm
    assert r.windows == 6 and r.inputs_identical
    assert r.bit_exact_device and r.max_diff == 0
    assert r.bit_exact_host  # CMSIS-NN's portable C == its Cortex-M4 DSP paths, on these layers
    assert r.tflm_vs_python_exact


def test_no_interpreter_smaller_and_no_more_instructions(aot_vs_tflm) -> None:
    r = aot_vs_tflm
    assert r.flash["aot_parts"]["framework"] == 0  # no TFLite Micro code linked at all
    assert r.flash["aot"] < 0.55 * r.flash["tflm"]
    assert r.arena["aot"] < r.arena["tflm_used"]
    assert r.ram["aot"] < r.ram["tflm"]
    assert 0 < r.instructions["aot_invoke"] <= r.instructions["tflm_invoke"]
    kernels = {la["kernel"] for la in r.layers}
    assert {"arm_convolve_1_x_n_s8", "arm_elementwise_add_s8", "arm_pad_s8"} <= kernels


def _models(resnet_bundle: Path) -> list[Path]:
    extra = [MLPERF / f"{n}.tflite" for n in ("kws_ref_model", "ad01_int8")]
    return [resnet_bundle, *(p for p in extra if p.is_file())]


def test_generated_c_is_strict_c99_for_host_and_cortex_m4(resnet_bundle, tmp_path) -> None:
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("gcc") is None:
        pytest.skip("no arm-none-eabi-gcc / gcc")
    inc = [f"-I{TFLM_SRC / 'cmsis-nn' / 'Include'}", f"-I{TFLM_SRC / 'cmsis-nn'}"]  # no -isystem
    for tfl in _models(resnet_bundle):
        out = tmp_path / tfl.stem
        gen = generate(tfl, "m")
        write(gen, out)
        for cc, flags in (("gcc", []), ("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb",
                                                               "-mfloat-abi=hard"])):  # fmt: skip
            cmd = [cc, *STRICT, *flags, *CMSIS_DEFINES, *inc, f"-I{out}", "-O2", "-c",
                   str(out / "m_aot.c"), "-o", str(out / f"{cc}.o")]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True)
            assert done.returncode == 0, f"{tfl.name} {cc}: {done.stderr}"


def test_kernel_selection_follows_tflm_cmsis_nn() -> None:
    kws = MLPERF / "kws_ref_model.tflite"
    if not kws.is_file():
        pytest.skip(f"{kws} absent")
    gen = generate(kws, "kws")
    kernels = [la.kernel for la in gen.layers]
    assert kernels[0] == "arm_convolve_s8"  # 10x4 filter, stride 2: the generic path
    assert "arm_depthwise_conv_3x3_s8" in kernels and "arm_convolve_1x1_s8_fast" in kernels
    assert kernels[-1] == "arm_softmax_s8"
    text = gen.texts["kws_aot.c"]
    assert "#define" not in text.split("int kws_invoke")[1]  # constants above, calls below
    assert text.count("arm_convolve_1x1_s8_fast(") == kernels.count("arm_convolve_1x1_s8_fast")


def test_aot_bundle_reuses_the_preprocessing_unchanged(resnet_bundle, tmp_path) -> None:
    tflm = resnet_bundle.parent / "tflm"
    gen = write_aot_bundle(tflm, tmp_path / "aot")
    man = json.loads((tmp_path / "aot" / "manifest.json").read_text())
    assert man["runtime"] == "aot" and man["arena_bytes"] == gen.plan.arena_bytes
    for name in ("resnet_micro_preprocess.c", "resnet_micro_preprocess.h"):
        assert (tmp_path / "aot" / name).read_bytes() == (tflm / name).read_bytes()
    header = (tmp_path / "aot" / "resnet_micro_aot.h").read_text()
    assert f"RESNET_MICRO_AOT_ARENA_SIZE {gen.plan.arena_bytes}" in header
    assert "int resnet_micro_invoke(const int8_t *input, int8_t *output, void *arena);" in header


def _with_op(src: Path, old: str, new: str, out: Path) -> Path:
    """``src`` with every ``old`` operator turned into ``new`` (same tensors)."""
    from ppgedge.compress.tflite_file import schema

    model = read_model(src)
    ops = schema().BuiltinOperator
    for code in model.operatorCodes:
        if max(code.builtinCode, code.deprecatedBuiltinCode) == getattr(ops, old):
            code.builtinCode = code.deprecatedBuiltinCode = getattr(ops, new)
    b = flatbuffers.Builder(0)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    out.write_bytes(bytes(b.Output()))
    return out


def test_unsupported_operator_is_refused_naming_the_layer(resnet_bundle, tmp_path) -> None:
    bad = _with_op(resnet_bundle, "ADD", "SQUARED_DIFFERENCE", tmp_path / "bad.tflite")
    with pytest.raises(PpgedgeError) as info:
        generate(bad, "bad")
    msg = str(info.value)
    assert "\n" not in msg and "layer 4 (SQUARED_DIFFERENCE" in msg and "--format tflm" in msg
    if shutil.which("arm-none-eabi-gcc") is None:
        return
    proc = subprocess.run(
        [sys.executable, "-m", "ppgedge", "check", str(bad), "-t", "nrf52840", "--runtime", "aot",
         "--tflm-src", str(TFLM_SRC)],
        capture_output=True, text=True, timeout=300,
        env={"COLUMNS": "120", "PATH": os.environ.get("PATH", "")},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert "SQUARED_DIFFERENCE" in proc.stderr and proc.stdout == ""


def test_formats_and_plan(resnet_bundle: Path) -> None:
    from ppgedge.aot.graph import read
    from ppgedge.export.run import parse_formats

    assert parse_formats("aot") == ("tflite", "tflm", "aot") == parse_formats("c")
    assert "aot" not in parse_formats("all")
    # every pair of buffers live at the same time occupies disjoint bytes of the arena
    g, gen = read(resnet_bundle), generate(resnet_bundle, "m")
    plan = gen.plan
    spans = []
    for t, off in plan.offsets.items():
        users = [op.index for op in g.ops if t in op.inputs or t in op.outputs]
        users += [k for k, r in plan.roots.items() if r == t for op in g.ops if k in op.inputs]
        first = -1 if t in g.inputs else min(users)
        last = len(g.ops) if t in g.outputs else max(users)
        spans.append((off, off + g.tensors[t].bytes, first, last))
    for op_index, off in plan.scratch.items():
        size = next(la.scratch for la in gen.layers if la.op.index == op_index)
        spans.append((off, off + size, op_index, op_index))
    assert max(end for _, end, _, _ in spans) <= plan.arena_bytes
    for i, (a0, a1, f0, l0) in enumerate(spans):
        for b0, b1, f1, l1 in spans[i + 1 :]:
            if f0 <= l1 and f1 <= l0:  # live together
                assert a1 <= b0 or b1 <= a0


def test_a_fully_connected_layer_on_the_1x1_path_is_bit_exact(
    tiny_dataset, tiny_dataset_path: Path, fw_cache: Path, tmp_path: Path
) -> None:
    """A spectral head's DFT is a fully connected op with a 4-D output, which TFLM's
    CMSIS-NN kernel runs as arm_convolve_1x1_s8_fast: the AOT code must call the same."""
    from ppgedge.compress import quantize as Q
    from ppgedge.export import bundle as B
    from ppgedge.models import create_model
    from ppgedge.models.checkpoint import checkpoint_from_model, save_checkpoint

    ckpt = save_checkpoint(
        checkpoint_from_model(create_model("resnet_small_spectral"), tiny_dataset.fmt),
        tmp_path / "s.pt",
    )
    art = Q.ptq(ckpt, tiny_dataset, tmp_path / "s.int8.pt", n_windows=32)
    tfl = Q.to_tflite(art.path, tmp_path / "spectral.tflite")
    fmt, decode = art.artifact.data_format, art.artifact.decode
    B.write_bundle(tfl, tmp_path / "tflm", name="spectral", data_format=fmt, decode=decode)
    kernels = [(la.op.name, la.kernel) for la in generate(tfl, "spectral").layers]
    assert ("FULLY_CONNECTED", "arm_convolve_1x1_s8_fast") in kernels
    r = compare(tfl, "cortex-m4", windows=4, data=tiny_dataset_path, tflm_src=TFLM_SRC,
                cache=fw_cache)  # fmt: skip
    assert r.bit_exact_device and r.bit_exact_host
