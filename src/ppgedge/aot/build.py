"""Build the generated C for the host and for a Cortex-M core, and run it.

Cortex-M: the generated file is compiled with the strict flags (``STRICT``; CMSIS-NN headers
on a plain ``-I``, they pass them too) and the board's flags, CMSIS-NN's objects come from the
TFLite Micro runtime cache (``firmware.build.Runtime``: the same objects, flags and ``-O2``
the TFLM image links), and two images are linked like the TFLM ones: the firmware
(``csrc/main.c``, its size is the AOT flash/RAM figure) and the semihosting harness
(``csrc/harness.c``) run in QEMU.
Host: the same generated file and CMSIS-NN's portable C paths (no ARM_MATH_DSP) with the host
compiler, objects cached beside the runtime cache.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import re
import shutil
import string
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ppgedge.errors import PpgedgeError
from ppgedge.firmware.build import CODEGEN, BuildError, Image, Runtime, link
from ppgedge.firmware.images import ModelFiles, _linker_script, _symbol
from ppgedge.firmware.sources import TflmSources

STRICT = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic")
CMSIS_DEFINES = ("-DARM_NN_ENABLE_F16=0", "-DARM_NN_ENABLE_F32=0")
OPT = "-O2"  # the generated file holds kernels (MEAN) as well as data: TFLM's kernel level


def csrc(name: str) -> str:
    return resources.files("ppgedge.aot.csrc").joinpath(name).read_text()


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise BuildError(what, done.stderr or done.stdout)


def _includes(src: TflmSources) -> list[str]:
    """CMSIS-NN headers with -I: they are clean under the strict flags (checked), no -isystem."""
    return [f"-I{src.cmsis_nn / 'Include'}", f"-I{src.cmsis_nn}"]


def templated(name: str, ident: str, out: Path) -> Path:
    out.write_text(string.Template(csrc(name)).substitute(id=ident, ID=ident.upper()))
    return out


@dataclass(frozen=True)
class DeviceImages:
    firmware: Image
    harness: Image
    mark_address: int
    aot_object: Path


def cmsis_library(rt: Runtime) -> Path:
    """CMSIS-NN as an archive of the runtime cache's objects (compiled once, shared with TFLM)."""
    objs, _ = rt.objects(rt.sources.cmsis_nn_sources)
    return rt.archive(objs, "libtflm-cmsisnn", "CMSIS-NN")  # "libtflm-": flash.part_of = kernels


def device_compile(rt: Runtime, src: Path, obj: Path, extra: list[str], strict: bool) -> Path:
    flags = list(STRICT) if strict else ["-std=c99"]
    cmd = ["arm-none-eabi-gcc", *flags, *rt.board.flags, *CMSIS_DEFINES, *CODEGEN,
           *_includes(rt.sources), *extra, OPT if strict else "-Os", "-c", str(src), "-o",
           str(obj)]  # fmt: skip
    _run(cmd, f"compiling {src.name} for {rt.board.core}")
    return obj


def stage_app_sources(files: ModelFiles, model_dir: Path) -> list[Path]:
    """Copy a TFLM bundle's application files (config, preprocessing and, when it has one,
    the temporal tracker: :attr:`ModelFiles.app_sources` with their headers) beside the
    generated model; the copies, in order (the ``.c`` ones are compiled with it)."""
    if not files.raw:
        return []
    wanted = [files.dir / f"{files.ident}_config.h"]
    for c in files.app_sources:
        wanted += [c.with_suffix(".h"), c]
    for src in wanted:
        shutil.copy2(src, model_dir / src.name)
    return [model_dir / src.name for src in wanted]


def _app_defines(model_dir: Path, ident: str, raw: bool) -> list[str]:
    tracker = raw and (model_dir / f"{ident}_tracker.c").is_file()
    return [f"-I{model_dir}", f"-DPPGEDGE_RAW={int(raw)}", f"-DPPGEDGE_TRACKER={int(tracker)}"]


