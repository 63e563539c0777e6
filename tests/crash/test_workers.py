"""Several worker processes on one log: claims, takeover after kill -9 (PostgreSQL and
SQLite; more SQLite processes in ``test_sqlite_workers.py``)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from stemlog import RunStatus, WorkflowApp
from tests.conftest import make_store_url
from tests.crash.scale_workflows import KILLS, WORKFLOWS, checkout, orders
from tests.crash.workflows import blocking

pytestmark = [pytest.mark.crash, pytest.mark.anyio]
ROOT = Path(__file__).resolve().parents[2]


def spawn_worker(url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash.pg_worker", url],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def serving(process: subprocess.Popen[str]) -> bool:
    assert process.stdout is not None
    return process.stdout.readline().strip() == "serving"


def stop(process: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    if process.poll() is None:
        os.kill(process.pid, sig)
    process.wait(timeout=20)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


@pytest.mark.postgres
async def test_three_workers_survive_kills_and_finish_every_run(postgres_url: str) -> None:
    rng = random.Random(7)
    async with WorkflowApp.open(postgres_url, worker=False) as app:  # creates the tables
        app.register_workflows(WORKFLOWS)
        workers = [spawn_worker(postgres_url) for _ in range(3)]
        try:
            assert all(serving(worker) for worker in workers)
            run_ids = {}
            for n in range(500):
                workflow = orders if n % 2 == 0 else checkout
                run_ids[await app.start(workflow, {"n": n})] = n
            with anyio.fail_after(240):
                kills = 0
                while True:
                    await anyio.sleep(0.5)
                    await app.emit("scale.approve", "ops")
                    if kills < KILLS:  # kill one at a random point, start a fresh one
                        victim = rng.randrange(len(workers))
                        stop(workers[victim])
                        workers[victim] = spawn_worker(postgres_url)
                        kills += 1
                    runs = await app.list_runs(limit=len(run_ids))
                    if all(run.status.is_terminal for run in runs):  # failed: checked below
                        break
            results = {run_id: await app.wait_for(run_id, timeout=5) for run_id in run_ids}
            histories = {run_id: await app.history(run_id) for run_id in run_ids}
            differences = await app.read_models.verify()
        finally:
            for worker in workers:
                stop(worker)
    for run_id, n in run_ids.items():
        result = results[run_id]
        assert result.status is RunStatus.COMPLETED
        if n % 2 == 0:
            assert result.value == {"n": n, "value": 2 * n, "by": "ops"}
        else:
            assert result.value == 3 + n
        facts = histories[run_id]
        assert [f.position for f in facts] == list(range(1, len(facts) + 1))  # nothing lost
        completed = Counter((f.step, f.iteration) for f in facts if f.type == "StepCompleted")
        assert max(completed.values()) == 1  # no step recorded completed twice
    assert differences == []


@pytest.fixture(params=["sqlite", *[pytest.param(k, marks=pytest.mark.postgres)
                                    for k in ("postgres", "postgres4")]])  # fmt: skip
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store that several worker processes share: a SQLite file, PostgreSQL."""
    yield from make_store_url(str(request.param), tmp_path)


async def test_a_killed_workers_run_is_taken_over_after_its_lease(shared_url: str) -> None:
    postgres_url = shared_url
    async with WorkflowApp.open(postgres_url, worker=False) as app:
        app.register_workflows(WORKFLOWS)
        first = spawn_worker(postgres_url)
        assert serving(first)
        run_id = await app.start(orders, {"n": 21})
        with anyio.fail_after(20):
            while run_id not in await app.runs_waiting_on("scale.approve"):
                await anyio.sleep(0.02)
        view = await app.get_run(run_id)
        stop(first)
        second = spawn_worker(postgres_url)
        try:
            await app.emit("scale.approve", "after takeover")
            result = await app.wait_for(run_id, timeout=30)
        finally:
            stop(second)
    assert view is not None
    assert result.value == {"n": 21, "value": 42, "by": "after takeover"}


async def test_a_step_whose_worker_died_is_taken_over_when_the_lease_expires(
    shared_url: str, tmp_path: Path
) -> None:
    postgres_url = shared_url
    marker = tmp_path / "marker"
    async with WorkflowApp.open(postgres_url, worker=False) as app:
        app.register_workflows([blocking])
        first = spawn_worker(postgres_url)
        assert serving(first)
        run_id = await app.start(blocking, {"marker": str(marker)})
        with anyio.fail_after(20):
            while not marker.with_suffix(".attempt1").exists():
                await anyio.sleep(0.02)
        held = await app.get_run(run_id)
        second = spawn_worker(postgres_url)
        try:
            assert serving(second)
            stop(first)  # mid-step: its lease (1 s) is no longer renewed
            started = time.monotonic()
            with anyio.fail_after(30):
                while run_id not in await app.runs_waiting_on("crash.go"):
                    await anyio.sleep(0.05)
            taken_over_after = time.monotonic() - started
            await app.emit("crash.go", "resumed elsewhere")
            result = await app.wait_for(run_id, timeout=30)
            attempts = [f.attempt for f in await app.history(run_id)
                        if f.type == "StepStarted" and f.step == "work"]  # fmt: skip
        finally:
            stop(second)
    assert held is not None and held.lease_owner is not None  # shown while the step runs
    assert result.value == "resumed elsewhere"
    assert attempts == [1, 2]
    assert taken_over_after < 15
