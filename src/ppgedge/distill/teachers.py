"""Teachers in any format, behind one interface: preprocessed windows in, 180 logits out.

A teacher can be a ppgedge checkpoint, a TorchScript archive, an ONNX file or a Keras model
(``.keras``/``.h5`` file or SavedModel directory). Every kind answers :meth:`Teacher.logits` on
preprocessed float32 windows ``(B, C, T)`` whose channels are in ``teacher.data_format.channels``
order, so the distillation loop never needs to know where the teacher came from.

Data format. A ppgedge checkpoint carries its own. A foreign model carries it as metadata when it
was exported by ppgedge (ONNX ``metadata_props`` key ``ppgedge.data_format``, TorchScript extra
file ``ppgedge_data_format.json``; both hold :meth:`DataFormat.to_dict` JSON). Otherwise the
caller's ``data_format`` (normally the dataset's own) is used and the teacher is *assumed* to
take windows z-scored per window and channel, in exactly that channel order, at that rate and
window length: nothing in the file can confirm it beyond the input shape, so check a foreign
teacher's accuracy on the data before distilling from it.

Trust. These files are trusted inputs. ``torch.jit.load`` deserializes TorchScript code, which
runs at load (``__setstate__``) and at every batch and can call any registered operator (file and
process access included); any zip with a ``constants.pkl`` record is loaded as TorchScript,
whatever its suffix, ``.pt`` included. Loading a Keras file or SavedModel can execute Python code
(``Lambda`` layers, custom objects): only load ones you trust. Keras files load with
``safe_mode=True`` where the installed Keras supports it, which refuses serialized lambdas. ONNX
models run in onnxruntime with no Python code, and custom-op libraries are never registered, so
an ONNX teacher using a custom op is refused rather than loaded; but onnxruntime's parsers and
kernels are a large body of C++, so a crafted ONNX file is still native-code attack surface:
trusted too. ppgedge checkpoints load with ``weights_only=True`` and cannot run code. See
SECURITY.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import stat
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ppgedge.atomic import atomic_path, file_sha256
from ppgedge.data.format import BPM_MAX, BPM_MIN, DataFormat, Dataset
from ppgedge.data.preprocess import check_known
from ppgedge.errors import PpgedgeError
from ppgedge.models.bpm import N_CLASSES
from ppgedge.models.checkpoint import Checkpoint, load_checkpoint

ONNX_METADATA_KEY = "ppgedge.data_format"
TORCHSCRIPT_EXTRA_FILE = "ppgedge_data_format.json"
TORCHSCRIPT_SUFFIXES = (".ts", ".torchscript")
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
KINDS = ("checkpoint", "torchscript", "onnx", "keras")


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


class Teacher:
    """A frozen model that maps preprocessed windows to 180 BPM-class logits.

    ``sha256`` is the content hash of the teacher's file (or directory) and keys the logits cache;
    ``record()`` is what a student's lineage stores about it.
    """

    kind: str = ""
    supports_features: bool = False

    def __init__(self, path: Path, sha256: str, data_format: DataFormat) -> None:
        self.path = path
        self.sha256 = sha256
        self.data_format = data_format
        # set by the probe when a foreign model ends in a softmax: its log is used as logits,
        # since distillation losses apply their own temperature and softmax
        self.outputs_probabilities = False

    @property
    def arch(self) -> str | None:
        return None

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T) preprocessed windows -> (B, 180) float32 logits on ``x``'s device."""
        with torch.no_grad():
            x = x.detach().to(torch.float32).contiguous()
            out = self._logits(x).to(device=x.device, dtype=torch.float32)
            if self.outputs_probabilities:
                out = torch.log(out.clamp_min(1e-12))
        return out

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Feature maps and logits, for feature distillation (ppgedge ResNet checkpoints only)."""
        raise PpgedgeError(
            f"{self.path}: feature distillation needs a ppgedge checkpoint teacher whose model "
            f"exposes forward_features (this is a {self.kind} teacher): use a logit-based method"
        )

    def to(self, device: torch.device | str) -> Teacher:
        """Move to ``device``; foreign runtimes (ONNX, Keras) stay on their own device."""
        return self

    def record(self) -> dict[str, Any]:
        """How a student refers to its teacher in its lineage."""
        rec: dict[str, Any] = {"path": str(self.path), "sha256": self.sha256, "kind": self.kind}
        if self.arch is not None:
            rec["arch"] = self.arch
        rec["data_format"] = self.data_format.to_dict()
        if self.outputs_probabilities:
            rec["outputs"] = "probabilities (log taken as logits)"
        return rec

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, kind={self.kind!r})"


class _ModuleTeacher(Teacher):
    """Shared by checkpoint and TorchScript teachers: a torch module in eval mode."""

    def __init__(self, path: Path, sha256: str, data_format: DataFormat, module: nn.Module) -> None:
        super().__init__(path, sha256, data_format)
        self.module = module.eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self._device = torch.device("cpu")

    def to(self, device: torch.device | str) -> Teacher:
        self._device = torch.device(device)
        self.module = self.module.to(self._device)
        return self

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.to(self._device))


class CheckpointTeacher(_ModuleTeacher):
    kind = "checkpoint"

    def __init__(self, path: Path, ckpt: Checkpoint) -> None:
        super().__init__(path, file_sha256(path), ckpt.data_format, ckpt.build())
        self.checkpoint = ckpt
        self.supports_features = hasattr(self.module, "forward_features")

    @property
    def arch(self) -> str | None:
        return self.checkpoint.arch

    def record(self) -> dict[str, Any]:
        rec = super().record()
        rec["arch_kwargs"] = dict(self.checkpoint.arch_kwargs)
        rec["metrics"] = {
            k: v for k, v in self.checkpoint.metrics.items() if not isinstance(v, dict)
        }
        return rec

    def features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        if not self.supports_features:
            raise PpgedgeError(
                f"{self.path}: feature distillation needs a ppgedge checkpoint teacher whose "
                f"model exposes forward_features ('{self.checkpoint.arch}' does not): "
                "use a ResNet-family teacher or a logit-based method"
            )
        # no_grad, not inference_mode: the student's loss may save these for its backward pass
        with torch.no_grad():
            x = x.detach().to(device=self._device, dtype=torch.float32)
            if hasattr(self.module, "forward_with_features"):
                feats, logits = self.module.forward_with_features(x)  # type: ignore[operator]
            else:
                feats = self.module.forward_features(x)  # type: ignore[operator]
                logits = self.module(x)
        return list(feats), logits.float()


class TorchScriptTeacher(_ModuleTeacher):
    kind = "torchscript"

    def __init__(self, path: Path, sha256: str, data_format: DataFormat, module: nn.Module) -> None:
        super().__init__(path, sha256, data_format, module)
        self._4d = False  # set by the probe when the archive only takes (B, C, 1, T)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self._device)
        return self.module(x.unsqueeze(2) if self._4d else x)


class OnnxTeacher(Teacher):
    """Runs in onnxruntime on the CPU; inputs are adapted to the model's declared layout."""

    kind = "onnx"

    def __init__(self, path: Path, sha256: str, data_format: DataFormat, session: Any) -> None:
        super().__init__(path, sha256, data_format)
        self.session = session
        inp = session.get_inputs()[0]
        self._input = inp.name
        self._output = session.get_outputs()[0].name
        self._layout = _layout(path, list(inp.shape), data_format)
        self._fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        arr = _to_layout(x.cpu(), self._layout).numpy()
        return torch.from_numpy(_run_batched(self._run, arr, self._fixed_batch))

    def _run(self, arr: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run([self._output], {self._input: arr})[0])


