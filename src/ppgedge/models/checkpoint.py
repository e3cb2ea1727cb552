"""Checkpoints: one file that tells a model's whole story.

A checkpoint holds the architecture name and arguments, the weights, the data format the model
expects (rate, window, channels, preprocessing), its metrics, the decoder chosen on validation
data, and its parent and lineage, so a later stage never asks the user for what an earlier one
knew. Only plain containers and tensors are stored, so it loads with
``torch.load(..., weights_only=True)``: opening a checkpoint cannot run code.
"""

from __future__ import annotations

import datetime as _dt
import pickle
import re
import struct
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ppgedge import __version__
from ppgedge.atomic import atomic_path, file_sha256
from ppgedge.data.format import DataFormat
from ppgedge.data.safe_pickle import check_materialised
from ppgedge.errors import PpgedgeError
from ppgedge.models.bpm import DECODERS
from ppgedge.models.registry import (
    MAX_PARAMETERS,
    check_arch_kwargs,
    count_parameters,
    create_model,
)
from ppgedge.models.reshape import apply_layer_shapes, shape_differences
from ppgedge.models.tracker import TransitionPrior
from ppgedge.ownership import CHECKPOINT

SCHEMA = "ppgedge.checkpoint/1"


@dataclass
class Checkpoint:
    arch: str
    arch_kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    data_format: DataFormat
    decode: str = "argmax"
    # The temporal tracker fitted for this model (evaluate.tracking.fit_tracker): transition
    # prior from the training labels, width and weight chosen on validation; {} when none.
    tracker: dict[str, Any] = field(default_factory=dict)
    layer_shapes: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    parent: dict[str, Any] | None = None
    lineage: list[dict[str, Any]] = field(default_factory=list)
    created: str = ""
    ppgedge_version: str = __version__
    path: Path | None = None

    def build(self) -> nn.Module:
        """The network with these weights, in eval mode.

        The architecture is first built on PyTorch's ``meta`` device (shapes, no memory) and the
        stored weights are checked against it, so the real model is allocated only when it is
        no larger than the weights the file holds.
        """
        check_arch_kwargs(self.arch, self.arch_kwargs, f"{self.path or 'checkpoint'}")
        self._check_weights_fit()
        model = create_model(self.arch, **self.arch_kwargs)
        try:
            apply_layer_shapes(model, self.layer_shapes)
            model.load_state_dict(self.state_dict)
        except (RuntimeError, ValueError) as exc:
            first = str(exc).splitlines()[0]
            raise PpgedgeError(
                f"checkpoint weights do not fit architecture '{self.arch}' ({first})"
            ) from None
        return model.eval()

    def _check_weights_fit(self) -> None:
        where = f"{self.path or 'checkpoint'}"
        try:
            with torch.device("meta"):
                meta = create_model(self.arch, **self.arch_kwargs)
                apply_layer_shapes(meta, self.layer_shapes)
        except PpgedgeError as exc:
            raise PpgedgeError(f"{where}: {exc}") from None
        except (TypeError, ValueError, RuntimeError, KeyError, AttributeError) as exc:
            raise PpgedgeError(
                f"{where}: architecture '{self.arch}' cannot be built from the checkpoint's "
                f"arguments and layer shapes ({_first_line(exc)}): re-create it"
            ) from None
        n_params = count_parameters(meta)
        if n_params > MAX_PARAMETERS:
            raise PpgedgeError(
                f"{where}: architecture '{self.arch}' with these arguments has {n_params:,} "
                f"parameters, more than the {MAX_PARAMETERS:,} ppgedge builds"
            )
        want = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
        have = {
            k: tuple(v.shape) if isinstance(v, torch.Tensor) else None
            for k, v in self.state_dict.items()
        }
        if want != have:
            bad = sorted(set(want) ^ set(have)) or sorted(k for k in want if want[k] != have[k])
            raise PpgedgeError(
                f"{where}: checkpoint weights do not fit architecture '{self.arch}' "
                f"({len(bad)} tensors differ, first '{str(bad[0])[:80]}'): re-create it"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "arch": self.arch,
            "arch_kwargs": self.arch_kwargs,
            "state_dict": self.state_dict,
            "data_format": self.data_format.to_dict(),
            "decode": self.decode,
            "tracker": self.tracker,
            "layer_shapes": self.layer_shapes,
            "metrics": self.metrics,
            "training": self.training,
            "parent": self.parent,
            "lineage": self.lineage,
            "created": self.created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "ppgedge_version": self.ppgedge_version,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any], path: Path | None = None) -> Checkpoint:
        """The inverse of :meth:`to_dict` (schema already checked by the caller); the
        architecture, its arguments, its size, the stored weights' shapes and the decoder are
        checked here, before anything is built."""
        try:
            ckpt = cls(
                arch=str(raw["arch"]),
                arch_kwargs=dict(raw["arch_kwargs"]),
                state_dict=dict(raw["state_dict"]),
                data_format=DataFormat.from_dict(raw["data_format"]),
                decode=str(raw.get("decode", "argmax")),
                tracker=dict(raw.get("tracker") or {}),
                layer_shapes=dict(raw.get("layer_shapes") or {}),
                **story_fields(raw, path),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PpgedgeError(f"{path}: checkpoint is missing field {exc}: re-create it") from None
        if ckpt.decode not in DECODERS:
            raise PpgedgeError(
                f"{path}: unknown decoder '{ckpt.decode[:40]}' in the checkpoint (ppgedge decodes "
                f"with {', '.join(DECODERS)}): re-create it"
            )
        if ckpt.tracker:
            TransitionPrior.from_dict(dict(ckpt.tracker.get("prior") or {}))
        check_arch_kwargs(ckpt.arch, ckpt.arch_kwargs, f"{path or 'checkpoint'}")
        ckpt._check_weights_fit()  # callers such as ensembles build from arch_kwargs directly
        return ckpt

    def describe(self) -> dict[str, Any]:
        """Everything but the weights, for reports and ``--json``."""
        d = self.to_dict()
        d.pop("state_dict")
        d["parameters"] = count_parameters(self.build())
        return d


def story_fields(raw: dict[str, Any], path: Path | None) -> dict[str, Any]:
    """The fields every stored artifact carries about itself (metrics, how it was trained,
    its parent and lineage, when and by which version), read from a loaded record."""
    return {
        "metrics": dict(raw.get("metrics") or {}),
        "training": dict(raw.get("training") or {}),
        "parent": raw.get("parent"),
        "lineage": list(raw.get("lineage") or []),
        "created": str(raw.get("created", "")),
        "ppgedge_version": str(raw.get("ppgedge_version", "")),
        "path": path,
    }


def model_record(path: str | Path, ckpt: Checkpoint) -> dict[str, Any]:
    """How a child refers to its parent: path, content hash, architecture, headline metrics."""
    return {
        "path": str(path),
        "sha256": file_sha256(path),
        "arch": ckpt.arch,
        "arch_kwargs": ckpt.arch_kwargs,
        "metrics": {k: v for k, v in ckpt.metrics.items() if not isinstance(v, dict)},
    }


def save_checkpoint(ckpt: Checkpoint, path: str | Path) -> Path:
    """Write atomically: a crash mid-write leaves the previous file (or nothing)."""
    path = Path(path)
    with atomic_path(path, kind=CHECKPOINT) as tmp:
        torch.save(ckpt.to_dict(), tmp)
    ckpt.path = path
    return path


def load_weights_only(path: str | Path, what: str) -> Any:
    """``torch.load(..., weights_only=True)`` with every failure as one user-facing line: a file
    that needs arbitrary code to load (a crafted pickle) is refused, never executed."""
    path = Path(path)
    if not path.is_file():
        raise PpgedgeError(f"{path}: no such {what} file")
    _check_records_stored(path, what)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr
            warnings.simplefilter("ignore")
            raw = torch.load(path, map_location="cpu", weights_only=True)
        check_materialised(raw)
        return raw
    except PpgedgeError as exc:
        raise PpgedgeError(f"{path}: not a loadable ppgedge {what}: {exc}") from None
    except (
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        AttributeError,
        TypeError,
        IndexError,  # the weights-only unpickler on a corrupt stream (empty stack, bad memo)
        KeyError,
        OverflowError,
        MemoryError,
        struct.error,
    ) as exc:
        text = str(exc).strip()
        if text.startswith("Weights only load failed"):
            # torch's text goes on to suggest weights_only=False: name what the file asked for
            named = re.search(r"GLOBAL (\S+)", text)
            opcode = re.search(r"Unsupported operand (\d+)", text)
            need = (
                named[1]
                if named
                else f"pickle opcode {opcode[1]}"
                if opcode
                else "more than tensors and plain data"
            )
            raise PpgedgeError(
                f"{path}: not a loadable ppgedge {what}: refused, loading it would need {need} "
                "(ppgedge files hold only tensors and plain data; files that need code to load "
                "are never run)"
            ) from None
        first = text.splitlines()[0] if text else type(exc).__name__
        raise PpgedgeError(
            f"{path}: not a loadable ppgedge {what} ({first[:160]}); "
            "files that need arbitrary code to load are refused"
        ) from None


def _check_records_stored(path: Path, what: str) -> None:
    """``torch.save`` stores every record of its zip uncompressed; a deflated record could
    inflate a small file into gigabytes when torch reads it, so one is refused."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # not a zip (legacy format or garbage): torch.load says what it is
    size = path.stat().st_size
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED or info.file_size > size:
            raise PpgedgeError(
                f"{path}: not a loadable ppgedge {what}: record '{info.filename[:60]}' is "
                "compressed or larger than the file (torch.save never writes that)"
            )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:160]


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load with ``weights_only=True``; anything that is not a ppgedge checkpoint is refused."""
    path = Path(path)
    raw = load_weights_only(path, "checkpoint")
    schema = raw.get("schema") if isinstance(raw, dict) else None
    if schema != SCHEMA:
        raise PpgedgeError(
            f"{path}: not a ppgedge checkpoint (schema {schema!r}): train one with 'ppgedge train'"
        )
    return Checkpoint.from_dict(raw, path)


def checkpoint_from_model(
    model: nn.Module,
    data_format: DataFormat,
    **fields: Any,
) -> Checkpoint:
    """Wrap a model built by :func:`create_model` (which records its name and arguments);
    layers whose shapes were changed since (pruning) are recorded in ``layer_shapes``."""
    arch, kwargs = model.ppgedge_arch  # type: ignore[attr-defined]
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    shapes = shape_differences(model, create_model(arch, **kwargs))
    return Checkpoint(
        arch=arch,
        arch_kwargs=kwargs,
        state_dict=state,
        data_format=data_format,
        layer_shapes=shapes,
        **fields,
    )
