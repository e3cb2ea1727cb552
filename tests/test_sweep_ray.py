"""The Ray engine against a real local Ray cluster (127.0.0.1, 2 worker CPUs).

One cluster for the module, started with ``ray start --block`` in its own session and ended by
signalling that session. A 2-fold grid is interrupted with Ctrl-C (outstanding tasks are
cancelled, finished cells kept), rerun while one busy worker process is killed (Ray retries its
task), and compared cell for cell with the local engine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_helpers import assert_user_error  # noqa: E402

from ppgedge.data.format import Dataset  # noqa: E402
from ppgedge.distill.sweep import run_sweep  # noqa: E402
from ppgedge.train.trainer import TrainConfig  # noqa: E402

TASK_TITLE = "ray::ppgedge-cell"
GRID = dict(students="resnet_micro,mlp_micro", methods="scratch,soft,hard", seeds="0")
N_CELLS = 2 * 3 * 1 * 2  # students x methods x seeds x folds
EPOCHS = 3


def _env(token: Path | None = None) -> dict[str, str]:
    """Ray replaces 127.0.0.1 with the machine's address unless told to stay on loopback; the
    cluster's auth token is the test's own (never the user's ~/.ray/auth_token)."""
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)} if token else {}
    return dict(
        os.environ,
        **auth,
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_USAGE_STATS_ENABLED="0",
        OMP_NUM_THREADS="1",
        COLUMNS="120",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, int, Path]]:
    """``(address, session id, token file)`` of a 2-CPU Ray head on 127.0.0.1, shut down and
    removed afterwards."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rt")  # short: Ray's socket paths must fit 107 bytes
    token = Path(temp) / "auth_token"
    token.write_text(secrets.token_hex(32))
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("ray")),
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--num-gpus=0",
            "--include-dashboard=false",
            "--disable-usage-stats",
            f"--temp-dir={temp}",
            "--block",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(token),
        start_new_session=True,
    )
    try:
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline() if proc.stdout else ""
            seen.append(line)
            if "Ray runtime started" in line:
                break
            if not line and proc.poll() is not None:
                break
        else:
            pytest.fail("ray start did not finish in 120 s")
        assert proc.poll() is None, "".join(seen)[-3000:]
        yield f"127.0.0.1:{port}", proc.pid, token
    finally:
        proc.terminate()  # --block: on SIGTERM, ray start stops the processes it started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        time.sleep(1)
        for pid in _session_pids(proc.pid):  # anything the head left behind in its session
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def _session_pids(session: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == session:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _busy_workers(session: int) -> list[int]:
    """Worker processes of our cluster that are running a sweep cell right now."""
    out = []
    for pid in _session_pids(session):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:
            continue
        if title.startswith(TASK_TITLE):
            out.append(pid)
    return out


def _lines(path: Path) -> list[dict]:
    return [json.loads(s) for s in path.read_text().splitlines()] if path.exists() else []


def _sweep_cmd(data: Path, teacher: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ppgedge",
        "sweep",
        str(data),
        "-t",
        str(teacher),
        "-o",
        str(out),
        "--students",
        GRID["students"],
        "--methods",
        GRID["methods"],
        "--seeds",
        GRID["seeds"],
        "--folds",
        "2",
        "--epochs",
        str(EPOCHS),
        "--cache-dir",
        str(cache),
        *extra,
    ]


def _wait_for(cond, timeout: float, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_ray_sweep_interrupt_rerun_killed_worker_equals_local(
    cluster: tuple[str, int, Path], tiny_dataset: Dataset, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    address, session, token = cluster
    cache, out = tmp_path / "cache", tmp_path / "ray"
    local = run_sweep(
        tiny_checkpoint,
        tiny_dataset,
        None,
        tmp_path / "local",
        TrainConfig(epochs=EPOCHS, patience=6, augment=False),
        students=GRID["students"].split(","),
        methods=GRID["methods"].split(","),
        seeds=[0],
        folds=2,
        cache_dir=cache,
        device="cpu",
    )
    assert local["runs"] == N_CELLS and not local["failed"] and not local["not_run"]
    cmd = _sweep_cmd(
        tiny_dataset.path, tiny_checkpoint, out, cache, "--engine", "ray", "--ray-address", address
    )
    results = out / "results.jsonl"

    # 1. Ctrl-C after two cells: outstanding tasks cancelled, finished cells kept and listed
    first = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(token)
    )
    assert _wait_for(lambda: len(_lines(results)) >= 2, 180, first), first.communicate()
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    kept = _lines(results)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == len(kept) < N_CELLS
    assert len(summary["not_run"]) + len(summary["failed"]) == N_CELLS - len(kept)
    deadline = time.monotonic() + 20
    while _busy_workers(session) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _busy_workers(session) == [], "cancelled cells still running after Ctrl-C"

    # 2. rerun: finished cells are skipped; one busy worker is killed and its task retried
    second = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(token)
    )
    killed: list[int] = []

    def kill_one() -> bool:
        busy = _busy_workers(session)
        if len(_lines(results)) > len(kept) and busy:
            os.kill(busy[0], signal.SIGKILL)
            killed.append(busy[0])
            return True
        return False

    assert _wait_for(kill_one, 180, second), "no busy worker to kill mid-sweep"
    stdout, err = second.communicate(timeout=300)
    assert second.returncode == 0, err + stdout
    assert stdout.count("done before") == len(kept)
    rows = _lines(results)
    keys = [r["key"] for r in rows]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == N_CELLS  # each cell exactly once
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == summary["cells"] == N_CELLS
    assert summary["failed"] == [] and summary["not_run"] == []

    # 3. the same numbers as the local engine, cell for cell
    local_rows = {r["key"]: r for r in _lines(tmp_path / "local" / "results.jsonl")}
    assert local_rows.keys() == set(keys)
    for row in rows:
        expect = {k: v for k, v in local_rows[row["key"]].items() if k != "seconds"}
        assert {k: v for k, v in row.items() if k != "seconds"} == expect, row["key"]
    assert len(list((out / "models").glob("*.pt"))) == N_CELLS

    # 4. a cluster without room for one run is one line, exit 2
    proc = subprocess.run(
        _sweep_cmd(
            tiny_dataset.path,
            tiny_checkpoint,
            tmp_path / "big",
            cache,
            "--engine",
            "ray",
            "--ray-address",
            address,
            "--cpus-per-run",
            "3",
        ),
        capture_output=True,
        text=True,
        env=_env(token),
        timeout=120,
    )
    assert_user_error(proc, "no node with 3 CPUs")


def test_unreachable_cluster_is_one_line(
    tiny_dataset: Dataset, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    cmd = _sweep_cmd(tiny_dataset.path, tiny_checkpoint, tmp_path / "o", tmp_path / "c")
    proc = subprocess.run(
        [*cmd, "--engine", "ray", "--ray-address", f"127.0.0.1:{_free_port()}"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert_user_error(proc, "cannot reach a Ray cluster")
