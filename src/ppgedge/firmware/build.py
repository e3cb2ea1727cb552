"""Compile TFLite Micro + CMSIS-NN for a core (cached) and link firmware images against it.

The runtime is compiled one object per source file into
``$PPGEDGE_CACHE/tflm/<core>-<key>/`` (default ``~/.cache/ppgedge``), where the key hashes the
compiler version, every flag and the source tree. Only the framework and the kernels a model's
operators need are compiled (each op's file, the files sharing its stem, TFLM's kernel
utilities, CMSIS-NN); if a link still misses a symbol, every kernel is compiled and the link
retried. A second build for the same core and sources compiles nothing, so it takes seconds.

The flags are TFLM's Makefile's for ``TARGET=cortex_m_generic OPTIMIZED_KERNEL_DIR=cmsis_nn``
in its release build: framework ``-Os``, kernels and CMSIS-NN ``-O2`` (``KERNELS_OPTIMIZED_FOR
_SPEED``), ``-DTF_LITE_STATIC_MEMORY -DNDEBUG -DCMSIS_NN``, sections per function and datum,
linked with ``--gc-sections`` against newlib-nano. ``BUILD_FLAGS`` is quoted in bundle READMEs.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ppgedge.errors import PpgedgeError
from ppgedge.firmware.boards import Board
from ppgedge.firmware.sources import Source, TflmSources

CACHE_ENV = "PPGEDGE_CACHE"
TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-g++", "arm-none-eabi-ar", "arm-none-eabi-size")
INSTALL_HINT = (
    "install the Arm GNU toolchain and newlib (Debian/Ubuntu: apt-get install gcc-arm-none-eabi "
    "libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib)"
)
DEFINES = (
    "-DTF_LITE_STATIC_MEMORY",
    "-DTF_LITE_DISABLE_X86_NEON",
    "-DNDEBUG",
    "-DCMSIS_NN",
    "-DKERNELS_OPTIMIZED_FOR_SPEED",
    "-DARM_NN_ENABLE_F16=0",
    "-DARM_NN_ENABLE_F32=0",
)
CODEGEN = (
    "-fno-unwind-tables",
    "-fno-asynchronous-unwind-tables",
    "-ffunction-sections",
    "-fdata-sections",
    "-fmessage-length=0",
)
CXX = ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics")
LINK = ("-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections")
BUILD_FLAGS = (
    f"{' '.join(DEFINES)} {' '.join(CODEGEN)}; C++ {' '.join(CXX)}; TFLM framework and "
    "application -Os, TFLM kernels and CMSIS-NN -O2; linked with -Wl,--gc-sections "
    "--specs=nano.specs"
)


def require_tools() -> str:
    """The cross compiler's version line; a one-line error when any tool is missing."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise PpgedgeError(f"{', '.join(missing)} not found: {INSTALL_HINT}")
    out = subprocess.run(["arm-none-eabi-gcc", "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0] if out.stdout else "arm-none-eabi-gcc"


def cache_root() -> Path:
    base = os.environ.get(CACHE_ENV)
    return Path(base) if base else Path.home() / ".cache" / "ppgedge"


def _run(cmd: list[str], what: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise BuildError(what, done.stderr or done.stdout)
    return done


class BuildError(PpgedgeError):
    """A compile or link step failed; ``log`` keeps the compiler's full output."""

    def __init__(self, what: str, log: str) -> None:
        lines = [ln for ln in log.strip().splitlines() if ln.strip()]
        keys = ("undefined reference", "error:", "error")
        first = next(
            (ln for k in keys for ln in lines if k in ln.lower()), lines[0] if lines else ""
        )
        super().__init__(f"{what} failed: {first.strip()[:300]}")
        self.log = log


@dataclass
class Runtime:
    """TFLM + CMSIS-NN objects for one board, flags and source tree, in the cache."""

    sources: TflmSources
    board: Board
    compiler: str
    jobs: int = 0
    cache: Path | None = None

    @property
    def key(self) -> str:
        h = hashlib.sha256()
        for part in (self.compiler, *self.board.flags, *DEFINES, *CODEGEN, *CXX):
            h.update(part.encode() + b"\0")
        h.update(self.sources.digest.encode())
        return h.hexdigest()[:16]

    @property
    def dir(self) -> Path:
        return (self.cache or cache_root()) / "tflm" / f"{self.board.core}-{self.key}"

    def includes(self) -> list[str]:
        return [f"-I{p}" for p in self.sources.include_dirs]

    def compile_cmd(self, src: Path, obj: Path, lang: str, opt: str, extra=()) -> list[str]:
        tool = ["arm-none-eabi-g++", *CXX] if lang == "c++" else ["arm-none-eabi-gcc", "-std=gnu17"]
        return [
            *tool,
            *self.board.flags,
            *DEFINES,
            *CODEGEN,
            *self.includes(),
            *extra,
            opt,
            "-c",
            str(src),
            "-o",
            str(obj),
        ]

    def object_path(self, src: Source) -> Path:
        rel = src.path.relative_to(self.sources.root).as_posix()
        return self.dir / "obj" / (rel.replace("/", "__") + ".o")

    def objects(self, srcs: list[Source]) -> tuple[list[Path], int]:
        """Objects for ``srcs``, compiling the missing ones; (paths, how many were compiled)."""
        todo = [s for s in srcs if not self.object_path(s).is_file()]
        (self.dir / "obj").mkdir(parents=True, exist_ok=True)

        def one(src: Source) -> None:
            obj = self.object_path(src)
            fd, tmp = tempfile.mkstemp(suffix=".o", dir=obj.parent)
            os.close(fd)
            try:
                cmd = self.compile_cmd(src.path, Path(tmp), src.lang, src.opt)
                _run(cmd, f"compiling {src.path}")
                os.replace(tmp, obj)
            finally:
                Path(tmp).unlink(missing_ok=True)

        workers = self.jobs or os.cpu_count() or 2
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            for fut in [pool.submit(one, s) for s in todo]:
                fut.result()
        return [self.object_path(s) for s in srcs], len(todo)

    def library(self, ops: list[str], *, every_kernel: bool = False) -> tuple[Path, int]:
        """A static library with the framework and the kernels for ``ops``; (path, compiled)."""
        kernels = self.sources.all_kernels() if every_kernel else self.sources.kernels_for(ops)
        srcs = [*self.sources.framework, *kernels]
        objs, compiled = self.objects(srcs)
        return self.archive(objs, "libtflm", "the runtime"), compiled

    def archive(self, objs: list[Path], prefix: str, what: str) -> Path:
        """``objs`` as one static library in the cache, named by the objects it holds (so
        each set is archived once); written to a temporary name and renamed into place."""
        name = hashlib.sha256("\n".join(map(str, objs)).encode()).hexdigest()[:12]
        lib = self.dir / f"{prefix}-{name}.a"
        if not lib.is_file():
            fd, tmp = tempfile.mkstemp(suffix=".a", dir=self.dir)
            os.close(fd)
            Path(tmp).unlink()
            _run(["arm-none-eabi-ar", "rcs", tmp, *map(str, objs)], f"archiving {what}")
            os.replace(tmp, lib)
        return lib


@dataclass(frozen=True)
class Image:
    """A linked ELF with its map file and ``arm-none-eabi-size`` figures."""

    elf: Path
    map: Path
    text: int
    data: int
    bss: int

    @property
    def flash(self) -> int:
        return self.text + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss


def link(
    rt: Runtime,
    objects: list[Path],
    lib: Path,
    script: Path,
    out: Path,
    *,
    semihosting: bool,
) -> Image:
    """Link ``objects`` + the runtime library into ``out`` (an ELF) with a map file."""
    specs = "--specs=rdimon.specs" if semihosting else "--specs=nosys.specs"
    mapfile = out.with_suffix(".map")
    cmd = [
        "arm-none-eabi-g++",
        *rt.board.flags,
        *LINK,
        specs,
        "-T",
        str(script),
        f"-Wl,-Map={mapfile}",
        *map(str, objects),
        "-Wl,--start-group",
        str(lib),
        "-lm",
        "-lc",
        "-Wl,--end-group",
        "-o",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        log = done.stderr + done.stdout
        if "overflow" in log or "RAM overflow" in log:
            raise PpgedgeError(
                f"{out.stem}: does not fit the emulated {rt.board.machine} "
                f"({rt.board.code_bytes // 1024} KB code, {rt.board.ram_bytes // 1024} KB RAM): "
                + next(ln.strip() for ln in log.splitlines() if "overflow" in ln)[:200]
            )
        raise BuildError(f"linking {out.name}", log)
    size = _run(["arm-none-eabi-size", "-A", str(out)], "arm-none-eabi-size").stdout
    return Image(out, mapfile, *_sizes(size))


def _sizes(size_a: str) -> tuple[int, int, int]:
    """(text, data, bss) from ``size -A``: code + read-only in CODE, initialised and zeroed data."""
    text = data = bss = 0
    for line in size_a.splitlines():
        parts = line.split()
        if len(parts) < 3 or not parts[1].isdigit():
            continue
        name, n = parts[0], int(parts[1])
        if name in (".text", ".ARM.extab", ".ARM.exidx"):
            text += n
        elif name == ".data":
            data += n
        elif name == ".bss":
            bss += n
    return text, data, bss
