"""Profiling facts against independent references: hand-counted MACs, the TFLite Micro host
runtime's arena, published MLPerf Tiny latencies; and the reader against corrupt files."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from ppgedge.errors import PpgedgeError
from ppgedge.profile import cycles, persistent, planner
from ppgedge.profile.layers import analyze
from ppgedge.profile.report import build, profile
from ppgedge.profile.targets import Budget, Target, resolve
from ppgedge.profile.tflite_reader import parse_tflite, read_tflite, schema

REPO = Path(__file__).resolve().parents[1]
MLPERF = REPO.parent / "shared" / "data" / "mlperf-tiny"
KWS, AD = MLPERF / "kws_ref_model.tflite", MLPERF / "ad01_int8.tflite"
needs_mlperf = pytest.mark.skipif(
    not (KWS.is_file() and AD.is_file()),
    reason="MLPerf Tiny models not found (../shared/data/mlperf-tiny beside the repository)",
)

# Hand counts from the published architectures (MLPerf Tiny README: KWS 2,656,768, AD 264,192).
KWS_MACS = (
    25 * 5 * 64 * (10 * 4 * 1)  # conv 10x4, stride 2, 1 -> 64 channels on 49x10
    + 4 * (25 * 5 * 64 * 3 * 3)  # four depthwise 3x3 on 25x5x64
    + 4 * (25 * 5 * 64 * 64)  # four pointwise 64 -> 64
    + 64 * 12  # dense 64 -> 12
)
AD_MACS = 640 * 128 + 3 * 128 * 128 + 128 * 8 + 8 * 128 + 3 * 128 * 128 + 128 * 640


def host_arena(path: Path) -> dict[str, int]:
    """Head (planned) and tail (persistent) bytes the TFLite Micro host runtime reports."""
    from ppgedge.export.arena import host_arena as measure

    h = measure(path)
    return {"head": h.planned, "tail": h.persistent}


def board(core: str, mhz: float) -> Target:
    """A target at a published board's clock (budgets irrelevant here)."""
    return Target(
        name="board", title="board", core=core, clock_mhz=mhz, flash_kb=2048, sram_kb=1024,
        dsp=True, fpu="", active_ua_per_mhz=100, supply_v=3.0,
        budget=Budget(flash_kb=1, sram_kb=1, latency_ms=1, energy_uj=1),
    )  # fmt: skip


@pytest.fixture(scope="session")
def our_tflite(
    tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, tiny_dataset
) -> Path:
    """One of our models, int8 end to end: the tiny trained resnet_micro -> PTQ -> .tflite."""
    from ppgedge.compress.quantize import ptq, to_tflite

    out = tmp_path_factory.mktemp("ours")
    result = ptq(tiny_checkpoint, tiny_dataset, out / "tiny.ptq.pt", n_windows=32)
    return to_tflite(result.path, out / "tiny.tflite")


# ---------------------------------------------------------------------------- MACs
@needs_mlperf
def test_macs_match_hand_counts() -> None:
    for path, expected in ((KWS, KWS_MACS), (AD, AD_MACS)):
        g = read_tflite(path)
        facts = [analyze(g, op) for op in g.operators]
        assert sum(f.macs for f in facts) == expected
    assert KWS_MACS == 2_656_768 and AD_MACS == 264_192
    g = read_tflite(KWS)
    first = analyze(g, g.operators[0])
    assert first.macs == 320_000 and first.output_shapes == ((1, 25, 5, 64),)


def test_our_model_macs_match_the_zoo_count(our_tflite: Path) -> None:
    """Independent count: PyTorch's FLOP counter on the float resnet_micro (FLOPs / 2)."""
    from ppgedge.data.format import DataFormat
    from ppgedge.models.registry import count_macs, create_model

    fmt = DataFormat()
    torch_macs = count_macs(create_model("resnet_micro"), len(fmt.channels), fmt.window_samples)
    report = profile(our_tflite, resolve("nrf52840"))
    assert report.macs == torch_macs == 73_120


# --------------------------------------------------------------------- SRAM vs host
@needs_mlperf
def test_planned_arena_equals_tflm_host_for_mlperf_models() -> None:
    for path, planned in ((KWS, 16_000), (AD, 768)):
        report = profile(path, resolve("stm32l4r5"))
        host = host_arena(path)
        assert report.sram["activations_bytes"] == planned == host["head"]
        assert report.sram["host_arena_head_bytes"] == host["head"]
        g = read_tflite(path)
        est64 = persistent.estimate(g, 0, bits=64).total
        assert abs(est64 - host["tail"]) / host["tail"] < 0.10, (est64, host["tail"])
        assert report.sram["persistent_bytes"] < host["tail"]  # 32-bit structs are smaller


