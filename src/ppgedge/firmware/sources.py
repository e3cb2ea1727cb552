"""The TensorFlow Lite Micro + CMSIS-NN source tree a firmware build compiles.

No TFLM sources ship with ppgedge: the user points at a tree laid out like
``../shared/vendor/tflm-src`` (``tflite-micro/``, ``cmsis-nn/``, ``flatbuffers/``,
``gemmlowp/``, ``ruy/``) with ``--tflm-src DIR`` or ``$PPGEDGE_TFLM_SRC``. The runtime's file
list is read from TFLM's own ``tools/make/sources.inc`` the way its Makefile uses it for
``TARGET=cortex_m_generic OPTIMIZED_KERNEL_DIR=cmsis_nn``: framework files, the kernel list with
the CMSIS-NN version replacing the reference kernel of the same name, CMSIS-NN's int8/int16 C
sources, and the cortex_m_generic ``debug_log.cc``. The tree is hashed so a cached library
is reused only for identical sources.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from ppgedge.errors import PpgedgeError

ENV = "PPGEDGE_TFLM_SRC"
# Files whose presence identifies each part of the tree (checked before anything is built).
REQUIRED = {
    "tflite-micro": "tensorflow/lite/micro/tools/make/sources.inc",
    "cmsis-nn": "Include/arm_nnfunctions.h",
    "flatbuffers": "include/flatbuffers/flatbuffers.h",
    "gemmlowp": "fixedpoint/fixedpoint.h",
    "ruy": "ruy/profiler/instrumentation.h",
}
_TEST_HELPERS = re.compile(
    r"_test\.cc$|test_helper|fake_micro_context|mock_micro_graph|kernel_runner|ethosu"
)
_HASHED = (".c", ".cc", ".h", ".inc")
ALWAYS_KERNELS = ("kernel_util.cc", "micro_tensor_utils.cc")


@dataclass(frozen=True)
class Source:
    """One translation unit: its path, its role in the flash split, C or C++."""

    path: Path
    part: str  # "framework" or "kernels"
    lang: str  # "c" or "c++"

    @property
    def opt(self) -> str:
        """TFLM's Makefile: the framework for size, kernels and CMSIS-NN for speed."""
        return "-Os" if self.part == "framework" else "-O2"


