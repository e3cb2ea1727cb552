"""The run's summary table, ``report.md`` and its PNG plots, from what the stages recorded.

Everything here reads files the stages wrote (the manifest's metrics, verify.json, profile.json,
check.json, predictions.npz), so a run whose stages were all skipped reports exactly as the run
that made them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ppgedge.atomic import atomic_path, write_text_atomic
from ppgedge.evaluate.coverage import deployed_line
from ppgedge.pipeline.stages import Context, read_json
from ppgedge.textsafe import markdown_text as md

PLOTS = ("mae_vs_size.png", "layers.png", "error_by_activity.png")


def _int8_weight_bytes(path: Path) -> int | None:
    from ppgedge.compress.prune import int8_flash_bytes
    from ppgedge.models.checkpoint import load_checkpoint

    try:
        return int8_flash_bytes(load_checkpoint(path).build())
    except Exception:  # noqa: BLE001  a foreign teacher has no ppgedge architecture
        return None


def summary_rows(ctx: Context, stages: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The spectral baseline, teacher, student, pruned and int8 models side by side."""
    m = {k: v.get("metrics", {}) for k, v in stages.items()}
    profile = read_json(ctx.profile_path)
    check = read_json(ctx.check_path)
    verify = read_json(ctx.verify_path)
    tot = profile["totals"]
    rows = [
        {  # what a model must beat: band-pass + FFT peak, on the same test windows
            "model": "spectral baseline (no model)",
            "parameters": 0,
            "test_mae": verify.get("mae_spectral"),
        },
        {
            "model": f"teacher {m['teacher'].get('arch', '')}".strip(),
            "parameters": m["teacher"].get("parameters"),
            "test_mae": m["teacher"].get("test_mae"),
            "int8_weight_bytes": _int8_weight_bytes(ctx.teacher_path),
        },
        {
            # the distill stage may keep the from-scratch student (keep_better): name the kept one
            "model": f"student {m['distill'].get('arch', '')} "
            f"({m['distill'].get('kept') or ctx.cfg['distill']['method']})",
            "parameters": m["distill"].get("parameters"),
            "test_mae": m["distill"].get("test_mae"),
            "int8_weight_bytes": _int8_weight_bytes(ctx.student_path),
        },
        {
            "model": "pruned",
            "parameters": m["prune"].get("parameters"),
            "test_mae": m["prune"].get("test_mae"),
            "int8_weight_bytes": m["prune"].get("int8_weight_bytes"),
        },
        {
            "model": "int8 QAT (TFLite Micro)",
            "parameters": m["prune"].get("parameters"),
            "test_mae": verify["mae_tflm"],
            "int8_weight_bytes": tot["flash"]["floor_bytes"],
            "flash_bytes": tot["flash"]["total_bytes"],
            "sram_bytes": tot["sram"]["total_bytes"],
            "latency_ms": tot["latency"]["ms"],
            "energy_uj": tot["energy"]["uj"],
            "verdict": _verdict(check),
            "target": profile["target"]["name"],
        },
    ]
    # the same int8 outputs through the temporal tracker (None: the model carries none)
    rows[-1]["test_mae_tracked"] = verify.get("mae_tflm_tracked")
    # which of the two the bundle's firmware reports (chosen on the int8 validation outputs)
    rows[-1]["deployed_decoder"] = (verify.get("tracking") or {}).get("val_decoder")
    # the value the bundle reports, below / inside / above the training recordings' heart rates
    rows[-1]["heart_rate_coverage"] = deployed_line(
        verify.get("coverage"), rows[-1]["deployed_decoder"]
    )
    return rows


def _verdict(check: dict[str, Any]) -> str:
    """'fits', or what failed with its value and limit (the summary must say why)."""
    if check["passed"]:
        return "fits"
    over = [
        f"{r['name']} {r['value']:.4g} > {r['limit']:.4g} {r['unit']}"
        for r in check["results"]
        if not r["ok"]
    ]
    regressed = (check.get("baseline") or {}).get("regressed")
    return "over budget: " + "; ".join(over or (["regressed vs baseline"] if regressed else []))


def _fmt(v: Any, spec: str = ",") -> str:
    if v is None:
        return "-"
    if isinstance(v, dict):  # an estimate band
        return f"~{v['mid']:.3g} ({v['low']:.3g}-{v['high']:.3g})"
    return format(v, spec)


def _lent(d: dict[str, Any]) -> str:
    n, who = d["synthetic_motion"], d["synthetic_motion_for"]
    whose = "the teacher's" if who == "teacher" else "every stage's"
    on_top = who == "all" and d["synthetic_motion_epochs"] == "recorded"
    scale = " (epochs scaled to the recorded windows after the teacher)" if on_top else ""
    return f", {whose} training plus {n} synthetic motion subjects{scale}" if n else ""


