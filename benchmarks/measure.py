"""Measure benchmark: the real firmware build of every zoo student and two MLPerf Tiny models.

(Plus three knob variants of the depthwise-separable CNN, ``VARIANTS``, for more depthwise
shapes in the cycle-model fit.)

For every zoo student (untrained, int8 by PTQ on synthetic data, exported as a ppgedge bundle;
the int8 arithmetic does not depend on training) and the two MLPerf Tiny models in
../shared/data/mlperf-tiny/ (random int8 inputs), on Cortex-M4 (QEMU mps2-an386) and Cortex-M33
(mps2-an505), ``ppgedge.firmware.measure`` builds TFLite Micro + CMSIS-NN and the model, runs it
and reports:

* bit-exact int8 outputs against the TFLite Micro Python runtime (yes/no, windows, max diff);
* flash of the linked image against ``profile``'s estimate (target: within 3 %);
* the arena: the smallest that works on the 32-bit core, the bundle's declared size (host
  estimate) and the size declared from the 32-bit measurement (target: at most 1.05x + 64 B);
* instructions per layer and per operator type, and estimated cycles (instructions x the core's
  CPI, ``ppgedge.profile.cycles.INSTRUCTION_CPI``) against two cycle models: ``profile``'s
  current one and a per-op-type instruction model (``fit_instruction_model``) evaluated
  leave-one-model-out (fitted on the other models, reported on the held-out one). Targets:
  per-op-type within +-30 % for types above 2 % of the total, whole network within +-15 %.

Writes ``benchmarks/results/measure.json`` and ``measure.md``; raw measurements are kept in
``benchmarks/out/measure/raw.json`` and reused on a rerun.
Run: ``.venv/bin/python benchmarks/measure.py [--cores cortex-m4,cortex-m33] [--windows 4]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from ppgedge.compress import quantize as Q
from ppgedge.data.format import DataFormat, Dataset, write_dataset
from ppgedge.data.synth import synthesize
from ppgedge.export.arena import with_device_measurement
from ppgedge.export.bundle import write_bundle
from ppgedge.firmware.compare import compare
from ppgedge.firmware.measure import measure
from ppgedge.models.checkpoint import checkpoint_from_model, save_checkpoint
from ppgedge.models.registry import create_model, list_models
from ppgedge.profile import cycles
from ppgedge.profile.layers import analyze
from ppgedge.profile.report import profile
from ppgedge.profile.targets import resolve
from ppgedge.profile.tflite_reader import read_tflite

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "measure"
RESULTS = ROOT / "benchmarks" / "results"
TFLM_SRC = ROOT.parent / "shared" / "vendor" / "tflm-src"
MLPERF = ROOT.parent / "shared" / "data" / "mlperf-tiny"
NOT_STUDENTS = {"resnet_teacher", "resnet_base", "resnet1d", "resnet_medium"}
# Knob variants of the zoo's depthwise-separable CNN: more depthwise shapes for the fit (the
# students alone have two), reported like the others.
VARIANTS = {
    "dscnn_w16_k5": ("dscnn", {"width": 16, "kernel": 5}),
    "dscnn_w24_k3": ("dscnn", {"width": 24, "kernel": 3, "blocks": 3}),
    "dscnn_w12_k7": ("dscnn", {"width": 12, "kernel": 7, "max_width": 48}),
}
TARGET_FOR = {"cortex-m4": "nrf52840", "cortex-m33": "nrf5340"}


def make_models(work: Path) -> dict[str, Path]:
    """name -> .tflite (zoo students with a bundle in <name>/tflm, then the MLPerf files)."""
    ds_path = work / "synth.ppgds"
    if not ds_path.is_dir():
        data = synthesize(n_subjects=3, minutes_per_subject=2.0, seed=11, fmt=DataFormat())
        write_dataset(data, ds_path)
    ds = Dataset(ds_path)
    out: dict[str, Path] = {}
    archs = {e.name: (e.name, {}) for e in list_models() if e.name not in NOT_STUDENTS}
    for name, (arch, kwargs) in {**archs, **VARIANTS}.items():
        d = work / name
        tfl = d / f"{name}.tflite"
        if not (d / "tflm" / "manifest.json").is_file():
            d.mkdir(parents=True, exist_ok=True)
            torch.manual_seed(0)
            model = create_model(arch, **kwargs)
            ckpt = save_checkpoint(checkpoint_from_model(model, ds.fmt), d / "float.pt")
            res = Q.ptq(ckpt, ds, d / "ptq.int8.pt", n_windows=64)
            Q.to_tflite(res.path, tfl)
            write_bundle(tfl, d / "tflm", name=name, data_format=ds.fmt, decode="argmax")
        out[name] = tfl
    for name in ("kws_ref_model", "ad01_int8"):
        out[name] = MLPERF / f"{name}.tflite"
    return out


def collect(models: dict[str, Path], cores: list[str], windows: int, work: Path) -> dict:
    raw_path = OUT / "raw.json"
    raw = json.loads(raw_path.read_text()) if raw_path.is_file() else {}
    data = work / "synth.ppgds"
    for core in cores:
        for name, tfl in models.items():
            key = f"{name}@{core}"
            if key in raw:
                continue
            t0 = time.perf_counter()
            bundle = tfl.parent / "tflm"
            rep = measure(
                bundle if bundle.is_dir() else tfl,
                core,
                windows,
                data=data if bundle.is_dir() else None,
                tflm_src=TFLM_SRC,
            )
            raw[key] = rep.to_dict()
            print(f"{key}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            raw_path.write_text(json.dumps(raw, indent=1))
    return raw


def _facts(tfl: Path) -> list:
    g = read_tflite(tfl)
    return [analyze(g, op) for op in g.operators]


def analyse(models: dict[str, Path], raw: dict, cores: list[str]) -> dict:
    rows = []
    facts = {name: _facts(tfl) for name, tfl in models.items()}
    for core in cores:
        cpi = cycles.instruction_cpi(core).cpi
        samples = {
            name: [
                (f, r["instructions"])
                for f, r in zip(facts[name], raw[f"{name}@{core}"]["instructions"]["per_op"],
                                strict=True)
            ]
            for name in models
        }  # fmt: skip
        for name, tfl in models.items():
            m = dict(raw[f"{name}@{core}"])  # cycles with today's CPI, not the one at run time
            m["cycles"] = {**m["cycles"], "cpi": cpi, "invoke": m["instructions"]["invoke"] * cpi}
            prof = profile(tfl, resolve(TARGET_FOR[core])).to_dict()
            cmp = compare(prof, m)
            others = [s for n, s in samples.items() if n != name for s in s]
            fitted = cycles.fit_instruction_model(others)
            per_type: dict[str, dict[str, float]] = {}
            for f, n in samples[name]:
                pred = cycles.predict_instructions(f, fitted)
                t = per_type.setdefault(
                    f.opcode, {"measured": 0.0, "held_out_model": 0.0, "unseen": 0.0}
                )
                t["measured"] += n * cpi
                if pred is None:
                    t["unseen"] = 1.0
                else:
                    t["held_out_model"] += pred * cpi
            total = sum(t["measured"] for t in per_type.values())
            for t in per_type.values():
                t["share"] = t["measured"] / total
                t["error_pct"] = (
                    None if t["unseen"] else 100 * (t["held_out_model"] - t["measured"])
                    / t["measured"]
                )  # fmt: skip
            smallest = m["arena"]["smallest"]
            # item 3: what a bundle declares when the 32-bit measurement is available
            from ppgedge.export.arena import arena_estimate

            dev = with_device_measurement(
                arena_estimate(tfl, bisect=False),
                core=core, machine=m["board"]["machine"], used=m["arena"]["used"],
                smallest=smallest,
            )  # fmt: skip
            held_total = sum(t["held_out_model"] for t in per_type.values())
            rows.append(
                {
                    "model": name,
                    "core": core,
                    "bit_exact": m["exact"]["bit_exact"],
                    "windows": m["exact"]["windows"],
                    "max_diff": m["exact"]["max_diff"],
                    "flash_linked": m["flash"]["total"],
                    "flash_profile": cmp["flash"]["profile_bytes"],
                    "flash_error_pct": cmp["flash"]["error_pct"],
                    "arena_used": m["arena"]["used"],
                    "arena_smallest": smallest,
                    "arena_declared_host": m["arena"]["declared"],
                    "arena_declared_32bit": dev.total,
                    "arena_32bit_ok": dev.total <= 1.05 * smallest + 64,
                    "instructions_invoke": m["instructions"]["invoke"],
                    "cycles_from_instructions": m["cycles"]["invoke"],
                    "profile_cycles": cmp["cycles"]["estimated"],
                    "profile_error_pct": cmp["cycles"]["error_pct"],
                    "held_out_cycles": held_total,
                    "held_out_error_pct": 100 * (held_total - total) / total if total else None,
                    "per_op_type_profile": cmp["cycles"]["per_op_type"],
                    "per_op_type_held_out": per_type,
                    "preprocess_instructions": m["instructions"]["preprocess"],
                }
            )
    final = cycles.fit_instruction_model(
        [s for name in models for s in zip(facts[name], [
            r["instructions"] for r in raw[f"{name}@cortex-m4"]["instructions"]["per_op"]
        ], strict=True)]
    )  # fmt: skip
    return {"rows": rows, "instruction_model_all": final}


def markdown(doc: dict) -> str:
    lines = [
        "# Firmware build measured in QEMU",
        "",
        f"ppgedge {doc['ppgedge']}; {doc['compiler']}; TFLite Micro + CMSIS-NN from "
        "../shared/vendor/tflm-src; QEMU 7.2. Cycles are ESTIMATES: measured instructions x "
        "CPI ("
        + ", ".join(f"{c} {cycles.instruction_cpi(c).cpi:.3f}" for c in TARGET_FOR)
        + "; published MLPerf Tiny KWS cycles / KWS instructions). Zoo students are untrained, "
        "int8 by PTQ on synthetic data (the integer arithmetic does not depend on training), "
        "fed 4 synthetic windows; MLPerf models 4 random int8 inputs. Arena 'declared (host)' "
        "is the bundle's 64-bit host estimate, 'declared (32-bit)' what a bundle declares from "
        "this measurement (smallest + 2 %, rounded to 16 B).",
        "",
        "| model | core | bit-exact | flash linked | profile | err | arena smallest | "
        "declared (host) | declared (32-bit) | Invoke instr. | profile (in-sample) err | "
        "held-out model err |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in doc["rows"]:
        held = r["held_out_error_pct"]
        lines.append(
            f"| {r['model']} | {r['core']} | {'yes' if r['bit_exact'] else 'NO'} "
            f"({r['windows']}) | {r['flash_linked']:,} | {r['flash_profile']:,} | "
            f"{r['flash_error_pct']:+.1f}% | {r['arena_smallest']:,} | "
            f"{r['arena_declared_host']:,} | {r['arena_declared_32bit']:,} | "
            f"{r['instructions_invoke']:,.0f} | {r['profile_error_pct']:+.1f}% | "
            + (f"{held:+.1f}% |" if held is not None else "- |")
        )
    rows = doc["rows"]
    flash_ok = sum(abs(r["flash_error_pct"]) <= 3 for r in rows)
    arena_ok = sum(r["arena_32bit_ok"] for r in rows)
    whole = [r for r in rows if r["held_out_error_pct"] is not None]
    whole_ok = sum(abs(r["held_out_error_pct"]) <= 15 for r in whole)
    big = [
        (r["model"], r["core"], op, t)
        for r in rows
        for op, t in r["per_op_type_held_out"].items()
        if t["share"] > 0.02
    ]
    big_ok = [b for b in big if b[3]["error_pct"] is not None and abs(b[3]["error_pct"]) <= 30]
    missed = sorted({f"{m} {op}" for m, _, op, t in big if (m, _, op, t) not in big_ok})
    lines += [
        "",
        "## Targets",
        "",
        f"- bit-exact: {sum(r['bit_exact'] for r in rows)}/{len(rows)} model x core runs",
        f"- flash within 3 % of the linked image: {flash_ok}/{len(rows)}",
        f"- arena declared from the 32-bit measurement <= 1.05x smallest + 64 B: "
        f"{arena_ok}/{len(rows)}",
        f"- per-op-type cycles within +-30 % (held-out model, types > 2 % of the total): "
        f"{len(big_ok)}/{len(big)}; missed: {', '.join(missed) or 'none'}",
        f"- whole network within +-15 % (held-out model): {whole_ok}/{len(whole)}",
        "",
        "'profile' columns are profile's cycle model as shipped, fitted on all of these models "
        "(in-sample); 'held-out' columns are the same model refitted without the row's model.",
    ]
    lines += ["", "## Per operator type (held-out model, leave-one-model-out; cortex-m4)", ""]
    lines += [
        "| model | op | share | measured cycles | held-out est. | err | profile est. | err |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in doc["rows"]:
        if r["core"] != "cortex-m4":
            continue
        for op, t in sorted(r["per_op_type_held_out"].items(), key=lambda kv: -kv[1]["share"]):
            p = r["per_op_type_profile"][op]
            err = "unseen" if t["error_pct"] is None else f"{t['error_pct']:+.1f}%"
            perr = "-" if p["error_pct"] is None else f"{p['error_pct']:+.1f}%"
            lines.append(
                f"| {r['model']} | {op} | {100 * t['share']:.1f}% | {t['measured']:,.0f} | "
                f"{t['held_out_model']:,.0f} | {err} | {p['estimated_cycles']:,.0f} | {perr} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", default="cortex-m4,cortex-m33")
    ap.add_argument("--windows", type=int, default=4)
    args = ap.parse_args()
    cores = args.cores.split(",")
    OUT.mkdir(parents=True, exist_ok=True)
    models = make_models(OUT / "models")
    raw = collect(models, cores, args.windows, OUT / "models")
    doc = analyse(models, raw, cores)
    from ppgedge import __version__

    doc["ppgedge"] = __version__
    doc["compiler"] = next(iter(raw.values()))["build"]["compiler"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "measure.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / "measure.md").write_text(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
