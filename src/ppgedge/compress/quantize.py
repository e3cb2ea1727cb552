"""Int8 quantisation in the TFLite scheme, through the PyTorch 2 export (PT2E) flow.

The scheme is the one TFLite Micro runs: int8 weights, symmetric per output channel; int8
activations, asymmetric per tensor; int32 biases; batch norm folded into the convolutions. It is
produced by litert-torch's ``PT2EQuantizer`` on a ``torch.export`` graph of the (B, C, 1, T)
model, which is the same quantizer the exporter (``litert_torch.convert``) lowers from. Scales
therefore never pass through a second calibrator: the scales learned here are, bit for bit, the
scales in the ``.tflite``.

Two ways in:

* :func:`ptq` calibrates observers on representative windows (post-training quantisation), the
  baseline that quantisation-aware training has to beat;
* :func:`qat` starts from the same kind of calibration, then trains the fake-quantised graph
  (soft targets, or a distillation loss from a teacher), freezes batch-norm statistics and
  observers for the last epoch, and keeps the epoch with the best fake-quant validation MAE.

The result is a ``ppgedge.quantized/1`` artifact: one ``torch.save`` file of plain containers
and tensors (loads with ``weights_only=True``, so opening it runs no code) holding the float base
checkpoint, the quantizer configuration and the *state dict* of the prepared graph (weights plus
every observer/fake-quant buffer: scales, zero points, ranges). No GraphModule is pickled: loading
re-exports the float model, prepares it with the same quantizer and loads that state, which puts
exactly the learned scales back. :func:`to_tflite` converts it without recalibration;
:func:`tflm_predict` runs the result in the TFLite Micro host runtime, the oracle for what the
device computes.

Workarounds for torch 2.13 + torchao 0.18 + litert-torch 0.10 (installed once, see
:func:`_install_pt2e_fixes`): torchao's pattern exporter is handed plain functions by litert's
conv-bn annotator and by torchao's own QAT fusion/folding, which ``torch.export`` now refuses
("Expected `mod` to be an instance of `torch.nn.Module`"), so they are wrapped in a Module; and
QAT conversion exported 96 match/replacement patterns (about 15-30 s on two cores) for conv
kinds the model does not contain, so those are skipped and patterns are memoised per process.
QAT uses torchao's plain ``FakeQuantize`` rather than the fused op litert-torch's config names,
because the fused CPU op trains with scales that differ from the ones exported (see
:func:`_quantizer`).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as _dt
import functools
import importlib
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ppgedge import __version__
from ppgedge.atomic import atomic_path
from ppgedge.compress.annotations import has_fused_patterns, tflite_quantizer
from ppgedge.compress.runtimes import quiet_stderr, tflm_mae, tflm_predict
from ppgedge.compress.tflite_file import scales_of_tflite, tflite_ops
from ppgedge.data.fingerprint import dataset_sha256
from ppgedge.data.format import DataFormat, Dataset
from ppgedge.data.loader import WindowSource
from ppgedge.data.splits import Split
from ppgedge.errors import PpgedgeError
from ppgedge.evaluate.predict import check_compatible, eval_indices, mae_by_decoder
from ppgedge.models.checkpoint import SCHEMA as CHECKPOINT_SCHEMA
from ppgedge.models.checkpoint import (
    Checkpoint,
    load_checkpoint,
    load_weights_only,
    model_record,
)
from ppgedge.ownership import CHECKPOINT, claim
from ppgedge.train.objective import Objective, Supervised
from ppgedge.train.trainer import (
    EpochReport,
    TrainConfig,
    TrainingObserver,
    pick_device,
    warmup_cosine,
)

SCHEMA = "ppgedge.quantized/1"
ARTIFACT_SUFFIX = ".int8.pt"
QUANTIZER = "litert_torch PT2EQuantizer + ppgedge linear_relu, avg_pool2d annotations"
# Artifacts made before the two annotations: they load while their graph has neither pattern
# (the prepared state then fits), otherwise ``prepared()`` says to re-create them.
LEGACY_QUANTIZERS = ("litert_torch.quantize.pt2e_quantizer.PT2EQuantizer",)
QUANTIZER_CONFIG = "get_symmetric_quantization_config"
FAKE_QUANT = "torchao FakeQuantize (unfused) + moving-average min/max observers"
PARTS = ("train", "val", "test", "all")
QAT_METHODS = ("hard", "soft", "dkd")  # logit-based: the exported graph exposes no feature maps

# ---------------------------------------------------------------------------------------------
# PT2E plumbing
# ---------------------------------------------------------------------------------------------


def _require(module: str, what: str) -> Any:
    try:
        if module in sys.modules:
            return sys.modules[module]
        with quiet_stderr():  # TensorFlow's C++ start-up lines (oneDNN notice) on fd 2
            return importlib.import_module(module)
    except ImportError as exc:
        raise PpgedgeError(
            f"{what} needs '{module.split('.')[0]}' ({exc}): install litert-torch==0.10.0, "
            "tflite-micro and torch==2.13.0 in one command"
        ) from None


@functools.cache
def _pt2e() -> Any:
    """torchao's PT2E entry points (imported on first use: they are slow to import)."""
    ns = _require("torchao.quantization.pt2e", "quantisation")
    qpt2e = _require("torchao.quantization.pt2e.quantize_pt2e", "quantisation")
    _install_pt2e_fixes()
    ns.prepare_pt2e = qpt2e.prepare_pt2e
    ns.prepare_qat_pt2e = qpt2e.prepare_qat_pt2e
    ns.convert_pt2e = qpt2e.convert_pt2e
    return ns


