"""AOT benchmark: every zoo student, the default student and two MLPerf Tiny models compiled
ahead of time to C + CMSIS-NN, against TFLite Micro + CMSIS-NN, on Cortex-M4 in QEMU.

Per model (``ppgedge.aot.verify.compare``): int8 outputs of the AOT harness on the emulated
Cortex-M4 (mps2-an386) against the TFLM + CMSIS-NN harness on the same input tensors (and the
AOT host build, CMSIS-NN's portable C, against the same); linked flash and RAM of both firmware
images; executed instructions per inference. The zoo students are the ones
``benchmarks/measure.py`` builds (untrained, int8 by PTQ on synthetic data; the integer
arithmetic does not depend on training) fed windows of a synthetic dataset (4 subjects x
2.5 min generated here, seed 12) through their bundle's C preprocessing; the default student is
the main job's exported bundle (``benchmarks/out/main_job/export/tflm``) fed its own dataset's
windows; the MLPerf models get seeded random int8 inputs.

Writes ``benchmarks/results/aot.json`` and ``aot.md``; raw comparisons are kept in
``benchmarks/out/aot/raw.json`` and reused on a rerun while the model files are the same.
Run: ``.venv/bin/python benchmarks/aot.py [--windows 200]`` (after ``benchmarks/measure.py``
and the main job have produced their models).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ppgedge.aot.verify import compare

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "aot"
RESULTS = ROOT / "benchmarks" / "results"
TFLM_SRC = ROOT.parent / "shared" / "vendor" / "tflm-src"
MLPERF = ROOT.parent / "shared" / "data" / "mlperf-tiny"
ZOO = ROOT / "benchmarks" / "out" / "measure" / "models"
MAIN = ROOT / "benchmarks" / "out" / "main_job"


def zoo_data() -> Path:
    """Synthetic windows for the zoo students: benchmarks/measure.py's generator and format,
    4 subjects x 2.5 min (> 200 windows; its own 3 x 2 min set has 171)."""
    from ppgedge.data.format import DataFormat, write_dataset
    from ppgedge.data.synth import synthesize

    path = OUT / "synth.ppgds"
    if not path.is_dir():
        data = synthesize(n_subjects=4, minutes_per_subject=2.5, seed=12, fmt=DataFormat())
        write_dataset(data, path)
    return path


def models() -> dict[str, tuple[Path, Path | None]]:
    """name -> (bundle dir or .tflite, dataset or None)."""
    out: dict[str, tuple[Path, Path | None]] = {
        "default (main job)": (MAIN / "export" / "tflm", MAIN / "data" / "dataset.ppgds")
    }
    for d in sorted(p for p in ZOO.iterdir() if (p / "tflm" / "manifest.json").is_file()):
        out[d.name] = (d / "tflm", zoo_data())
    for name in ("kws_ref_model", "ad01_int8"):
        out[name] = (MLPERF / f"{name}.tflite", None)
    return out


def model_key(model: Path) -> str:
    """What a kept comparison is valid for: the .tflite's sha256, or a bundle's manifest (which
    lists every file's sha256: the model, main.cc, the tracker), with the ppgedge version."""
    from ppgedge import __version__
    from ppgedge.atomic import file_sha256

    src = model / "manifest.json" if model.is_dir() else model
    return f"{__version__}:{file_sha256(src)}"


def markdown(doc: dict) -> str:
    rows = doc["rows"]
    lines = [
        "# AOT C backend against TFLite Micro (Cortex-M4, QEMU)",
        "",
        f"ppgedge {doc['ppgedge']}; arm-none-eabi-gcc 12.2; TFLite Micro + CMSIS-NN from "
        "../shared/vendor/tflm-src; QEMU 7.2 mps2-an386. Both firmware images: the model's "
        "preprocessing, inference and decoding, linked with newlib-nano and --gc-sections; "
        "TFLM's includes MicroPrintf, the AOT one writes its result to a volatile. RAM is the "
        "linked image's .data + .bss with the arena each declares (TFLM: the bundle's; "
        "'TFLM min' replaces it by the arena TFLM reports using on the device). Instructions "
        "are counted (exact) per inference: Invoke() against NAME_invoke(). "
        f"{doc['windows']} windows per model.",
        "",
        "| model | bit-exact M4 | host | flash AOT | flash TFLM | ratio | RAM AOT | RAM TFLM "
        "| ratio | ratio (TFLM min) | instr. AOT | instr. TFLM | ratio |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['name']} | {'yes' if r['bit_exact_device'] else 'NO'} ({r['windows']}) | "
            f"{'yes' if r['bit_exact_host'] else 'NO'} | {r['flash']['aot']:,} | "
            f"{r['flash']['tflm']:,} | {r['flash']['ratio']:.3f} | {r['ram']['aot']:,} | "
            f"{r['ram']['tflm']:,} | {r['ram']['ratio']:.3f} | {r['ram']['ratio_tflm_min']:.3f} "
            f"| {r['instructions']['aot_invoke']:,.0f} | {r['instructions']['tflm_invoke']:,.0f} "
            f"| {r['instructions']['ratio']:.3f} |"
        )
    d = rows[0]
    exact = sum(r["bit_exact_device"] and r["bit_exact_host"] for r in rows)
    lines += [
        "",
        "## Targets",
        "",
        f"- bit-exact with TFLM + CMSIS-NN (M4 and host, >= 200 windows): {exact}/{len(rows)}",
        f"- default student flash <= 0.55x: {d['flash']['ratio']:.3f} "
        f"({d['flash']['aot']:,} B vs {d['flash']['tflm']:,} B)",
        f"- default student SRAM <= 0.6x: {d['ram']['ratio']:.3f} "
        f"({d['ram']['aot']:,} B vs {d['ram']['tflm']:,} B; against TFLM's device-used arena "
        f"{d['ram']['ratio_tflm_min']:.3f})",
        "- executed instructions <= TFLM's: "
        f"{sum(r['instructions']['ratio'] <= 1 for r in rows)}/{len(rows)}",
        "",
        "## Flash by part (bytes)",
        "",
        "| model | AOT model (weights + code) | AOT CMSIS-NN | AOT libc + app | TFLM model "
        "| TFLM framework | TFLM kernels | TFLM libc + app |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        a, t = r["flash"]["aot_parts"], r["flash"]["tflm_parts"]
        lines.append(
            f"| {r['name']} | {a['model']:,} | {a['kernels']:,} | {a['libc'] + a['app']:,} | "
            f"{t['model']:,} | {t['framework']:,} | {t['kernels']:,} | "
            f"{t['libc'] + t['app']:,} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=200)
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    raw_path = OUT / "raw.json"
    raw = json.loads(raw_path.read_text()) if raw_path.is_file() else {}
    for name, (model, data) in models().items():
        key = model_key(model)
        if name in raw and raw[name]["windows"] >= args.windows and raw[name].get("key") == key:
            continue  # the same model files, already compared
        t0 = time.perf_counter()
        rep = compare(model, "cortex-m4", args.windows, data=data, tflm_src=TFLM_SRC)
        raw[name] = {**rep.to_dict(), "key": key}
        print(f"{name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        raw_path.write_text(json.dumps(raw, indent=1))
    rows = []
    for name in models():
        r = dict(raw[name], name=name)
        ram = r["ram"]
        tflm_min = ram["tflm"] - r["arena"]["tflm_declared"] + r["arena"]["tflm_used"]
        ram["tflm_min"] = tflm_min
        ram["ratio_tflm_min"] = round(ram["aot"] / tflm_min, 4)
        rows.append(r)
    from ppgedge import __version__

    doc = {"schema": "ppgedge.bench-aot/1", "ppgedge": __version__, "core": "cortex-m4",
           "windows": args.windows, "rows": rows}  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "aot.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / "aot.md").write_text(markdown(doc))
    print(markdown(doc))


if __name__ == "__main__":
    main()
