"""Structured pruning: physically remove channels until a model meets a budget.

Torch-Pruning's :class:`DependencyGraph` traces the network once and groups every layer whose
channels must go together: a residual sum couples a block's output, its shortcut and the next
block's input; a depthwise convolution couples to the layer before it; a flatten couples a
linear layer's inputs. One mechanism therefore serves every zoo architecture without special
cases, and the result is an ordinary, smaller network of the same registered architecture (the
checkpoint records the changed ``layer_shapes``), so every later stage accepts it.

The schedule is iterative: the budget is reached in ``steps`` geometric steps, each pruning in
small increments (one group loses ``round_to`` channels at a time) until the measured metric
meets the step's target, then fine-tuning in the normal trainer (with the teacher's
distillation loss when a teacher is given). Every group shrinks by about the same ratio (the
increment cuts the group that keeps the largest share of its original width after the cut;
importance breaks ties and always picks which channels go). Ranking channels globally across
groups instead, by importance alone or importance per unit of budget saved, collapsed the
narrowest or the most expensive groups to ``round_to`` channels before touching the others
(on these small networks a 4-channel bottleneck costs more accuracy than fine-tuning
recovers). Channel counts stay multiples of ``round_to``, which int8 SIMD kernels (CMSIS-NN)
process fastest, and never drop below it.
"""

from __future__ import annotations

import copy
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ppgedge.data.fingerprint import dataset_sha256
from ppgedge.data.format import Dataset
from ppgedge.data.loader import WindowSource
from ppgedge.data.splits import Split
from ppgedge.errors import PpgedgeError
from ppgedge.evaluate.predict import check_compatible, mae_by_decoder
from ppgedge.models.bpm import N_CLASSES
from ppgedge.models.checkpoint import (
    Checkpoint,
    checkpoint_from_model,
    load_checkpoint,
    model_record,
    save_checkpoint,
)
from ppgedge.models.registry import count_macs, count_parameters
from ppgedge.train.objective import Objective, soft_target_loss
from ppgedge.train.trainer import (
    TrainConfig,
    TrainingObserver,
    pick_device,
    train,
    training_config_of,
)

BUDGET_KINDS = ("params", "macs", "flash_kb")
CRITERIA = ("l1", "l2", "taylor")
KIB = 1024  # flash budgets are in KiB ("KB" on microcontroller datasheets)

_CONV_TYPES = (nn.modules.conv._ConvNd,)
_BN_TYPES = (nn.modules.batchnorm._BatchNorm,)
_TAYLOR_BATCHES = 4
_TAYLOR_BATCH_SIZE = 64


# ----------------------------------------------------------------------------- budgets


@dataclass(frozen=True)
class Budget:
    """What the pruned model must fit: parameters, MACs per window, or int8 flash in KiB.

    ``relative`` budgets (``"50%"``) hold a fraction of the model's current value until
    :meth:`resolve` turns them into an absolute one.
    """

    kind: str
    value: float
    relative: bool = False

    def __post_init__(self) -> None:
        if self.kind not in BUDGET_KINDS:
            raise PpgedgeError(f"unknown budget kind '{self.kind}': use {', '.join(BUDGET_KINDS)}")
        if not self.value > 0:
            raise PpgedgeError(f"budget must be positive, got {self.value:g}")

    def resolve(self, current: float) -> Budget:
        """The absolute budget, given the model's current value of this metric."""
        if not self.relative:
            return self
        return Budget(self.kind, self.value * current)

    def describe(self) -> str:
        if self.relative:
            return f"{self.value * 100:g}% of the current {_UNIT[self.kind]}"
        return format_value(self.kind, self.value)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "relative": self.relative}


_UNIT = {"params": "parameters", "macs": "MACs", "flash_kb": "KB int8 flash"}
_MULT = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}
_NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(.*?)\s*$")
_PARAMS_MACS = re.compile(r"([kmg]?)(params?|parameters?|p|macs?|)")
_FLASH_UNITS = {"kb": 1.0, "kib": 1.0, "k": 1.0, "": 1.0, "mb": 1024.0, "mib": 1024.0}
_FLASH_UNITS |= {"b": 1 / KIB, "bytes": 1 / KIB}