def _unfused(spec: Any) -> Any:
    """The same quantisation spec with torchao's plain ``FakeQuantize`` in place of
    ``FusedMovingAvgObsFakeQuantize`` (same moving-average observer and arguments)."""
    if spec is None:
        return None
    from torchao.quantization.pt2e.fake_quantize import FakeQuantize
    from torchao.quantization.pt2e.observer import MovingAverageMinMaxObserver

    kwargs = dict(spec.observer_or_fake_quant_ctr.p.keywords)
    kwargs.setdefault("observer", MovingAverageMinMaxObserver)
    return dataclasses.replace(spec, observer_or_fake_quant_ctr=FakeQuantize.with_args(**kwargs))


def _quantizer(is_qat: bool) -> Any:
    """litert-torch's TFLite quantizer: per-channel symmetric weights, per-tensor activations.

    For QAT the fake quantisers are unfused. The fused CPU op computes its own scales, which
    are not the ones ``convert_pt2e`` (hence the .tflite) takes from the observer: weight scales
    came out as absmax/127.5 instead of absmax/127, and a channel whose weights all share one
    sign got a zero point of 127 (TFLite needs 0). Plain ``FakeQuantize`` trains with exactly
    the observer's ``calculate_qparams()``, the values that are exported.
    """
    q = _require("litert_torch.quantize.pt2e_quantizer", "quantisation")
    config = q.get_symmetric_quantization_config(is_per_channel=True, is_qat=is_qat)
    if is_qat:
        config = dataclasses.replace(
            config,
            input_activation=_unfused(config.input_activation),
            output_activation=_unfused(config.output_activation),
            weight=_unfused(config.weight),
        )
    return tflite_quantizer(config)


def _hashable(value: Any, by_value: bool = False) -> Any:
    """A cache key for a pattern argument: example tensors by shape and dtype (they become
    placeholders, their random values do not matter); tensors a pattern closes over by value;
    everything else by value (TypeError when unhashable: no caching then)."""
    if isinstance(value, torch.Tensor):
        key = ("tensor", tuple(value.shape), str(value.dtype), str(value.device))
        return (*key, tuple(value.flatten().tolist())) if by_value else key
    if isinstance(value, (tuple, list)):
        return tuple(_hashable(v, by_value) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v, by_value)) for k, v in value.items()))
    hash(value)
    return value


def _pattern_key(pattern: Any, example_inputs: Any, is_cuda: bool, kwargs: dict) -> Any:
    fn = getattr(pattern, "fn", pattern) if isinstance(pattern, nn.Module) else pattern
    code = getattr(fn, "__code__", None)
    if code is None:
        raise TypeError("not a plain function")
    cells = tuple(_hashable(c.cell_contents, by_value=True) for c in (fn.__closure__ or ()))
    defaults = _hashable(fn.__defaults__ or (), by_value=True)
    return (code, cells, defaults, _hashable(example_inputs), is_cuda, _hashable(kwargs))


_FIXES_INSTALLED = False


def _install_pt2e_fixes() -> None:
    """Patch torchao/litert-torch internals in this process (idempotent; semantics unchanged).

    1. ``_get_aten_graph_module_for_pattern`` receives plain functions from litert-torch's
       conv-bn annotator and torchao's QAT fuse/fold passes; torch 2.13's ``torch.export``
       accepts only Modules, so functions are wrapped in torchao's own ``WrapperModule``.
       Results are memoised (a deep copy is returned: callers mutate the pattern graph).
    2. QAT fusion and folding try conv1d, conv2d and both transposed convs (the fold: 24
       patterns each); kinds absent from the graph are skipped.
    """
    global _FIXES_INSTALLED
    if _FIXES_INSTALLED:
        return
    from torchao.quantization.pt2e import qat_utils, utils
    from torchao.quantization.pt2e.export_utils import WrapperModule

    original = utils._get_aten_graph_module_for_pattern
    cache: dict[Any, Any] = {}

    def pattern_graph(pattern, example_inputs, is_cuda=False, **kwargs):
        with warnings.catch_warnings():  # torch's pytree deprecation, raised by deepcopy
            warnings.simplefilter("ignore", FutureWarning)
            return _pattern_graph(pattern, example_inputs, is_cuda, **kwargs)

    def _pattern_graph(pattern, example_inputs, is_cuda=False, **kwargs):
        try:
            key = _pattern_key(pattern, example_inputs, is_cuda, kwargs)
        except (TypeError, ValueError):  # unhashable or empty closure cell: no caching
            key = None
        if key is not None and key in cache:
            return copy.deepcopy(cache[key])
        module = pattern if isinstance(pattern, nn.Module) else WrapperModule(pattern)
        gm = original(module, example_inputs, is_cuda, **kwargs)
        if key is not None:
            cache[key] = copy.deepcopy(gm)
        return gm

    targets = [utils, qat_utils]
    with contextlib.suppress(ImportError), quiet_stderr():
        targets.append(importlib.import_module("litert_torch.quantize.pt2e_quantizer_utils"))
    for mod in targets:
        if hasattr(mod, "_get_aten_graph_module_for_pattern"):
            mod._get_aten_graph_module_for_pattern = pattern_graph

    def only_present(helper: Callable) -> Callable:
        def run(m, conv_fn, example_inputs, is_cuda=False):
            prefix = f"aten.{conv_fn.__name__}."
            present = any(
                n.op == "call_function" and str(n.target).startswith(prefix) for n in m.graph.nodes
            )
            return helper(m, conv_fn, example_inputs, is_cuda=is_cuda) if present else m

        return run

    qat_utils._fuse_conv_bn_qat_helper = only_present(qat_utils._fuse_conv_bn_qat_helper)
    qat_utils._fold_conv_bn_qat_helper = only_present(qat_utils._fold_conv_bn_qat_helper)
    _FIXES_INSTALLED = True