def test_planned_arena_equals_tflm_host_for_our_model(our_tflite: Path) -> None:
    report = profile(our_tflite, resolve("nrf52840"))
    host = host_arena(our_tflite)
    assert report.sram["host_arena_head_bytes"] == host["head"]
    est64 = persistent.estimate(read_tflite(our_tflite), 0, bits=64).total
    assert abs(est64 - host["tail"]) / host["tail"] < 0.10
    assert report.sram["floor_bytes"] <= report.sram["activations_bytes"]
    assert report.seconds < 5


def test_planner_reverse_tie_order_and_gaps() -> None:
    """Equal sizes are placed last-added first (TFLM fills its sort array from the end)."""
    a = planner.Buffer(64, 0, 1, tensor=0, raw_size=64)
    b = planner.Buffer(64, 1, 2, tensor=1, raw_size=64)
    c = planner.Buffer(32, 2, 3, tensor=2, raw_size=32)
    plan = planner.plan([a, b, c])
    assert plan.offsets == (64, 0, 64) and plan.arena_bytes == 128
    assert plan.live_peak() == 128
    lone = planner.plan([planner.Buffer(16, 5, 5)])
    assert lone.offsets == (0,) and lone.arena_bytes == 16
    assert planner.plan([]).arena_bytes == 0


# ------------------------------------------------------------------ latency vs published
@needs_mlperf
def test_latency_estimate_within_30_percent_of_published() -> None:
    graphs = {"kws": read_tflite(KWS), "ad": read_tflite(AD)}
    for p in cycles.PUBLISHED:
        report = build(graphs[p.model], board(p.core, p.clock_mhz))
        ms = report.latency["ms"]
        if p.runtime == "microTVM + CMSIS-NN":
            assert abs(ms["mid"] / p.ms - 1) <= 0.30, (p, ms)
        assert ms["low"] <= p.ms <= ms["high"], (p, ms)  # every runtime lies inside the band


@needs_mlperf
def test_cycle_constants_reproduce_the_calibration() -> None:
    facts = {
        key: [analyze(g, op) for op in g.operators]
        for key, g in (("kws", read_tflite(KWS)), ("ad", read_tflite(AD)))
    }
    fitted = cycles.calibrate(facts["kws"], facts["ad"])
    for core, values in fitted.items():
        model = cycles.CORES[core]
        assert model.conv_cpm == pytest.approx(values["conv_cpm"], abs=1e-3)
        assert model.fc_cpm == pytest.approx(values["fc_cpm"], abs=1e-3)
        assert model.speed == pytest.approx(values["speed"], abs=1e-4)


@needs_mlperf
def test_floors_and_estimates_are_consistent() -> None:
    report = profile(KWS, resolve("nrf5340"))
    lat, fl, sr, en = report.latency, report.flash, report.sram, report.energy
    assert lat["floor_cycles"] == KWS_MACS / 2
    assert lat["cycles"]["low"] < lat["cycles"]["mid"] < lat["cycles"]["high"]
    assert lat["ratio"] > 1 and fl["ratio"] > 1 and sr["ratio"] >= 1
    assert fl["floor_bytes"] == read_tflite(KWS).constant_bytes
    assert fl["total_bytes"] == fl["model_bytes"] + fl["runtime_bytes"]
    assert sr["total_bytes"] == (
        sr["arena_head_bytes"] + sr["persistent_bytes"] + sr["io_buffers_bytes"]
    )
    t = report.target
    expected_uj = lat["cycles"]["mid"] * t.active_ua_per_mhz * t.supply_v * 1e-6
    assert en["uj"]["mid"] == pytest.approx(expected_uj)
    assert [r.share for r in report.layers] == pytest.approx(
        [r.cycles.mid / lat["cycles"]["mid"] for r in report.layers]
    )
    assert report.to_dict()["schema"] == "ppgedge.profile/1"


@needs_mlperf
def test_cmsis_nn_scratch_formulas() -> None:
    g = read_tflite(KWS)
    from ppgedge.profile.scratch import scratch_for

    requests = scratch_for(g, [analyze(g, op) for op in g.operators], dsp=True)
    # conv 10x4x1 im2col: 2 * align4(40) * 2 = 160; depthwise 3x3 pad 1: none; 1x1: none;
    # average pool: 64 channels * 4 = 256.
    assert [(s.op, s.nbytes) for s in requests] == [(0, 160), (9, 256)]
    assert scratch_for(g, [analyze(g, op) for op in g.operators], dsp=True, host=True) == []