def markdown(ctx: Context, stages: dict[str, dict[str, Any]], rows: list[dict[str, Any]]) -> str:
    check = read_json(ctx.check_path)
    verify = read_json(ctx.verify_path)
    d = ctx.cfg["data"]
    target = check["target"]
    verdict = "fits" if check["passed"] else "OVER BUDGET"
    lines = [
        "# ppgedge run report",
        "",
        f"Data: {md(d['source'])} ({md(ctx.rel(ctx.data_dir))}){_lent(d)}; test subjects: "
        f"{md(', '.join(ctx.split.test))}. Target: {md(target['title'])} ({md(target['core'])}, "
        f"{target['clock_mhz']:g} MHz). Verdict: **{verdict}**.",
        "",
        "## Models",
        "",
        "| model | params | test MAE (BPM) | int8 weights (B) | flash (B) | SRAM (B) "
        "| latency ms (est.) | energy µJ (est.) | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {md(r['model'])} | {_fmt(r.get('parameters'))} | {_fmt(r.get('test_mae'), '.2f')} "
            f"| {_fmt(r.get('int8_weight_bytes'))} | {_fmt(r.get('flash_bytes'))} "
            f"| {_fmt(r.get('sram_bytes'))} | {_fmt(r.get('latency_ms'))} "
            f"| {_fmt(r.get('energy_uj'))} | {md(r.get('verdict', ''))} |"
        )
    if rows[-1].get("test_mae_tracked") is not None:
        lines += [
            "",
            f"Tracked over time (the bundle's temporal tracker on the same int8 outputs): "
            f"test MAE **{rows[-1]['test_mae_tracked']:.2f}** BPM against "
            f"{rows[-1]['test_mae']:.2f} window by window"
            + (
                "."
                if rows[-1].get("deployed_decoder") is None
                else f"; the bundle reports the "
                f"{'tracked' if rows[-1]['deployed_decoder'] == 'tracked' else 'per-window'} "
                "value (chosen on the int8 model's validation outputs)."
            ),
        ]
    if rows[-1].get("heart_rate_coverage"):
        lines += [
            "",
            f"By reference heart rate (the value the bundle reports): "
            f"{md(rows[-1]['heart_rate_coverage'])}.",
        ]
    lines += [
        "",
        "Latency and energy are **estimates** from a cycle model calibrated on published MLPerf "
        "Tiny measurements (band = low-high); flash runtime code and persistent arena bytes are "
        "documented estimates. MAE of the int8 model is measured in the TFLite Micro host "
        "runtime (the device's arithmetic) on the held-out test subjects.",
        "",
        "## Budget",
        "",
        "| budget | limit | value | margin | ok |",
        "|---|---:|---:|---:|---|",
    ]
    for r in check["results"]:
        est = " (est.)" if r.get("estimate") else ""
        lines.append(
            f"| {r['name']}{est} | {r['limit']:,.4g} {r['unit']} | {r['value']:,.4g} {r['unit']} "
            f"| {r['margin_pct']:+.0f}% | {'yes' if r['ok'] else '**no**'} |"
        )
    lines += ["", "## Verification (int8)", ""]
    lines.append(
        f"TFLite Micro MAE {verify['mae_tflm']:.3f} BPM, LiteRT {verify['mae_litert']:.3f}, "
        f"PyTorch fake-quant simulation {verify['mae_pytorch']:.3f}, float "
        f"{verify['mae_float']:.3f}; LiteRT vs TFLite Micro at most "
        f"{verify['max_step_diff_tflite_vs_tflm']} int8 step(s); decoded agreement with the "
        "PyTorch graph in integer arithmetic "
        + (
            "not computed"
            if verify["argmax_agreement_pytorch"] is None
            else f"{verify['argmax_agreement_pytorch']:.1%} (max "
            f"{verify['max_step_diff_pytorch_vs_tflm']} step(s))"
        )
        + ", with its fake-quant simulation "
        f"{verify['argmax_agreement_fake_quant']:.1%} ({verify['within_1bpm_fake_quant']:.1%} "
        "within 1 BPM; reported, not gated)."
    )
    if verify.get("mae_tflm_tracked") is not None:
        tr = verify.get("tracking") or {}
        lines.append(
            f"Tracked (temporal tracker over the int8 outputs, windows in recording order, "
            f"{tr.get('sequences')} sequences, {tr.get('gap_resets')} resets at gaps): TFLite "
            f"Micro MAE {verify['mae_tflm_tracked']:.3f} BPM, LiteRT "
            f"{verify['mae_litert_tracked']:.3f}; decoder chosen on validation: "
            f"{md(str(tr.get('val_decoder')))}."
        )
    for name, ok in verify["checks"].items():
        lines.append(f"- {md(name)}: {'pass' if ok else '**missed**'}")
    lines += ["", "## Stages", "", "| stage | seconds | result |", "|---|---:|---|"]
    for name, entry in stages.items():
        lines.append(
            f"| {md(name)} | {entry.get('seconds', 0):.1f} | {md(entry.get('message', ''))} |"
        )
    lines += ["", "## Plots", ""]
    lines += [f"![{p}](plots/{p})" for p in PLOTS]
    return "\n".join(lines) + "\n"


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def plots(ctx: Context, rows: list[dict[str, Any]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = ctx.out / "plots"
    made = []
    check = read_json(ctx.check_path)
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    seen: dict[int, int] = {}  # models of one size (pruned and int8) get stacked labels
    for r in rows:
        if r.get("parameters") and r.get("test_mae") is not None:
            ax.scatter(r["parameters"], r["test_mae"], s=40)
            k = seen[r["parameters"]] = seen.get(r["parameters"], -1) + 1
            ax.annotate(
                f"{r['model']} ({r['test_mae']:.2f})",
                (r["parameters"], r["test_mae"]),
                fontsize=8,
                xytext=(6, 4 - 11 * k),
                textcoords="offset points",
            )
    ax.margins(x=0.25, y=0.15)
    baseline = next((r["test_mae"] for r in rows if r["parameters"] == 0), None)
    if baseline is not None:
        ax.axhline(baseline, color="tab:gray", ls="--", lw=1, label="spectral baseline")
    mae_limit = next((r for r in check["results"] if r["name"] == "mae"), None)
    if mae_limit is not None and mae_limit.get("basis") == "budget":
        ax.axhline(mae_limit["limit"], color="tab:red", ls=":", lw=1, label="MAE budget")
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("test MAE (BPM)")
    ax.set_title("MAE vs size, stage by stage")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    _save(fig, out / PLOTS[0])
    made.append(out / PLOTS[0])

    profile = read_json(ctx.profile_path)
    layers = profile["layers"]
    idx = np.arange(len(layers))
    mid = np.array([ly["cycles"]["mid"] for ly in layers])
    err = np.array(
        [
            [m - ly["cycles"]["low"], ly["cycles"]["high"] - m]
            for m, ly in zip(mid, layers, strict=True)
        ]
    ).T
    act = np.array([ly["activation_bytes"] / 1024 for ly in layers])
    peak = int(np.argmax(act)) if len(act) else 0
    fig, (a1, a2) = plt.subplots(
        2, 1, figsize=(max(8, 0.35 * len(layers)), 7), sharex=True, layout="constrained"
    )
    a1.bar(idx, mid / 1e3, yerr=err / 1e3, color="tab:blue", capsize=2)
    a1.set_ylabel("k cycles (estimate)")
    a1.set_title(f"per layer on {profile['target']['name']} (bars: mid, whiskers: band)")
    width = 0.4  # side by side: weights never hide activations
    a2.bar(idx - width / 2, act, width, color="tab:orange", label="activations live")
    a2.bar(
        idx + width / 2,
        [ly["param_bytes"] / 1024 for ly in layers],
        width,
        color="tab:green",
        label="weights (flash)",
    )
    if len(layers):
        a2.annotate(
            f"peak SRAM: layer {peak}",
            (peak - width / 2, act[peak]),
            xytext=(0, 6),
            textcoords="offset points",
            ha="center",
            fontsize=8,
            color="tab:red",
        )
    sram_kb = profile["budget"]["sram_kb"]
    if len(act) and act.max() > 0.25 * sram_kb:  # drawn where it would not flatten the bars
        a2.axhline(sram_kb, color="tab:red", ls=":", lw=1, label="SRAM budget (total)")
    a2.set_title(
        f"peak live activations {act.max() if len(act) else 0:.1f} KB at layer {peak}; "
        f"SRAM budget {sram_kb:g} KB, total estimate "
        f"{profile['totals']['sram']['total_bytes'] / 1024:.1f} KB",
        fontsize=9,
    )
    a2.set_ylabel("KB")
    a2.legend(fontsize=8)
    a2.set_xticks(
        idx, [f"{i} {ly['op']}" for i, ly in zip(idx, layers, strict=True)], rotation=90, fontsize=7
    )
    _save(fig, out / PLOTS[1])
    made.append(out / PLOTS[1])

    with np.load(ctx.predictions_path, allow_pickle=False) as z:
        err_abs = np.abs(z["pred"] - z["true"])
        act, names = z["activity"], [str(n) for n in z["activity_names"]]
    present = [a for a in range(len(names)) if np.any(act == a)]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.boxplot([err_abs[act == a] for a in present], showfliers=False)
    ax.set_xticks(range(1, len(present) + 1), [names[a] for a in present])
    ax.set_ylabel("|error| (BPM)")
    ax.set_title("int8 model (TFLite Micro) error per activity, test subjects")
    _save(fig, out / PLOTS[2])
    made.append(out / PLOTS[2])
    return made


def write_report(
    ctx: Context, stages: dict[str, dict[str, Any]], rows: list[dict[str, Any]]
) -> Path:
    plots(ctx, rows)
    path = ctx.out / "report.md"
    write_text_atomic(path, markdown(ctx, stages, rows))
    return path
