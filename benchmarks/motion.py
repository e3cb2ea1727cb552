"""Motion benchmark (issue #16): the default chain on IEEE SPC 2015 across activities and on
small real data, scored as deployed (int8 in TFLite Micro) with each decoder, beside the
spectral baseline and a classical spectral tracker.

Scenarios (every one a full ``ppgedge run``, each in its own folder under benchmarks/out/motion):

* ``xact``: train on the 12 treadmill subjects ``spc_tr01..12`` (validation subjects drawn from
  them), test on the 8 arm-exercise / boxing subjects ``spc_te01..08``;
* ``fold1..4``: the 12 treadmill subjects only, test tr01-03 / tr04-06 / tr07-09 / tr10-12,
  validation subjects from the rest;
* ``synthetic``: the built-in default (synthetic data), the main job's configuration.

Variants (:data:`VARIANTS`, each described where it is defined below): ``base`` is the chain
as it was (``reference_windows = 0``, ``val_choice = "random"``, ``keep_better = false``), the
later ones each add one setting; :data:`VERDICT_VARIANT` is the one whose settings are
ppgedge's defaults, the one the issue's targets are judged on. For every run and
stage (teacher, student, pruned float; int8 as TFLite Micro computes it) the test MAE with
the model's own per-window decoder and with the decoder its validation subjects choose (the
tracker of ppgedge.evaluate.tracking fitted on training labels, its width and weight and the
per-window-or-tracked choice made on the validation subjects' logits); beside them the
spectral baseline and the spectral tracker (ppgedge.evaluate.spectral_tracker, its settings
chosen on the run's non-test subjects). The personalisation curve is read from
benchmarks/results/personalize.json when it exists.

Writes ``benchmarks/results/motion.json`` and ``motion.md``.
Run: ``.venv/bin/python benchmarks/motion.py [--variants longtune]`` (a whole chain takes
210-260 s per scenario on 2 CPU cores, up to ~25 min when the cores are shared; a run folder
whose stages are all current is only re-scored).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppgedge import __version__
from ppgedge.compress.runtimes import output_qparams, run_raw
from ppgedge.data.format import Dataset
from ppgedge.data.loader import WindowSource
from ppgedge.data.splits import Split
from ppgedge.evaluate.metrics import error_summary
from ppgedge.evaluate.spectral import spectral_bpm
from ppgedge.evaluate.spectral_tracker import choose_params, spectral_track
from ppgedge.evaluate.tracking import (
    DECODER_MARGIN,
    GRID_JUMP,
    GRID_LABEL_POWER,
    TRACKED,
    fit_tracker,
    mae_by_decoder_tracked,
)
from ppgedge.export.deployed_tracker import deployed_decoding
from ppgedge.export.verify import resolve_export
from ppgedge.models.bpm import decode
from ppgedge.models.checkpoint import load_checkpoint
from ppgedge.models.tracker import LabelStretch
from ppgedge.train.trainer import label_stretch, training_config_of

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "motion"
RESULTS = ROOT / "benchmarks" / "results"
SPC = ROOT.parent / "shared" / "data" / "ieee-spc2015"
PPGEDGE = str(Path(sys.executable).with_name("ppgedge"))
TE = [f"spc_te{i:02d}" for i in range(1, 9)]
FOLDS = {f"fold{i + 1}": [f"spc_tr{3 * i + k + 1:02d}" for k in range(3)] for i in range(4)}
SCENARIOS = ("xact", *FOLDS, "synthetic")
VARIANTS = (
    "base",
    "new",
    "consistent",
    "symmetric",
    "longtune",
    "taylor",
    "rebuild",
    "ema",
    "spectral",
    "mix",
    "patient",
    "artifacts",
    "simmotion",
    "simteacher",
    "simscaled",
    "gentle",
)
BEFORE = {"run": {"reference_windows": 0}, "data": {"val_choice": "random"}}
BEFORE_DISTILL = {"keep_better": False, "augment": False}
# "new": the small-data defaults with distillation on the cached, unaugmented windows (the
# default until consistent distillation won on validation in all 6 scenarios);
# "consistent": ``[distill] augment = true`` (the teacher labels the same augmented windows the
# student sees). It starts from a copy of the ``new`` run folder, so the teacher (the same
# settings) is reused and the chain reruns from the distill stage.
NEW_DISTILL = {"augment": False}
CONSISTENT_DISTILL = {"augment": True}
# "symmetric": ``consistent`` with the time-stretch augmentation two-sided (``[run]
# time_stretch = "both"``: windows sped up as well as slowed down, so the scarce highest heart
# rates gain examples instead of losing them); every stage, the teacher included, is retrained.
# The earlier variants pin the one-sided stretch they were run with.
STRETCH = {"base": "slower", "new": "slower", "consistent": "slower"}
# Pruning candidates, each ``symmetric`` but for one [prune] key, run from a copy of the
# ``symmetric`` folder (same teacher and student; the chain reruns from the prune stage):
# "longtune" gives the last fine-tune the distill stage's epochs (20, scaled) instead of 6;
# "taylor" ranks channels by first-order Taylor importance (|weight x gradient| on training
# batches) instead of their L1 norm.
# The other variants pin the 6 final epochs they were run with. "longtune" won on validation
# (docs/motion-benchmark.md) and is the default since.
# "gentle" = ``simteacher`` with a gentler schedule: twice the steps to the same budget, each
# intermediate fine-tune twice as long (``[prune] steps = 8, finetune_epochs = 6``; the last
# fine-tune keeps its 20 epochs), from a copy of the ``simteacher`` folder (the same teacher and
# student; the chain reruns from the prune stage).
GENTLE_PRUNE = {"steps": 8, "finetune_epochs": 6}
# "gentler" = ``gentle`` with twice its steps again (16 to the same budget, the same 6 epochs
# between them), from a copy of the ``gentle`` folder (the chain reruns from the prune stage).
GENTLER_PRUNE = {"steps": 16, "finetune_epochs": 6}
# ``gentle`` won on validation (docs/motion-benchmark.md) and is the default since: every other
# variant pins the schedule it was run with (4 steps, 3 epochs between them).
PREVIOUS_PRUNE = {"steps": 4, "finetune_epochs": 3}
# "rebuild" = ``longtune`` with ``[prune] rebuild = true`` (the pruned architecture also
# distilled from a fresh initialisation, the better kept on validation), from a copy of the
# ``longtune`` folder.
PRUNE = {
    "longtune": {"final_epochs": 20},
    "ema": {"final_epochs": 20},
    "spectral": {"final_epochs": 20},
    "mix": {"final_epochs": 20},
    "patient": {"final_epochs": 20},
    "artifacts": {"final_epochs": 20},
    "simmotion": {"final_epochs": 20},
    "simteacher": {"final_epochs": 20},
    "simscaled": {"final_epochs": 20},
    "gentle": {"final_epochs": 20, **GENTLE_PRUNE},
    "gentler": {"final_epochs": 20, **GENTLER_PRUNE},
    "taylor": {"criterion": "taylor", "final_epochs": 6},
    "rebuild": {"final_epochs": 20, "rebuild": True},
}
COPIED_FROM = {
    "consistent": "new",
    "longtune": "symmetric",
    "taylor": "symmetric",
    "rebuild": "longtune",
    "spectral": "longtune",
    "mix": "longtune",
    "patient": "mix",
    "artifacts": "patient",
    "simteacher": "simmotion",
    "simscaled": "simteacher",
    "gentle": "simteacher",
    "gentler": "gentle",
}
# "ema": ``longtune`` with ``[run] ema_decay`` (every training stage, the teacher included,
# validates and keeps an exponential moving average of its weights); all stages retrained.
EMA_DECAY = 0.99
# "spectral": ``longtune`` with the student ``resnet_small_spectral`` (resnet_small plus a
# spectral head over the PPG, models/spectral.py), from a copy of the ``longtune`` folder (the
# same teacher; the chain reruns from the distill stage).
SPECTRAL_STUDENT = "resnet_small_spectral"
# "mix": ``longtune`` with ``[distill] mix`` (half the distillation windows get up to this share
# of another window mixed in, the teacher labelling the mix: function matching), from a copy
# of the ``longtune`` folder (the same teacher; the chain reruns from the distill stage).
DISTILL_MIX = 0.4
# "patient": ``mix`` with the distillation stage's epochs and patience doubled (``[distill]
# epochs = 40, patience = 12``), from a copy of the ``mix`` folder (the chain reruns from the
# distill stage).
PATIENT_DISTILL = {"epochs": 40, "patience": 12}
PREVIOUS_DISTILL = {"epochs": 20, "patience": 6}
# "artifacts": ``patient`` with accelerometer-driven artifacts in the distillation (``[distill]
# motion_aug_p``), the teacher labelling each corrupted window, from a copy of the ``patient``
# folder (the chain reruns from the distill stage).
DISTILL_ARTIFACTS = 0.5
# "simmotion": ``patient`` with synthetic motion subjects (arm exercise, boxing, stairs; the
# generator's own) added to the training subjects only (``[data] synthetic_motion``); every
# stage retrained, the teacher included, in a folder of its own.
SYNTHETIC_MOTION = 8
SIM = ("simmotion", "simteacher", "simscaled", "gentle", "gentler")
SIM_TEACHER = ("simteacher", "gentle", "gentler")  # the synthetic subjects for the teacher alone
# "simteacher": ``simmotion`` with the synthetic subjects lent to the teacher alone
# (``synthetic_motion_for = "teacher"``), from a copy of the ``simmotion`` folder (the same
# teacher; the chain reruns from the distill stage on the recorded training subjects).
# "simscaled": ``simteacher`` with the synthetic subjects lent to the later stages too
# (``synthetic_motion_for = "all"``), whose epoch scale stays that of the recorded windows
# (``synthetic_motion_epochs = "recorded"``: the synthetic windows on top, each epoch longer),
# from a copy of the ``simteacher`` folder when there is one (the same teacher).
VERDICT_VARIANT = "gentle"  # the variant whose settings are ppgedge's defaults (since
# 2026-12-07; "simteacher", "patient", "mix" and "longtune" before: the seed studies
# deployed_tracker, reacquire, label_prior and decoder_margin were made on the longtune runs,
# coverage and personalize_deployed on the gentle runs; coverage_simteacher on the simteacher
# runs re-made by rerun_defaults.py)
TARGETS = {"xact_int8": 10.0, "fold_mean_int8": 4.0, "fold_gap": 0.5}
# How often test subjects were looked at, per reported thing (docs/motion-benchmark.md).
CONFIGS_ON_TEST = {
    "chain (each row above)": "1 configuration per row, 7 per scenario (base, new, "
    "consistent, symmetric, longtune, taylor, rebuild); no setting was changed after a test "
    "score was "
    "seen. Each later default was adopted by a rule fixed before its runs were scored, on "
    "validation subjects only: `consistent` (the augmented DKD student's validation MAE "
    "lower than the unaugmented one's in most scenarios: 6 of 6), `symmetric` (the int8 "
    "model's validation MAE lower than `consistent`'s in at least 4 of 6: 4), `longtune` "
    "(lower than `symmetric`'s in at least 4 of 6: 5; `taylor` 3, not adopted); `rebuild` "
    "was not adopted (lower than `longtune`'s in 2 of 6, the other 4 kept the fine-tuned "
    "network and tie) although its test MAE is lower in both scenarios where it differs "
    "(xact 9.73 vs 12.89): the rule was fixed first and is not revised after a test score; "
    "an eighth, `ema` (weight averaging), ran at seeds 0-2 and was not adopted (lower on "
    "validation in 3 of 6, ema.md); a ninth, `spectral` (the resnet_small_spectral "
    "student), ran at seeds 0-2 and was not adopted (lower on validation in 1 of 6, "
    "spectral.md); a tenth, `mix` (function matching), ran at seeds 0-2 and was adopted "
    "(lower on validation in 5 of 6, mix.md): the defaults until the next; an eleventh, "
    "`patient` (`mix` with the distillation epochs and patience doubled), ran at seeds 0-2 and "
    "was adopted (lower on validation in 4 of 6, patient.md): the defaults until the next; a "
    "twelfth, "
    "`artifacts` (`patient` with accelerometer-driven artifacts in the distillation, the "
    "teacher labelling them), ran at seeds 0-2 and was not adopted (lower on validation in 3 "
    "of 6, artifacts.md); a thirteenth, `simmotion` (`patient` with 8 synthetic motion "
    "subjects in the training subjects), ran at seeds 0-2 and was not adopted (lower on "
    "validation in 2 of 6, simmotion.md) although its test 4-fold mean, 3.86, is under the "
    "target: the rule was fixed first and is not revised after a test score; a fourteenth, "
    "`simteacher` (those subjects for the teacher alone), ran at seeds 0-2 and was adopted "
    "(lower on validation in 5 of 6, simteacher.md): the defaults until the next; a "
    "fifteenth, `gentle` (`simteacher` pruned in 8 steps with 6 fine-tune epochs between "
    "them instead of 4 and 3), ran at seeds 0-2 on another host, judged against `simteacher` "
    "re-made there (rerun_defaults.md), and was adopted (lower on validation in 4 of 6, "
    "gentle.md): the defaults since; a sixteenth, `simscaled` (`simteacher` with those "
    "subjects lent to every later stage at the recorded windows' epoch scale), ran at seeds "
    "0-2 on that host against the same baseline and was not adopted (lower on validation in "
    "2 of 6, simscaled.md); a seventeenth, `gentler` (`gentle` in 16 pruning steps), ran at "
    "seeds 0-2 on that host against `gentle`'s runs and was not adopted (lower on validation "
    "in 5 of 6 scenarios but in 11 of the 18 runs, 13 needed; gentler.md)",
    "spectral tracker": "2 on SPC te01-08 (one while developing, before the re-acquire "
    "rule; the row's); its design was developed on tr01-12 labels, so its fold rows are "
    "optimistic",
    "decoders": "the per-window and tracked decoders of every row are scored once each",
}
ISSUE_BEFORE = {
    "xact (tr01-12 -> te01-08)": "teacher 15.2, student 17.0, pruned 16.5, int8 16.5",
    "4 folds teacher": "5.09 / 2.62 / 0.74 / 19.81 (mean 7.07)",
    "4 folds int8": "12.08 / 3.95 / 2.24 / 25.29 (mean 10.89)",
    "synthetic default int8 (main_job_seeds.md)": "2.31 / 5.89 / 5.95 for seeds 0 / 1 / 2",
}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _datasets() -> dict[str, Path]:
    """The SPC imports the scenarios share (made once, cached under benchmarks/out/motion)."""
    paths = {"all": OUT / "spc.ppgds", "train": OUT / "spctr.ppgds"}
    for subset, path in paths.items():
        if not (path / "meta.json").is_file():
            cmd = [PPGEDGE, "data", "import", "spc2015", str(SPC), "--out", str(path)]
            subprocess.run([*cmd, "--subset", subset], check=True)
    return paths


DEV_PREFIX = "synthetic-s"  # development scenarios: the synthetic one at another run seed


def scenario_seed(scenario: str) -> tuple[str, int]:
    """A scenario name and its run seed: ``NAME-sN`` is scenario NAME at run seed N (another
    initialisation, and for ``synthetic`` new subjects too); plain names run at seed 0."""
    name, sep, seed = scenario.rpartition("-s")
    return (name, int(seed)) if sep and seed.isdigit() else (scenario, 0)


def config_for(scenario: str, variant: str, data: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """The run's ppgedge.toml sections: the defaults but for data, test subjects and variant."""
    cfg: dict[str, dict[str, Any]] = {
        "run": {
            "out": f"{scenario}_{variant}",
            "seed": scenario_seed(scenario)[1],
            "threads": 1,
            "time_stretch": STRETCH.get(variant, "both"),
        },
        "data": {},
    }
    scenario = scenario_seed(scenario)[0]
    if scenario == "xact":
        cfg["data"] = {"source": "dataset", "path": data["all"].name, "test_subjects": TE}
    elif scenario in FOLDS:
        test = FOLDS[scenario]
        cfg["data"] = {"source": "dataset", "path": data["train"].name, "test_subjects": test}
    if variant == "base":
        for section, values in BEFORE.items():
            cfg[section] = {**cfg[section], **values}
        cfg["distill"] = dict(BEFORE_DISTILL)
    if variant == "new":
        cfg["distill"] = dict(NEW_DISTILL)
    if variant not in ("base", "new"):
        cfg["distill"] = dict(CONSISTENT_DISTILL)
    cfg["prune"] = {**PREVIOUS_PRUNE, **PRUNE.get(variant, {"final_epochs": 6})}
    if variant == "ema":  # ``longtune`` with weight averaging in every training stage
        cfg["run"]["ema_decay"] = EMA_DECAY
    if variant == "spectral":
        cfg["distill"]["student"] = SPECTRAL_STUDENT
    # function matching is the default since ``mix`` won on validation: every other variant
    # pins the mix it was run with (none), so its folder stays current
    cfg["distill"]["mix"] = DISTILL_MIX if variant in ("mix", "patient", "artifacts", *SIM) else 0.0
    # the patient distillation is the default since ``patient`` won on validation: every other
    # variant pins the 20 epochs / patience 6 it was run with
    patient = variant in ("patient", "artifacts", *SIM)
    cfg["distill"].update(PATIENT_DISTILL if patient else PREVIOUS_DISTILL)
    if variant == "artifacts":
        cfg["distill"]["motion_aug_p"] = DISTILL_ARTIFACTS
    # the teacher's synthetic motion subjects are the default since ``simteacher`` won on
    # validation: every other variant pins what it was run with (none, or every stage's)
    cfg["data"]["synthetic_motion"] = SYNTHETIC_MOTION if variant in SIM else 0
    if variant in SIM:
        cfg["data"]["synthetic_motion_for"] = "teacher" if variant in SIM_TEACHER else "all"
    if variant == "simscaled":
        cfg["data"]["synthetic_motion_epochs"] = "recorded"
    return cfg


