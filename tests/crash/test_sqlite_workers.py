"""Many processes and apps, with workers, share one SQLite file.

Claims live in the run index in the file (taken in ``BEGIN IMMEDIATE``), other
processes' commits are noticed through ``PRAGMA data_version``, and every
step is recorded once, as on PostgreSQL.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

from stemlog import Fact, RunStatus, WorkflowApp
from tests.crash.scale_workflows import KILLS, WORKFLOWS, checkout, orders
from tests.crash.test_workers import serving, spawn_worker, stop

pytestmark = [pytest.mark.crash, pytest.mark.anyio]
ROOT = Path(__file__).resolve().parents[2]
RUNS = 200


def check_run(n: int, status: RunStatus, value: object, facts: list[Fact]) -> None:
    assert status is RunStatus.COMPLETED, (n, status, facts[-1])
    if n % 2 == 0:
        assert value == {"n": n, "value": 2 * n, "by": "ops"}
    else:
        assert value == 3 + n
    assert [f.position for f in facts] == list(range(1, len(facts) + 1))
    completed = Counter((f.step, f.iteration) for f in facts if f.type == "StepCompleted")
    assert max(completed.values()) == 1, completed  # each step recorded once


def spawn_client(url: str, first: int, count: int) -> subprocess.Popen[str]:
    """A process without a worker that starts runs ``first .. first + count - 1``."""
    code = (
        "import anyio, sys\n"
        "from stemlog import WorkflowApp\n"
        "from tests.crash.scale_workflows import WORKFLOWS, checkout, orders\n"
        "async def main():\n"
        f"    async with WorkflowApp.open({url!r}, worker=False) as app:\n"
        "        app.register_workflows(WORKFLOWS)\n"
        f"        for n in range({first}, {first + count}):\n"
        "            await app.start(orders if n % 2 == 0 else checkout, {'n': n},"
        " run_id=f'sqlite-run-{n}')\n"
        "anyio.run(main)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, text=True)


async def test_three_worker_processes_and_a_client_share_one_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    rng = random.Random(11)
    async with WorkflowApp.open(url, worker=False) as app:  # creates the file and tables
        app.register_workflows(WORKFLOWS)
        workers = [spawn_worker(url) for _ in range(3)]
        client = None
        try:
            assert all(serving(worker) for worker in workers)
            client = spawn_client(url, 0, RUNS // 2)
            for n in range(RUNS // 2, RUNS):
                await app.start(orders if n % 2 == 0 else checkout, {"n": n},
                                run_id=f"sqlite-run-{n}")  # fmt: skip
            with anyio.fail_after(240):
                while client.poll() is None:
                    await anyio.sleep(0.1)
                assert client.returncode == 0
                kills = 0
                while True:
                    await anyio.sleep(0.5)
                    await app.emit("scale.approve", "ops")
                    if kills < KILLS:  # kill one mid-run, start a fresh one
                        victim = rng.randrange(len(workers))
                        stop(workers[victim])
                        workers[victim] = spawn_worker(url)
                        kills += 1
                    runs = await app.list_runs(limit=RUNS + 1)
                    if len(runs) == RUNS and all(run.status.is_terminal for run in runs):
                        break
            ids = [f"sqlite-run-{n}" for n in range(RUNS)]
            results = [await app.wait_for(run_id, timeout=5) for run_id in ids]
            histories = [await app.history(run_id) for run_id in ids]
            differences = await app.read_models.verify()
        finally:
            for worker in workers:
                stop(worker)
            if client is not None and client.poll() is None:
                client.kill()
    for n, (result, facts) in enumerate(zip(results, histories, strict=True)):
        check_run(n, result.status, result.value, facts)
    assert differences == []


async def test_two_apps_with_workers_in_one_process_share_one_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'two-apps.db'}"
    async with (
        WorkflowApp.open(url, lease=1.0) as first,
        WorkflowApp.open(url, lease=1.0) as second,
        WorkflowApp.open(url, worker=False) as client,  # its runs are claimed by either
    ):
        for app in (first, second, client):
            app.register_workflows(WORKFLOWS)
        ids = {}
        for n in range(60):
            app = (first, second, client)[n % 3]
            ids[await app.start(orders if n % 2 == 0 else checkout, {"n": n})] = n
        with anyio.fail_after(60):
            while True:
                await first.emit("scale.approve", "ops")
                runs = await client.list_runs(limit=100)
                if all(run.status.is_terminal for run in runs):
                    break
                await anyio.sleep(0.1)
        results = {run_id: await first.wait_for(run_id, timeout=5) for run_id in ids}
        histories = {run_id: await second.history(run_id) for run_id in ids}
    for run_id, n in ids.items():
        check_run(n, results[run_id].status, results[run_id].value, histories[run_id])