def format_value(kind: str, value: float) -> str:
    """A budget metric for people: ``30,000 parameters``, ``2.10 M MACs``, ``40.0 KB flash``."""
    if kind == "params":
        return f"{round(value):,} parameters"
    if kind == "macs":
        return f"{value / 1e6:.3g} M MACs" if value >= 1e6 else f"{round(value):,} MACs"
    return f"{value:.1f} KB int8 flash"


def parse_budget(text: str) -> Budget:
    """Read ``30000``, ``30k params``, ``50%`` (of the current parameters), ``50% macs``,
    ``2M macs``, ``2e6macs``, ``40kb``, ``40KB flash``; a bare number counts parameters and
    k/M/G multiply by 10^3/10^6/10^9 (flash sizes are KiB)."""
    bad = PpgedgeError(
        f"cannot read budget '{text}': use e.g. 30000, 30k params, 50%, 2M macs or 40kb (flash)"
    )
    match = _NUMBER.match(str(text))
    if not match:
        raise bad
    number = float(match[1])
    rest = match[2].lower().replace(" ", "").replace("_", "")
    relative = rest.startswith("%")
    if relative:
        rest = rest[1:]
    flash = "flash" in rest
    unit = rest.replace("flash", "")
    if flash or unit in ("kb", "kib", "mb", "mib"):
        if unit not in _FLASH_UNITS or (unit in ("", "k") and not flash):
            raise bad
        if relative and unit not in ("", "kb", "kib"):
            raise bad
        value = number / 100 if relative else number * _FLASH_UNITS[unit]
        return Budget("flash_kb", value, relative)
    parts = _PARAMS_MACS.fullmatch(unit)
    if parts is None or (relative and parts[1]):
        raise bad
    kind = "macs" if parts[2].startswith("mac") else "params"
    value = number / 100 if relative else number * _MULT[parts[1]]
    return Budget(kind, value, relative)


# ----------------------------------------------------------------------------- measuring


def int8_flash_bytes(model: nn.Module) -> int:
    """Weights-and-biases floor of the int8 model's flash: one byte per convolution or linear
    weight and four (int32) per bias, where a batch norm folds into the layer before it and so
    gives it a bias of its own. The TFLite file adds per-channel scales, the graph and metadata
    on top; the export stage measures the real file."""
    total = 0
    last: nn.Module | None = None
    for module in model.modules():
        if isinstance(module, (*_CONV_TYPES, nn.Linear)):
            total += module.weight.numel()
            if module.bias is not None:
                total += 4 * module.bias.numel()
            last = module
        elif isinstance(module, _BN_TYPES):
            # folded into the preceding layer: its bias, unless that layer already has one
            if last is None or getattr(last, "bias", None) is None:
                total += 4 * module.num_features
            last = None
    return total


def measure(model: nn.Module, in_channels: int, window_samples: int) -> dict[str, int]:
    """Parameters, MACs per window and the int8 flash floor (bytes) of ``model``."""
    return {
        "parameters": count_parameters(model),
        "macs": count_macs(model, in_channels, window_samples),
        "flash_bytes": int8_flash_bytes(model),
    }


def _metric(model: nn.Module, kind: str, in_channels: int, window_samples: int) -> float:
    if kind == "params":
        return float(count_parameters(model))
    if kind == "macs":
        return float(count_macs(model, in_channels, window_samples))
    return int8_flash_bytes(model) / KIB


def _metric_of(row: dict[str, Any], kind: str) -> float:
    return {
        "params": float(row["parameters"]),
        "macs": float(row["macs"]),
        "flash_kb": row["flash_bytes"] / KIB,
    }[kind]


# ----------------------------------------------------------------------------- the pruner


def _torch_pruning() -> Any:
    try:
        import torch_pruning
    except ImportError:  # pragma: no cover - a dependency of the package
        raise PpgedgeError(
            "pruning needs the torch-pruning package: pip install torch-pruning"
        ) from None
    return torch_pruning


