"""Run an int8 ``.tflite`` on host runtimes: TFLite Micro (the oracle) and LiteRT.

TFLite Micro's host build runs the same reference kernels the device runs, so its int8 outputs
are what the wearable computes; LiteRT (ai-edge-litert, the maintained successor of
tflite-runtime) rounds once where TFLite Micro rounds twice, so the two may differ by one int8
step (findings.md). LiteRT runs its reference kernels: its optimised kernels (and XNNPACK)
round differently again, and on a residual network those one-step differences compound
(measured: up to 12 steps inside a 56 k-parameter ResNet, 3 at its output).

Both take preprocessed float windows (N, C, T), quantise them with the model's own input scale
and zero point (round half to even, as ``torch.quantize_per_tensor``), and lay them out as the
model's input wants: channel-last (1, 1, T, C) for our exports, or channel-first (1, C, 1, T).
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppgedge.data.loader import WindowSource
from ppgedge.errors import PpgedgeError
from ppgedge.evaluate.metrics import error_summary
from ppgedge.models.bpm import decode as decode_logits

RUNTIMES = ("tflm", "litert")


def _require(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - pinned dependencies
        package = module.split(".")[0]
        raise PpgedgeError(f"{what} needs {package} ({exc}); pip install -e .") from None


def layout_windows(windows: np.ndarray | torch.Tensor, input_shape: list[int]) -> np.ndarray:
    """(N, C, T) or (N, C, 1, T) float windows -> (N, *input_shape[1:]) in the model's layout."""
    x = np.asarray(windows, dtype=np.float32)
    if x.ndim == 4 and x.shape[2] == 1:
        x = x[:, :, 0, :]
    if x.ndim != 3:
        raise PpgedgeError(f"windows must be (N, channels, samples); got shape {x.shape}")
    _, c, t = x.shape
    want = tuple(int(s) for s in input_shape[1:])
    if want == (1, t, c):
        return np.ascontiguousarray(x.transpose(0, 2, 1)[:, None, :, :])
    if want == (c, 1, t):
        return x[:, :, None, :]
    raise PpgedgeError(
        f"windows of {c} channels x {t} samples do not fit the model input {list(input_shape)}"
    )


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Float -> int8 with round half to even and saturation."""
    q = np.round(x * np.float32(1.0 / scale)) + int(zero_point)
    return np.clip(q, -128, 127).astype(np.int8)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (q.astype(np.float32) - int(zero_point)) * np.float32(scale)


class _Runner:
    """Uniform view over the two interpreters: input/output details, one-example invoke."""

    def __init__(self, path: Path, runtime: str) -> None:
        if not path.is_file():
            raise PpgedgeError(f"{path}: no such .tflite file")
        self.runtime = runtime
        if runtime == "tflm":
            mod = _require("tflite_micro.python.tflite_micro.runtime", "the TFLite Micro runtime")
            try:
                self.interp = mod.Interpreter.from_file(str(path))
            except Exception as exc:  # noqa: BLE001  the runtime raises plain RuntimeError
                raise PpgedgeError(f"{path}: TFLite Micro cannot load it ({exc})") from None
            self.inp = self.interp.get_input_details(0)
            self.out = self.interp.get_output_details(0)
        elif runtime == "litert":
            mod = _require("ai_edge_litert.interpreter", "the LiteRT interpreter")
            try:
                self.interp = mod.Interpreter(
                    model_path=str(path),
                    num_threads=1,
                    experimental_op_resolver_type=mod.OpResolverType.BUILTIN_REF,
                )
                self.interp.allocate_tensors()
            except Exception as exc:  # noqa: BLE001
                raise PpgedgeError(f"{path}: LiteRT cannot load it ({exc})") from None
            self.inp = self.interp.get_input_details()[0]
            self.out = self.interp.get_output_details()[0]
        else:
            raise PpgedgeError(f"unknown runtime '{runtime}': choose one of {list(RUNTIMES)}")

    @property
    def input_shape(self) -> list[int]:
        return [int(s) for s in self.inp["shape"]]

    @staticmethod
    def _qp(details: dict[str, Any]) -> tuple[float, int] | None:
        qp = details.get("quantization_parameters") or {}
        scales = qp.get("scales")
        if details["dtype"] != np.int8 or scales is None or len(scales) == 0:
            return None
        return float(scales[0]), int(qp["zero_points"][0])

    @property
    def input_qparams(self) -> tuple[float, int] | None:
        return self._qp(self.inp)

    @property
    def output_qparams(self) -> tuple[float, int] | None:
        return self._qp(self.out)

    def invoke(self, example: np.ndarray, n_outputs: int = 1) -> list[np.ndarray]:
        """The model's first ``n_outputs`` outputs for one example."""
        if self.runtime == "tflm":
            self.interp.set_input(example, 0)
            self.interp.invoke()
            return [np.array(self.interp.get_output(i)) for i in range(n_outputs)]
        self.interp.set_tensor(self.inp["index"], example)
        self.interp.invoke()
        details = self.interp.get_output_details()[:n_outputs]
        return [np.array(self.interp.get_tensor(d["index"])) for d in details]

    def output_details(self, i: int) -> dict[str, Any]:
        if self.runtime == "tflm":
            return self.interp.get_output_details(i)
        return self.interp.get_output_details()[i]


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """LiteRT's C++ logging (XNNPACK delegate notices) writes to fd 2."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def run_raw(
    tflite_path: str | Path, windows: np.ndarray | torch.Tensor, runtime: str = "tflm"
) -> np.ndarray:
    """Raw outputs (int8 for int8 models) of every window, as ``runtime`` computes them."""
    return run_raw_outputs(tflite_path, windows, 1, runtime)[0]


def run_raw_outputs(
    tflite_path: str | Path,
    windows: np.ndarray | torch.Tensor,
    n_outputs: int,
    runtime: str = "tflm",
) -> list[np.ndarray]:
    """The first ``n_outputs`` raw outputs of a model, each over every window, from one pass
    (a model cut to expose inner tensors need not run once per tensor)."""
    path = Path(tflite_path)
    with quiet_stderr():
        runner = _Runner(path, runtime)
    shape = runner.input_shape
    x = layout_windows(windows, shape)
    if not np.isfinite(x).all():
        raise PpgedgeError("windows contain NaN or infinite values")
    qp = runner.input_qparams
    if qp is not None:
        x = quantize(x, *qp)
    elif runner.inp["dtype"] != np.float32:
        raise PpgedgeError(f"{path}: unsupported input type {runner.inp['dtype']}")
    batch = max(1, shape[0])
    results = [
        runner.invoke(x[i : i + batch].reshape(shape), n_outputs) for i in range(0, len(x), batch)
    ]
    if not results:
        details = [runner.output_details(i) for i in range(n_outputs)]
        return [np.zeros((0, *[int(s) for s in d["shape"][1:]]), d["dtype"]) for d in details]
    return [np.concatenate([r[k] for r in results]) for k in range(n_outputs)]


def output_qparams(tflite_path: str | Path) -> tuple[float, int] | None:
    with quiet_stderr():
        return _Runner(Path(tflite_path), "tflm").output_qparams


def predict_logits(
    tflite_path: str | Path, windows: np.ndarray | torch.Tensor, runtime: str = "tflm"
) -> np.ndarray:
    """Float logits (N, 180): raw outputs dequantised with the model's output scale."""
    raw = run_raw(tflite_path, windows, runtime)
    qp = output_qparams(tflite_path)
    return dequantize(raw, *qp) if qp is not None else raw.astype(np.float32)


def tflm_predict(tflite_path: str | Path, windows: np.ndarray | torch.Tensor) -> np.ndarray:
    """Float logits as TFLite Micro (the device's arithmetic) computes them."""
    return predict_logits(tflite_path, windows, "tflm")


def tflite_mae(
    tflite_path: str | Path,
    source: WindowSource,
    decoder: str = "argmax",
    runtime: str = "tflm",
) -> float:
    """MAE (BPM) of the deployed int8 model over a window source."""
    preds = []
    for _, x, _ in source.batches(256):
        logits = torch.from_numpy(predict_logits(tflite_path, x.numpy(), runtime))
        preds.append(decode_logits(logits, decoder).numpy())
    pred = np.concatenate(preds) if preds else np.zeros(0)
    return float(error_summary(pred, source.y)["mae"])


def tflm_mae(tflite_path: str | Path, source: WindowSource, decoder: str = "argmax") -> float:
    return tflite_mae(tflite_path, source, decoder, "tflm")
