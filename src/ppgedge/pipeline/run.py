"""``ppgedge run``: every stage chained, each skipped when its inputs and parameters are unchanged.

The run directory holds one folder per stage, ``manifest.json`` (per stage: key, parameters,
input and output content hashes, metrics, seconds; tool versions) and a lock. An interrupted run
continues where it stopped (finished stages are skipped, training resumes from its per-epoch
file); ``--from STAGE`` reruns that stage and every later one from scratch.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ppgedge.errors import PpgedgeError, check_interrupt
from ppgedge.ownership import RUN, claim, remove_staging
from ppgedge.pipeline.config import STAGES, RunConfig, with_values
from ppgedge.pipeline.manifest import (
    MANIFEST,
    RunLock,
    RunManifest,
    content_hash,
    outputs_of,
    stage_key,
)
from ppgedge.pipeline.report import summary_rows, write_report
from ppgedge.pipeline.stages import REPORT_ENTRIES, STAGE_LIST, Context, read_json, territory
from ppgedge.profile.check import workspace_path
from ppgedge.threads import limit_threads
from ppgedge.train.trainer import TrainingObserver

QUICK = {
    "run": {"reference_windows": 0},  # the epochs below, not scaled up for the tiny data
    "data": {"subjects": 5, "minutes": 3.0},
    "teacher": {"arch": "resnet_tiny", "epochs": 2, "patience": 2},
    "distill": {"student": "resnet_micro", "epochs": 2, "patience": 2},
    "prune": {"to": "70%", "steps": 1, "finetune_epochs": 0, "final_epochs": 1},
    "qat": {"epochs": 1},
}
QUICK_SYNTHETIC_MOTION = 1  # --quick lends at most this many (6 min each): enough to run it


class RunObserver:
    """How the CLI sees a run: a line per stage, a progress display per training."""

    def starting(self, name: str) -> None:
        """A stage that will run (not skipped) is about to start: long ones are not silent."""

    def stage(self, name: str, message: str, seconds: float, skipped: bool) -> None: ...

    def training(self, label: str) -> TrainingObserver:
        return TrainingObserver()


@dataclass
class RunResult:
    out: Path
    exit_code: int
    stages: dict[str, dict[str, Any]]
    summary: list[dict[str, Any]]
    report: Path
    next_commands: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def quick_config(cfg: RunConfig) -> RunConfig:
    """Tiny data and epochs: a smoke test of the whole chain (about two minutes on a CPU).

    The epochs are the ones given (no small-data scaling, which would multiply them for so few
    windows), and the synthetic motion subjects lent to training are capped at one: the default
    eight (48 minutes) would be ten times the quick run's own recordings."""
    lent = min(cfg["data"]["synthetic_motion"], QUICK_SYNTHETIC_MOTION)
    return with_values(cfg, **{**QUICK, "data": {**QUICK["data"], "synthetic_motion": lent}})


def run_pipeline(
    cfg: RunConfig,
    *,
    out: str | Path | None = None,
    from_stage: str | None = None,
    observer: RunObserver | None = None,
    restart: bool = False,
) -> RunResult:
    """Run or continue the chain described by ``cfg`` in its output directory."""
    _check_models(cfg)
    option = "--out" if out is not None else "[run] out"
    out = Path(out) if out is not None else cfg.resolve_path(cfg["run"]["out"])
    if from_stage is not None and from_stage not in STAGES:
        raise PpgedgeError(f"unknown stage '{from_stage}' for --from: use one of {list(STAGES)}")
    claim(out, RUN, option)
    if cfg["run"]["threads"]:
        limit_threads(cfg["run"]["threads"])
    obs = observer or RunObserver()
    ctx = Context(cfg, out, cfg["run"]["device"], training_observer=obs.training)
    skipped: list[str] = []
    with RunLock(out):
        manifest = RunManifest.open(out, cfg.to_dict())
        manifest.save()  # the folder is marked as a ppgedge run before anything else is written
        _refuse_foreign_entries(ctx, manifest)
        _remove_stale_staging(out, manifest)
        if from_stage is not None:
            forced = list(STAGES[STAGES.index(from_stage) :])
            manifest.invalidate_from(forced)
            ctx.restart = set(forced)
        if restart:  # discard interrupted training's resume files (a broken one blocks)
            ctx.restart |= {"teacher", "distill"}
        for stage in STAGE_LIST:
            check_interrupt()
            t0 = time.perf_counter()
            params = stage.params(ctx)
            inputs = {ctx.rel(p): content_hash(p) for p in stage.inputs(ctx)}
            key = stage_key(stage.name, params, inputs)
            if manifest.is_fresh(stage.name, key):
                entry = manifest.stage(stage.name)
                skipped.append(stage.name)
                obs.stage(
                    stage.name,
                    f"unchanged, skipped ({entry['message']})",
                    time.perf_counter() - t0,
                    True,
                )
                continue
            manifest.own(territory(ctx, stage.name))
            obs.starting(stage.name)
            result = stage.run(ctx)
            seconds = time.perf_counter() - t0
            manifest.record(
                stage.name,
                {
                    "status": "done",
                    "key": key,
                    "params": params,
                    "inputs": inputs,
                    "outputs": outputs_of(out, [p for p in result.outputs if _inside(p, out)]),
                    "metrics": result.metrics,
                    "message": result.message,
                    "seconds": round(seconds, 2),
                },
            )
            obs.stage(stage.name, result.message, seconds, False)
            check_interrupt()  # a SIGINT a native library swallowed: stop at this boundary
        stages = manifest.data["stages"]
        summary = summary_rows(ctx, stages)
        manifest.own(list(REPORT_ENTRIES))
        report = write_report(ctx, stages, summary)
        manifest.data["summary"] = summary
        manifest.save()
    check = read_json(ctx.check_path)
    return RunResult(
        out=out,
        exit_code=int(check["exit_code"]),
        stages=stages,
        summary=summary,
        report=report,
        next_commands=next_commands(ctx),
        skipped=skipped,
    )


def _check_models(cfg: RunConfig) -> None:
    """Refuse an unknown model, or a student that would misread the channels, before any
    stage runs (not after the teacher has trained)."""
    from ppgedge.data.format import resolve_channels
    from ppgedge.models.registry import check_arch_kwargs, check_channels

    student = cfg["distill"]["student"]
    check_arch_kwargs(student, {}, "[distill] student")
    if not cfg["teacher"]["path"]:
        check_arch_kwargs(cfg["teacher"]["arch"], {}, "[teacher] arch")
    check_channels(student, resolve_channels(cfg["data"]["channels"]))


def next_commands(ctx: Context) -> list[str]:
    """What to run next, each reproducing this run's view exactly: the same config file (its
    target, budget overrides and targets folder), paths as the user's shell sees them."""
    tflite, export, data = (_shell_path(p) for p in (ctx.tflite_path, ctx.export_dir, ctx.data_dir))
    if ctx.cfg.path is not None:
        where = f"--config {_shell_path(ctx.cfg.path)}"
    else:  # built-in config: no budget overrides, the target's own budget is the run's
        where = f"--target {shlex.quote(ctx.target().name)}"
    return [
        f"ppgedge profile {tflite} {where}",
        f"ppgedge verify {export} {data}",
        f"ppgedge check {tflite} {where} --junit check.xml",
        f"ls {_shell_path(ctx.export_dir / 'tflm')}   # the firmware bundle",
    ]


def _shell_path(path: Path) -> str:
    """As CI annotations name files (relative to the current directory when below it, else
    absolute), quoted for a shell."""
    return shlex.quote(workspace_path(str(path)))


def _refuse_foreign_entries(ctx: Context, manifest: RunManifest) -> None:
    """Before any stage runs: every entry the run would write is absent or ppgedge's."""
    wanted = [e for name in STAGES for e in territory(ctx, name)] + list(REPORT_ENTRIES)
    for rel in dict.fromkeys(wanted):
        p = ctx.out / rel
        if (p.exists() or p.is_symlink()) and not manifest.owns(rel):
            raise PpgedgeError(
                f"{p} exists and this run did not write it: move it out of {ctx.out} "
                "or choose another [run] out (ppgedge never replaces files it did not write)"
            )


def _remove_stale_staging(out: Path, manifest: RunManifest) -> None:
    """Staging files and folders a killed run (``kill -9``, power loss) left behind: only the
    names ``atomic_path`` gives, beside the run's own files and directly inside the folders the
    manifest says this run made, never deeper; holding the lock, nothing else writes them."""
    owned = list(manifest.data["owned"])
    remove_staging(out, [*owned, MANIFEST])
    for rel in owned:
        if (out / rel).is_dir() and not (out / rel).is_symlink():
            remove_staging(out / rel)


def _inside(p: Path, out: Path) -> bool:
    try:
        Path(p).resolve().relative_to(out.resolve())
    except ValueError:
        return False
    return True