def run_chain(scenario: str, variant: str, data: dict[str, Path]) -> tuple[Path, float]:
    """``ppgedge run`` for one scenario and variant (stages already current are skipped)."""
    cfg = config_for(scenario, variant, data)
    path = OUT / f"{scenario}_{variant}.toml"
    text = "".join(
        f"[{s}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in table.items())
        for s, table in cfg.items()
    )
    path.write_text(text)
    run = OUT / cfg["run"]["out"]
    parent = OUT / f"{scenario}_{COPIED_FROM.get(variant, variant)}"
    if variant in COPIED_FROM and not run.exists() and (parent / "manifest.json").is_file():
        shutil.copytree(parent, run, symlinks=True)  # the same teacher: stages rerun from the
        # first one whose settings differ
    t0 = time.perf_counter()
    with open(OUT / f"{scenario}_{variant}.log", "a") as log:
        rc = subprocess.run([PPGEDGE, "run", "--config", str(path)], stdout=log, stderr=log)
    if rc.returncode not in (0, 1):  # 1 = over budget, still a finished run
        raise SystemExit(
            f"{scenario} {variant}: ppgedge run failed (see {path.with_suffix('.log')})"
        )
    return OUT / cfg["run"]["out"], round(time.perf_counter() - t0, 1)


def _split(ckpt) -> Split:
    s = ckpt.training["split"]
    return Split("run", tuple(s["train"]), tuple(s["val"]), tuple(s["test"]))