@dataclass(frozen=True)
class TflmSources:
    """A validated source tree."""

    root: Path
    _files: dict[str, Path] = field(default_factory=dict, compare=False, repr=False)

    @property
    def tflm(self) -> Path:
        return self.root / "tflite-micro"

    @property
    def cmsis_nn(self) -> Path:
        return self.root / "cmsis-nn"

    @property
    def include_dirs(self) -> list[Path]:
        r = self.root
        return [
            r / "tflite-micro",
            r / "flatbuffers" / "include",
            r / "gemmlowp",
            r / "ruy",
            r / "cmsis-nn",
            r / "cmsis-nn" / "Include",
        ]

    @cached_property
    def digest(self) -> str:
        """sha256 over every source and header (path and bytes): the cache key's source part."""
        h = hashlib.sha256()
        for sub in REQUIRED:
            base = self.root / sub
            for path in sorted(base.rglob("*")):
                if path.suffix in _HASHED and path.is_file():
                    h.update(path.relative_to(self.root).as_posix().encode() + b"\0")
                    h.update(path.read_bytes())
        return h.hexdigest()

    @cached_property
    def framework(self) -> list[Source]:
        """Interpreter, allocator, planner, flatbuffer access and the TFLite core they use."""
        micro = self.tflm / "tensorflow/lite/micro"
        out: list[Source] = []
        dirs = (micro, micro / "arena_allocator", micro / "memory_planner", micro / "tflite_bridge")
        for d in dirs:
            for f in sorted(d.glob("*.cc")):
                if _TEST_HELPERS.search(f.name):
                    continue
                if f.name == "debug_log.cc":  # the cortex_m_generic one replaces it
                    f = micro / "cortex_m_generic" / "debug_log.cc"
                out.append(Source(f, "framework", "c++"))
        for f in sorted((self.tflm / "tensorflow").rglob("*.cc")):
            rel = f.relative_to(self.tflm).as_posix()
            if rel.startswith(("tensorflow/lite/micro/", "tensorflow/lite/experimental/")):
                continue
            if rel != "tensorflow/lite/array.cc" and not _TEST_HELPERS.search(f.name):
                out.append(Source(f, "framework", "c++"))
        return out

    @cached_property
    def kernel_files(self) -> dict[str, Source]:
        """Kernel file name -> source (the CMSIS-NN version where one exists)."""
        micro = self.tflm / "tensorflow/lite/micro"
        inc = (micro / "tools/make/sources.inc").read_text()
        if "MICROLITE_CC_KERNEL_SRCS :=" not in inc:
            raise PpgedgeError(f"{micro}/tools/make/sources.inc: no MICROLITE_CC_KERNEL_SRCS")
        block = inc.split("MICROLITE_CC_KERNEL_SRCS :=", 1)[1].split("\n\n", 1)[0]
        out = {}
        for name in re.findall(r"tensorflow/lite/micro/kernels/([a-z_0-9]+\.cc)", block):
            if _TEST_HELPERS.search(name):
                continue
            cmsis = micro / "kernels" / "cmsis_nn" / name
            path = cmsis if cmsis.is_file() else micro / "kernels" / name
            out[name] = Source(path, "kernels", "c++")
        return out

    @cached_property
    def cmsis_nn_sources(self) -> list[Source]:
        """CMSIS-NN's C sources without the float variants (TFLM builds int8/int16 only)."""
        files = sorted((self.cmsis_nn / "Source").rglob("*.c"))
        return [Source(f, "kernels", "c") for f in files if not f.stem.endswith(("_f16", "_f32"))]

    @cached_property
    def registrations(self) -> dict[str, str]:
        """``Register_<NAME>`` function -> kernel file that defines it, read from the sources."""
        pattern = re.compile(r"TFLMRegistration\s+(Register_[A-Z0-9_]+)\s*\(\s*\)\s*\{")
        out: dict[str, str] = {}
        for name, src in self.kernel_files.items():
            for fn in pattern.findall(src.path.read_text(errors="replace")):
                out.setdefault(fn, name)
        return out

    def kernels_for(self, ops: list[str]) -> list[Source]:
        """The kernel files a model's operators need: each op's file, the files sharing its
        stem (``conv_common.cc``...), TFLM's kernel utilities, and all of CMSIS-NN."""
        names = set(ALWAYS_KERNELS)
        for op in ops:
            name = self.registrations.get(f"Register_{op}")
            if name is None:
                raise PpgedgeError(
                    f"{self.tflm}: no kernel defines Register_{op}; these sources cannot run "
                    "this model"
                )
            stem = name[:-3]
            names |= {n for n in self.kernel_files if n == name or n.startswith(stem + "_")}
        picked = [self.kernel_files[n] for n in sorted(names) if n in self.kernel_files]
        return picked + self.cmsis_nn_sources

    def all_kernels(self) -> list[Source]:
        return [*self.kernel_files.values(), *self.cmsis_nn_sources]


def locate(tflm_src: str | Path | None = None) -> TflmSources:
    """The tree from ``tflm_src`` or ``$PPGEDGE_TFLM_SRC``, checked part by part."""
    given = tflm_src if tflm_src is not None else os.environ.get(ENV)
    if not given:
        raise PpgedgeError(
            "no TensorFlow Lite Micro sources: pass --tflm-src DIR (a tree with tflite-micro/, "
            f"cmsis-nn/, flatbuffers/, gemmlowp/, ruy/) or set ${ENV}"
        )
    root = Path(given).expanduser().resolve()
    if not root.is_dir():
        raise PpgedgeError(f"{given}: TFLM source directory not found")
    missing = [f"{sub}/{rel}" for sub, rel in REQUIRED.items() if not (root / sub / rel).is_file()]
    if missing:
        raise PpgedgeError(
            f"{given}: not a TFLM + CMSIS-NN source tree (missing {', '.join(missing)})"
        )
    return TflmSources(root)
