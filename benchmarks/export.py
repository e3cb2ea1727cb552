"""Export benchmark: every zoo architecture, trained, pruned and QAT'd, exported and verified.

Per distinct architecture, on the synthetic benchmark dataset (benchmarks/foundation.py's,
held-out subjects): train briefly, prune to 50 % of the parameters, QAT, then ``ppgedge export``
(all formats) and ``ppgedge verify`` on the test subjects. Zoo names that build the same network
(``resnet1d`` with its default knobs is ``resnet_base``) are one row. Every model is trained in
this run, in a fresh folder named after the run id: nothing is reused from an earlier run.
Reported: the deployment rules, LiteRT vs TFLite Micro int8 steps, the deployed (TFLite Micro)
MAE beside the QAT model's PyTorch MAE, decoded and raw argmax agreement, and export time.

Writes ``benchmarks/results/export.json`` and ``export.md``.
Run: ``.venv/bin/python benchmarks/export.py`` (about 30 min on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import torch

from ppgedge import __version__
from ppgedge.compress.prune import prune
from ppgedge.compress.quantize import qat
from ppgedge.data.format import Dataset
from ppgedge.data.splits import holdout
from ppgedge.errors import PpgedgeError
from ppgedge.export.rules import check_int8_rules
from ppgedge.export.run import export
from ppgedge.export.verify import verify
from ppgedge.models.registry import create_model, list_models
from ppgedge.train.trainer import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
FOUNDATION = ROOT / "benchmarks" / "out" / "foundation"
RESULTS = ROOT / "benchmarks" / "results"


def distinct(archs: list[str]) -> dict[str, list[str]]:
    """Zoo names grouped by the network they build (its module tree, every knob resolved):
    the first name of each group -> the other names that build the same network."""
    groups: dict[str, list[str]] = {}
    for arch in archs:
        key = hashlib.sha256(repr(create_model(arch)).encode()).hexdigest()
        groups.setdefault(key, []).append(arch)
    return {names[0]: names[1:] for names in groups.values()}


def one(arch: str, ds: Dataset, split, work: Path, epochs: int) -> dict:
    row: dict = {"arch": arch}
    ckpt = work / f"{arch}.pt"
    if ckpt.exists():
        raise SystemExit(f"{ckpt} exists: every run trains its models in a fresh folder")
    t0 = time.perf_counter()
    cfg = TrainConfig(arch=arch, epochs=epochs, patience=epochs, seed=0)
    trained = train(ds, split, ckpt, cfg, device="cpu")
    row["train_s"] = round(time.perf_counter() - t0, 1)
    row["epochs_trained"] = trained.metrics["epochs_run"]
    pruned = work / f"{arch}.pruned.pt"
    t0 = time.perf_counter()
    try:
        res = prune(
            ckpt, ds, split, pruned, "50%", steps=2, finetune_epochs=1, final_epochs=2, device="cpu"
        )
        row["pruned_params"] = res.checkpoint.metrics["parameters"]
        row["params"] = res.steps[0]["parameters"] if res.steps else None
    except PpgedgeError as exc:  # the smallest presets cannot halve at round_to=4
        row["prune_note"] = str(exc)[:120]
        pruned = ckpt
    row["prune_s"] = round(time.perf_counter() - t0, 1)
    art = work / f"{arch}.qat.int8.pt"
    t0 = time.perf_counter()
    qat(pruned, ds, split, art, epochs=3)
    row["qat_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    result = export(art, work / f"{arch}_export", name=arch)
    row["export_s"] = round(time.perf_counter() - t0, 1)
    rules = check_int8_rules(result.files["tflite"])
    row["rules_ok"], row["ops"] = rules.ok, sorted(set(rules.ops))
    row["tflite_bytes"] = result.files["tflite"].stat().st_size
    row["arena_bytes"] = (result.manifest.get("arena") or {}).get("total")
    v = verify(result.out_dir, ds, part="test")
    row.update(
        decoder=v.decoder,
        litert_steps=v.max_step_diff_tflite_vs_tflm,
        mae_tflm=v.mae_tflm,
        mae_pytorch=v.mae_pytorch,
        mae_gap=v.mae_tflm - v.mae_pytorch,
        agreement=v.argmax_agreement_pytorch,
        integer_steps=v.max_step_diff_pytorch_vs_tflm,
        fake_quant_agreement=v.argmax_agreement_fake_quant,
        raw_fake_quant_agreement=v.raw_argmax_agreement_fake_quant,
        within_1bpm=v.within_1bpm_fake_quant,
        verify_ok=v.ok,
    )
    print("row", json.dumps(row), flush=True)
    return row


def markdown(res: dict) -> str:
    lines = [
        "# Export benchmark",
        "",
        f"ppgedge {res['version']}, {res['date']}, CPU. Each architecture trained "
        f"{res['epochs']} epochs from scratch on the synthetic benchmark data, pruned to 50 % "
        "(2 steps), QAT 3 epochs, exported (tflite + TFLM bundle + ONNX) and verified on the "
        "held-out test subjects. MAE in BPM.",
        "",
        "Agreement is the share of test windows on which two models decide the same BPM "
        "class with the model's decoder. *integer*: the PyTorch QAT graph executed in TFLite "
        "Micro's integer arithmetic (`ppgedge.compress.integer_reference`; Δ = its largest "
        "int8 difference from TFLite Micro's output); *fake-quant*: the float simulation QAT "
        "trains and evaluates (its MAE is the PyTorch MAE).",
        "",
        "| arch | params → pruned | rules | LiteRT Δ steps | TFLM MAE | PyTorch MAE | gap "
        "| integer Δ steps | integer agree | fake-quant agree | fake-quant raw argmax "
        "| fake-quant ±1 BPM | decoder | export s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in res["rows"]:
        params = f"{r.get('params') or '-'} → {r.get('pruned_params') or 'not pruned'}"
        name = " = ".join([r["arch"], *r.get("same_network_as", [])])
        lines.append(
            f"| {name} | {params} | {'pass' if r['rules_ok'] else 'FAIL'} "
            f"| {r['litert_steps']} | {r['mae_tflm']:.2f} | {r['mae_pytorch']:.2f} "
            f"| {r['mae_gap']:+.2f} | {r['integer_steps']} | {r['agreement']:.1%} "
            f"| {r['fake_quant_agreement']:.1%} | {r['raw_fake_quant_agreement']:.1%} "
            f"| {r['within_1bpm']:.1%} | {r['decoder']} | {r['export_s']:.1f} |"
        )
    n = len(res["rows"])
    worst = max(res["rows"], key=lambda r: abs(r["mae_gap"]))
    lines += [
        "",
        f"- {n} distinct architectures (names that build the same network share a row), all "
        f"trained in run {res['run_id']}: train {min(r['train_s'] for r in res['rows']):.1f}-"
        f"{max(r['train_s'] for r in res['rows']):.1f} s per model; zoo names not run: "
        f"{', '.join(res['zoo_not_run']) or 'none'}",
        f"- rules pass: {sum(r['rules_ok'] for r in res['rows'])}/{n}; LiteRT within 1 step: "
        f"{sum(r['litert_steps'] <= 1 for r in res['rows'])}/{n}",
        f"- deployed MAE within 0.1 BPM of PyTorch: "
        f"{sum(abs(r['mae_gap']) <= 0.1 for r in res['rows'])}/{n}; agreement ≥ 99 % with "
        f"the integer PyTorch graph: {sum(r['agreement'] >= 0.99 for r in res['rows'])}/{n} "
        f"(bit-exact: {sum(r['integer_steps'] == 0 for r in res['rows'])}/{n}); with the "
        f"fake-quant simulation: {sum(r['fake_quant_agreement'] >= 0.99 for r in res['rows'])}"
        f"/{n}",
        f"- largest |TFLM MAE - PyTorch MAE|: {abs(worst['mae_gap']):.3f} BPM ({worst['arch']})",
        f"- slowest export: {max(r['export_s'] for r in res['rows']):.1f} s",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--archs", default="", help="comma list (default: the whole zoo)")
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "out" / "export")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds_path = FOUNDATION / "synthetic.ppgds"
    if not ds_path.exists():
        print("run benchmarks/foundation.py first", file=sys.stderr)
        return 2
    ds = Dataset(ds_path)
    split = holdout(ds.subjects, seed=0)
    archs = args.archs.split(",") if args.archs else [e.name for e in list_models()]
    groups = distinct(archs)
    run_id = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    work = args.work / run_id
    work.mkdir(parents=True, exist_ok=False)
    rows = []
    for arch, same in groups.items():
        rows.append(one(arch, ds, split, work, args.epochs) | {"same_network_as": same})
    res = {
        "version": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "run_id": run_id,
        "epochs": args.epochs,
        "threads": args.threads,
        "distinct_architectures": len(rows),
        "zoo_not_run": [e.name for e in list_models() if e.name not in archs],
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "export.json").write_text(json.dumps(res, indent=1) + "\n")
    (RESULTS / "export.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
