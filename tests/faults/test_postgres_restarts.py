"""PostgreSQL restarts, stops and dropped connections are survived, with no human action.

Two worker processes and a client app run a few hundred runs (a step, a
durable sleep, a wait for a send, a step) against a private server that is
restarted fast, restarted immediately, and stopped for a while; afterwards
every run has its right result, no step is recorded twice, no process has
exited, and the read models verify.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

from stemlog import RunStatus, StoreUnavailableError, WorkflowApp
from tests.faults.server import PrivatePostgres
from tests.faults.workflows import faulty

pytestmark = [pytest.mark.anyio, pytest.mark.faults]
ROOT = Path(__file__).resolve().parents[2]
RUNS = 300
OUTAGE = float(os.environ.get("STEMLOG_FAULT_OUTAGE", "12"))
"""How long the server stays stopped (``STEMLOG_FAULT_OUTAGE=60`` for a minute)."""


def _workers(url: str, logs: Path, count: int) -> list[subprocess.Popen[str]]:
    workers = []
    for index in range(count):
        with (logs / f"worker-{index}.log").open("w") as log:
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "tests.faults.worker_process", url], cwd=ROOT,
                stdout=subprocess.PIPE, stderr=log, text=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            ))  # fmt: skip
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
        worker.stdout.close()
    return workers


async def _faults(server: PrivatePostgres, outage: float) -> None:
    await anyio.sleep(1.0)
    await anyio.to_thread.run_sync(server.restart, "fast")
    await anyio.sleep(2.0)
    await anyio.to_thread.run_sync(server.restart, "immediate")
    await anyio.sleep(2.0)
    await anyio.to_thread.run_sync(server.drop_connections)
    await anyio.sleep(2.0)
    await anyio.to_thread.run_sync(server.stop, "fast")
    await anyio.sleep(outage)
    await anyio.to_thread.run_sync(server.start)


async def _send_all(app: WorkflowApp, runs: dict[str, int]) -> None:
    for run_id, n in runs.items():
        for _ in range(5):  # the store may be away longer than one call waits
            try:
                await app.send(run_id, "fault.go", {"add": n})
                break
            except StoreUnavailableError:
                await anyio.sleep(0.5)
        else:
            raise AssertionError(f"could not send to {run_id}")
        await anyio.sleep(0.05)  # the sends span the faults


async def test_workers_and_a_client_ride_out_restarts_and_a_stop(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    url = private_postgres.url + "?pool_size=2"
    async with WorkflowApp.open(url, worker=False, store_timeout=20) as app:
        app.register_scripts([faulty])  # creates the tables before the workers start
        workers = _workers(url, tmp_path, 2)
        try:
            runs = {await app.start(faulty, {"n": n}): n for n in range(RUNS)}
            async with anyio.create_task_group() as group:
                group.start_soon(_faults, private_postgres, OUTAGE)
                group.start_soon(_send_all, app, runs)
            with anyio.fail_after(120 + OUTAGE):
                while True:
                    ended = await app.list_runs(status="completed", limit=10_000)
                    if len(ended) == RUNS:
                        break
                    await anyio.sleep(0.5)
            alive = [worker.poll() is None for worker in workers]
        finally:
            for worker in workers:
                worker.terminate()
            codes = [worker.wait(timeout=30) for worker in workers]
        logs = [path.read_text()[-2000:] for path in tmp_path.glob("*.log")]  # noqa: ASYNC240
        assert alive == [True, True], logs
        assert codes == [0, 0]
        for run_id, n in runs.items():
            result = await app.wait_for(run_id, timeout=5)
            assert result.status is RunStatus.COMPLETED
            assert result.value == {"n": n, "total": 3 * n}
            completed = Counter(
                (f.step, f.iteration) for f in await app.history(run_id)
                if f.type == "StepCompleted"
            )  # fmt: skip
            assert set(completed.values()) == {1}, (run_id, completed)
        assert await app.read_models.verify() == []


async def test_a_call_while_the_server_is_down_fails_in_time_or_succeeds_when_back(
    private_postgres: PrivatePostgres,
) -> None:
    url = private_postgres.url + "?pool_size=1"
    async with WorkflowApp.open(url, worker=False, store_timeout=3) as app:
        app.register_scripts([faulty])
        await app.start(faulty, {"n": 1})
        private_postgres.stop("fast")
        began = anyio.current_time()
        with pytest.raises(StoreUnavailableError):
            await app.start(faulty, {"n": 2})
        waited = anyio.current_time() - began
        assert 2.5 < waited < 8, waited  # the store_timeout, give or take one try
        async with anyio.create_task_group() as group:
            group.start_soon(_start_later, private_postgres)
            run_id = await app.start(faulty, {"n": 3})  # waits, then succeeds once back
        assert (await app.get_run(run_id, consistent=True)) is not None
        assert len(await app.list_runs()) == 2  # the refused start wrote nothing


async def _start_later(server: PrivatePostgres) -> None:
    await anyio.sleep(1.0)
    await anyio.to_thread.run_sync(server.start)