class KerasTeacher(Teacher):
    """A Keras model or SavedModel signature, called on numpy arrays (TensorFlow picks device)."""

    kind = "keras"

    def __init__(
        self,
        path: Path,
        sha256: str,
        data_format: DataFormat,
        fn: Any,
        input_shape: list[int | None],
    ) -> None:
        super().__init__(path, sha256, data_format)
        self._fn = fn
        self._layout = _layout(path, input_shape, data_format)
        self._fixed_batch = input_shape[0] if isinstance(input_shape[0], int) else None

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        arr = _to_layout(x.cpu(), self._layout).numpy()
        return torch.from_numpy(_run_batched(self._fn, arr, self._fixed_batch))


# ----------------------------------------------------------------------------- input layouts


def _layout(path: Path, shape: list[Any], fmt: DataFormat) -> str:
    """Which of (B, C, T), (B, C, 1, T) or (B, T, C) the model takes; unknown dims are free."""
    c, t = len(fmt.channels), fmt.window_samples
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape[1:]]

    def fits(want: tuple[int, ...]) -> bool:
        if len(dims) != len(want):
            return False
        return all(d is None or d == w for d, w in zip(dims, want, strict=True))

    if fits((c, t)):
        return "nct"
    if fits((c, 1, t)):
        return "nc1t"
    if fits((t, c)):
        return "ntc"
    found = "(B, " + ", ".join("?" if d is None else str(d) for d in dims) + ")"
    raise PpgedgeError(
        f"{path}: model input is {found}, the data format needs (B, {c}, {t}) or (B, {c}, 1, {t}) "
        f"({len(fmt.channels)} channels {','.join(fmt.channels)}, {fmt.window_s:g} s at "
        f"{fmt.sample_rate_hz:g} Hz): pass the data format the teacher was trained on"
    )