def export_example(fmt: DataFormat, batch: int = 2) -> torch.Tensor:
    """An input in the export layout (B, C, 1, T); batch 2 so the batch dimension stays free."""
    return torch.zeros(batch, len(fmt.channels), 1, fmt.window_samples)


def build_prepared(base: Checkpoint, is_qat: bool) -> torch.fx.GraphModule:
    """Float model -> ``torch.export`` (dynamic batch) -> prepared graph with observers (PTQ)
    or fake quantisers (QAT); in eval mode, ``.train()``/``.eval()`` switch batch norm."""
    pt = _pt2e()
    model = base.build().cpu()
    batch = torch.export.Dim("batch")
    exported = torch.export.export(
        model, (export_example(base.data_format),), dynamic_shapes=({0: batch},)
    )
    prepare = pt.prepare_qat_pt2e if is_qat else pt.prepare_pt2e
    prepared = prepare(exported.module(), _quantizer(is_qat))
    pt.allow_exported_model_train_eval(prepared)
    prepared.eval()
    return prepared


def set_observers(prepared: nn.Module, enabled: bool) -> None:
    """Let fake quantisers update their ranges (calibration, QAT) or freeze them."""
    pt = _pt2e()
    prepared.apply(pt.enable_observer if enabled else pt.disable_observer)


class Windows4D(nn.Module):
    """Takes the loaders' (B, C, T) windows and feeds the graph's (B, C, 1, T) input."""

    def __init__(self, graph: nn.Module) -> None:
        super().__init__()
        self.graph = graph

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph(x.unsqueeze(2) if x.dim() == 3 else x)


def calibrate(
    prepared: nn.Module, windows: np.ndarray | torch.Tensor, fmt: DataFormat, batch_size: int = 256
) -> int:
    """Run representative windows through the observers; returns how many were seen.

    Fake quantisers (QAT) see all windows in one batch, so their moving-average ranges start
    at the calibration set's min/max rather than being dominated by its first batch.
    """
    x = torch.as_tensor(np.asarray(windows, dtype=np.float32))
    if x.dim() == 4 and x.shape[2] == 1:
        x = x[:, :, 0]
    expected = (len(fmt.channels), fmt.window_samples)
    if x.dim() != 3 or tuple(x.shape[1:]) != expected:
        raise PpgedgeError(
            f"calibration windows have shape {tuple(x.shape)}; the model takes "
            f"(N, {expected[0]}, {expected[1]}) windows ({', '.join(fmt.channels)})"
        )
    if len(x) == 0:
        raise PpgedgeError(
            "no calibration windows: choose a split part that has windows or raise --windows"
        )
    if not torch.isfinite(x).all():
        raise PpgedgeError("calibration windows contain NaN or infinite values")
    fake_quant = any(hasattr(m, "fake_quant_enabled") for m in prepared.modules())
    step = len(x) if fake_quant else batch_size
    prepared.eval()
    if fake_quant:
        set_observers(prepared, True)
    with torch.no_grad():
        for start in range(0, len(x), step):
            prepared(x[start : start + step].unsqueeze(2))
    return len(x)