# ------------------------------------------------------------------------ code size
def test_runtime_code_counts_shared_kernel_code_once(our_tflite: Path) -> None:
    from ppgedge.profile import codesize

    table = codesize.table("cortex-m4")
    for name, s in table["model_sets"].items():  # union of symbols vs linking exactly those ops
        # within the 3 % that profile's flash must hold against the linked image (issue 14;
        # benchmarks/results/measure.md: 28/28 models); KWS's union is 2.4 % under its link
        assert abs(s["union_of_symbols"] / s["together"] - 1) < 0.03, name
        assert s["sum_of_ops"] > 1.3 * s["together"]  # why the per-op sizes are not summed
    graph = read_tflite(our_tflite)
    assert sorted(table["model_sets"]["ppgedge resnet"]["ops"]) == sorted(
        {op.opcode for op in graph.operators}
    )
    for core in ("cortex-m4f", "cortex-m33f", "cortex-m7f"):
        t = codesize.table(core)
        items = codesize.runtime_items(graph, core)
        assert items[0].bytes == t["framework"] and "measured" in items[1].source
        linked = t["model_sets"]["ppgedge resnet"]["together"]
        assert linked <= items[1].bytes < 1.1 * linked, core  # never under the real link


# ------------------------------------------------------------------------ bad input
def _mutated(path: Path) -> list[bytes]:
    data = path.read_bytes()
    rng = np.random.default_rng(7)
    out = [data[:n] for n in (0, 7, 16, 100, len(data) // 2, len(data) - 1)]
    for _ in range(150):
        b = bytearray(data)
        pos = int(rng.integers(0, min(len(data), 4096)))  # the tables sit at the front
        b[pos] ^= 1 << int(rng.integers(0, 8))
        out.append(bytes(b))
    for _ in range(50):
        b = bytearray(data)
        pos = int(rng.integers(0, len(data)))
        b[pos] ^= 1 << int(rng.integers(0, 8))
        out.append(bytes(b))
    return out


def test_truncated_and_bit_flipped_files_never_crash(our_tflite: Path) -> None:
    target = resolve("nrf52840")
    paths = [our_tflite] + ([KWS] if KWS.is_file() else [])
    for path in paths:
        for i, data in enumerate(_mutated(path)):
            t0 = time.perf_counter()
            try:
                build(parse_tflite(data, f"{path.name}#{i}"), target)
            except PpgedgeError as exc:
                assert "\n" not in str(exc)
            assert time.perf_counter() - t0 < 2.0


def test_ops_tflm_lacks_are_listed(our_tflite: Path, tmp_path: Path) -> None:
    import flatbuffers

    fb = schema()
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(our_tflite.read_bytes(), 0))
    code = model.operatorCodes[0]
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.NON_MAX_SUPPRESSION_V5
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    bad = tmp_path / "nms.tflite"
    bad.write_bytes(bytes(builder.Output()))
    with pytest.raises(PpgedgeError, match="ops TFLite Micro lacks: NON_MAX_SUPPRESSION_V5"):
        profile(bad, resolve("nrf52840"))
    with pytest.raises(PpgedgeError, match="no such .tflite file"):
        profile(tmp_path / "missing.tflite", resolve("nrf52840"))


def test_sram_counts_the_tracker_state_of_the_bundle_beside_the_model(
    our_tflite: Path, tmp_path: Path
) -> None:
    """The bundle's main runs the temporal tracker: its static state is firmware RAM, so the
    profile of the .tflite with that bundle beside it counts it; a bundle of another model
    (another sha256) or none at all adds nothing."""
    import json
    import shutil

    from ppgedge.atomic import file_sha256
    from ppgedge.profile.report import profile
    from ppgedge.profile.targets import resolve

    model = tmp_path / "m.tflite"
    shutil.copyfile(our_tflite, model)
    target = resolve("nrf52840")
    alone = profile(model, target).sram
    (tmp_path / "tflm").mkdir()
    manifest = {"model": {"sha256": file_sha256(model)}, "tracker": {"state_bytes": 724}}
    (tmp_path / "tflm" / "manifest.json").write_text(json.dumps(manifest))
    beside = profile(model, target).sram
    assert alone["application_bytes"] == 0 and beside["application_bytes"] == 724
    assert beside["total_bytes"] == alone["total_bytes"] + 724
    manifest["model"]["sha256"] = "0" * 64  # the bundle of another model
    (tmp_path / "tflm" / "manifest.json").write_text(json.dumps(manifest))
    assert profile(model, target).sram["total_bytes"] == alone["total_bytes"]
    (tmp_path / "tflm" / "manifest.json").unlink()  # endless input is not read to its end
    (tmp_path / "tflm" / "manifest.json").symlink_to("/dev/zero")
    assert profile(model, target).sram["application_bytes"] == 0