def _to_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "nc1t":
        return x.unsqueeze(2).contiguous()
    if layout == "ntc":
        return x.transpose(1, 2).contiguous()
    return x.contiguous()


def _run_batched(fn: Any, arr: np.ndarray, fixed_batch: int | None) -> np.ndarray:
    """Call ``fn``; a model exported with a fixed batch size gets padded chunks of that size."""
    if fixed_batch is None or len(arr) == fixed_batch:
        return np.asarray(fn(arr), dtype=np.float32)
    outs = []
    for start in range(0, len(arr), fixed_batch):
        chunk = arr[start : start + fixed_batch]
        n = len(chunk)
        if n < fixed_batch:
            pad = np.zeros((fixed_batch - n, *chunk.shape[1:]), chunk.dtype)
            chunk = np.concatenate([chunk, pad])
        outs.append(np.asarray(fn(chunk), dtype=np.float32)[:n])
    return np.concatenate(outs) if outs else np.zeros((0, N_CLASSES), np.float32)


# ----------------------------------------------------------------------------- loading


def load_teacher(path: str | Path, data_format: DataFormat | None = None) -> Teacher:
    """Open a teacher of any supported kind, validate it and return it on the CPU.

    ``data_format`` is used only for a foreign model without ppgedge metadata; pass the dataset's
    format, and the teacher is then assumed to take z-scored windows in that channel order.
    """
    path = Path(path)
    if not path.exists():
        raise PpgedgeError(f"{path}: no such teacher file or directory")
    suffix = path.suffix.lower()
    if path.is_dir():
        if not (path / "saved_model.pb").is_file() and not (path / "saved_model.pbtxt").is_file():
            raise PpgedgeError(
                f"{path}: a directory teacher must be a TensorFlow SavedModel (no saved_model.pb)"
            )
        teacher: Teacher = _load_keras(path, data_format)
    elif suffix == ".onnx":
        teacher = _load_onnx(path, data_format)
    elif suffix in KERAS_SUFFIXES:
        teacher = _load_keras(path, data_format)
    elif _is_torchscript_zip(path):
        teacher = _load_torchscript(path, data_format)
    else:
        try:
            ckpt = load_checkpoint(path)
        except PpgedgeError as exc:
            if suffix in TORCHSCRIPT_SUFFIXES:
                raise PpgedgeError(
                    f"{path}: neither a TorchScript archive nor a ppgedge checkpoint "
                    "(corrupt or truncated?)"
                ) from None
            raise exc from None
        teacher = CheckpointTeacher(path, ckpt)
    check_known(teacher.data_format.preprocessing)
    _probe(teacher)
    return teacher


