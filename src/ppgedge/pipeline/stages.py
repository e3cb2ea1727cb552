"""The nine stages of ``ppgedge run``, each a call of the stage's own public function.

A stage declares its parameters and input files (which make its cache key), where its outputs
go, and how to run. Output paths are fixed inside the run directory, so a skipped stage's
outputs are found by the next stage without being recomputed; metrics each stage measured are
kept in the manifest for the summary.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppgedge.atomic import atomic_path, write_json_atomic
from ppgedge.data.extra_subjects import training_only
from ppgedge.data.format import (
    DataFormat,
    Dataset,
    WindowedData,
    resolve_channels,
    write_dataset,
)
from ppgedge.data.loader import WindowSource
from ppgedge.data.splits import Split, holdout
from ppgedge.distill.choose import val_scores_text
from ppgedge.errors import PpgedgeError
from ppgedge.evaluate.metrics import error_summary
from ppgedge.models.bpm import decode
from ppgedge.pipeline.config import RunConfig
from ppgedge.train.schedule import epoch_scale, scaled
from ppgedge.train.trainer import TrainConfig, TrainingObserver


@dataclass
class Context:
    """What the stages share: the config, the run directory, and what earlier stages made."""

    cfg: RunConfig
    out: Path
    device: str
    training_observer: Callable[[str], TrainingObserver] = lambda label: TrainingObserver()
    restart: set[str] = field(default_factory=set)  # stages forced by --from (no resume)
    _dataset: Dataset | None = None
    _split: tuple[Split, tuple[str, ...]] | None = None  # recorded subjects' split, lent ones

    # fixed output locations
    @property
    def data_dir(self) -> Path:
        d = self.cfg["data"]
        if d["source"] == "dataset" and not d["synthetic_motion"]:
            return self.cfg.resolve_path(d["path"])  # read in place
        return self.out / "data" / "dataset.ppgds"

    @property
    def teacher_path(self) -> Path:
        given = self.cfg["teacher"]["path"]
        return self.cfg.resolve_path(given) if given else self.out / "teacher" / "teacher.pt"

    student_path = property(lambda self: self.out / "distill" / "student.pt")
    pruned_path = property(lambda self: self.out / "prune" / "pruned.pt")
    qat_path = property(lambda self: self.out / "qat" / "model.qat.int8.pt")
    export_dir = property(lambda self: self.out / "export")
    verify_path = property(lambda self: self.out / "verify" / "verify.json")
    predictions_path = property(lambda self: self.out / "verify" / "predictions.npz")
    profile_path = property(lambda self: self.out / "profile" / "profile.json")
    check_path = property(lambda self: self.out / "check" / "check.json")

    @property
    def tflite_path(self) -> Path:
        return self.export_dir / f"{self.cfg['export']['name']}.tflite"

    @property
    def dataset(self) -> Dataset:
        if self._dataset is None:
            self._dataset = Dataset(self.data_dir)
        return self._dataset

    def split_for(self, stage: str) -> Split:
        """The subjects ``stage`` trains, validates and tests on: synthetic motion subjects
        join the training subjects of the stages ``[data] synthetic_motion_for`` names."""
        if self._split is None:
            d = self.cfg["data"]
            # synthetic motion subjects are set aside first: the split is the one without them
            pool, lent = training_only(list(self.dataset.subjects), d["synthetic_motion"])
            labels = None
            if d["val_choice"] == "representative" and not d["val_subjects"]:
                names, y = self.dataset.subject_names(), np.asarray(self.dataset.y)
                labels = {s: y[names == s] for s in pool}
            split = holdout(
                pool,
                test=d["test_subjects"] or None,
                val=d["val_subjects"] or None,
                seed=self.cfg["run"]["seed"],
                labels=labels,
            )
            self._split = split, lent
        split, lent = self._split
        if lent and (self.cfg["data"]["synthetic_motion_for"] == "all" or stage == "teacher"):
            return replace(split, train=tuple(sorted(split.train + lent)))
        return split

    @property
    def split(self) -> Split:
        """The split of every stage after the teacher (distillation to verification)."""
        return self.split_for("student")

    def epoch_scale_for(self, stage: str) -> float:
        """What ``stage`` multiplies its epochs and patience by (see train/schedule.py): it
        counts the stage's training windows, or after the teacher, with ``[data]
        synthetic_motion_epochs = "recorded"``, the recorded ones alone (the synthetic
        windows then come on top, each epoch longer, instead of fewer passes over the
        recorded windows)."""
        split = self.split_for(stage)
        if stage != "teacher" and self.cfg["data"]["synthetic_motion_epochs"] == "recorded":
            split = self._split[0]  # the split before any subject was lent (cached above)
        n_train = len(split.indices(self.dataset.subject_names())["train"])
        return round(epoch_scale(n_train, self.cfg["run"]["reference_windows"]), 3)

    @property
    def epoch_scale(self) -> float:
        return self.epoch_scale_for("student")

    def epochs(self, n: int, stage: str = "student") -> int:
        return scaled(n, self.epoch_scale_for(stage))

    def data_format(self) -> DataFormat:
        d = self.cfg["data"]
        return DataFormat(d["rate_hz"], d["window_s"], d["hop_s"], resolve_channels(d["channels"]))

    def target(self):
        from ppgedge.profile.targets import resolve, with_overrides

        t = self.cfg["target"]
        spec = str(self.cfg.resolve_path(t["path"])) if t["path"] else t["name"]
        extra = [self.cfg.resolve_path(t["targets_dir"])] if t["targets_dir"] else None
        return with_overrides(resolve(spec, extra), self.cfg.budget_overrides(), "[budget]")

    def rel(self, path: Path) -> str:
        """How the run refers to a path: relative to the run folder (or, outside it, to the
        config's folder), so manifests, reports and messages survive a moved or copied run."""
        for base in (self.out, self.cfg.base_dir):
            try:
                return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()
            except ValueError:
                continue
        return str(path)

    def torch_device(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device


@dataclass
class StageResult:
    outputs: list[Path]
    metrics: dict[str, Any]
    message: str


@dataclass
class Stage:
    name: str
    params: Callable[[Context], dict[str, Any]]
    inputs: Callable[[Context], list[Path]]
    run: Callable[[Context], StageResult]


def _test_mae(ctx: Context, ckpt_path: Path) -> float:
    from ppgedge.evaluate.predict import evaluate_checkpoint
    from ppgedge.models.checkpoint import load_checkpoint

    idx = ctx.split.indices(ctx.dataset.subject_names())["test"]
    return float(
        evaluate_checkpoint(load_checkpoint(ckpt_path), ctx.dataset, idx).report["overall"]["mae"]
    )


def _train_cfg(ctx: Context, section: str, arch: str, augment: bool) -> TrainConfig:
    s = ctx.cfg[section]
    return TrainConfig(
        arch=arch,
        epochs=ctx.epochs(s["epochs"], section),
        patience=ctx.epochs(s["patience"], section),
        channels=ctx.cfg["data"]["channels"],
        seed=ctx.cfg["run"]["seed"],
        augment=augment,
        time_stretch=ctx.cfg["run"]["time_stretch"],
        ema_decay=ctx.cfg["run"]["ema_decay"],
    )


def _with_observer(ctx: Context, label: str, fn: Callable[[TrainingObserver], Any]) -> Any:
    obs = ctx.training_observer(label)
    try:
        return fn(obs)
    finally:
        getattr(obs, "close", lambda: None)()


# --------------------------------------------------------------------------------------- data
def _data_params(ctx: Context) -> dict[str, Any]:
    d = dict(ctx.cfg["data"])
    d.pop("test_subjects"), d.pop("val_subjects")
    if not d["synthetic_motion"]:  # absent when off: earlier runs stay current
        d.pop("synthetic_motion")
    d.pop("synthetic_motion_for")  # who trains on them: the training stages' own split
    d.pop("synthetic_motion_epochs")  # how long they train: the stages' own epoch scale
    return d


def _data_inputs(ctx: Context) -> list[Path]:
    d = ctx.cfg["data"]
    return [] if d["source"] == "synthetic" else [ctx.cfg.resolve_path(d["path"])]


def _data_run(ctx: Context) -> StageResult:
    d = ctx.cfg["data"]
    if d["source"] == "dataset" and not d["synthetic_motion"]:
        ds = ctx.dataset
        return StageResult(
            [],
            {"windows": len(ds), "subjects": len(ds.subjects)},
            f"{ctx.rel(ctx.data_dir)}: {len(ds):,} windows, {len(ds.subjects)} subjects",
        )
    if d["source"] == "dataset":
        data: WindowedData | Dataset = Dataset(ctx.cfg.resolve_path(d["path"]))
    elif d["source"] == "synthetic":
        from ppgedge.data.synth import synthesize

        data = synthesize(d["subjects"], d["minutes"], ctx.cfg["run"]["seed"], ctx.data_format())
    else:
        from ppgedge.data.importers import import_dataset

        data = import_dataset(d["source"], ctx.cfg.resolve_path(d["path"]), ctx.data_format())
    # each replaces only a dataset this run wrote
    if d["synthetic_motion"]:
        from ppgedge.data.extra_subjects import with_extra_subjects

        with_extra_subjects(data, d["synthetic_motion"], ctx.cfg["run"]["seed"], ctx.data_dir)
    else:
        write_dataset(data, ctx.data_dir)
    ctx._dataset, ctx._split = None, None
    ds = ctx.dataset
    return StageResult(
        [ctx.data_dir],
        {"windows": len(ds), "subjects": len(ds.subjects)},
        f"{ctx.rel(ctx.data_dir)}: {len(ds):,} windows, {len(ds.subjects)} subjects",
    )


def _split_params(ctx: Context, stage: str = "student") -> dict[str, Any]:
    s = ctx.split_for(stage)
    params = {
        "split": {"train": list(s.train), "val": list(s.val), "test": list(s.test)},
        "epoch_scale": ctx.epoch_scale_for(stage),
    }
    stretch = ctx.cfg["run"]["time_stretch"]
    if stretch != "slower":  # absent for the original augmentation: earlier runs stay current
        params["time_stretch"] = stretch
    if ctx.cfg["run"]["ema_decay"]:  # absent when off: earlier runs stay current
        params["ema_decay"] = ctx.cfg["run"]["ema_decay"]
    return params


def _dataset_input(ctx: Context) -> list[Path]:
    return [ctx.data_dir / "meta.json"]


# ------------------------------------------------------------------------------------ teacher
def _teacher_params(ctx: Context) -> dict[str, Any]:
    t = ctx.cfg["teacher"]
    base = {"path": t["path"]} if t["path"] else {k: t[k] for k in ("arch", "epochs", "patience")}
    if not t["path"] and t["motion_aug_p"]:  # absent when off: earlier runs stay up to date
        base["motion_aug_p"] = t["motion_aug_p"]
    return {**base, **_split_params(ctx, "teacher"), "seed": ctx.cfg["run"]["seed"]}


def _teacher_inputs(ctx: Context) -> list[Path]:
    given = [ctx.teacher_path] if ctx.cfg["teacher"]["path"] else []
    return _dataset_input(ctx) + given


def _teacher_run(ctx: Context) -> StageResult:
    if ctx.cfg["teacher"]["path"]:
        from ppgedge.distill.teachers import check_teacher_matches, load_teacher

        teacher = load_teacher(ctx.teacher_path, ctx.dataset.fmt)
        check_teacher_matches(teacher, ctx.dataset)
        mae = _teacher_mae(ctx, teacher)
        return StageResult(
            [],
            {"test_mae": mae, "arch": teacher.arch or teacher.kind},
            f"{ctx.rel(ctx.teacher_path)}: {teacher.kind} teacher, test MAE {mae:.2f} BPM",
        )
    from ppgedge.train.trainer import train

    arch = ctx.cfg["teacher"]["arch"]
    cfg = _train_cfg(ctx, "teacher", arch, augment=True)
    cfg.motion_aug_p = ctx.cfg["teacher"]["motion_aug_p"]
    ckpt = _with_observer(
        ctx,
        "teacher",
        lambda o: train(
            ctx.dataset,
            ctx.split_for("teacher"),
            ctx.teacher_path,
            cfg,
            device=ctx.device,
            observer=o,
            restart="teacher" in ctx.restart,
        ),
    )
    mae = _test_mae(ctx, ctx.teacher_path)
    return StageResult(
        [ctx.teacher_path],
        {"test_mae": mae, "parameters": ckpt.metrics["parameters"], "arch": arch},
        f"{ctx.rel(ctx.teacher_path)}: {arch}, {ckpt.metrics['parameters']:,} params, "
        f"test MAE {mae:.2f}",
    )


def _teacher_mae(ctx: Context, teacher) -> float:
    idx = ctx.split.indices(ctx.dataset.subject_names())["test"]
    src = WindowSource(ctx.dataset, idx, teacher.data_format.channels)
    preds = []
    with torch.no_grad():
        for _, x, _ in src.batches(256):
            preds.append(decode(teacher.logits(x), "argmax").numpy())
    return float(error_summary(np.concatenate(preds), src.y)["mae"])


# ------------------------------------------------------------------------------------ distill
def _distill_params(ctx: Context) -> dict[str, Any]:
    d = dict(ctx.cfg["distill"])
    for knob in ("mix", "motion_aug_p"):  # absent when off: earlier runs stay up to date
        if not d[knob]:
            del d[knob]
    return {**d, **_split_params(ctx), "seed": ctx.cfg["run"]["seed"]}


def _distill_inputs(ctx: Context) -> list[Path]:
    return _dataset_input(ctx) + [ctx.teacher_path]


def _distill_run(ctx: Context) -> StageResult:
    from ppgedge.distill.choose import keep_better, scratch_path
    from ppgedge.distill.run import distill

    d = ctx.cfg["distill"]
    # augment: "consistent teaching" (the teacher labels the very augmented window the student
    # sees, so the cached logits are bypassed and the teacher runs online)
    # mix and motion_aug_p: function matching on mixed and on motion-corrupted windows
    cfg = replace(
        _train_cfg(ctx, "distill", d["student"], augment=d["augment"]),
        mix_max=d["mix"],
        motion_aug_p=d["motion_aug_p"],
    )
    common = {
        "method": d["method"],
        "cache_dir": ctx.out / "cache",
        "device": ctx.device,
        "restart": "distill" in ctx.restart,
        # a rerun after an interruption in the from-scratch training keeps the finished
        # distilled student instead of training it again (same configuration digest only)
        "reuse_finished": True,
    }
    args = (ctx.teacher_path, ctx.dataset, ctx.split, d["student"], ctx.student_path, cfg)
    outputs = [ctx.student_path]
    ckpt = _with_observer(
        ctx, f"{d['method']} student", lambda o: distill(*args, observer=o, **common)
    )
    if d["keep_better"]:
        outputs.append(scratch_path(ctx.student_path))
        ckpt = _with_observer(
            ctx,
            "scratch student",
            lambda o: keep_better(
                ckpt,
                ctx.dataset,
                ctx.split,
                ctx.student_path,
                cfg,
                method=d["method"],
                device=ctx.device,
                observer=o,
                restart=common["restart"],
                reuse_finished=True,
            ),
        )
    mae = _test_mae(ctx, ctx.student_path)
    n = ckpt.metrics["parameters"]
    choice = ckpt.metrics.get("choice") or {}
    how = d["method"]
    if choice:
        how = f"{choice['kept']}; val MAE {val_scores_text(choice)}"
    return StageResult(
        outputs,
        {
            "test_mae": mae,
            "parameters": n,
            "arch": ckpt.arch,
            **({"kept": choice["kept"], "val_mae": choice["val_mae"]} if choice else {}),
        },
        f"{ctx.rel(ctx.student_path)}: {ckpt.arch} ({how}), {n:,} params, test MAE {mae:.2f} BPM",
    )


# -------------------------------------------------------------------------------------- prune
def _prune_budget(ctx: Context) -> str:
    """The [prune] ``to`` budget; ``target`` means: what fits the run's target (see
    :func:`ppgedge.profile.prune_target.prune_budget_for`)."""
    to = ctx.cfg["prune"]["to"]
    if to.strip().lower() != "target":
        return to
    from ppgedge.profile.prune_target import prune_budget_for

    return prune_budget_for(ctx.student_path, ctx.target())


def _prune_params(ctx: Context) -> dict[str, Any]:
    """The key of the prune stage: with ``to = "target"``, the target (its budget, core,
    clock) rather than the MAC count derived from it, which costs a profile of the student
    (the student itself is an input: its hash is in the key)."""
    p = dict(ctx.cfg["prune"])
    if not p["rebuild"]:  # absent when off: earlier runs stay up to date
        del p["rebuild"]
    if p["to"].strip().lower() == "target":
        p["target"] = _target_params(ctx)["target"]
    return {**p, **_split_params(ctx), "seed": ctx.cfg["run"]["seed"]}


def _prune_inputs(ctx: Context) -> list[Path]:
    return _dataset_input(ctx) + [ctx.student_path, ctx.teacher_path]


def _prune_run(ctx: Context) -> StageResult:
    from ppgedge.compress.prune import int8_flash_bytes, prune

    p = ctx.cfg["prune"]
    budget = _prune_budget(ctx)  # for "target": a search with the cycle model (tens of s)
    result = _with_observer(
        ctx,
        "prune",
        lambda o: prune(
            ctx.student_path,
            ctx.dataset,
            ctx.split,
            ctx.pruned_path,
            budget,
            criterion=p["criterion"],
            steps=p["steps"],
            finetune_epochs=ctx.epochs(p["finetune_epochs"]),
            final_epochs=ctx.epochs(p["final_epochs"]),
            round_to=p["round_to"],
            teacher=ctx.teacher_path,
            method="dkd",
            cache_dir=ctx.out / "cache",
            device=ctx.device,
            seed=ctx.cfg["run"]["seed"],
            observer=o,
        ),
    )
    outputs = [ctx.pruned_path]
    ck = result.checkpoint
    if result.nothing_to_do:
        ctx.pruned_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(ctx.pruned_path) as tmp:
            shutil.copyfile(ctx.student_path, tmp)
    elif p["rebuild"]:
        from ppgedge.compress.rebuild import keep_better_rebuilt, rebuilt_path

        d = ctx.cfg["distill"]
        ck = _with_observer(
            ctx,
            "rebuilt pruned",
            lambda o: keep_better_rebuilt(
                ctx.pruned_path,
                ctx.student_path,
                ctx.teacher_path,
                ctx.dataset,
                ctx.split,
                epochs=ctx.epochs(d["epochs"]),
                patience=ctx.epochs(d["patience"]),
                cache_dir=ctx.out / "cache",
                device=ctx.device,
                seed=ctx.cfg["run"]["seed"],
                observer=o,
            ),
        )
        outputs.append(rebuilt_path(ctx.pruned_path))
    mae = _test_mae(ctx, ctx.pruned_path)
    n = ck.metrics.get("parameters") or sum(v.numel() for v in ck.state_dict.values())
    flash = int8_flash_bytes(ck.build())
    what = (
        "nothing to do (the student already fits)"
        if result.nothing_to_do
        else (f"{len(result.steps) - 1} steps to {budget}")
    )
    choice = ck.metrics.get("choice") or {}
    if choice:
        what += f" ({choice['kept']} kept; val MAE {val_scores_text(choice)})"
    return StageResult(
        outputs,
        {
            "test_mae": mae,
            "parameters": int(n),
            "int8_weight_bytes": flash,
            "nothing_to_do": result.nothing_to_do,
            "budget": budget,
            "steps": result.steps,
            **({"kept": choice["kept"], "val_mae": choice["val_mae"]} if choice else {}),
        },
        f"{ctx.rel(ctx.pruned_path)}: {int(n):,} params, {what}, test MAE {mae:.2f} BPM",
    )


# ---------------------------------------------------------------------------------------- qat
def _qat_params(ctx: Context) -> dict[str, Any]:
    return {**ctx.cfg["qat"], **_split_params(ctx), "seed": ctx.cfg["run"]["seed"]}


def _qat_inputs(ctx: Context) -> list[Path]:
    return _dataset_input(ctx) + [ctx.pruned_path, ctx.teacher_path]


def _qat_run(ctx: Context) -> StageResult:
    from ppgedge.compress.quantize import qat

    q = ctx.cfg["qat"]
    result = _with_observer(
        ctx,
        "qat",
        lambda o: qat(
            ctx.pruned_path,
            ctx.dataset,
            ctx.split,
            ctx.qat_path,
            epochs=ctx.epochs(q["epochs"]),
            teacher=ctx.teacher_path if q["distill"] else None,
            cache_dir=ctx.out / "cache",
            seed=ctx.cfg["run"]["seed"],
            device=ctx.torch_device(),
            observer=o,
        ),
    )
    m = result.metrics
    return StageResult(
        [ctx.qat_path],
        {k: v for k, v in m.items() if isinstance(v, int | float)},
        f"{ctx.rel(ctx.qat_path)}: fake-quant val MAE {m.get('fakequant_val_mae', 0):.2f}",
    )


# ------------------------------------------------------------------------------------- export
def _export_params(ctx: Context) -> dict[str, Any]:
    # the tracker and decoder are fitted on the exported model's int8 validation outputs (an
    # export made before that shipped the float checkpoint's), the per-window decoders scored on
    # them dequantised as the C decoders compute (before, the expectation's softmax ran on raw
    # int8 codes): the key reruns older exports
    return {**ctx.cfg["export"], "tracker_fit": "int8 validation outputs, dequantised"}


def _export_run(ctx: Context) -> StageResult:
    from ppgedge.export.run import export, parse_formats

    e = ctx.cfg["export"]
    formats = parse_formats(e["formats"])
    if "tflite" not in formats:
        raise PpgedgeError("[export] formats must include tflite: verify and profile need it")
    result = export(  # data: the run's dataset, for the tracker's fit on the int8 outputs
        ctx.qat_path, ctx.export_dir, formats=formats, name=e["name"], data=ctx.dataset.path
    )
    tfl = result.files["tflite"]
    arena = result.manifest.get("arena") or {}
    return StageResult(
        [ctx.export_dir],
        {
            "tflite_bytes": tfl.stat().st_size,
            "arena_bytes": arena.get("total"),
            "formats": list(formats),
            "seconds": result.seconds,
        },
        f"{ctx.rel(ctx.export_dir)}: {', '.join(formats)}; {tfl.name} {tfl.stat().st_size:,} B",
    )


# ------------------------------------------------------------------------------------- verify
def _verify_run(ctx: Context) -> StageResult:
    from ppgedge.export.verify import verify

    report = verify(ctx.export_dir, ctx.dataset, part="test")
    write_json_atomic(ctx.verify_path, report.to_dict() | {"tflite": ctx.rel(ctx.tflite_path)})
    # per-window int8 predictions on the test subjects (verify's own TFLite Micro run), for
    # the report's error plot
    idx = report.indices
    acts = np.asarray(ctx.dataset.activity)[idx]
    with atomic_path(ctx.predictions_path) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            pred=report.predictions,
            true=np.asarray(ctx.dataset.y[idx], dtype=np.float32),
            activity=acts,
            activity_names=np.asarray(ctx.dataset.activities),
        )
    return StageResult(
        [ctx.verify_path, ctx.predictions_path],
        {
            "mae_tflm": report.mae_tflm,
            "mae_pytorch": report.mae_pytorch,
            "ok": report.ok,
            "checks": report.checks,
            "agreement": report.argmax_agreement_pytorch,
        },
        f"{ctx.rel(ctx.verify_path)}: int8 MAE {report.mae_tflm:.2f} BPM in TFLite Micro "
        f"(fake-quant {report.mae_pytorch:.2f}); "
        + ", ".join(f"{k} {'ok' if v else 'MISSED'}" for k, v in report.checks.items()),
    )


# ------------------------------------------------------------------------------ profile, check
def _target_params(ctx: Context) -> dict[str, Any]:
    return {"target": ctx.target().to_dict()}


def _relative_paths(ctx: Context, doc: dict[str, Any]) -> dict[str, Any]:
    """The model and verify-report paths of a profile or check document as the run refers to
    them (relative to the run folder), so the folder can be moved or shared."""
    for model in (doc.get("model"), (doc.get("profile") or {}).get("model")):
        if isinstance(model, dict) and model.get("path"):
            model["path"] = ctx.rel(Path(model["path"]))
    accuracy = doc.get("accuracy")
    if isinstance(accuracy, dict) and accuracy.get("path"):
        accuracy["path"] = ctx.rel(Path(accuracy["path"]))
    return doc


def _profile_run(ctx: Context) -> StageResult:
    from ppgedge.profile.report import profile

    report = profile(ctx.tflite_path, ctx.target())
    write_json_atomic(ctx.profile_path, _relative_paths(ctx, report.to_dict()))
    lat = report.latency["ms"]
    return StageResult(
        [ctx.profile_path],
        {
            "flash_bytes": report.flash["total_bytes"],
            "sram_bytes": report.sram["total_bytes"],
            "latency_ms": lat,
            "energy_uj": report.energy["uj"],
        },
        f"{ctx.rel(ctx.profile_path)}: flash {report.flash['total_bytes'] / 1024:.1f} KB, SRAM "
        f"{report.sram['total_bytes'] / 1024:.1f} KB, latency ~{lat['mid']:.1f} ms "
        f"(est. {lat['low']:.1f}-{lat['high']:.1f}) on {report.target.name}",
    )


def _check_run(ctx: Context) -> StageResult:
    from ppgedge.profile.check import run_check
    from ppgedge.profile.report import profile

    target = ctx.target()
    result = run_check(profile(ctx.tflite_path, target), target.budget, verify_path=ctx.verify_path)
    write_json_atomic(ctx.check_path, _relative_paths(ctx, result.to_dict()))
    over = [f"{r.name} {r.value:.4g} > {r.limit:.4g} {r.unit}" for r in result.results if not r.ok]
    verdict = "fits" if result.passed else "OVER BUDGET" + (f" ({', '.join(over)})" if over else "")
    return StageResult(
        [ctx.check_path],
        {"passed": result.passed, "exit_code": result.exit_code},
        f"{ctx.rel(ctx.check_path)}: {verdict} on {target.name}",
    )


def read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


REPORT_ENTRIES = ("report.md", "plots")


def territory(ctx: Context, stage: str) -> list[str]:
    """The top-level entries of the run folder that ``stage`` writes (and so must own)."""
    if stage == "data":
        d = ctx.cfg["data"]
        return [] if d["source"] == "dataset" and not d["synthetic_motion"] else ["data"]
    if stage == "teacher":
        return [] if ctx.cfg["teacher"]["path"] else ["teacher"]
    if stage in ("distill", "prune", "qat"):
        return [stage, "cache"]
    return [stage]


STAGE_LIST = [
    Stage("data", _data_params, _data_inputs, _data_run),
    Stage("teacher", _teacher_params, _teacher_inputs, _teacher_run),
    Stage("distill", _distill_params, _distill_inputs, _distill_run),
    Stage("prune", _prune_params, _prune_inputs, _prune_run),
    Stage("qat", _qat_params, _qat_inputs, _qat_run),
    Stage("export", _export_params, lambda c: [c.qat_path], _export_run),
    Stage(
        "verify",
        lambda c: {},
        lambda c: [c.export_dir / "export.json", *_dataset_input(c)],
        _verify_run,
    ),
    Stage("profile", _target_params, lambda c: [c.tflite_path], _profile_run),
    Stage("check", _target_params, lambda c: [c.tflite_path, c.verify_path], _check_run),
]