def _output_layers(model: nn.Module) -> list[nn.Module]:
    """The layers never pruned: the classifiers (180 outputs, the BPM classes) and fixed
    transforms."""
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == N_CLASSES]
    if not heads:
        raise PpgedgeError(
            f"{type(model).__name__} has no linear layer with {N_CLASSES} outputs: "
            "not a ppgedge heart-rate model"
        )
    # layers that hold a fixed transform (a spectral head's DFT) are never pruned either
    return heads + [m for m in model.modules() if getattr(m, "ppgedge_unprunable", False)]


class ChannelPruner:
    """Greedy structured pruning over Torch-Pruning's dependency groups.

    Each :meth:`prune_once` removes the least important channels of one group (down to the next
    multiple of ``round_to``), choosing the group that keeps the largest share of its reference
    width (``reference_widths`` by root layer name, default: the widths now) after the cut, and
    among equals the cut of lowest importance relative to its group's mean when the pruner was
    built. The model's input channels and the 180 class outputs are never pruned. The graph
    stays valid across increments (Torch-Pruning edits the layers in place).
    """

    def __init__(
        self,
        model: nn.Module,
        in_channels: int,
        window_samples: int,
        *,
        criterion: str = "l1",
        round_to: int = 4,
        kind: str = "params",
        reference_widths: dict[str, int] | None = None,
    ) -> None:
        tp = _torch_pruning()
        if criterion not in CRITERIA:
            raise PpgedgeError(f"unknown criterion '{criterion}': use {', '.join(CRITERIA)}")
        self.model = model.eval()  # tracing must not update batch-norm statistics
        self.round_to = max(1, int(round_to))
        self.kind = kind
        self.ignored = _output_layers(model)
        example = torch.zeros(1, in_channels, window_samples)
        self.dg = tp.DependencyGraph().build_dependency(model, example_inputs=example)
        if criterion == "taylor":
            self.importance = tp.importance.GroupTaylorImportance(normalizer=None)
        else:
            p = 1 if criterion == "l1" else 2
            self.importance = tp.importance.GroupMagnitudeImportance(p=p, normalizer=None)
        self._roots = [
            (group[0].dep.target.module, group[0].dep.handler)
            for group in self.dg.get_all_groups(
                ignored_layers=self.ignored, root_module_types=[*_CONV_TYPES, nn.Linear]
            )
        ]
        self._names = {m: n for n, m in model.named_modules()}
        self._width0 = {**self.widths(), **(reference_widths or {})}
        # importance relative to each group's mean now: comparable across groups, and a group
        # that has lost its weak channels does not look weak again (as per-call normalising does)
        self._reference: dict[nn.Module, float] = {}
        for root, handler in self._roots:
            channels = self.dg.get_out_channels(root)
            imp = self._raw_importance(
                self.dg.get_pruning_group(root, handler, list(range(channels)))
            )
            self._reference[root] = float(imp.mean()) if imp is not None else 0.0

    def widths(self) -> dict[str, int]:
        """Channels of every prunable group, by the name of its root layer."""
        return {self._names[root]: self.dg.get_out_channels(root) for root, _ in self._roots}

    def _raw_importance(self, group: Any) -> torch.Tensor | None:
        imp = self.importance(group)
        if imp is None:
            return None
        return torch.nan_to_num(imp.detach().float().cpu(), nan=0.0, posinf=1e30)

    def _keep(self, channels: int, to_minimum: bool) -> int | None:
        """Channels left after the next cut (a multiple of ``round_to``), None if at minimum."""
        r = self.round_to
        if channels <= r:
            return None
        if to_minimum:
            return r
        return channels - (channels % r or r)

    def candidates(
        self, to_minimum: bool = False
    ) -> list[tuple[tuple[float, float], nn.Module, Any, list]]:
        """(rank, root layer, pruning function, channel indices) of every possible next cut,
        the one to make first first."""
        found = []
        for root, handler in self._roots:
            channels = self.dg.get_out_channels(root)
            keep = self._keep(channels, to_minimum)
            if keep is None:
                continue
            group = self.dg.get_pruning_group(root, handler, list(range(channels)))
            if to_minimum:
                found.append(((0.0, 0.0), root, handler, list(range(channels - keep))))
                continue
            imp = self._raw_importance(group)
            if imp is None or len(imp) != channels:
                continue
            cut = torch.argsort(imp)[: channels - keep]
            share = round(keep / max(1, self._width0.get(self._names[root], channels)), 9)
            score = float(imp[cut].mean()) / max(self._reference.get(root, 0.0), 1e-30)
            found.append(((-share, score), root, handler, cut.tolist()))
        found.sort(key=lambda c: c[0])
        return found

    def prune_once(self, to_minimum: bool = False) -> bool:
        """Make the cheapest cut (every cut at once when ``to_minimum``); False if none is left."""
        done = False
        for _, root, handler, idxs in self.candidates(to_minimum):
            group = self.dg.get_pruning_group(root, handler, idxs)
            if self.dg.check_pruning_group(group):
                group.prune()
                done = True
                if not to_minimum:
                    break
        return done

    def prune_to(self, target: float, in_channels: int, window_samples: int) -> bool:
        """Cut until the metric is at most ``target``; False if the model cannot get there."""
        while _metric(self.model, self.kind, in_channels, window_samples) > target:
            if not self.prune_once():
                return False
        return True


