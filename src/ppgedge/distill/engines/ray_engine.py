"""The Ray engine: every cell is one Ray task, on a local or a running cluster.

Ray is optional (``pip install -e ".[ray]"``) and imported only here. The teacher's logits are
computed once by the caller and put in Ray's object store once; a task fetches them only when its
node has no intact copy in the logits cache yet, writes that copy, and every later task on the
node reads the file, so no task ever runs the teacher for the logit-based methods. A task returns
its result row and its checkpoint's bytes (the driver writes the file), so workers need the
dataset and teacher paths but no shared output folder. A task whose worker dies, or that raises
something other than a :class:`PpgedgeError`, is retried up to ``retries`` times by Ray.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ppgedge.atomic import atomic_path
from ppgedge.distill.grid import Cell, CellOutcome, SweepContext, error_line, run_cell
from ppgedge.errors import PpgedgeError

EXTRA_HINT = 'pip install -e ".[ray]" (or pip install "ppgedge[ray]")'
CONNECT_TIMEOUT_S = 5.0
POLL_S = 0.5  # ray.wait returns this often, so Ctrl-C is seen promptly


def require_ray() -> Any:
    """The ``ray`` module, or one line naming the extra that installs it."""
    try:
        import ray
    except ImportError:
        raise PpgedgeError(
            f"--engine ray needs Ray, which is not installed: {EXTRA_HINT}"
        ) from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """``host:port`` of an explicit address (``ray://`` or GCS), None for ``auto``/``local``."""
    bare = address.removeprefix("ray://")
    if bare in ("auto", "local") or ":" not in bare:
        return None
    host, _, port = bare.rpartition(":")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise PpgedgeError(
            f"--ray-address '{address}': use HOST:PORT, ray://HOST:PORT or auto"
        ) from None


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable address for minutes; a plain TCP connect answers in seconds.
    ``auto`` is first resolved the way Ray does (a stale record of a stopped cluster included)."""
    if address == "auto":
        try:
            from ray._private.services import canonicalize_bootstrap_address

            address = canonicalize_bootstrap_address("auto") or address
        except Exception:  # noqa: BLE001 - none running, or the helper moved: ray.init says so
            return
    hp = _host_port(address)
    if hp is None:
        return
    try:
        with socket.create_connection(hp, timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise PpgedgeError(
            f"--ray-address {address}: cannot reach a Ray cluster there "
            f"({exc.strerror or exc}): start one with 'ray start --head' or fix the address"
        ) from None


def connect(address: str | None, cpus_per_run: float, gpus_per_run: float) -> bool:
    """Join ``address`` (``auto``: the cluster running here) or start a local Ray; check that a
    node can hold one run. Returns whether this call connected (and so must disconnect)."""
    ray = require_ray()
    if ray.is_initialized():
        started = False
    else:
        if address:
            _check_reachable(address)
        try:
            ray.init(
                address=address or "local",
                include_dashboard=False if not address else None,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"at {address}" if address else "locally"
            raise PpgedgeError(
                f"cannot start or join a Ray cluster {where}: {error_line(exc)}"
            ) from None
        started = True
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    fits = [
        n
        for n in nodes
        if n["Resources"].get("CPU", 0) >= cpus_per_run
        and n["Resources"].get("GPU", 0) >= gpus_per_run
    ]
    if not fits:
        if started:
            ray.shutdown()
        cpu = max((n["Resources"].get("CPU", 0) for n in nodes), default=0)
        gpu = max((n["Resources"].get("GPU", 0) for n in nodes), default=0)
        raise PpgedgeError(
            f"the Ray cluster has no node with {cpus_per_run:g} CPUs and {gpus_per_run:g} GPUs "
            f"for one run (largest node: {cpu:g} CPUs, {gpu:g} GPUs): lower --cpus-per-run / "
            "--gpus-per-run or add nodes"
        )
    return started


def _intact(path: Path, shape: tuple[int, ...]) -> bool:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return False
    return arr.shape == shape and arr.dtype == np.float32


def _local_logits(ctx: SweepContext, logits: tuple[str, tuple[int, ...], list[Any]] | None):
    """The context with a cache folder on this node that holds the teacher's logits, written
    from the object store if the node has no intact copy (the teacher never runs in a task)."""
    if logits is None:
        return ctx
    import ray

    name, shape, box = logits
    folders = [Path(ctx.cache_dir)] if ctx.cache_dir else []
    folders.append(Path(tempfile.gettempdir()) / f"ppgedge-teacher-logits-{os.getuid()}")
    for folder in folders:
        path = folder / name
        if path.is_file() and _intact(path, shape):
            return replace(ctx, cache_dir=str(folder))
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                np.save(fh, np.asarray(ray.get(box[0]), dtype=np.float32))
            return replace(ctx, cache_dir=str(folder))
        except OSError:
            continue
    return ctx


def _cell_task(
    cell: Cell,
    ctx: SweepContext,
    logits: tuple[str, tuple[int, ...], list[Any]] | None,
    sweep_id: str,
) -> dict[str, Any]:
    """One cell in a Ray worker: a user error comes back as a value (retrying cannot fix it);
    anything else raises, and Ray retries it. The scratch folder is named after the sweep and
    cell, so a retry first removes what a killed attempt left there."""
    ctx = _local_logits(ctx, logits)
    scratch = (
        Path(tempfile.gettempdir()) / f"ppgedge-cells-{os.getuid()}" / f"{sweep_id}-{cell.key}"
    )
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        out = scratch / f"{cell.key}.pt"
        try:
            row = run_cell(cell, ctx, out)
        except PpgedgeError as exc:
            return {"error": error_line(exc)}
        return {"row": row, "checkpoint": out.read_bytes()}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run_ray(
    cells: Sequence[Cell],
    ctx: SweepContext,
    models_dir: Path,
    *,
    address: str | None = None,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0,
    retries: int = 2,
    logits: tuple[np.ndarray, str] | None = None,
) -> Iterator[CellOutcome]:
    """Submit every cell, yield each outcome as its task ends; on exit (done, Ctrl-C or an
    error) cancel what is still outstanding and disconnect if this call connected."""
    ray = require_ray()
    started = connect(address, cpus_per_run, gpus_per_run)
    pending: dict[Any, Cell] = {}
    try:
        if ctx.device == "auto":
            ctx = replace(ctx, device="cuda" if gpus_per_run > 0 else "cpu")
        ctx = replace(ctx, threads=max(1, int(cpus_per_run)))
        ctx_ref = ray.put(ctx)
        shipped = None
        if logits is not None:
            arr, name = logits
            shipped = (name, tuple(arr.shape), [ray.put(np.ascontiguousarray(arr))])
        task = ray.remote(_cell_task).options(
            num_cpus=cpus_per_run,
            num_gpus=gpus_per_run,
            max_retries=retries,
            retry_exceptions=True,
            name="ppgedge-cell",
        )
        sweep_id = hashlib.sha256(f"{socket.gethostname()}:{models_dir.resolve()}".encode())
        for cell in cells:
            pending[task.remote(cell, ctx_ref, shipped, sweep_id.hexdigest()[:12])] = cell
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for ref in done:
                cell = pending.pop(ref)
                yield _outcome(ray, ref, cell, models_dir, retries)
    finally:
        _stop(ray, list(pending), started)


def _stop(ray: Any, outstanding: list[Any], started: bool) -> None:
    """End the tasks still outstanding. A driver that connected for this sweep disconnects: Ray
    then ends the job and kills its workers, queued and running. (``ray.cancel(force=True)``
    while tasks are finishing hits a Ray core race that aborts the driver, ray-project/ray
    #54527, so it is used only when the caller owns the connection, and without force.)"""
    if started:
        ray.shutdown()
        return
    for ref in outstanding:
        with contextlib.suppress(Exception):  # best effort: the task may have just ended
            ray.cancel(ref)


def _outcome(ray: Any, ref: Any, cell: Cell, models_dir: Path, retries: int) -> CellOutcome:
    """A finished task's row (its checkpoint written here), or its error after the retries."""
    try:
        result = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
        return CellOutcome(cell, error=error_line(cause), attempts=retries + 1)
    except ray.exceptions.RayError as exc:  # worker or node died on every attempt, cancelled
        return CellOutcome(cell, error=error_line(exc), attempts=retries + 1)
    if "error" in result:
        return CellOutcome(cell, error=result["error"])
    with atomic_path(models_dir / f"{cell.key}.pt") as tmp:
        tmp.write_bytes(result["checkpoint"])
    return CellOutcome(cell, row=result["row"])