def build_device(rt: Runtime, model_dir: Path, ident: str, c_sources: list[Path], raw: bool,
                 item_bytes: int, work: Path) -> DeviceImages:  # fmt: skip
    """Compile ``model_dir``'s AOT file (strict) and ``c_sources`` (the bundle's preprocessing
    and tracker, :func:`stage_app_sources`) and link the firmware and harness images for
    ``rt``'s board."""
    work.mkdir(parents=True, exist_ok=True)
    inc = _app_defines(model_dir, ident, raw)
    aot_obj = device_compile(rt, model_dir / f"{ident}_aot.c", work / f"{ident}_aot.o", inc, True)
    startup = work / "startup.c"
    startup.write_text(resources.files("ppgedge.firmware.csrc").joinpath("startup.c").read_text())
    units = [(c, work / f"{c.name}.o", inc, False) for c in c_sources] + [
        (templated("main.c", ident, work / "main.c"), work / "main.o", inc, False),
        (startup, work / "startup.o", [], False),
        (templated("harness.c", ident, work / "harness.c"), work / "harness.o",
         [*inc, f"-DPPGEDGE_ITEM_BYTES={item_bytes}", '-DPPGEDGE_IN="in.bin"',
          '-DPPGEDGE_OUT="out.bin"', "-DPPGEDGE_SEMIHOSTING"], False),
        (startup, work / "startup_semihosting.o", ["-DPPGEDGE_SEMIHOSTING"], False),
    ]  # fmt: skip
    with concurrent.futures.ThreadPoolExecutor(rt.jobs or os.cpu_count() or 2) as pool:
        objs = list(pool.map(lambda u: device_compile(rt, *u), units))
    app, (main, start, harness, h_start) = objs[:-4], objs[-4:]
    lib = cmsis_library(rt)
    script = _linker_script(rt, work / "link.ld")
    fw = link(rt, [aot_obj, *app, main, start], lib, script, work / f"{ident}_aot.elf",
              semihosting=False)  # fmt: skip
    h = link(rt, [aot_obj, *app, harness, h_start], lib, script,
             work / f"{ident}_aot_harness.elf", semihosting=True)  # fmt: skip
    return DeviceImages(fw, h, _symbol(h.elf, "ppgedge_mark"), aot_obj)


def _host_cc() -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise PpgedgeError("no host C compiler (cc/gcc) to build the AOT code for the host")
    return cc


_DEFINITION = re.compile(r"^[A-Za-z_][\w \*]*?\b(arm_\w+)\s*\(", re.M)
_CALL = re.compile(r"\b(arm_\w+)\s*\(")


def _definitions(src: TflmSources) -> dict[str, Path]:
    """CMSIS-NN function -> the source file defining it (definitions start at column 0)."""
    out: dict[str, Path] = {}
    for s in src.cmsis_nn_sources:
        for name in _DEFINITION.findall(s.path.read_text(errors="replace")):
            out.setdefault(name, s.path)
    return out


def host_cmsis_objects(src: TflmSources, cache: Path, generated: Path, jobs: int = 0) -> list[Path]:
    """The CMSIS-NN sources ``generated`` needs (the functions it calls and, transitively, what
    their objects leave undefined), portable C (no DSP, no MVE), host compiler, cached."""
    cc = _host_cc()
    version = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256((version + src.digest + OPT).encode()).hexdigest()[:16]
    out = cache / "aot-host" / f"cmsis-nn-{key}"
    out.mkdir(parents=True, exist_ok=True)

    def one(path: Path) -> Path:
        obj = out / (path.relative_to(src.cmsis_nn).as_posix().replace("/", "__") + ".o")
        if not obj.is_file():
            fd, tmp = tempfile.mkstemp(suffix=".o", dir=out)
            os.close(fd)
            try:
                _run([cc, "-std=gnu11", OPT, *CMSIS_DEFINES, *_includes(src), "-c", str(path),
                      "-o", tmp], f"compiling {path.name} for the host")  # fmt: skip
                os.replace(tmp, obj)
            finally:
                Path(tmp).unlink(missing_ok=True)
        return obj

    defs = _definitions(src)
    wanted = set(_CALL.findall(generated.read_text()))
    files: dict[Path, Path] = {}
    nm = shutil.which("nm") or "nm"
    while True:
        todo = sorted({defs[w] for w in wanted if w in defs} - set(files))
        if not todo:
            return sorted(files.values())
        with concurrent.futures.ThreadPoolExecutor(jobs or os.cpu_count() or 2) as pool:
            files.update(zip(todo, pool.map(one, todo), strict=True))
        undefined = subprocess.run([nm, "-u", *map(str, files.values())], capture_output=True,
                                   text=True).stdout  # fmt: skip
        wanted |= {w for w in re.findall(r"\b(arm_\w+)", undefined)}


def build_host(src: TflmSources, cache: Path, model_dir: Path, ident: str,
               c_sources: list[Path], raw: bool, item_bytes: int, work: Path) -> Path:  # fmt: skip
    """A host executable of the harness with the generated file compiled strictly."""
    cc = _host_cc()
    work.mkdir(parents=True, exist_ok=True)
    inc = _app_defines(model_dir, ident, raw)
    aot_obj = work / f"{ident}_aot.host.o"
    _run([cc, *STRICT, OPT, *CMSIS_DEFINES, *_includes(src), *inc, "-c",
          str(model_dir / f"{ident}_aot.c"), "-o", str(aot_obj)],
         f"compiling {ident}_aot.c for the host")  # fmt: skip
    harness = templated("harness.c", ident, work / "harness.c")
    exe = work / f"{ident}_aot_host"
    _run([cc, "-std=c99", "-O1", *inc, f"-DPPGEDGE_ITEM_BYTES={item_bytes}",
          '-DPPGEDGE_IN="in.bin"', '-DPPGEDGE_OUT="out.bin"', str(harness),
          *map(str, c_sources), str(aot_obj),
          *map(str, host_cmsis_objects(src, cache, model_dir / f"{ident}_aot.c")),
          "-lm", "-o", str(exe)], "linking the host AOT harness")  # fmt: skip
    return exe