def smallest_reachable(
    model: nn.Module, in_channels: int, window_samples: int, round_to: int = 4
) -> dict[str, int]:
    """Metrics of ``model`` with every prunable group at ``round_to`` channels (or its own
    smaller count): the floor of what pruning this architecture can reach."""
    small = copy.deepcopy(model)
    pruner = ChannelPruner(small, in_channels, window_samples, round_to=round_to)
    while pruner.prune_once(to_minimum=True):
        pass
    return measure(small, in_channels, window_samples)


def _depthwise_layers(model: nn.Module) -> list[str]:
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, _CONV_TYPES) and 1 < m.groups == m.in_channels == m.out_channels
    ]


def _check_export_friendly(
    model: nn.Module, depthwise: list[str], in_channels: int, window_samples: int
) -> None:
    """Pruning must keep what the int8 export relies on: (1, k) kernels, depthwise layers
    depthwise, the input channels and the 180 outputs. A failure here is a bug."""
    modules = dict(model.named_modules())
    for name in depthwise:
        m = modules[name]
        if not (m.groups == m.in_channels == m.out_channels):
            raise RuntimeError(f"pruning broke depthwise layer {name}: {m}")
    for name, m in modules.items():
        if isinstance(m, nn.Conv2d) and m.kernel_size[0] != 1:
            raise RuntimeError(f"pruning changed the kernel of {name}: {m}")
    with torch.no_grad():
        out = model.eval()(torch.zeros(2, in_channels, window_samples))
    if out.shape != (2, N_CLASSES):
        raise RuntimeError(f"pruned model outputs {tuple(out.shape)}, not (2, {N_CLASSES})")


# ----------------------------------------------------------------------------- the stage


@dataclass
class PruneResult:
    """The pruned checkpoint (the input one when there was nothing to do) and one row per step:
    step 0 is the input model; each later row is after that step's fine-tuning."""

    checkpoint: Checkpoint
    steps: list[dict[str, Any]] = field(default_factory=list)
    nothing_to_do: bool = False
    budget: Budget | None = None  # absolute
    smallest: dict[str, int] | None = None  # metrics of the smallest reachable model


def _finetune_config(parent: Checkpoint, epochs: int, seed: int, lr: float | None) -> TrainConfig:
    """The parent's own training settings (augmentation, batch size...) where it has them, with
    a fine-tuning learning rate (at most 1e-3): a trained network needs small steps."""
    cfg = training_config_of(parent)
    return replace(
        cfg,
        arch=parent.arch,
        arch_kwargs=dict(parent.arch_kwargs),
        channels=",".join(parent.data_format.channels),
        epochs=epochs,
        seed=seed,
        lr=lr if lr is not None else min(cfg.lr, 1e-3),
    )