def _is_torchscript_zip(path: Path) -> bool:
    """TorchScript archives are zips with a ``constants.pkl`` record (as torch itself checks)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n == "constants.pkl" or n.endswith("/constants.pkl") for n in zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def _metadata_format(
    path: Path, raw: str | bytes | None, fallback: DataFormat | None
) -> DataFormat:
    if raw:
        try:
            return DataFormat.from_dict(json.loads(raw))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
            raise PpgedgeError(
                f"{path}: unreadable ppgedge data-format metadata ({_first_line(exc)}): "
                "re-export the teacher"
            ) from None
    if fallback is None:
        raise PpgedgeError(
            f"{path}: the model carries no ppgedge data format: pass the dataset's format "
            "(the teacher is then assumed to take z-scored windows in its channel order)"
        )
    return fallback


def _load_torchscript(path: Path, data_format: DataFormat | None) -> Teacher:
    extra = {TORCHSCRIPT_EXTRA_FILE: ""}
    try:
        with quiet_torchscript():
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except (RuntimeError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise PpgedgeError(
            f"{path}: not a loadable TorchScript archive ({_first_line(exc)})"
        ) from None
    fmt = _metadata_format(path, extra[TORCHSCRIPT_EXTRA_FILE], data_format)
    return TorchScriptTeacher(path, file_sha256(path), fmt, module)


def _onnx_tensors(model: Any) -> Iterator[Any]:
    """Every TensorProto of an ONNX model: initializers, sparse initializers and node
    attributes, in the main graph, its subgraphs (If/Loop/Scan bodies) and local functions."""
    graphs = [model.graph]
    nodes = [n for f in model.functions for n in f.node]
    while graphs or nodes:
        if graphs:
            g = graphs.pop()
            yield from g.initializer
            for sparse in g.sparse_initializer:
                yield from (sparse.values, sparse.indices)
            nodes.extend(g.node)
            continue
        for attr in nodes.pop().attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            sparse = list(attr.sparse_tensors)
            if attr.HasField("sparse_tensor"):
                sparse.append(attr.sparse_tensor)
            for sp in sparse:
                yield from (sp.values, sp.indices)
            if attr.HasField("g"):
                graphs.append(attr.g)
            graphs.extend(attr.graphs)


def _external_file(path: Path, location: str) -> Path:
    """The file an external-data ``location`` names, if it is a regular file inside the model's
    own folder reached without symlinks; refused otherwise, before anything opens it (an
    absolute ``/proc/kmsg`` blocks forever, ``../`` or a symlink reads files that are not the
    model's)."""
    base = path.parent.resolve()
    why = ""
    if not location or "\0" in location or "\\" in location:
        why = "not a plain relative path"
    elif Path(location).is_absolute():
        why = "an absolute path"
    elif ".." in Path(location).parts:
        why = "outside the model's folder ('..')"
    if not why:
        current = base
        for part in Path(location).parts:
            current = current / part
            if current.is_symlink():
                why = "a symbolic link"
                break
        else:
            try:
                mode = os.lstat(current).st_mode
            except OSError:
                why = "missing"
            else:
                if not stat.S_ISREG(mode):
                    why = "not a regular file"
                elif not current.resolve().is_relative_to(base):
                    why = "outside the model's folder"
    if why:
        raise PpgedgeError(
            f"{path}: external weight file '{location[:120]}' is {why}: ONNX external data must "
            f"be regular files inside the model's folder ({base})"
        )
    return current


def _onnx_sha256(path: Path) -> str:
    """The file's hash, extended with its external-data files when weights live outside it.

    Every external-data location is checked with :func:`_external_file` first: nothing outside
    the model's folder is hashed here or opened by onnxruntime afterwards.
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises its own DecodeError; any failure = corrupt
        raise PpgedgeError(f"{path}: not a readable ONNX model ({_first_line(exc)})") from None
    locations = sorted(
        {
            entry.value
            for tensor in _onnx_tensors(model)
            if tensor.data_location == onnx.TensorProto.EXTERNAL
            for entry in tensor.external_data
            if entry.key == "location"
        }
    )
    files = [(loc, _external_file(path, loc)) for loc in locations]
    digest = file_sha256(path)
    if not files:
        return digest
    combined = hashlib.sha256(digest.encode())
    for loc, ext in files:
        combined.update(loc.encode() + file_sha256(ext).encode())
    return combined.hexdigest()


def _load_onnx(path: Path, data_format: DataFormat | None) -> Teacher:
    import onnxruntime as ort

    sha = _onnx_sha256(path)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: the optimiser's notices are not the user's concern
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises pybind exceptions outside the builtin tree
        raise PpgedgeError(
            f"{path}: onnxruntime cannot load this model ({_first_line(exc)}); custom-op "
            "libraries are never loaded"
        ) from None
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise PpgedgeError(
            f"{path}: an ONNX teacher must take exactly one input (windows), it takes {len(inputs)}"
        )
    if inputs[0].type != "tensor(float)":
        raise PpgedgeError(f"{path}: ONNX input is {inputs[0].type}, a teacher needs float32")
    if len(inputs[0].shape) not in (3, 4):
        raise PpgedgeError(
            f"{path}: ONNX input has rank {len(inputs[0].shape)}; a teacher takes (B, C, T) "
            "or (B, C, 1, T)"
        )
    meta = session.get_modelmeta().custom_metadata_map.get(ONNX_METADATA_KEY)
    fmt = _metadata_format(path, meta, data_format)
    return OnnxTeacher(path, sha, fmt, session)


def _dir_sha256(path: Path) -> str:
    """Hash of every file under ``path``, by relative name, in sorted order."""
    digest = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f.relative_to(path).as_posix().encode())
        digest.update(file_sha256(f).encode())
    return digest.hexdigest()


def _load_keras(path: Path, data_format: DataFormat | None) -> Teacher:
    try:
        import tensorflow as tf  # noqa: F401  (optional, heavy: imported only here)
    except ImportError:
        raise PpgedgeError("Keras teachers need TensorFlow: pip install 'ppgedge[keras]'") from None
    fmt = _metadata_format(path, None, data_format)
    try:
        if path.is_dir():
            fn, shape = _saved_model_fn(tf, path)
            sha = _dir_sha256(path)
        else:
            fn, shape = _keras_file_fn(tf, path)
            sha = file_sha256(path)
    except PpgedgeError:
        raise
    except Exception as exc:  # TF/Keras raise many unrelated types for unreadable files
        raise PpgedgeError(f"{path}: cannot load Keras model ({_first_line(exc)})") from None
    return KerasTeacher(path, sha, fmt, fn, shape)


def _keras_file_fn(tf: Any, path: Path) -> tuple[Any, list[int | None]]:
    try:
        model = tf.keras.models.load_model(str(path), compile=False, safe_mode=True)
    except TypeError:  # Keras 2 has no safe_mode
        model = tf.keras.models.load_model(str(path), compile=False)
    if len(model.inputs) != 1:
        raise PpgedgeError(f"{path}: a Keras teacher must take exactly one input")
    shape = list(model.inputs[0].shape)

    def fn(arr: np.ndarray) -> np.ndarray:
        return np.asarray(model(arr, training=False))

    return fn, shape


def _saved_model_fn(tf: Any, path: Path) -> tuple[Any, list[int | None]]:
    obj = tf.saved_model.load(str(path))
    sig = getattr(obj, "signatures", {}).get("serving_default")
    if sig is None:
        raise PpgedgeError(f"{path}: SavedModel has no 'serving_default' signature")
    _, kw = sig.structured_input_signature
    if len(kw) != 1:
        raise PpgedgeError(f"{path}: a SavedModel teacher must take exactly one input")
    ((name, spec),) = kw.items()
    shape = list(spec.shape.as_list())

    def fn(arr: np.ndarray) -> np.ndarray:
        out = sig(**{name: tf.constant(arr)})
        if len(out) != 1:
            raise PpgedgeError(f"{path}: a SavedModel teacher must have exactly one output")
        return np.asarray(next(iter(out.values())))

    return fn, shape


def _probe(teacher: Teacher) -> None:
    """Run one zero batch: the model must accept the windows and give 180 classes."""
    fmt = teacher.data_format
    x = torch.zeros(2, len(fmt.channels), fmt.window_samples)
    try:
        out = teacher.logits(x)
    except PpgedgeError:
        raise
    except Exception as exc:
        if isinstance(teacher, TorchScriptTeacher) and not teacher._4d:
            teacher._4d = True  # an archive traced on the export layout (B, C, 1, T)
            try:
                out = teacher.logits(x)
            except Exception:
                teacher._4d = False
                out = None
        else:
            out = None
        if out is None:
            raise PpgedgeError(
                f"{teacher.path}: the model fails on a (B, {x.shape[1]}, {x.shape[2]}) batch "
                f"({_first_line(exc)}): pass the data format it was trained on"
            ) from None
    if out.dim() != 2 or out.shape[0] != x.shape[0] or out.shape[1] != N_CLASSES:
        found = "x".join(str(s) for s in out.shape[1:]) or "a scalar"
        raise PpgedgeError(
            f"{teacher.path}: the model outputs {found} values per window, a teacher needs "
            f"{N_CLASSES} ({BPM_MIN}..{BPM_MAX} BPM, one class per BPM)"
        )
    if not torch.isfinite(out).all():
        raise PpgedgeError(f"{teacher.path}: the model outputs NaN or inf on a zero batch")
    if not isinstance(teacher, CheckpointTeacher) and bool(
        (out >= 0).all() and torch.allclose(out.sum(dim=1), torch.ones(len(out)), atol=1e-4)
    ):
        teacher.outputs_probabilities = True


# ----------------------------------------------------------------------------- checks & export


def check_teacher_matches(teacher: Teacher, dataset: Dataset) -> None:
    """The teacher must see the data at its own rate and window, with every channel it needs."""
    t, d = teacher.data_format, dataset.fmt
    if (
        abs(t.sample_rate_hz - d.sample_rate_hz) > 1e-6
        or abs(t.window_s - d.window_s) > 1e-6
        or t.window_samples != d.window_samples
    ):
        raise PpgedgeError(
            f"teacher {teacher.path} expects {t.sample_rate_hz:g} Hz / {t.window_s:g} s windows, "
            f"dataset {dataset.path} is {d.sample_rate_hz:g} Hz / {d.window_s:g} s: re-import the "
            "data with --rate and --window to match the teacher"
        )
    missing = [c for c in t.channels if c not in d.channels]
    if missing:
        raise PpgedgeError(
            f"teacher {teacher.path} needs channels {','.join(t.channels)}, dataset "
            f"{dataset.path} lacks {','.join(missing)}: import the data with those channels"
        )


@contextlib.contextmanager
def quiet_torchscript() -> Iterator[None]:
    """torch 2.13 marks every torch.jit entry point deprecated; TorchScript teachers are still
    what many users have, so that notice is not repeated on each load."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.\w+` is deprecated", category=DeprecationWarning
        )
        yield


