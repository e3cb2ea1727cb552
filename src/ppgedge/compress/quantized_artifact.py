"""The ``ppgedge.quantized/1`` artifact: what PTQ and QAT save, and what export loads.

One ``torch.save`` file of plain containers and tensors (loads with ``weights_only=True``, so
opening it runs no code) holding the float base checkpoint, the quantizer configuration and the
*state dict* of the prepared graph (weights plus every observer/fake-quant buffer: scales, zero
points, ranges). No GraphModule is pickled: loading re-exports the float model, prepares it with
the same quantizer and loads that state, which puts exactly the learned scales back.
"""

from __future__ import annotations

import copy
import datetime as _dt
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ppgedge import __version__
from ppgedge.atomic import atomic_path
from ppgedge.compress.annotations import has_fused_patterns
from ppgedge.compress.pt2e import (
    FAKE_QUANT,
    QUANTIZER,
    QUANTIZER_CONFIG,
    _pt2e,
    build_prepared,
    scheme,
    set_observers,
)
from ppgedge.data.format import DataFormat
from ppgedge.errors import PpgedgeError
from ppgedge.models.checkpoint import SCHEMA as CHECKPOINT_SCHEMA
from ppgedge.models.checkpoint import Checkpoint, load_weights_only, story_fields
from ppgedge.ownership import CHECKPOINT, claim

SCHEMA = "ppgedge.quantized/1"
ARTIFACT_SUFFIX = ".int8.pt"
# Artifacts made before the two annotations: they load while their graph has neither pattern
# (the prepared state then fits), otherwise ``prepared()`` says to re-create them.
LEGACY_QUANTIZERS = ("litert_torch.quantize.pt2e_quantizer.PT2EQuantizer",)


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
            saved, now = self.scheme.get("versions"), scheme(self.is_qat)["versions"]
            why = (
                f"it was made with other library versions ({saved}; now {now})"
                if saved != now
                else "the libraries are the same, so the graph ppgedge builds for this model "
                f"changed since ppgedge {self.ppgedge_version or '?'} saved it"
            )
            raise PpgedgeError(
                f"{self.path or 'artifact'}: saved quantizer state does not fit the rebuilt "
                f"graph ({first}); {why}: re-create it (ppgedge qat or ppgedge quantize)"
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
            **story_fields(raw, path),
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