class _Teaching:
    """The teacher side of fine-tuning, loaded once: a fresh distiller per fine-tune (feature
    adaptors are sized for the current, smaller student), the logits cache shared."""

    def __init__(
        self,
        path: str | Path,
        dataset: Dataset,
        method: str,
        cache_dir: str | Path | None,
        device: str,
    ) -> None:
        from ppgedge.distill.cache import teacher_logits
        from ppgedge.distill.methods import DISTILLERS
        from ppgedge.distill.teachers import check_teacher_matches, load_teacher

        if method not in DISTILLERS:
            raise PpgedgeError(
                f"unknown distillation method '{method}' for fine-tuning a pruned model: "
                f"use one of {', '.join(DISTILLERS)}"
            )
        self.method = method
        self.teacher = load_teacher(path, dataset.fmt)
        check_teacher_matches(self.teacher, dataset)
        self.cached = None
        if not DISTILLERS[method].needs_features:
            self.cached = teacher_logits(
                self.teacher, dataset, cache_dir=cache_dir, device="cpu"
            ).logits
        self.teacher.to(pick_device(device))

    def objective(self, model: nn.Module, cfg: TrainConfig, channels: tuple[str, ...]) -> Objective:
        from ppgedge.distill.objective import DistillObjective
        from ppgedge.distill.run import build_distiller

        overrides: dict[str, Any] = {}
        if self.method == "feature":
            probe = copy.deepcopy(model).cpu().eval()
            x = torch.zeros(2, len(channels), self.teacher.data_format.window_samples)
            with torch.no_grad():
                feats, _ = probe.forward_with_features(x)  # type: ignore[operator]
            overrides["student_channels"] = [f.shape[1] for f in feats]
        distiller = build_distiller(self.method, cfg.arch, self.teacher, cfg, overrides)
        return DistillObjective(self.teacher, distiller, channels, cached_logits=self.cached)


