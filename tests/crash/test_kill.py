"""Kill -9 a worker process at the worst moments; the log must let the run resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from stemlog import RunStatus, WorkflowApp
from tests.crash.workflows import blocking, poison

pytestmark = pytest.mark.crash
ROOT = Path(__file__).resolve().parents[2]


def spawn(url: str, mode: str, argument: str = "") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash.worker_process", url, mode, argument],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for_file(path: Path, process: subprocess.Popen[str], seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None or path.exists(), "the worker died early"
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def kill(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    assert process.stdout is not None
    process.stdout.close()


@pytest.mark.anyio
async def test_killed_mid_step_the_run_resumes_with_the_next_attempt(tmp_path: Path) -> None:
    url, marker = f"sqlite:///{tmp_path / 'crash.db'}", tmp_path / "marker"
    worker = spawn(url, "start", str(marker))
    assert worker.stdout is not None
    run_id = worker.stdout.readline().strip()
    wait_for_file(marker.with_suffix(".attempt1"), worker)
    kill(worker)
    async with WorkflowApp.open(url) as app:
        app.register_flows([blocking, poison])
        with anyio.fail_after(20):
            while run_id not in await app.runs_waiting_on("crash.go"):
                await anyio.sleep(0.01)
        await app.emit("crash.go", "after the crash")
        result = await app.wait_for(run_id, timeout=20)
        history = await app.history(run_id)
    assert result.status is RunStatus.COMPLETED
    assert result.value == "after the crash"
    work = [(f.type, f.data.get("attempt")) for f in history if f.data.get("step") == "work"]
    assert work == [("StepStarted", 1), ("StepStarted", 2), ("StepCompleted", None)]
    completed = [f.data["step"] for f in history if f.type == "StepCompleted"]
    assert len(completed) == len(set(completed))  # no step recorded completed twice
    assert [f.position for f in history] == list(range(1, len(history) + 1))


@pytest.mark.anyio
async def test_a_delivery_survives_a_kill_right_after_emit_returned(tmp_path: Path) -> None:
    url, marker = f"sqlite:///{tmp_path / 'emit.db'}", tmp_path / "marker"
    async with WorkflowApp.open(url) as app:  # a run that waits on crash.go
        app.register_flows([blocking, poison])
        run_id = await app.start(blocking, {"marker": str(marker)})
        with anyio.fail_after(20):
            while not marker.with_suffix(".attempt1").exists():
                await anyio.sleep(0.01)
    async with WorkflowApp.open(url) as app:  # attempt 2 of "work", then the wait
        app.register_flows([blocking, poison])
        with anyio.fail_after(20):
            while run_id not in await app.runs_waiting_on("crash.go"):
                await anyio.sleep(0.01)
    emitter = spawn(url, "emit", "crash.go")
    assert emitter.stdout is not None
    assert emitter.stdout.readline().strip() == "emitted 1"
    kill(emitter)  # before it drove the run any further
    async with WorkflowApp.open(url) as app:
        app.register_flows([blocking, poison])
        result = await app.wait_for(run_id, timeout=20)
    assert result.value == "delivered"


@pytest.mark.anyio
async def test_a_step_that_kills_its_process_fails_after_max_attempts(tmp_path: Path) -> None:
    url, marker = f"sqlite:///{tmp_path / 'poison.db'}", tmp_path / "marker"
    first = spawn(url, "poison", str(marker))
    assert first.stdout is not None
    run_id = first.stdout.readline().strip()
    assert first.wait(timeout=20) == -signal.SIGKILL
    first.stdout.close()
    second = spawn(url, "drive")  # resumes the run: attempt 2 kills it again
    assert second.wait(timeout=20) == -signal.SIGKILL
    assert second.stdout is not None
    second.stdout.close()
    async with WorkflowApp.open(url) as app:  # both attempts used: the run fails
        app.register_flows([blocking, poison])
        result = await app.wait_for(run_id, timeout=20)
        starts = [f for f in await app.history(run_id) if f.type == "StepStarted"]
    assert result.status is RunStatus.FAILED
    assert result.error is not None and result.error.type == "stemlog.WorkerLost"
    assert [f.attempt for f in starts] == [1, 2]
    assert marker.with_suffix(".attempt2").exists()
    assert not marker.with_suffix(".attempt3").exists()