def _qparams(module: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """The (scale, zero point) that ``convert_pt2e`` will write for this observer."""
    scale, zp = module.calculate_qparams()
    return (
        np.atleast_1d(scale.detach().cpu().numpy().astype(np.float32)),
        np.atleast_1d(zp.detach().cpu().numpy().astype(np.int64)),
    )


# ---------------------------------------------------------------------------------------------
# Artifact
# ---------------------------------------------------------------------------------------------


def scheme(is_qat: bool) -> dict[str, Any]:
    """The quantizer configuration recorded in an artifact (and checked when it is loaded)."""
    versions = {"torch": str(torch.__version__)}
    for pkg in ("torchao", "litert_torch"):
        with contextlib.suppress(ImportError, AttributeError):
            versions[pkg] = str(importlib.import_module(pkg).__version__)
    return {
        "quantizer": QUANTIZER,
        "config": QUANTIZER_CONFIG,
        "is_per_channel": True,
        "is_qat": bool(is_qat),
        "is_dynamic": False,
        "fake_quant": FAKE_QUANT if is_qat else None,
        "weights": "int8, symmetric, per output channel",
        "activations": "int8, asymmetric, per tensor",
        "bias": "int32",
        "batch_norm": "folded",
        "input_layout": "B,C,1,T",
        "versions": versions,
    }


@dataclass
class QuantizedArtifact:
    """A float base checkpoint plus the quantizer state that turns it into int8."""

    base: Checkpoint
    scheme: dict[str, Any]
    prepared_state: dict[str, torch.Tensor]
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    parent: dict[str, Any] | None = None
    lineage: list[dict[str, Any]] = field(default_factory=list)
    created: str = ""
    ppgedge_version: str = __version__
    path: Path | None = None

    @property
    def is_qat(self) -> bool:
        return bool(self.scheme.get("is_qat"))

    @property
    def data_format(self) -> DataFormat:
        return self.base.data_format

    @property
    def decode(self) -> str:
        return self.base.decode

    def prepared(self) -> torch.fx.GraphModule:
        """The prepared graph with the saved weights and scales, observers frozen, eval mode."""
        prepared = build_prepared(self.base, self.is_qat)
        if self.scheme.get("quantizer") in LEGACY_QUANTIZERS and has_fused_patterns(prepared):
            raise PpgedgeError(
                f"{self.path or 'artifact'}: made before ppgedge fused Linear+ReLU and "
                "quantised avg_pool2d as the .tflite does; re-create it (ppgedge qat or "
                "ppgedge quantize)"
            )
        try:
            prepared.load_state_dict(self.prepared_state, strict=True)
        except (RuntimeError, KeyError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0][:160]
            raise PpgedgeError(
                f"{self.path or 'artifact'}: saved quantizer state does not fit the rebuilt "
                f"graph ({first}); it was made by other versions ({self.scheme.get('versions')})"
            ) from None
        if self.is_qat:
            set_observers(prepared, False)
        prepared.eval()
        return prepared

    def float_model(self) -> nn.Module:
        """The float network with the weights and batch-norm statistics the quantizer state
        holds (QAT changes them): what an ONNX (float) export of this artifact must carry."""
        model = self.base.build()
        state = self.prepared_state
        own = model.state_dict()
        model.load_state_dict({k: state.get(k, v) for k, v in own.items()}, strict=True)
        return model.eval()

    def reference(self) -> torch.fx.GraphModule:
        """The quantise/dequantise graph ``convert_pt2e`` makes (batch norm folded): in float
        arithmetic, what the int8 model computes, and what the exporter lowers."""
        return to_reference(self.prepared())

    def describe(self) -> dict[str, Any]:
        """Everything but the tensors, for reports and ``--json``."""
        d = self.to_dict()
        d.pop("prepared_state")
        d["base"] = self.base.describe()
        return d

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "base": self.base.to_dict(),
            "scheme": self.scheme,
            "prepared_state": self.prepared_state,
            "metrics": self.metrics,
            "training": self.training,
            "parent": self.parent,
            "lineage": self.lineage,
            "created": self.created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "ppgedge_version": self.ppgedge_version,
        }


