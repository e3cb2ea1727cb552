"""Float ONNX export, checked with onnxruntime against the PyTorch model it came from.

ONNX is for users who deploy elsewhere (a phone, a server, another NPU toolchain) and for
inspecting the network in Netron; it carries the float weights (for a QAT artifact: the weights
QAT trained) and the data format in its metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ppgedge.data.format import DataFormat
from ppgedge.distill.teachers import export_module_onnx
from ppgedge.errors import PpgedgeError


@dataclass
class OnnxCheck:
    path: Path
    bytes: int
    windows: int
    max_abs_diff: float  # logits, onnxruntime vs PyTorch
    argmax_agreement: float

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def export_onnx(
    model: nn.Module, fmt: DataFormat, out_path: str | Path, windows: np.ndarray
) -> OnnxCheck:
    """Export ``model`` (taking (B, C, T) windows) and compare onnxruntime's logits with
    PyTorch's on ``windows``; a disagreement beyond float tolerance is an export bug: refuse."""
    import onnxruntime as ort

    if len(windows) < 2:
        windows = np.concatenate([windows, windows]) if len(windows) else windows
    if len(windows) == 0:
        raise PpgedgeError("no windows to check the ONNX export on")
    path = export_module_onnx(model.eval(), fmt, out_path)
    x = np.ascontiguousarray(windows, dtype=np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    diff = float(np.abs(got - ref).max())
    agree = float((got.argmax(1) == ref.argmax(1)).mean())
    scale = float(np.abs(ref).max()) or 1.0
    if diff > 1e-3 * max(1.0, scale):
        Path(path).unlink(missing_ok=True)
        raise PpgedgeError(
            f"ONNX export disagrees with PyTorch (max |diff| {diff:.3g} on logits up to "
            f"{scale:.3g}); please report this model"
        )
    return OnnxCheck(Path(path), Path(path).stat().st_size, len(x), diff, agree)
