"""The run directory's memory: a manifest of finished stages and a lock.

A stage's *key* hashes its parameters, the content hashes of its inputs and the ppgedge version;
a stage is skipped only when the manifest holds the same key and every output it recorded still
has the recorded hash. An output that changed on disk (truncated, edited, bit rot) is reported by
name before anything uses it. The lock (``O_EXCL`` file holding the owner's pid) keeps two runs
from writing one directory; a lock whose process is gone is taken over.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import socket
import tempfile
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
# what every run before the ownership rule also wrote beside its stage folders
LEGACY_ENTRIES = ("cache", "plots", "report.md")
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
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
                raise PpgedgeError(
                    f"{path} is corrupt (not JSON): delete it to run every stage again"
                ) from None
            if not isinstance(data, dict) or data.get("schema") != SCHEMA:
                raise PpgedgeError(f"{path}: not a ppgedge run manifest (schema {SCHEMA})")
            if not isinstance(data.get("stages", {}), dict):
                raise PpgedgeError(f"{path}: 'stages' is not a table: delete the manifest")
        data.setdefault("schema", SCHEMA)
        data.setdefault("stages", {})
        if "owned" not in data:  # manifests before the ownership rule: what their stages wrote
            made = {Path(rel).parts[0] for rel in _recorded_outputs(data)}
            data["owned"] = sorted(made | (set(LEGACY_ENTRIES) if made else set()))
        data["config"] = config
        data["tools"] = tool_versions()
        return cls(path, data)

    def owns(self, rel: str) -> bool:
        """Whether ppgedge made the top-level entry ``rel`` of the run folder."""
        return rel in self.data["owned"]

    def own(self, rels: list[str]) -> None:
        """Record entries before writing them, so a rerun may replace them (and only them)."""
        new = [r for r in rels if r not in self.data["owned"]]
        if new:
            self.data["owned"] = sorted({*self.data["owned"], *new})
            self.save()

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


def _recorded_outputs(data: dict[str, Any]) -> list[str]:
    return [
        rel
        for entry in data.get("stages", {}).values()
        if isinstance(entry, dict) and isinstance(entry.get("outputs"), dict)
        for rel in entry["outputs"]
    ]


def outputs_of(out: Path, paths: list[Path]) -> dict[str, str]:
    return {str(p.relative_to(out)): content_hash(p) for p in paths}


LOCK_SCHEMA = "ppgedge.lock/1"


class RunLock:
    """``with RunLock(out):`` one writer per run directory.

    The lock file appears with its whole content (schema, pid, host, process start time) or not
    at all: it is written to a private file first and hard-linked into place, which fails if a
    lock exists (``O_EXCL`` semantics, no window in which a reader sees an empty lock). A lock is
    taken over only when it names this host and a process that is gone; another host's lock, or
    one that cannot be read or parsed, is held, and the message says how to remove it.
    """

    def __init__(self, out: Path) -> None:
        self.path = out / LOCK

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        mine = {
            "schema": LOCK_SCHEMA,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _process_start(os.getpid()),
            "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        fd, private = tempfile.mkstemp(prefix=f"{LOCK}.tmp-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(mine, f)
            for _ in range(3):
                try:
                    os.link(private, self.path)
                    return self
                except FileExistsError:
                    self._take_over_if_stale()
        finally:
            os.unlink(private)
        raise PpgedgeError(f"could not take the lock {self.path}: another run keeps taking it")

    def _take_over_if_stale(self) -> None:
        """Remove the existing lock only if it provably belongs to a dead process here."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._held(f"it cannot be read ({exc.strerror})") from None
        owner = _parse_lock(raw)
        if owner is None:
            raise self._held("its content is not a ppgedge lock")
        pid, host, started = owner
        if host != socket.gethostname():
            raise self._held(f"it belongs to pid {pid} on host {host}")
        if _alive(pid) and (started is None or _process_start(pid) in (None, started)):
            raise PpgedgeError(
                f"{self.path.parent} is in use by another ppgedge run (pid {pid}); "
                "wait for it or choose another output directory"
            )
        # stale: move it aside under a private name, and put it back if it changed meanwhile
        aside = self.path.with_name(f"{LOCK}.stale-{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return
        try:
            if aside.read_bytes() != raw:  # another run took the lock between read and move
                with contextlib.suppress(FileExistsError):
                    os.link(aside, self.path)
        finally:
            aside.unlink(missing_ok=True)

    def _held(self, why: str) -> PpgedgeError:
        return PpgedgeError(
            f"{self.path} is held: {why}; if no ppgedge run uses {self.path.parent}, "
            f"delete {self.path} and rerun"
        )

    def __exit__(self, *exc: object) -> None:
        owner = _parse_lock(self.path.read_bytes()) if self.path.is_file() else None
        if owner is not None and owner[0] == os.getpid() and owner[1] == socket.gethostname():
            self.path.unlink(missing_ok=True)


def _parse_lock(raw: bytes) -> tuple[int, str, int | None] | None:
    """(pid, host, process start) of a lock file, or None when it is not one of ours."""
    if len(raw) > 4096:
        return None
    try:
        info = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(info, dict):
        return None
    pid, host, started = info.get("pid"), info.get("host"), info.get("started")
    if type(pid) is not int or pid <= 0 or not isinstance(host, str):
        return None
    return pid, host, started if type(started) is int else None


def _process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), so a reused pid is told
    apart from the run that wrote the lock; None where /proc does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat[stat.rindex(")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