def to_reference(prepared: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """``convert_pt2e`` on a copy (the prepared graph stays usable), in eval mode."""
    pt = _pt2e()
    prepared.eval()
    with warnings.catch_warnings():  # torch's own pytree deprecation, raised inside deepcopy
        warnings.simplefilter("ignore", FutureWarning)
        ref = pt.convert_pt2e(copy.deepcopy(prepared), fold_quantize=False)
    pt.allow_exported_model_train_eval(ref)
    return ref


def save_artifact(art: QuantizedArtifact, path: str | Path) -> Path:
    """Write atomically: a crash mid-write leaves the previous file (or nothing)."""
    path = Path(path)
    with atomic_path(path, kind=CHECKPOINT) as tmp:
        torch.save(art.to_dict(), tmp)
    art.path = path
    return path


def _checkpoint_from_dict(raw: dict[str, Any], path: Path) -> Checkpoint:
    if not isinstance(raw, dict) or raw.get("schema") != CHECKPOINT_SCHEMA:
        raise PpgedgeError(f"{path}: the artifact's base checkpoint is missing or corrupt")
    return Checkpoint.from_dict(raw)


def load_artifact(path: str | Path) -> QuantizedArtifact:
    """Load with ``weights_only=True``; anything that is not a quantised artifact is refused."""
    path = Path(path)
    raw = load_weights_only(path, "quantised model")
    schema = raw.get("schema") if isinstance(raw, dict) else None
    if schema == CHECKPOINT_SCHEMA:
        raise PpgedgeError(
            f"{path}: a float checkpoint, not a quantised model: run 'ppgedge quantize "
            f"{path} --ptq' or 'ppgedge qat {path}' first"
        )
    if schema != SCHEMA:
        raise PpgedgeError(f"{path}: not a ppgedge quantised model (schema {schema!r})")
    try:
        sch = dict(raw["scheme"])
        state = dict(raw["prepared_state"])
        base = _checkpoint_from_dict(raw["base"], path)
        art = QuantizedArtifact(
            base=base,
            scheme=sch,
            prepared_state=state,
            metrics=dict(raw.get("metrics") or {}),
            training=dict(raw.get("training") or {}),
            parent=raw.get("parent"),
            lineage=list(raw.get("lineage") or []),
            created=str(raw.get("created", "")),
            ppgedge_version=str(raw.get("ppgedge_version", "")),
            path=path,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PpgedgeError(
            f"{path}: quantised model is missing field {exc}: re-create it"
        ) from None
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise PpgedgeError(f"{path}: quantizer state is not a tensor dictionary: re-create it")
    if (
        sch.get("quantizer") not in (QUANTIZER, *LEGACY_QUANTIZERS)
        or sch.get("config") != QUANTIZER_CONFIG
        or sch.get("is_per_channel") is not True
        or sch.get("is_dynamic") is not False
        or (sch.get("is_qat") and sch.get("fake_quant") != FAKE_QUANT)
    ):
        raise PpgedgeError(
            f"{path}: quantizer {sch.get('quantizer')!r} with these settings is not supported "
            "(ppgedge writes per-channel static int8 from litert-torch's PT2EQuantizer)"
        )
    return art


def default_artifact_path(ckpt_path: str | Path, method: str) -> Path:
    """``model.pt`` -> ``model.qat.int8.pt`` (or ``.ptq.int8.pt``), next to the checkpoint."""
    ckpt_path = Path(ckpt_path)
    stem = ckpt_path.name.removesuffix(ckpt_path.suffix) if ckpt_path.suffix else ckpt_path.name
    return claim(ckpt_path.with_name(f"{stem}.{method}{ARTIFACT_SUFFIX}"), CHECKPOINT)


def _as_artifact(artifact: QuantizedArtifact | str | Path) -> QuantizedArtifact:
    return artifact if isinstance(artifact, QuantizedArtifact) else load_artifact(artifact)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def part_indices(dataset: Dataset, base: Checkpoint, part: str) -> tuple[np.ndarray, str]:
    """Windows of one part of the checkpoint's own split when it was trained on this dataset;
    every window otherwise (or for ``all``)."""
    if part not in PARTS:
        raise PpgedgeError(f"unknown part '{part}': use {', '.join(PARTS)}")
    try:
        return eval_indices(dataset, base, part)
    except PpgedgeError:
        return np.arange(len(dataset)), "all windows (the model's split is not of this dataset)"


def draw_windows(indices: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A seeded, sorted sample of ``n`` indices (all of them when there are fewer)."""
    if n < 1:
        raise PpgedgeError(f"need at least one calibration window (got {n})")
    rng = np.random.default_rng(seed)
    if len(indices) <= n:
        return np.sort(np.asarray(indices, dtype=np.int64))
    return np.sort(rng.choice(np.asarray(indices, dtype=np.int64), size=n, replace=False))


def _source(dataset: Dataset, indices: np.ndarray, base: Checkpoint) -> WindowSource:
    fmt = base.data_format
    return WindowSource(dataset, indices, fmt.channels, preprocessing=fmt.preprocessing)


def _check_data(dataset: Dataset, base: Checkpoint) -> None:
    check_compatible(base.data_format, dataset)
    if dataset.x.shape[2] != base.data_format.window_samples:
        raise PpgedgeError(
            f"{dataset.path}: windows have {dataset.x.shape[2]} samples, the model takes "
            f"{base.data_format.window_samples}"
        )


def _split_of(dataset: Dataset, base: Checkpoint) -> Split | None:
    split_d = base.training.get("split")
    if not split_d or base.training.get("dataset_sha256") != dataset_sha256(dataset.path):
        return None
    return Split.from_dict(split_d)


def _mae(
    model: nn.Module, source: WindowSource, decoder: str, device: torch.device | None = None
) -> float:
    return float(mae_by_decoder(model, source, device or torch.device("cpu"))[decoder])


# ---------------------------------------------------------------------------------------------
# PTQ and QAT
# ---------------------------------------------------------------------------------------------


@dataclass
class QuantResult:
    """What ``ptq``/``qat`` made: the artifact, where it was written, its headline metrics."""

    artifact: QuantizedArtifact
    path: Path
    metrics: dict[str, Any]


def _finish(
    art: QuantizedArtifact,
    out: Path,
    measure_tflm: bool,
    eval_src: WindowSource | None,
) -> QuantResult:
    """Optionally measure the deployed int8 MAE (TFLite Micro), then save."""
    if measure_tflm and eval_src is not None and len(eval_src):
        tmp = out.with_name(f".{out.name}.measure.tflite")
        try:
            to_tflite(art, tmp)
            art.metrics["tflm_val_mae"] = tflm_mae(tmp, eval_src, art.decode)
        finally:
            tmp.unlink(missing_ok=True)
        art.metrics["tflm_gap_bpm"] = art.metrics["tflm_val_mae"] - art.metrics["float_val_mae"]
    save_artifact(art, out)
    return QuantResult(art, out, art.metrics)


def ptq(
    ckpt_path: str | Path,
    dataset: Dataset,
    out: str | Path,
    *,
    n_windows: int = 512,
    part: str = "train",
    seed: int = 0,
    measure_tflm: bool = False,
) -> QuantResult:
    """Post-training quantisation: calibrate on ``n_windows`` windows drawn (seeded) from
    ``part`` of the checkpoint's split, no training. Metrics are on its validation subjects
    (every window when the checkpoint was not trained on ``dataset``)."""
    t0 = time.perf_counter()
    out = Path(out)
    base = load_checkpoint(ckpt_path)
    _check_data(dataset, base)
    pool, described = part_indices(dataset, base, part)
    calib_idx = draw_windows(pool, n_windows, seed)
    if len(calib_idx) == 0:
        raise PpgedgeError(f"no calibration windows in {described} of {dataset.path}")
    calib = _source(dataset, calib_idx, base).windows(np.arange(len(calib_idx)))
    prepared = build_prepared(base, is_qat=False)
    seen = calibrate(prepared, calib, base.data_format)

    split = _split_of(dataset, base)
    eval_idx = split.indices(dataset.subject_names())["val"] if split else np.arange(len(dataset))
    eval_src = _source(dataset, eval_idx, base)
    metrics: dict[str, Any] = {"eval_windows": len(eval_idx)}
    if len(eval_idx):
        metrics["float_val_mae"] = _mae(base.build(), eval_src, base.decode)
        metrics["fakequant_val_mae"] = _mae(
            Windows4D(to_reference(prepared)), eval_src, base.decode
        )
        metrics["fakequant_gap_bpm"] = metrics["fakequant_val_mae"] - metrics["float_val_mae"]
    metrics["seconds"] = round(time.perf_counter() - t0, 2)
    art = QuantizedArtifact(
        base=base,
        scheme=scheme(is_qat=False),
        prepared_state=_state(prepared),
        metrics=metrics,
        training={
            "method": "ptq",
            "dataset": str(dataset.path),
            "dataset_sha256": dataset_sha256(dataset.path),
            "calibration": {"windows": seen, "part": described, "seed": seed},
            "eval_part": "val subjects" if split else "all windows",
        },
        parent=model_record(ckpt_path, base),
        lineage=[*base.lineage, {"stage": "ptq", "arch": base.arch, "dataset": dataset.source}],
    )
    return _finish(art, out, measure_tflm, eval_src)


def ptq_windows(
    ckpt_path: str | Path, windows: np.ndarray, out: str | Path, *, source: str = "array"
) -> QuantResult:
    """Post-training quantisation from representative windows the user supplies (N, C, T),
    already preprocessed; no evaluation data, so no MAE is recorded."""
    t0 = time.perf_counter()
    base = load_checkpoint(ckpt_path)
    prepared = build_prepared(base, is_qat=False)
    seen = calibrate(prepared, windows, base.data_format)
    art = QuantizedArtifact(
        base=base,
        scheme=scheme(is_qat=False),
        prepared_state=_state(prepared),
        metrics={"seconds": round(time.perf_counter() - t0, 2)},
        training={"method": "ptq", "calibration": {"windows": seen, "source": source}},
        parent=model_record(ckpt_path, base),
        lineage=[*base.lineage, {"stage": "ptq", "arch": base.arch, "dataset": source}],
    )
    return _finish(art, Path(out), False, None)


def _state(prepared: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in prepared.state_dict().items()}


def _objective(
    teacher: str | Path | None,
    method: str,
    hparams: dict[str, Any] | None,
    base: Checkpoint,
    dataset: Dataset,
    epochs: int,
    sigma: float,
    cache_dir: str | Path | None,
) -> Objective:
    if teacher is None:
        return Supervised(sigma)
    if method not in QAT_METHODS:
        raise PpgedgeError(
            f"QAT distillation supports {', '.join(QAT_METHODS)} (got '{method}'): the "
            "quantised graph exposes logits only"
        )
    from ppgedge.distill.cache import teacher_logits
    from ppgedge.distill.objective import DistillObjective
    from ppgedge.distill.run import build_distiller
    from ppgedge.distill.teachers import check_teacher_matches, load_teacher

    t = load_teacher(teacher, dataset.fmt)
    check_teacher_matches(t, dataset)
    channels = tuple(base.data_format.channels)
    cfg = TrainConfig(
        arch=base.arch,
        arch_kwargs=dict(base.arch_kwargs),
        channels=",".join(channels),
        epochs=epochs,
    )
    distiller = build_distiller(method, base.arch, t, cfg, hparams or {})
    cached = teacher_logits(t, dataset, cache_dir=cache_dir, device="cpu").logits
    return DistillObjective(t, distiller, channels, cached_logits=cached, label=f"qat-{method}")


def qat(
    ckpt_path: str | Path,
    dataset: Dataset,
    split: Split | None,
    out: str | Path,
    *,
    epochs: int = 5,
    lr: float = 1e-4,
    weight_decay: float = 0.0,
    batch_size: int = 64,
    n_calibration: int = 512,
    freeze_epoch: int | None = None,
    teacher: str | Path | None = None,
    method: str = "dkd",
    hparams: dict[str, Any] | None = None,
    label_sigma_bpm: float = 1.5,
    seed: int = 0,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    observer: TrainingObserver | None = None,
    measure_tflm: bool = False,
) -> QuantResult:
    """Quantisation-aware training of a float checkpoint.

    ``split`` defaults to the checkpoint's own (it must have been trained on ``dataset``).
    Fake quantisers start from a calibration on ``n_calibration`` training windows; epochs from
    ``freeze_epoch`` on (default: the last one, when there are two or more) run with batch-norm
    statistics and quantiser ranges frozen. The epoch with the best fake-quant validation MAE
    (the calibrated start counts as epoch 0) is kept. Augmentation is off: QAT fine-tunes.
    """
    t0 = time.perf_counter()
    out = Path(out)
    observer = observer or TrainingObserver()
    if epochs < 1:
        raise PpgedgeError("QAT needs at least one epoch")
    base = load_checkpoint(ckpt_path)
    _check_data(dataset, base)
    split = split or _split_of(dataset, base)
    if split is None:
        raise PpgedgeError(
            f"{ckpt_path} was not trained on {dataset.path}: give a split (--split) for QAT"
        )
    parts = split.indices(dataset.subject_names())
    if len(parts["train"]) == 0 or len(parts["val"]) == 0:
        raise PpgedgeError(f"split '{split.name}' leaves no training or no validation windows")
    dev = pick_device(device)
    freeze = max(1, epochs - 1) if freeze_epoch is None else freeze_epoch
    torch.manual_seed(seed)

    objective = _objective(
        teacher, method, hparams, base, dataset, epochs, label_sigma_bpm, cache_dir
    )
    channels = tuple(base.data_format.channels)
    batch_channels = objective.input_channels() or channels
    train_src = WindowSource(
        dataset, parts["train"], batch_channels, preprocessing=base.data_format.preprocessing
    )
    val_src = _source(dataset, parts["val"], base)

    prepared = build_prepared(base, is_qat=True)
    calib_idx = draw_windows(np.arange(len(train_src)), n_calibration, seed)
    calib = train_src.windows(calib_idx)
    if batch_channels != channels:
        calib = calib[:, [batch_channels.index(c) for c in channels]]
    seen = calibrate(prepared, calib, base.data_format)
    model = Windows4D(prepared).to(dev)
    objective.to(dev)

    float_mae = _mae(base.build(), val_src, base.decode, dev)
    set_observers(prepared, False)
    best = {"epoch": 0, "mae": _mae(model, val_src, base.decode, dev), "state": _state(prepared)}
    history: list[dict[str, Any]] = [{"epoch": 0, "val_mae_fakequant": best["mae"]}]

    trainable = [*model.parameters(), *objective.parameters()]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    steps = -(-len(train_src) // batch_size)
    scheduler = warmup_cosine(optimizer, epochs * steps)
    observer.start(epochs, steps, 0)
    for epoch in range(epochs):
        t_epoch = time.perf_counter()
        frozen = epoch >= freeze
        set_observers(prepared, not frozen)
        model.train(not frozen)  # frozen: batch norm uses (and keeps) its running statistics
        objective.train()
        rng = np.random.default_rng([seed, epoch])
        torch.manual_seed(seed * 1000 + epoch)
        total, count = 0.0, 0
        for pos, x, y in train_src.batches(batch_size, rng):
            rows = torch.from_numpy(train_src.indices[pos])
            loss = objective.losses(model, x.to(dev), y.to(dev), rows, epoch, False)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(trainable, 5.0)
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(y)
            count += len(y)
            observer.batch(total / max(count, 1))
        set_observers(prepared, False)
        mae = _mae(model, val_src, base.decode, dev)
        if mae < best["mae"] - 1e-4:
            best = {"epoch": epoch + 1, "mae": mae, "state": _state(prepared)}
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": total / max(count, 1),
                "val_mae_fakequant": mae,
                "frozen": frozen,
            }
        )
        observer.epoch(
            EpochReport(
                epoch + 1,
                epochs,
                total / max(count, 1),
                mae,
                best["mae"],
                time.perf_counter() - t_epoch,
            )
        )

    model.cpu()
    prepared.load_state_dict(best["state"])
    set_observers(prepared, False)
    prepared.eval()
    metrics = {
        "float_val_mae": float_mae,
        "fakequant_val_mae": best["mae"],
        "fakequant_gap_bpm": best["mae"] - float_mae,
        "calibrated_val_mae": history[0]["val_mae_fakequant"],
        "best_epoch": best["epoch"],
        "epochs_run": epochs,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    stage: dict[str, Any] = {"stage": "qat", "arch": base.arch, "dataset": dataset.source}
    if objective.parent_record() is not None:
        stage["teacher"] = objective.parent_record()
    art = QuantizedArtifact(
        base=base,
        scheme=scheme(is_qat=True),
        prepared_state=_state(prepared),
        metrics=metrics,
        training={
            "method": "qat" if teacher is None else f"qat+distill:{method}",
            "objective": objective.describe(),
            "dataset": str(dataset.path),
            "dataset_sha256": dataset_sha256(dataset.path),
            "split": split.to_dict(),
            "calibration": {"windows": seen, "part": "train", "seed": seed},
            "config": {
                "epochs": epochs,
                "lr": lr,
                "weight_decay": weight_decay,
                "batch_size": batch_size,
                "freeze_epoch": freeze,
                "seed": seed,
                "label_sigma_bpm": label_sigma_bpm,
                "device": str(dev),
            },
            "history": history,
        },
        parent=model_record(ckpt_path, base),
        lineage=[*base.lineage, stage],
    )
    return _finish(art, out, measure_tflm, val_src)


# ---------------------------------------------------------------------------------------------
# TFLite conversion and the TFLite Micro host runtime
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_litert() -> Iterator[None]:
    """litert-torch prints a progress tree on stdout; the CLI renders its own."""
    key = "LITERT_TORCH_SHOW_PROGRESS"
    old = os.environ.get(key)
    os.environ[key] = "n"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def to_tflite(artifact: QuantizedArtifact | str | Path, out_path: str | Path) -> Path:
    """Full-int8 ``.tflite`` (int8 input and output) from an artifact, no recalibration.

    The input is channel-last, (1, 1, T, C): the layout TFLite kernels work in, so the
    converter needs no TRANSPOSE at the input (one would cost the device SRAM and time).
    """
    art = _as_artifact(artifact)
    litert_torch = _require("litert_torch", "TFLite conversion")
    qcfg = _require("litert_torch.quantize.quant_config", "TFLite conversion")
    ref = art.reference()
    channel_last = litert_torch.to_channel_last_io(ref, args=[0]).eval()
    example = export_example(art.data_format, batch=1).permute(0, 2, 3, 1).contiguous()
    out_path = Path(out_path)
    with _quiet_litert(), quiet_stderr():  # the converter's C++ info lines on fd 2
        edge = litert_torch.convert(
            channel_last,
            (example,),
            quant_config=qcfg.QuantConfig(pt2e_quantizer=_quantizer(art.is_qat)),
        )
        with atomic_path(out_path) as tmp:
            edge.export(str(tmp))
    return out_path


__all__ = ["scales_of_tflite", "tflite_ops", "tflm_mae", "tflm_predict"]


def _weight_source(node: Any) -> str:
    """The parameter a weight observer ultimately reads (through BN-folding arithmetic)."""
    frontier, seen = [node], set()
    while frontier:
        n = frontier.pop(0)
        if n in seen or not hasattr(n, "op"):
            continue
        seen.add(n)
        if n.op == "get_attr" and str(n.target).endswith("weight"):
            return str(n.target)
        frontier.extend(a for a in n.args if hasattr(a, "op"))
    return "?"


def scales_of_artifact(artifact: QuantizedArtifact | str | Path) -> dict[str, Any]:
    """The scales ``convert_pt2e`` writes, read from the prepared graph's observers: input,
    output and each conv/linear weight in graph order (comparable with
    :func:`scales_of_tflite`)."""
    prepared = _as_artifact(artifact).prepared()
    modules = dict(prepared.named_modules())

    def observer_of(node: Any) -> nn.Module | None:
        if node is not None and getattr(node, "op", None) == "call_module":
            mod = modules.get(str(node.target))
            if mod is not None and hasattr(mod, "calculate_qparams"):
                return mod
        return None

    def entry(mod: nn.Module) -> dict[str, Any]:
        scale, zp = _qparams(mod)
        return {"scale": scale, "zero_point": zp}

    result: dict[str, Any] = {"weights": []}
    targets = {
        torch.ops.aten.conv2d.default: "conv2d",
        torch.ops.aten.conv1d.default: "conv2d",
        torch.ops.aten.linear.default: "linear",
    }
    for node in prepared.graph.nodes:
        if node.op == "placeholder" and "input" not in result:
            for user in node.users:
                if (mod := observer_of(user)) is not None:
                    result["input"] = entry(mod)
                    break
        elif node.op == "call_function" and node.target in targets:
            mod = observer_of(node.args[1])
            if mod is not None:
                result["weights"].append(
                    {
                        "op": targets[node.target],
                        "param": _weight_source(node.args[1]),
                        **entry(mod),
                    }
                )
        elif node.op == "output":
            first = node.args[0]
            first = first[0] if isinstance(first, (tuple, list)) else first
            if (mod := observer_of(first)) is not None:
                result["output"] = entry(mod)
    return result