def _float_logits(ckpt, ds: Dataset, idx: np.ndarray) -> np.ndarray:
    fmt = ckpt.data_format
    src = WindowSource(ds, idx, fmt.channels, preprocessing=fmt.preprocessing)
    model = ckpt.build().eval()
    out = []
    with torch.no_grad():
        for _, x, _ in src.batches(256):
            out.append(model(x).numpy())
    return np.concatenate(out)


def _int8_logits(tfl: Path, art, ds: Dataset, idx: np.ndarray) -> tuple[np.ndarray, float]:
    """int8 output values as TFLite Micro computes them, and their scale."""
    fmt = art.data_format
    x = WindowSource(ds, idx, fmt.channels, preprocessing=fmt.preprocessing).windows(
        np.arange(len(idx))
    )
    raw = run_raw(tfl, x, "tflm")
    scale, _ = output_qparams(tfl)
    return raw.astype(np.int64), float(scale)


def score_model(
    name: str,
    logits: dict[str, np.ndarray],
    own: str,
    ds: Dataset,
    parts,
    scale=None,
    jumps: tuple[float | None, ...] = GRID_JUMP,
    label_powers: tuple[float | None, ...] = GRID_LABEL_POWER,
    decoder_margin: float = DECODER_MARGIN,
    stretch: LabelStretch | None = None,
    record: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Test MAE with the model's own decoder and with the decoder validation chooses (the
    tracker's grid of re-acquire costs ``jumps``, ``(None,)``: the tracker without it; of
    label powers ``label_powers`` over the label prior of the training ``stretch``; the
    decoder rule's ``decoder_margin``). ``record``: a tracker already fitted on these
    validation outputs (the bundle's), scored instead of fitting one."""
    real = {k: (v.astype(np.float32) * scale if scale else v) for k, v in logits.items()}
    tracker = record or fit_tracker(
        ds,
        parts["train"],
        parts["val"],
        logits["val"],
        scale,
        jumps,
        stretch,
        label_powers,
        decoder_margin,
    )
    from ppgedge.models.tracker import TransitionPrior

    prior = TransitionPrior.from_dict(tracker["prior"])
    test = mae_by_decoder_tracked(logits["test"], ds, parts["test"], prior, scale=scale)
    y = np.asarray(ds.y[parts["test"]], np.float64)
    own_mae = error_summary(decode(torch.from_numpy(real["test"]), own).numpy(), y)["mae"]
    chosen = tracker["decoder"]
    return {
        "model": name,
        "decoder": own,
        "mae": float(own_mae),
        "chosen_decoder": chosen,
        "mae_chosen": float(test[chosen]),
        "mae_tracked": float(test[TRACKED]),
        "val_mae_by_decoder": tracker["val_mae_by_decoder"],
        "tracker": {
            k: tracker["prior"].get(k) for k in ("half_width", "weight", "jump", "label_power")
        },
    }


def stretch_of(ckpt) -> LabelStretch | None:
    """The label-scaled time stretch a checkpoint was trained with (for the label prior)."""
    return label_stretch(training_config_of(ckpt))


def run_dataset(run: Path, teacher) -> Dataset:
    """The dataset a run folder trained on: the imported one its teacher names, or the run's
    own synthetic ``data/dataset.ppgds``."""
    path = Path(teacher.training["dataset"])
    return Dataset(path if (path / "meta.json").is_file() else run / "data" / "dataset.ppgds")


def write_results(stem: str, doc: dict[str, Any], text: str) -> None:
    """``benchmarks/results/<stem>.json`` and ``.md``, and the table on stdout."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RESULTS / f"{stem}.md").write_text(text)
    print(text)


def score_run(run: Path) -> dict[str, Any]:
    """Every stage of one run folder on its test subjects, plus both spectral rows."""
    teacher = load_checkpoint(run / "teacher" / "teacher.pt")
    split = _split(teacher)
    manifest = json.loads((run / "manifest.json").read_text())
    ds = run_dataset(run, teacher)
    parts = split.indices(ds.subject_names())
    rows = []
    for name, path in (
        ("teacher", run / "teacher" / "teacher.pt"),
        ("student", run / "distill" / "student.pt"),
        ("pruned", run / "prune" / "pruned.pt"),
    ):
        ck = teacher if name == "teacher" else load_checkpoint(path)
        logits = {p: _float_logits(ck, ds, parts[p]) for p in ("val", "test")}
        row = score_model(name, logits, ck.decode, ds, parts, stretch=stretch_of(ck))
        row["parameters"] = int(sum(v.numel() for v in ck.state_dict.values()))
        if name == "student":
            row["choice"] = ck.metrics.get("choice")
        rows.append(row)
    tfl = next((run / "export").glob("*.tflite"))
    _, art, _ = resolve_export(tfl)
    q = {p: _int8_logits(tfl, art, ds, parts[p]) for p in ("val", "test")}
    scale = q["test"][1]
    # the bundle's tracker when its export fitted it on these int8 outputs (what the firmware
    # runs); an export made before that carries the float record: fit it here as export does
    _, shipped = deployed_decoding(tfl, art)
    shipped = shipped if shipped.get("logits") == "int8" else None
    int8 = score_model(
        "int8 (TFLite Micro)",
        {p: v[0] for p, v in q.items()},
        art.decode,
        ds,
        parts,
        scale,
        stretch=stretch_of(art.base),
        record=shipped,
    )
    int8["tracker_source"] = "bundle" if shipped else "fitted here (export predates the int8 fit)"
    int8["tflite_bytes"] = tfl.stat().st_size
    rows.append(int8)
    y = np.asarray(ds.y[parts["test"]], np.float64)
    ppg = ds.channel_index(["ppg"])[0]
    spectral = spectral_bpm(np.asarray(ds.x[parts["test"], ppg]), ds.fmt.sample_rate_hz)
    nontest = np.concatenate([parts["train"], parts["val"]])
    params, choice = choose_params(ds, nontest)
    tracked = spectral_track(ds, parts["test"], params)
    stages = manifest.get("stages", {})
    return {
        "split": split.to_dict(),
        "test_windows": int(len(parts["test"])),
        "train_windows": int(len(parts["train"])),
        "epoch_scale": (stages.get("teacher", {}).get("params") or {}).get("epoch_scale", 1.0),
        "seconds": round(sum(float(st.get("seconds") or 0) for st in stages.values()), 1),
        "models": rows,
        "spectral_mae": float(error_summary(spectral, y)["mae"]),
        "spectral_tracker_mae": float(error_summary(tracked, y)["mae"]),
        "spectral_tracker": {
            "params": params.to_dict(),
            "nontest_mae": choice["mae"],
            "configurations": choice["configurations"],
        },
    }


def _fmt(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def verdicts(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The issue's three targets on the runs of the defaults (:data:`VERDICT_VARIANT`), with
    the deployed model's chosen decoder (what a device running this chain reports)."""

    def int8(key: str, field: str = "mae_chosen") -> float | None:
        r = results.get(key)
        return None if r is None else r["models"][3][field]

    out: dict[str, Any] = {}
    x = int8(f"xact_{VERDICT_VARIANT}")
    if x is not None:
        out["xact_int8"] = {"value": x, "target": TARGETS["xact_int8"], "met": x <= 10.0}
    folds = [f"{f}_{VERDICT_VARIANT}" for f in FOLDS]
    if all(f in results for f in folds):
        vals = [int8(f) for f in folds]
        gaps = [int8(f) - results[f]["models"][0]["mae_chosen"] for f in folds]
        out["fold_mean_int8"] = {
            "value": _mean(vals),
            "target": TARGETS["fold_mean_int8"],
            "met": _mean(vals) <= TARGETS["fold_mean_int8"],
        }
        out["fold_gap"] = {
            "values": gaps,
            "target": TARGETS["fold_gap"],
            "met": all(g <= TARGETS["fold_gap"] for g in gaps),
        }
    return out


def markdown(doc: dict[str, Any]) -> str:
    lines = [
        "# Motion benchmark (issue #16)",
        "",
        f"ppgedge {doc['ppgedge']}, {doc['date']}, 2 shared CPU cores, no GPU. Every row is one "
        "`ppgedge run` (resnet_medium teacher, DKD resnet_small student, pruned to the "
        "nRF52840 budget, QAT, int8 in TFLite Micro); `base` = the chain as it was "
        '(`reference_windows = 0`, `val_choice = "random"`, `keep_better = false`), '
        "`new` = the small-data defaults with `[distill] augment = false`, `consistent` = "
        "`new` with `[distill] augment = true` (the student distilled on augmented windows, "
        "the teacher labelling the same ones; the same teacher as `new`, the chain rerun from "
        'the distill stage), `symmetric` = `consistent` with `[run] time_stretch = "both"` '
        "(windows sped up as well as slowed down; every stage retrained), `longtune` = "
        "`symmetric` with `[prune] final_epochs = 20` (the current defaults; rerun from the "
        'prune stage), `taylor` = `symmetric` with `[prune] criterion = "taylor"` (not '
        "adopted), `rebuild` = `longtune` with `[prune] rebuild = true` (the pruned "
        "architecture also distilled from a fresh initialisation, the better kept on "
        "validation; not adopted). Variants before `symmetric` used the one-sided stretch; "
        "`base` to `symmetric` and `taylor` 6 final pruning epochs.",
        "",
        "Every row is one run at run seed 0 on the host that made it. The same configuration "
        "at another seed, or on another CPU, can differ by several BPM on SPC: the defaults "
        "over seeds 0-2 on one host are in motion_seeds.md (benchmarks/motion_seeds.py).",
        "",
        "MAE in BPM on the test subjects. `own` = the model's per-window decoder; `chosen` = "
        "the decoder its validation subjects pick (per-window or `tracked`, the HMM filter of "
        "ppgedge.evaluate.tracking, width and weight also chosen on validation). Spectral = "
        "the per-window spectral baseline; tracker = ppgedge.evaluate.spectral_tracker, its "
        "settings chosen on the run's non-test subjects.",
        "",
        "| run | test | teacher own / chosen | student own / chosen | pruned own / chosen "
        "| int8 TFLM own / chosen | int8 - teacher (chosen) | student kept | spectral "
        "| spectral tracker | epoch scale | stage seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r in doc["runs"].items():
        m = r["models"]
        choice = (m[1].get("choice") or {}).get("kept", "dkd (no choice)")
        test = ",".join(s.replace("spc_", "") for s in r["split"]["test"])
        if len(test) > 24:
            test = f"{len(r['split']['test'])} subjects"
        cells = [f"{x['mae']:.2f} / {x['mae_chosen']:.2f} ({x['chosen_decoder']})" for x in m]
        gap = m[3]["mae_chosen"] - m[0]["mae_chosen"]
        lines.append(
            f"| {key} | {test} | {' | '.join(cells)} | {gap:+.2f} | {choice} | "
            f"{r['spectral_mae']:.2f} | {r['spectral_tracker_mae']:.2f} | "
            f"{r['epoch_scale']} | {r.get('seconds', '-')} |"
        )
    for variant in VARIANTS:
        folds = [doc["runs"].get(f"{f}_{variant}") for f in FOLDS]
        if all(folds):
            means = [
                _mean([f["models"][i]["mae_chosen"] for f in folds])  # type: ignore[index]
                for i in range(4)
            ]
            sp = _mean([f["spectral_tracker_mae"] for f in folds])  # type: ignore[index]
            lines.append(
                f"| **4-fold mean, {variant}** | tr01-12 | "
                + " | ".join(f"{v:.2f}" for v in means)
                + f" | {means[3] - means[0]:+.2f} | | "
                + f"{_mean([f['spectral_mae'] for f in folds]):.2f} | {sp:.2f} | | |"  # type: ignore[index]
            )
    lines += [
        "",
        "Validation MAE (chosen decoder) of the same models, on the runs' validation subjects: "
        "what every choice was made on; compare with the test MAE above.",
        "",
        "| run | val subjects | teacher | student | pruned | int8 TFLM | student: distilled / "
        "scratch (val) |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, r in doc["runs"].items():
        m = r["models"]
        vals = [x["val_mae_by_decoder"][x["chosen_decoder"]] for x in m]
        choice = m[1].get("choice") or {}
        both = " / ".join(f"{v:.2f}" for v in (choice.get("val_mae") or {}).values()) or "-"
        subjects = ",".join(s.replace("spc_", "") for s in r["split"]["val"])
        lines.append(
            f"| {key} | {subjects} | " + " | ".join(f"{v:.2f}" for v in vals) + f" | {both} |"
        )
    lines += [
        "",
        f"## Targets (the defaults: `{VERDICT_VARIANT}` rows, int8 in TFLite Micro, chosen "
        "decoder)",
        "",
    ]
    for name, v in doc["verdicts"].items():
        shown = v.get("value", v.get("values"))
        shown = ", ".join(f"{g:+.2f}" for g in shown) if isinstance(shown, list) else _fmt(shown)
        lines.append(f"- {name}: {shown} (target {v['target']}): {'met' if v['met'] else 'MISSED'}")
    lines += ["", "## Personalisation", "", doc["personalize"], ""]
    lines += ["## Configurations evaluated on test subjects", ""]
    lines += [f"- {k}: {v}" for k, v in doc["configurations_on_test"].items()]
    if doc.get("issue_before"):
        lines += ["", "## Before, as measured in the issue (not rerun here)", ""]
        lines += [f"- {k}: {v}" for k, v in doc["issue_before"].items()]
    return "\n".join(lines) + "\n"


def personalize_text() -> str:
    """The personalisation curve (mean test MAE per calibration minutes) of
    benchmarks/personalize.py, when its results exist."""
    path = RESULTS / "personalize.json"
    if not path.is_file():
        return "benchmarks/results/personalize.json is missing: no personalisation curve yet."
    doc = json.loads(path.read_text())
    lines = [
        "From benchmarks/results/personalize.json (benchmarks/personalize.py: final-layer bias "
        "re-fit on the first N minutes of each test subject, int8 in TFLite Micro; its own "
        "model and split, see personalize.md):",
        "",
        "| data | model | N = minutes: mean test MAE (subjects) |",
        "|---|---|---|",
    ]
    for name, m in doc.get("models", {}).items():
        curve: dict[str, list[float]] = {}
        for subject in (m.get("test") or {}).values():
            for n, mae in (subject.get("mae") or {}).items():
                curve.setdefault(n, []).append(float(mae))
        points = ", ".join(
            f"N={n}: {_mean(v):.2f} ({len(v)})"
            for n, v in sorted(curve.items(), key=lambda kv: float(kv[0]))
        )
        lines.append(f"| {name} | {m.get('model', '?')}, {m.get('decoder', '?')} | {points} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--score-only", action="store_true", help="score existing run folders")
    ap.add_argument(
        "--render-only", action="store_true", help="rewrite motion.md from motion.json (no scoring)"
    )
    args = ap.parse_args()
    if args.render_only:
        doc = json.loads((RESULTS / "motion.json").read_text())
        doc.update(
            verdicts=verdicts(doc["runs"]),
            configurations_on_test=CONFIGS_ON_TEST,
            personalize=personalize_text(),
        )
        (RESULTS / "motion.json").write_text(json.dumps(doc, indent=1) + "\n")
        (RESULTS / "motion.md").write_text(markdown(doc))
        return
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    data = _datasets()
    old = RESULTS / "motion.json"
    runs: dict[str, Any] = json.loads(old.read_text())["runs"] if old.is_file() else {}
    for scenario in args.scenarios.split(","):
        for variant in args.variants.split(","):
            key = f"{scenario}_{variant}"
            seconds = None
            if not args.score_only:
                _, seconds = run_chain(scenario, variant, data)
            run = OUT / key
            if not (run / "export").is_dir():
                print(f"{key}: no finished run folder, skipped", flush=True)
                continue
            runs[key] = score_run(run)
            if seconds is not None:
                runs[key]["wall_seconds"] = seconds
            print(key, [round(m["mae_chosen"], 2) for m in runs[key]["models"]], flush=True)
    doc = {
        "schema": "ppgedge.benchmark.motion/1",
        "ppgedge": __version__,
        "date": time.strftime("%Y-%m-%d"),
        "runs": runs,
        "verdicts": verdicts(runs),
        "personalize": personalize_text(),
        "configurations_on_test": CONFIGS_ON_TEST,
        "issue_before": ISSUE_BEFORE,
    }
    write_results("motion", doc, markdown(doc))


if __name__ == "__main__":
    main()