@contextlib.contextmanager
def _quiet_onnx_exporter() -> Iterator[None]:
    """Silence the exporter's known noise in torch 2.13: a FutureWarning raised inside
    torch.export's own pytree copy, and 'torchvision is not installed' log lines."""
    log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning
            )
            yield
    finally:
        log.setLevel(level)


def export_onnx_teacher(ckpt_path: str | Path, out_path: str | Path) -> Path:
    """Export a ppgedge checkpoint to ONNX with its data format in ``metadata_props``."""
    ckpt = load_checkpoint(ckpt_path)
    try:
        return export_module_onnx(ckpt.build(), ckpt.data_format, out_path)
    except PpgedgeError as exc:
        raise PpgedgeError(f"{ckpt_path}: '{ckpt.arch}': {exc}") from None


def export_module_onnx(
    model: nn.Module,
    data_format: DataFormat | None,
    out_path: str | Path,
    *,
    example: torch.Tensor | None = None,
) -> Path:
    """Export any torch module taking (B, C, T) windows to a single ONNX file, atomically.

    Uses the torch.export-based exporter (``dynamo=True``; the TorchScript-based one warns that
    it is deprecated in torch 2.13) with a dynamic batch axis, input ``x`` and output ``logits``;
    weights are embedded in the file. ``data_format`` (if given) goes into ``metadata_props``;
    ``example`` sets the input layout (default zeros (2, C, T); its batch size must not be 1).
    """
    import onnx

    fmt = data_format or DataFormat()
    if example is None:
        example = torch.zeros(2, len(fmt.channels), fmt.window_samples)
    try:
        with _quiet_onnx_exporter():
            program = torch.onnx.export(
                model.eval(),
                (example,),
                dynamo=True,
                verbose=False,
                input_names=["x"],
                output_names=["logits"],
                dynamic_shapes=({0: torch.export.Dim("batch")},),
            )
    except Exception as exc:  # export failures come in many types; say what failed
        raise PpgedgeError(f"ONNX export failed ({_first_line(exc)})") from None
    proto = program.model_proto
    if data_format is not None:
        entry = proto.metadata_props.add()
        entry.key = ONNX_METADATA_KEY
        entry.value = json.dumps(data_format.to_dict())
    onnx.checker.check_model(proto)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return out_path


def export_torchscript_teacher(ckpt_path: str | Path, out_path: str | Path) -> Path:
    """Export a ppgedge checkpoint to TorchScript with its data format as an extra file.

    Scripted (keeps the model's (B, C, T)/(B, C, 1, T) input handling), traced on a (B, C, T)
    batch when scripting fails. Written atomically.
    """
    ckpt = load_checkpoint(ckpt_path)
    model = ckpt.build()
    fmt = ckpt.data_format
    example = torch.zeros(1, len(fmt.channels), fmt.window_samples)
    buf = io.BytesIO()
    with quiet_torchscript():
        try:
            module: Any = torch.jit.script(model)
        except Exception:  # unscriptable Python: tracing fixes the (B, C, T) path
            module = torch.jit.trace(model, example)
        extra = {TORCHSCRIPT_EXTRA_FILE: json.dumps(fmt.to_dict())}
        torch.jit.save(module, buf, _extra_files=extra)
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return out_path
