"""What ppgedge may write: only what it created, or what carries its own marker.

ppgedge runs in CI with write access to a repository, so a wrong ``-o`` must never cost a user a
file. Every output a user names is *claimed* before any work starts: a folder must be new, empty,
or carry the marker of its kind (a run folder's ``manifest.json``, a dataset's ``meta.json``, an
export folder's ``export.json``, each with ppgedge's schema); a file must be new or be a ppgedge
artifact of the same kind. The filesystem root, the home directory, the current directory and its
ancestors are never an output folder. Staging names are the ones :mod:`ppgedge.atomic` makes, and
only those, in folders ppgedge owns, are ever cleaned up (never by a recursive scan).
"""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ppgedge.errors import PpgedgeError

_SNIFF_BYTES = 1 << 20  # a marker is small; never read more than this to recognise one


def _json_schema(path: Path) -> str | None:
    """The ``schema`` field of a small JSON document, or None (missing, large, not JSON)."""
    try:
        if not path.is_file() or path.stat().st_size > _SNIFF_BYTES:
            return None
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    schema = doc.get("schema") if isinstance(doc, dict) else None
    return schema if isinstance(schema, str) else None


def _has_schema(name: str, *schemas: str) -> Callable[[Path], bool]:
    """A marker test: ``name`` inside the folder (or the file itself) has one of ``schemas``'
    families (``ppgedge.run`` matches ``ppgedge.run/1`` and later versions)."""

    def test(path: Path) -> bool:
        found = _json_schema(path / name if name else path)
        return found is not None and found.split("/")[0] in schemas

    return test


def _torch_artifact(path: Path) -> bool:
    """A ``torch.save`` zip whose pickle names a ppgedge schema (checkpoint or int8 artifact)."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as zf:
            pkl = [i for i in zf.infolist() if i.filename.endswith("/data.pkl")]
            if len(pkl) != 1 or pkl[0].file_size > 64 * _SNIFF_BYTES:
                return False
            return b"ppgedge." in zf.read(pkl[0])
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def _text_marked(marker: bytes) -> Callable[[Path], bool]:
    def test(path: Path) -> bool:
        try:
            with open(path, "rb") as fh:
                return marker in fh.read(_SNIFF_BYTES)
        except OSError:
            return False

    return test


@dataclass(frozen=True)
class OutputKind:
    """One kind of output: what it is called in messages, whether it is a folder, how to
    recognise one ppgedge wrote, and (for a folder replaced as a whole) the names its marker
    accounts for: anything else inside is someone's file, and the folder is not replaced."""

    what: str
    folder: bool
    owns: Callable[[Path], bool]
    marker: str = ""
    contents: Callable[[Path], set[str]] | None = None


def _dataset_contents(folder: Path) -> set[str]:
    from ppgedge.data.format import ARRAYS

    return {"meta.json", *(f"{name}.npy" for name in ARRAYS)}


