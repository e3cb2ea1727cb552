"""Scaling laws of error against student size, and the sweep plot.

The seed paper reports an exponential law of error in model size. We fit two forms with SciPy
and report both, with R^2, so the claim is checked rather than assumed:

* ``exp``:     MAE(N) = c + a * exp(-b * N / 1000)      (N parameters; the paper's form)
* ``exp-log``: MAE(N) = c + a * exp(-b * log10(N))      (exponential in the log of the size)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import curve_fit

FORMS = {
    "exp": ("c + a*exp(-b*N/1000)", lambda n, a, b, c: c + a * np.exp(-b * n / 1000.0)),
    "exp-log": ("c + a*exp(-b*log10(N))", lambda n, a, b, c: c + a * np.exp(-b * np.log10(n))),
}


def fit_scaling_law(
    params: Sequence[float],
    mae: Sequence[float],
    form: str,
    sigma: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Least-squares fit of one form; R^2 on the points given (one per size and seed). With
    ``sigma`` (standard errors of the points, e.g. over folds and seeds) the fit is weighted and
    the parameters get standard errors from the covariance (``absolute_sigma``: the error bars
    are measured, not rescaled), plus the reduced chi^2."""
    expr, fn = FORMS[form]
    n = np.asarray(params, float)
    y = np.asarray(mae, float)
    if len(np.unique(n)) < 3:
        return {"form": expr, "ok": False, "reason": "needs at least 3 distinct sizes"}
    guess = {
        "exp": (y.max() - y.min() + 1e-3, 1000.0 / np.median(n), y.min()),
        "exp-log": (y.max() * 10.0, 1.0, 0.0),
    }[form]
    s = None if sigma is None else np.asarray(sigma, float)
    try:
        # a, b >= 0 (error falls with size), 0 <= c <= max error (a floor, not a fudge term)
        bounds = ([0.0, 0.0, 0.0], [np.inf, np.inf, float(y.max())])
        guess = tuple(
            float(np.clip(g, lo + 1e-9, hi - 1e-9 if np.isfinite(hi) else g + 1))
            for g, lo, hi in zip(guess, *bounds, strict=True)
        )
        popt, pcov = curve_fit(
            fn, n, y, p0=guess, sigma=s, absolute_sigma=s is not None, bounds=bounds, maxfev=20000
        )
    except (RuntimeError, ValueError) as exc:
        return {"form": expr, "ok": False, "reason": str(exc).splitlines()[0]}
    pred = fn(n, *popt)
    ss_res = float(((y - pred) ** 2).sum())
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    law = {
        "form": expr,
        "ok": True,
        "a": float(popt[0]),
        "b": float(popt[1]),
        "c": float(popt[2]),
        "r2": r2,
    }
    if s is not None:
        se = np.sqrt(np.clip(np.diag(pcov), 0, None))
        law |= {
            "weighted": True,
            "a_se": float(se[0]),
            "b_se": float(se[1]),
            "c_se": float(se[2]),
            "reduced_chi2": float((((y - pred) / s) ** 2).sum() / max(len(y) - 3, 1)),
        }
    return law


def aggregate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std of test MAE over seeds for each (method, student)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["student"]), []).append(r)
    out = []
    for (method, student), rs in sorted(groups.items()):
        maes = np.array([r["test_mae"] for r in rs], float)
        out.append(
            {
                "method": method,
                "student": student,
                "family": rs[0]["family"],
                "parameters": rs[0]["parameters"],
                "seeds": len(rs),
                "mae_mean": float(maes.mean()),
                "mae_std": float(maes.std(ddof=1)) if len(maes) > 1 else 0.0,
            }
        )
    return out


def plot_sweep(summary: list[dict[str, Any]], path: Path, title: str) -> None:
    """MAE vs parameters (log x), one line per (method, family), error bars over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    keys = sorted({(s["method"], s["family"]) for s in summary})
    methods = sorted({m for m, _ in keys})
    colours = {m: f"C{i}" for i, m in enumerate(methods)}
    for method, family in keys:
        pts = sorted(
            (s for s in summary if s["method"] == method and s["family"] == family),
            key=lambda s: s["parameters"],
        )
        ax.errorbar(
            [p["parameters"] for p in pts],
            [p["mae_mean"] for p in pts],
            yerr=[p["mae_std"] for p in pts],
            marker="o" if family == "resnet" else "s",
            linestyle="-" if family == "resnet" else "--",
            capsize=3,
            color=colours[method],
            label=f"{method} ({family})",
        )
    ax.set_xscale("log")
    ax.set_xlabel("student parameters")
    ax.set_ylabel("test MAE (BPM)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown_table(summary: list[dict[str, Any]], laws: dict[str, dict[str, Any]]) -> str:
    """The sweep as Markdown: MAE mean +- std per student and method, then the fitted laws."""
    methods = sorted({s["method"] for s in summary}, key=lambda m: (m != "scratch", m))
    students = sorted({(s["parameters"], s["student"]) for s in summary})
    cell = {(s["method"], s["student"]): s for s in summary}
    lines = [
        "| student | params | " + " | ".join(methods) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in methods) + " |",
    ]
    for params, student in students:
        vals = []
        for m in methods:
            s = cell.get((m, student))
            vals.append("" if s is None else f"{s['mae_mean']:.2f} ± {s['mae_std']:.2f}")
        lines.append(f"| {student} | {params:,} | " + " | ".join(vals) + " |")
    lines += [
        "",
        "| method (family) | law | a | b | c | R² |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for key, law in sorted(laws.items()):
        if law.get("ok"):
            lines.append(
                f"| {key} | {law['form']} | {law['a']:.3g} | {law['b']:.3g} | "
                f"{law['c']:.3g} | {law['r2']:.3f} |"
            )
        else:
            lines.append(f"| {key} | {law['form']} | | | | not fitted: {law.get('reason')} |")
    return "\n".join(lines) + "\n"


def fit_all(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Both law forms for every (method, family) with at least 3 sizes."""
    laws: dict[str, dict[str, Any]] = {}
    for method, family in sorted({(r["method"], r["family"]) for r in rows}):
        pts = [r for r in rows if r["method"] == method and r["family"] == family]
        for form in FORMS:
            law = fit_scaling_law(
                [p["parameters"] for p in pts], [p["test_mae"] for p in pts], form
            )
            laws[f"{method} ({family}) {form}"] = law
    return defined(laws)


def defined(laws: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Laws whose R^2 is defined (a group whose MAE does not vary has none to report)."""
    return {
        k: v
        for k, v in laws.items()
        if not (isinstance(v.get("r2"), float) and math.isnan(v["r2"]))
    }
