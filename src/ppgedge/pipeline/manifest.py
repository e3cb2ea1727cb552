"""The run directory's memory: a manifest of finished stages and a lock.

A stage's *key* hashes its parameters, the content hashes of its inputs and the ppgedge version;
a stage is skipped only when the manifest holds the same key and every output it recorded still
has the recorded hash. An output that changed on disk (truncated, edited, bit rot) is reported by
name before anything uses it. The lock (``O_EXCL`` file holding the owner's pid) keeps two runs
from writing one directory; a lock whose process is gone is taken over.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import socket
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from ppgedge import __version__
from ppgedge.atomic import file_sha256, write_json_atomic
from ppgedge.errors import PpgedgeError

SCHEMA = "ppgedge.run/1"
MANIFEST = "manifest.json"
LOCK = ".ppgedge.lock"
TOOLS = ("torch", "litert-torch", "tflite-micro", "ai-edge-litert", "onnx", "onnxruntime", "numpy")


def tool_versions() -> dict[str, str]:
    out = {"ppgedge": __version__, "python": platform.python_version()}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def content_hash(path: Path) -> str:
    """sha256 of a file; of a dataset or export folder, of its index file (which lists hashes)
    or, failing that, of every file's name and hash."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    if not path.is_dir():
        raise PpgedgeError(f"{path}: missing (a stage output or input has been removed)")
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file() and not q.name.startswith(".")):
        h.update(str(p.relative_to(path)).encode())
        h.update(file_sha256(p).encode())
    return h.hexdigest()


def stage_key(stage: str, params: dict[str, Any], inputs: dict[str, str]) -> str:
    blob = json.dumps(
        {"stage": stage, "params": params, "inputs": inputs, "version": __version__},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class RunManifest:
    path: Path
    data: dict[str, Any]

    @classmethod
    def open(cls, out: Path, config: dict[str, Any]) -> RunManifest:
        path = out / MANIFEST
        data: dict[str, Any] = {}
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise PpgedgeError(
                    f"{path} is corrupt (not JSON): delete it to run every stage again"
                ) from None
            if data.get("schema") != SCHEMA:
                raise PpgedgeError(f"{path}: not a ppgedge run manifest (schema {SCHEMA})")
        data.setdefault("schema", SCHEMA)
        data.setdefault("stages", {})
        data["config"] = config
        data["tools"] = tool_versions()
        return cls(path, data)

    def stage(self, name: str) -> dict[str, Any] | None:
        return self.data["stages"].get(name)

    def is_fresh(self, name: str, key: str) -> bool:
        """Same key, and every recorded output still hashes as recorded (else say which)."""
        entry = self.stage(name)
        if not entry or entry.get("key") != key or entry.get("status") != "done":
            return False
        for rel, digest in entry.get("outputs", {}).items():
            p = self.path.parent / rel
            if not p.exists():
                return False
            if content_hash(p) != digest:
                raise PpgedgeError(
                    f"{p} changed since stage '{name}' wrote it (sha256 differs: corrupt or "
                    f"edited): delete it, or rerun with --from {name}"
                )
        return True

    def record(self, name: str, entry: dict[str, Any]) -> None:
        entry = {**entry, "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
        self.data["stages"][name] = entry
        self.save()

    def invalidate_from(self, names: list[str]) -> None:
        for n in names:
            self.data["stages"].pop(n, None)
        self.save()

    def save(self) -> None:
        write_json_atomic(self.path, self.data)


def outputs_of(out: Path, paths: list[Path]) -> dict[str, str]:
    return {str(p.relative_to(out)): content_hash(p) for p in paths}


class RunLock:
    """``with RunLock(out):`` one writer per run directory."""

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and _alive(owner):
                    raise PpgedgeError(
                        f"{self.path.parent} is in use by another ppgedge run (pid {owner}); "
                        "wait for it or choose another output directory"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                json.dump({"pid": os.getpid(), "host": socket.gethostname()}, f)
            return self
        raise PpgedgeError(f"could not take the lock {self.path}")

    def _owner(self) -> int | None:
        try:
            info = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if info.get("host") != socket.gethostname():
            return int(info.get("pid", 0)) or None  # another machine: assume alive
        return int(info.get("pid", 0)) or None

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