def _listed(marker: str, *keys: str) -> Callable[[Path], set[str]]:
    """The marker and the top-level names of the paths its JSON lists under ``keys``."""

    def contents(folder: Path) -> set[str]:
        try:
            doc = json.loads((folder / marker).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return {marker}
        names = {marker}
        for key in keys:
            entry = doc.get(key) if isinstance(doc, dict) else None
            if isinstance(entry, dict):  # one {"path": ...} record, or records by name
                items = [entry] if "path" in entry else list(entry.values())
            else:
                items = entry if isinstance(entry, list) else []
            for item in items:
                rel = item.get("path") if isinstance(item, dict) else None
                if isinstance(rel, str) and rel and not Path(rel).is_absolute():
                    names.add(Path(rel).parts[0])
        return names

    return contents


DATASET = OutputKind(
    "dataset",
    True,
    _has_schema("meta.json", "ppgedge.dataset"),
    "meta.json",
    _dataset_contents,
)
RUN = OutputKind(
    "run folder",
    True,
    lambda p: (
        _has_schema("manifest.json", "ppgedge.run")(p)
        or _has_schema(".ppgedge.lock", "ppgedge.lock")(p)
    ),
    "manifest.json",
)
EXPORT = OutputKind(
    "export folder",
    True,
    _has_schema("export.json", "ppgedge.export"),
    "export.json",
    _listed("export.json", "files", "artifact"),
)
BUNDLE = OutputKind(
    "TFLite Micro bundle",
    True,
    _has_schema("manifest.json", "ppgedge.tflm_bundle"),
    "manifest.json",
    _listed("manifest.json", "files"),
)
SWEEP = OutputKind(
    "sweep folder",
    True,
    lambda p: (
        _has_schema("sweep.json", "ppgedge.sweep")(p)
        or _has_schema("summary.json", "ppgedge.sweep")(p)
    ),
    "sweep.json",
)
CHECKPOINT = OutputKind("checkpoint", False, _torch_artifact)
JUNIT = OutputKind("JUnit report", False, _text_marked(b'<testsuites name="ppgedge check"'))
MARKDOWN = OutputKind("Markdown report", False, _text_marked(b"ppgedge check"))


def forbidden_folder(path: Path) -> str | None:
    """Why ``path`` may never be an output folder, or None."""
    p = path.resolve()
    if p == Path(p.anchor):
        return "the filesystem root"
    if p == Path.home().resolve():
        return "your home directory"
    cwd = Path.cwd().resolve()
    if p == cwd:
        return "the current directory"
    if p in cwd.parents:
        return "a parent of the current directory"
    return None


def claim(path: str | Path, kind: OutputKind, option: str = "-o") -> Path:
    """Refuse, with one line and before any work, an output ``path`` that is not ppgedge's to
    write; return it otherwise (absent, an empty folder, or a ``kind`` ppgedge wrote)."""
    path = Path(path)
    if kind.folder:
        why = forbidden_folder(path)
        if why is not None:
            raise PpgedgeError(
                f"{option} {path} is {why}: give a new folder for the {kind.what} "
                "(ppgedge only writes into folders it created)"
            )
    if not path.exists() and not path.is_symlink():
        return path
    if path.is_symlink() and not path.exists():
        raise PpgedgeError(
            f"{option} {path} is a broken symbolic link: remove it or choose another"
        )
    if kind.folder and not path.is_dir():
        raise PpgedgeError(
            f"{option} {path} is a file, not a folder: choose a new folder for the {kind.what}"
        )
    if not kind.folder and path.is_dir():
        raise PpgedgeError(f"{option} {path} is a folder: give a file name for the {kind.what}")
    if kind.folder and not any(path.iterdir()):
        return path
    if kind.owns(path):
        foreign = _foreign_entries(path, kind)
        if foreign:
            raise PpgedgeError(
                f"{option} {path} is a ppgedge {kind.what} but also holds {foreign[0]!r}, "
                f"which its {kind.marker} does not list: move it out, or choose a new folder "
                "(the folder is replaced as a whole)"
            )
        return path
    if kind.folder:
        raise PpgedgeError(
            f"{option} {path} holds files ppgedge did not write (no ppgedge {kind.marker}): "
            f"choose a new or empty folder for the {kind.what}"
        )
    raise PpgedgeError(
        f"{option} {path} exists and is not a ppgedge {kind.what}: choose another name "
        "(ppgedge never overwrites files it did not write)"
    )


def _foreign_entries(path: Path, kind: OutputKind) -> list[str]:
    """Entries of a marked folder that its marker does not account for (hidden staging names
    ppgedge itself makes are not someone's files)."""
    if kind.contents is None:
        return []
    allowed = kind.contents(path)
    return sorted(
        e.name for e in path.iterdir() if e.name not in allowed and not STAGING.match(e.name)
    )


def claims(kind: OutputKind, option: str = "-o") -> Callable[[Path | None], Path | None]:
    """A Typer option callback: the claim happens while the command line is parsed."""

    def callback(value: Path | None) -> Path | None:
        return None if value is None else claim(value, kind, option)

    return callback


# Names ``atomic.atomic_path`` stages under: ``.NAME.tmp-XXXXXXXX`` and ``.NAME.old-XXXXXXXX``,
# the 8-character suffix from ``tempfile``'s alphabet.
STAGING = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-[a-z0-9_]{8}$")


def remove_staging(folder: Path, names: Iterable[str] | None = None) -> list[Path]:
    """Remove what a killed ppgedge left staged directly in ``folder`` (not below it): entries
    named as :mod:`ppgedge.atomic` stages, for the artifact ``names`` only when given. Call it
    only on folders ppgedge owns, while holding their lock."""
    wanted = None if names is None else set(names)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        m = STAGING.match(entry.name)
        if m is None or (wanted is not None and m["name"] not in wanted):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed
