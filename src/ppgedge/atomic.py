"""Atomic artifact writing and content hashes.

Artifacts are written to a temporary sibling and renamed into place, so an interrupted or failed
command never leaves a half-written file or dataset directory behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ppgedge.errors import PpgedgeError, check_interrupt, interrupt_noted
from ppgedge.ownership import claim

if TYPE_CHECKING:
    from ppgedge.ownership import OutputKind


@contextlib.contextmanager
def atomic_path(
    target: str | os.PathLike[str], *, directory: bool = False, kind: OutputKind | None = None
) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success rename it onto ``target``.

    On any exception the temporary file or directory is removed and ``target`` is untouched.
    ``target`` is replaced only when it is absent or ppgedge's: an existing folder needs a
    ``kind`` that recognises it, an existing file is checked when ``kind`` is given (internal
    files of folders ppgedge owns pass none). Staging names are ``.NAME.tmp-XXXXXXXX`` and
    ``.NAME.old-XXXXXXXX``, the only names :func:`ppgedge.ownership.remove_staging` removes.

    A Ctrl-C that arrives while the artifact is staged and that a library swallowed (JAX's
    garbage-collection callback cannot raise it) discards the staging instead of publishing
    it: an interrupted command leaves nothing new. Writes that start after the interrupt
    (a resume checkpoint, the run manifest) are published as usual.
    """
    target = Path(target)
    if kind is not None:
        claim(target, kind)
    elif directory and target.exists():
        raise PpgedgeError(f"{target} exists and ppgedge cannot tell it wrote it: choose another")
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.tmp-"
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    _follow_umask(tmp, directory)
    interrupted_before = interrupt_noted()
    try:
        yield tmp
        if not interrupted_before:
            check_interrupt()
        if directory and target.exists():
            # an empty folder of our own is the one name a folder can be renamed onto
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    """The process umask (read by setting and restoring it: Python has no getter)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _follow_umask(path: Path, directory: bool) -> None:
    """``mkstemp``/``mkdtemp`` create 0600/0700 whatever the umask; an artifact gets the
    permissions a plain ``open``/``mkdir`` would give it (0644/0755 under the usual umask), so a
    run folder can be shared like any other."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_UMASK)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


def write_json_atomic(target: str | os.PathLike[str], obj: Any) -> None:
    write_text_atomic(target, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