def prune(
    ckpt_path: str | Path,
    dataset: Dataset,
    split: Split,
    out: str | Path,
    budget: Budget | str,
    *,
    criterion: str = "l1",
    steps: int = 4,
    finetune_epochs: int = 3,
    final_epochs: int = 6,
    round_to: int = 4,
    teacher: str | Path | None = None,
    method: str = "dkd",
    cache_dir: str | Path | None = None,
    device: str = "auto",
    seed: int = 0,
    lr: float | None = None,
    observer: TrainingObserver | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> PruneResult:
    """Prune ``ckpt_path`` to ``budget`` and write the smaller model to ``out``.

    Fine-tuning runs ``finetune_epochs`` after each step but the last and ``final_epochs`` after
    it (0 skips it), supervised or, with ``teacher``, with distillation ``method``. A budget the
    model already meets returns the input checkpoint with ``nothing_to_do`` and writes nothing;
    a budget below the smallest reachable model is a :class:`PpgedgeError` naming that size.
    ``on_step`` receives each row of the step table as it is finished.
    """
    if steps < 1:
        raise PpgedgeError(f"--steps must be at least 1, got {steps}")
    if round_to < 1:
        raise PpgedgeError(f"--round-to must be at least 1, got {round_to}")
    if finetune_epochs < 0 or final_epochs < 0:
        raise PpgedgeError("fine-tuning epochs cannot be negative")
    if criterion not in CRITERIA:
        raise PpgedgeError(f"unknown criterion '{criterion}': use {', '.join(CRITERIA)}")
    budget = parse_budget(budget) if isinstance(budget, str) else budget
    out = Path(out)
    parent = load_checkpoint(ckpt_path)
    parent_record = model_record(ckpt_path, parent)
    model = parent.build()
    _output_layers(model)
    fmt = parent.data_format
    c, t = len(fmt.channels), fmt.window_samples
    first = measure(model, c, t)
    start_value = _metric_of(first, budget.kind)
    budget = budget.resolve(start_value)
    row0 = {"step": 0, **first, "val_mae": None, "val_mae_pruned": None, "seconds": 0.0}
    if start_value <= budget.value:
        return PruneResult(parent, [row0], nothing_to_do=True, budget=budget)
    smallest = smallest_reachable(model, c, t, round_to)
    if _metric_of(smallest, budget.kind) > budget.value:
        raise PpgedgeError(
            f"budget {budget.describe()} is below the smallest reachable "
            f"{format_value(budget.kind, _metric_of(smallest, budget.kind))} for this "
            f"architecture ({parent.arch} with every layer at {round_to} channels; it has "
            f"{format_value(budget.kind, start_value)} now): raise the budget, lower "
            "--round-to, or distil into a smaller architecture first"
        )

    check_compatible(fmt, dataset)
    parts = split.indices(dataset.subject_names())
    if len(parts["train"]) == 0 or len(parts["val"]) == 0:
        raise PpgedgeError(
            f"split '{split.name}' leaves no training or no validation windows in {dataset.path}"
        )
    val_src = WindowSource(dataset, parts["val"], fmt.channels, preprocessing=fmt.preprocessing)
    eval_dev = pick_device(device)
    tunes = finetune_epochs > 0 or final_epochs > 0
    teaching = _Teaching(teacher, dataset, method, cache_dir, device) if teacher and tunes else None
    depthwise = _depthwise_layers(model)

    def report(row: dict[str, Any]) -> None:
        rows.append(row)
        if on_step is not None:
            on_step(row)

    def val_mae(m: nn.Module) -> dict[str, float]:
        return mae_by_decoder(m, val_src, eval_dev)

    rows: list[dict[str, Any]] = []
    row0["val_mae"] = row0["val_mae_pruned"] = min(val_mae(model).values())
    model.cpu()
    report(row0)
    targets = [start_value * (budget.value / start_value) ** (i / steps) for i in range(1, steps)]
    targets.append(budget.value)
    widths0: dict[str, int] | None = None  # group widths before pruning: the shares' base
    pruned_val: dict[str, float] = {}
    final_run: Checkpoint | None = None  # the trainer's checkpoint of the current model, if any
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory(prefix="ppgedge-prune-") as work_dir:
        work = Path(work_dir)
        for i, target in enumerate(targets, start=1):
            t0 = time.perf_counter()
            model = model.cpu().eval()
            if _metric(model, budget.kind, c, t) <= target:
                continue  # an earlier step already overshot this one
            if criterion == "taylor":
                _taylor_gradients(model, dataset, parts["train"], fmt, seed + i, parent)
            pruner = ChannelPruner(
                model,
                c,
                t,
                criterion=criterion,
                round_to=round_to,
                kind=budget.kind,
                reference_widths=widths0,
            )
            widths0 = widths0 or pruner.widths()
            if not pruner.prune_to(target, c, t):  # pragma: no cover - ruled out above
                raise PpgedgeError(f"could not prune {parent.arch} to {budget.describe()}")
            model.zero_grad(set_to_none=True)
            pruned_val = val_mae(model)
            pruned_mae = min(pruned_val.values())
            model.cpu()
            # the step that meets the budget is the last one (an overshoot can end early)
            last = _metric(model, budget.kind, c, t) <= budget.value
            epochs = final_epochs if last else finetune_epochs
            final_run = None
            if epochs > 0:
                final_run = _finetune(
                    model,
                    parent,
                    dataset,
                    split,
                    work,
                    i,
                    epochs,
                    seed,
                    lr,
                    teaching,
                    device,
                    observer,
                )
                model = final_run.build()
                mae = float(final_run.metrics["val_mae"])
            else:
                mae = pruned_mae
            row = {"step": i, **measure(model, c, t), "val_mae": mae}
            row["val_mae_pruned"] = pruned_mae
            row["seconds"] = round(time.perf_counter() - t0, 2)
            report(row)
            if last:
                break

    model = model.cpu().eval()
    _check_export_friendly(model, depthwise, c, t)
    final = measure(model, c, t)
    if final_run is not None:
        training = dict(final_run.training)
        metrics = dict(final_run.metrics)
        decoder = final_run.decode
    else:  # no fine-tuning at the end: measure the pruned weights as they are
        val = pruned_val  # the last step's evaluation, of these very weights
        decoder = min(val, key=val.get)
        metrics = {"val_mae": val[decoder], "val_mae_by_decoder": val}
        training = {
            "method": "prune",
            "dataset": str(dataset.path),
            "dataset_sha256": dataset_sha256(dataset.path),
            "dataset_source": dataset.source,
            "split": split.to_dict(),
            "device": str(eval_dev),
        }
    metrics.update(final)
    settings = {
        "budget": budget.to_dict(),
        "criterion": criterion,
        "round_to": round_to,
        "steps": steps,
        "finetune_epochs": finetune_epochs,
        "final_epochs": final_epochs,
    }
    training["prune"] = {**settings, "table": rows, "smallest_reachable": smallest}
    stage: dict[str, Any] = {
        "stage": "prune",
        **settings,
        "fine_tune": training["method"],
        "from": first,
        "to": final,
    }
    if teaching is not None:
        stage["teacher"] = teaching.teacher.record()
    ckpt = checkpoint_from_model(
        model,
        fmt,
        decode=decoder,
        # fine-tuned: the tracker fitted on the pruned model; else the parent's, as it was
        tracker=final_run.tracker if final_run is not None else dict(parent.tracker),
        metrics=metrics,
        training=training,
        parent=parent_record,
        lineage=[*parent.lineage, stage],
    )
    save_checkpoint(ckpt, out)
    _check_round_trip(model, out, c, t)
    return PruneResult(ckpt, rows, nothing_to_do=False, budget=budget, smallest=smallest)


def _taylor_gradients(
    model: nn.Module,
    dataset: Dataset,
    train_idx: np.ndarray,
    fmt: Any,
    seed: int,
    parent: Checkpoint,
) -> None:
    """Accumulate soft-target-loss gradients over a few training batches: first-order Taylor
    importance is |weight x gradient|. Batch norm stays in eval mode (statistics untouched)."""
    sigma = float((parent.training.get("config") or {}).get("label_sigma_bpm", 1.5))
    source = WindowSource(dataset, train_idx, fmt.channels, preprocessing=fmt.preprocessing)
    model.eval()
    model.zero_grad(set_to_none=True)
    rng = np.random.default_rng(seed)
    for n, (_, x, y) in enumerate(source.batches(_TAYLOR_BATCH_SIZE, rng)):
        if n >= _TAYLOR_BATCHES:
            break
        soft_target_loss(model(x), y, sigma).backward()


def _finetune(
    model: nn.Module,
    parent: Checkpoint,
    dataset: Dataset,
    split: Split,
    work: Path,
    step: int,
    epochs: int,
    seed: int,
    lr: float | None,
    teaching: _Teaching | None,
    device: str,
    observer: TrainingObserver | None,
) -> Checkpoint:
    """Fine-tune the pruned model in the normal trainer, started from a checkpoint of it."""
    start = work / f"step{step}.pruned.pt"
    save_checkpoint(
        checkpoint_from_model(
            model, parent.data_format, decode=parent.decode, lineage=list(parent.lineage)
        ),
        start,
    )
    cfg = _finetune_config(parent, epochs, seed, lr)
    objective = (
        teaching.objective(model, cfg, tuple(parent.data_format.channels)) if teaching else None
    )
    return train(
        dataset,
        split,
        work / f"step{step}.tuned.pt",
        cfg,
        init_from=start,
        device=device,
        observer=observer,
        objective=objective,
    )


def _check_round_trip(model: nn.Module, path: Path, in_channels: int, window: int) -> None:
    """The written checkpoint must rebuild the very network in memory (layer shapes included)."""
    again = load_checkpoint(path).build()
    x = torch.randn(3, in_channels, window, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = model.eval()(x), again(x)
    if a.shape != b.shape or not torch.allclose(a, b, atol=1e-5, rtol=1e-4):
        raise RuntimeError(f"bug: {path} does not rebuild the pruned model it was written from")
