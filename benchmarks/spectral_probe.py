"""A research probe for fold 4 (issue #16): does a network that reads the spectrum extrapolate?

Fold 4's test subjects reach heart rates above any in its training pool, and the chain's
networks (1D-ResNets ending in a fully connected layer, one weight row per BPM class) err by
about 30 BPM there (coverage.md): a class never seen in training has a row that was never
pulled up. A network whose output is the same function of the spectrum around every class
cannot have that problem. This probe trains one, float only and not part of the chain:

* features: each channel's power at each class frequency f_k = (30 + k) / 60 Hz and at 2 f_k
  (a Hann-tapered DFT evaluated exactly there), in log units relative to the window's peak;
  the accelerometer channels let it learn to discount the cadence;
* a stack of 1-D convolutions over the class axis (kernel 5, no per-class weights or biases),
  so class k's logit depends only on the spectrum within a few BPM of f_k and 2 f_k: a shift in
  heart rate shifts the output.

It is trained with the chain's own trainer and settings (``TrainConfig``: Gaussian targets,
early stopping on the run's validation subjects, two-sided time stretch) on the training and
validation subjects of the motion benchmark's default runs (seeds 0-2: the same splits as
motion_seeds.py), and scored per window (argmax) beside those runs' teachers, split by the
heart rates of the training recordings (below / inside / above, as ``ppgedge.evaluate.coverage``
does). Nothing is chosen on these scores: a probe of one fixed design, scored on test once, to
say whether this direction is worth a student that fits the firmware. A second table (added
after the first was scored, fixed before its own runs) adds the probe's log-probabilities to
the teacher's with a weight chosen on each run's validation subjects: whether the two kinds of
evidence combine. A third (fixed after those two were scored, before its own runs) does the
same with the deployed int8 model in TensorFlow Lite Micro instead of the teacher; a fourth
(fixed after the third was scored) puts the temporal tracker on both, as export fits it.

Writes ``benchmarks/results/spectral_probe.{json,md}``. Run after motion_seeds.py:
``.venv/bin/python benchmarks/spectral_probe.py`` (about 1 min on 2 cores).
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from motion import OUT, _int8_logits, _split, run_dataset, score_model, stretch_of, write_results
from motion_seeds import _name
from torch import nn

from ppgedge import __version__
from ppgedge.data.format import BPM_MIN
from ppgedge.data.loader import WindowSource
from ppgedge.evaluate.coverage import BANDS, coverage
from ppgedge.evaluate.metrics import error_summary
from ppgedge.evaluate.tracking import fit_tracker
from ppgedge.export.verify import resolve_export
from ppgedge.models.bpm import N_CLASSES, decode
from ppgedge.models.checkpoint import load_checkpoint
from ppgedge.models.layers import as_4d
from ppgedge.models.registry import register_model
from ppgedge.train.trainer import TrainConfig, train

SCENARIOS = ("fold4", "fold1", "fold2", "fold3", "xact")
SEEDS = (0, 1, 2)
VARIANT = "longtune"  # the defaults' run folders
RATE_HZ = 32.0  # the SPC 2015 datasets of motion.py
# the probe's weight when its log-probabilities are added to the teacher's (chosen on validation)
COMBINE_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


class SpectralProbe(nn.Module):
    """Power at every class frequency and its double, then convolutions over the class axis."""

    def __init__(
        self,
        in_channels: int = 4,
        window_samples: int = 256,
        width: int = 16,
        depth: int = 3,
        kernel: int = 5,
    ) -> None:
        super().__init__()
        t = torch.arange(window_samples, dtype=torch.float64) / RATE_HZ
        taper = torch.hann_window(window_samples, periodic=False, dtype=torch.float64)
        f = (BPM_MIN + torch.arange(N_CLASSES, dtype=torch.float64)) / 60.0
        basis = []
        for mult in (1, 2):
            phase = 2 * math.pi * mult * f[:, None] * t[None, :]
            basis += [torch.cos(phase) * taper, torch.sin(phase) * taper]
        self.register_buffer("basis", torch.stack(basis).float())  # (4, K, T)
        cin = 2 * in_channels
        convs: list[nn.Module] = []
        for _ in range(depth):
            convs += [
                nn.Conv1d(cin, width, kernel, padding=kernel // 2),
                nn.BatchNorm1d(width),
                nn.ReLU(),
            ]
            cin = width
        convs.append(nn.Conv1d(cin, 1, kernel, padding=kernel // 2))
        self.convs = nn.Sequential(*convs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = as_4d(x)[:, :, 0, :]  # (B, C, T)
        proj = torch.einsum("bct,mkt->bcmk", x, self.basis)  # (B, C, 4, K)
        power = proj[:, :, 0::2] ** 2 + proj[:, :, 1::2] ** 2  # (B, C, 2, K): f and 2f
        logp = torch.log(power + 1e-6)
        logp = logp - logp.amax(dim=-1, keepdim=True)  # relative to the window's peak
        return self.convs(logp.flatten(1, 2)).squeeze(1)  # (B, K)


register_model("spectral_probe", family="probe", description="benchmarks/spectral_probe.py")(
    SpectralProbe
)


def _log_probs(model: nn.Module, x: np.ndarray) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        out = [model(torch.from_numpy(x[i : i + 256]).float()) for i in range(0, len(x), 256)]
    return torch.log_softmax(torch.cat(out), dim=-1)


def _argmax(logp: torch.Tensor) -> np.ndarray:
    return decode(logp, "argmax").numpy()


def _combine_weight(probe: torch.Tensor, other: torch.Tensor, y: np.ndarray) -> dict[str, Any]:
    """The probe's weight in ``w * probe + (1 - w) * other`` with the lowest validation MAE
    (ties: the smaller weight, i.e. less of the probe)."""
    val = {
        w: float(np.abs(_argmax(w * probe + (1 - w) * other) - y).mean()) for w in COMBINE_WEIGHTS
    }
    return {"val_mae_by_weight": val, "weight": min(COMBINE_WEIGHTS, key=lambda k: (val[k], k))}


def _bands(pred: np.ndarray, true: np.ndarray, trained: tuple[int, int]) -> dict[str, Any]:
    """MAE on all windows and below / inside / above the trained range (``coverage``'s split),
    with the windows in each band."""
    cov = coverage([("model", pred, true)], trained)
    doc: dict[str, Any] = {"all": error_summary(pred, true)["mae"]}
    for b in BANDS:
        summary = cov["models"]["model"][b]
        doc[b] = None if summary is None else summary["mae"]
        doc[b + "_windows"] = cov["windows"][b]
    return doc


def probe(
    scenario: str,
    seed: int,
    work: Path,
    channels: str = "all",
    scored: tuple[str, ...] = ("val", "test"),
) -> dict[str, Any]:
    """Train the probe on ``channels`` of the run's split and score it on the ``scored`` parts
    (validation only: the tracker's validation MAE in place of its test MAE)."""
    run = OUT / f"{_name(scenario, seed)}_{VARIANT}"
    teacher = load_checkpoint(run / "teacher" / "teacher.pt")
    ds = run_dataset(run, teacher)
    split = _split(teacher)
    parts = split.indices(ds.subject_names())
    y_train = np.rint(ds.y[parts["train"]])
    trained = (int(y_train.min()), int(y_train.max()))
    fmt = teacher.data_format
    assert fmt.sample_rate_hz == RATE_HZ, fmt
    cfg = TrainConfig(
        arch="spectral_probe",
        arch_kwargs={"window_samples": fmt.window_samples},
        channels=channels,
        epochs=40,
        patience=10,
        seed=seed,
    )
    t0 = time.perf_counter()
    ckpt = train(ds, split, work / f"{scenario}-{seed}.pt", cfg, device="cpu")
    seconds = time.perf_counter() - t0
    model = ckpt.build()
    out: dict[str, Any] = {
        "run": run.name,
        "trained_bpm": list(trained),
        "params": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(seconds, 1),
    }
    probe_logp, teacher_logp, int8_logp, ys = {}, {}, {}, {}
    tfl = next((run / "export").glob("*.tflite"))  # the deployed int8 model, in TFLite Micro
    _, art, _ = resolve_export(tfl)
    own = ckpt.data_format.channels  # the probe's channels (the teacher's, or fewer)
    net = teacher.build()
    for part in scored:
        idx = parts[part]
        src = WindowSource(ds, idx, fmt.channels, preprocessing=fmt.preprocessing)
        x, ys[part] = src.windows(np.arange(len(src))), src.y
        x_own = x[:, [fmt.channels.index(c) for c in own]]
        probe_logp[part], teacher_logp[part] = _log_probs(model, x_own), _log_probs(net, x)
        raw, scale = _int8_logits(tfl, art, ds, idx)
        int8_logp[part] = torch.log_softmax(torch.from_numpy(raw * scale).float(), dim=-1)
        out[part] = {
            "probe": _bands(_argmax(probe_logp[part]), ys[part], trained),
            "teacher": _bands(_argmax(teacher_logp[part]), ys[part], trained),
            "int8": _bands(_argmax(int8_logp[part]), ys[part], trained),
        }
    # each model and the probe as one product of experts, the weight chosen on validation
    for key, other in (("combined", teacher_logp), ("int8_combined", int8_logp)):
        w = _combine_weight(probe_logp["val"], other["val"], ys["val"])
        out["combine" if key == "combined" else "combine_int8"] = w
        for part in scored:
            mixed = w["weight"] * probe_logp[part] + (1 - w["weight"]) * other[part]
            out[part][key] = _bands(_argmax(mixed), ys[part], trained)
    logp = {p: (probe_logp[p], int8_logp[p]) for p in scored}
    w = out["combine_int8"]["weight"]
    # with the temporal tracker: fitted and the decoder chosen on validation, as export does
    # (float arithmetic on the dequantised or combined log-probabilities)
    stretch = stretch_of(teacher)
    for key, weight in (("int8_tracked", 0.0), ("int8_combined_tracked", w)):
        series = {p: (weight * logp[p][0] + (1 - weight) * logp[p][1]).numpy() for p in logp}
        if "test" in scored:
            scored_run = score_model(key, series, "argmax", ds, parts, stretch=stretch)
            out[key] = {
                "decoder": scored_run["chosen_decoder"],
                "test_mae": scored_run["mae_chosen"],
            }
        else:
            rec = fit_tracker(ds, parts["train"], parts["val"], series["val"], stretch=stretch)
            out[key] = {
                "decoder": rec["decoder"],
                "val_mae": rec["val_mae_by_decoder"][rec["decoder"]],
            }
    return out


def _cell(d: dict[str, Any], band: str) -> str:
    v = d[band]
    return "-" if v is None else f"{v:.2f}"


def _markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# Spectral probe: a network over the spectrum, beside the chain's teacher "
        "(`benchmarks/spectral_probe.py`)",
        "",
        f"ppgedge {doc['version']}, {doc['date']}, 2 CPU cores, float, per-window argmax. The "
        "probe (power at every class frequency and its double, convolutions over the class "
        "axis, no per-class weights) trained with the chain's trainer on each default run's "
        "training and validation subjects; the teacher is that run's resnet_medium. MAE in BPM "
        "on all windows and split by the training recordings' heart-rate range. One fixed "
        "design, nothing chosen on these scores; test scored once.",
        "",
        "| scenario | seed | part | probe all | teacher all | probe inside | teacher inside | "
        "probe outside (windows) | teacher outside |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["runs"]:
        for part in ("val", "test"):
            p, t = r[part]["probe"], r[part]["teacher"]
            outside = "above" if p["above_windows"] >= p["below_windows"] else "below"
            n = p[outside + "_windows"]
            lines.append(
                f"| {r['scenario']} | {r['seed']} | {part} | {p['all']:.2f} | {t['all']:.2f} | "
                f"{_cell(p, 'inside')} | {_cell(t, 'inside')} | "
                f"{_cell(p, outside)} ({n} {outside}) | {_cell(t, outside)} |"
            )
    lines += ["", "Mean over seeds (test):", ""]
    for s in SCENARIOS:
        rs = [r for r in doc["runs"] if r["scenario"] == s]
        if not rs:
            continue
        mean = {
            who: {
                band: np.mean(
                    [r["test"][who][band] for r in rs if r["test"][who][band] is not None]
                )
                if any(r["test"][who][band] is not None for r in rs)
                else None
                for band in ("all", "inside", "above", "below")
            }
            for who in ("probe", "teacher", "combined", "int8", "int8_combined")
        }
        parts = ", ".join(
            f"{band} probe {mean['probe'][band]:.2f} / teacher {mean['teacher'][band]:.2f} / "
            f"combined {mean['combined'][band]:.2f} / int8 {mean['int8'][band]:.2f} / "
            f"int8 + probe {mean['int8_combined'][band]:.2f}"
            for band in ("all", "inside", "above", "below")
            if mean["probe"][band] is not None
        )
        lines.append(f"- {s}: {parts}")
    tables = (
        ("combined", "teacher", "combine", "Probe and teacher combined (weighted sum of "
         f"log-probabilities, the probe's weight from {list(COMBINE_WEIGHTS)} chosen on each "
         "run's validation subjects, ties to the smaller; added after the table above was "
         "scored, fixed before its own runs), test:"),
        ("int8_combined", "int8", "combine_int8", "The deployed int8 model (the run's .tflite "
         "in TensorFlow Lite Micro, per-window argmax) alone and combined with the probe the "
         "same way (weight chosen on validation; a third probe, fixed after the two tables "
         "above were scored and before its own runs), test:"),
    )  # fmt: skip
    for mixed, alone, choice, title in tables:
        lines += [
            "",
            title,
            "",
            f"| scenario | seed | weight | {alone} + probe all | {alone} all | {alone} + probe "
            f"inside | {alone} inside | {alone} + probe outside | {alone} outside |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in doc["runs"]:
            c, t = r["test"][mixed], r["test"][alone]
            outside = "above" if c["above_windows"] >= c["below_windows"] else "below"
            lines.append(
                f"| {r['scenario']} | {r['seed']} | {r[choice]['weight']:g} | "
                f"{c['all']:.2f} | {t['all']:.2f} | {_cell(c, 'inside')} | "
                f"{_cell(t, 'inside')} | {_cell(c, outside)} | {_cell(t, outside)} |"
            )
    lines += [
        "",
        "With the temporal tracker (fitted and the decoder chosen on validation, as export does; "
        "a fourth probe, fixed after the tables above were scored and before its own runs), "
        "test, decoder chosen:",
        "",
        "| scenario | seed | int8 | int8 + probe |",
        "|---|---:|---|---|",
    ]
    for r in doc["runs"]:
        a, b = r["int8_tracked"], r["int8_combined_tracked"]
        lines.append(
            f"| {r['scenario']} | {r['seed']} | {a['test_mae']:.2f} ({a['decoder']}) | "
            f"{b['test_mae']:.2f} ({b['decoder']}) |"
        )
    for s in SCENARIOS:
        rs = [r for r in doc["runs"] if r["scenario"] == s]
        if rs:
            a = np.mean([r["int8_tracked"]["test_mae"] for r in rs])
            b = np.mean([r["int8_combined_tracked"]["test_mae"] for r in rs])
            lines.append(f"| {s} | mean | {a:.2f} | {b:.2f} |")
    params = sorted({r["params"] for r in doc["runs"]})
    lines += ["", f"Probe parameters: {params[0]:,}. {doc['seconds']:.0f} s in all.", ""]
    return "\n".join(lines)


def main() -> None:
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    runs = []
    with tempfile.TemporaryDirectory(prefix="spectral-probe-") as tmp:
        for scenario in SCENARIOS:
            for seed in SEEDS:
                r = probe(scenario, seed, Path(tmp))
                runs.append({"scenario": scenario, "seed": seed, **r})
                print(scenario, seed, r["test"]["probe"]["all"], r["test"]["teacher"]["all"])
    doc = {
        "schema": "ppgedge.bench.spectral_probe/1",
        "version": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "runs": runs,
        "seconds": time.perf_counter() - t0,
    }
    write_results("spectral_probe", doc, _markdown(doc))


if __name__ == "__main__":
    main()
