"""Scale-out on PostgreSQL: worker processes, wake-up latency, and DBOS in the same run.

1. stemlog: the seed's two workflows (approvals flow, billing script; half
   each) with 1, 2, 4 and 8 worker processes (``stemlog worker``) on one
   PostgreSQL database. This process starts the runs and sends each its event
   (``send`` is kept until the run waits), then waits for all of them.
2. Latency across processes, from the facts' timestamps (one machine, one
   clock): start-to-first-step (``RunStarted`` by this process, the first
   ``StepStarted`` by a worker) and emit-to-resume (``EventReceived`` by this
   process, the next ``StepStarted`` by a worker), p50 and p99.
3. DBOS (``pip install dbos``): the same two workflows with ``DBOS.recv`` /
   ``DBOS.send``, in one process, on the same PostgreSQL server and on SQLite.

    python benchmarks/scale.py [--runs 1000] [--workers 1,2,4,8] [--json]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import orjson
import psycopg

from stemlog import RunStatus, WorkflowApp
from stemlog.examples.approvals import ApprovalDraft, approvals_flow, approvals_ref
from stemlog.examples.billing import retry_script

ROOT = Path(__file__).resolve().parents[1]
DRIVER_CONCURRENCY = 64
"""Starts (and sends) in flight at once from the driving process (stemlog)."""
DBOS_DRIVER_THREADS = 8
"""Threads starting DBOS workflows (DBOS's API is synchronous; more threads ran slower)."""


def fresh_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def spawn_workers(url: str, count: int) -> list[subprocess.Popen[str]]:
    command = [sys.executable, "-m", "stemlog.cli.main"]
    workers = [
        subprocess.Popen(
            [*command, "--db", url, "worker", "stemlog.examples.app:app", "--concurrency", "32"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert "serving" in worker.stdout.readline()
    return workers


async def stemlog_round(url: str, runs: int) -> tuple[float, list[float], list[float]]:
    async with WorkflowApp.open(url, worker=False) as app:
        app.register_workflows([approvals_flow, retry_script])
        run_ids: list[str] = []

        async def start_one(index: int) -> None:
            if index % 2 == 0:
                run_id = await approvals_ref.start(app, ApprovalDraft(f"doc-{index}"))
                await app.send(run_id, "approvals.manager", {"approved_by": "alice"})
            else:
                run_id = await app.start(retry_script)
                await app.send(run_id, "billing.charge.prepared", {"charge_id": f"ch-{index}"})
            run_ids.append(run_id)

        started = time.perf_counter()
        limiter = anyio.CapacityLimiter(DRIVER_CONCURRENCY)

        async def limited(index: int) -> None:
            async with limiter:
                await start_one(index)

        async with anyio.create_task_group() as group:  # the driver must not be the bottleneck
            for index in range(runs):
                group.start_soon(limited, index)
        for run_id in run_ids:
            result = await app.wait_for(run_id, timeout=300)
            assert result.status is RunStatus.COMPLETED, result
        rate = runs / (time.perf_counter() - started)
        await anyio.sleep(2)  # let every process finish catching up before timing single runs
        return rate, *await latencies(app, 100)


async def latencies(app: WorkflowApp, runs: int) -> tuple[list[float], list[float]]:
    """Start-to-first-step and event-to-resume delays (ms), one run at a time."""
    first_step, resume = [], []
    for index in range(runs):
        run_id = await approvals_ref.start(app, ApprovalDraft(f"latency-{index}"))
        with anyio.fail_after(30):
            while run_id not in await app.runs_waiting_on("approvals.manager"):  # noqa: ASYNC110
                await anyio.sleep(0.002)
        await app.send(run_id, "approvals.manager", {"approved_by": "bob"})
        await app.wait_for(run_id, timeout=30)
        facts = await app.history(run_id)
        first = next(f for f in facts if f.type == "StepStarted")
        first_step.append((first.timestamp - facts[0].timestamp).total_seconds() * 1e3)
        received = next(i for i, f in enumerate(facts) if f.type == "EventReceived")
        again = next(f for f in facts[received:] if f.type == "StepStarted")
        resume.append((again.timestamp - facts[received].timestamp).total_seconds() * 1e3)
    return first_step, resume


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)] if ordered else 0.0


def dbos_round(system_url: str, runs: int) -> float:
    """The seed's workflows on DBOS, in this process (run in a subprocess: DBOS is a singleton)."""
    code = f"""
import time, sys
from dbos import DBOS, DBOSConfig
DBOS(config={{"name": "stemlog-bench", "system_database_url": {system_url!r}}})

@DBOS.step()
def draft(doc): return doc
@DBOS.step()
def finalize(by): return "approved-by:" + by
@DBOS.workflow()
def approvals(doc):
    draft(doc)
    decision = DBOS.recv("approvals.manager", timeout_seconds=120)
    return finalize(decision["approved_by"])
@DBOS.step()
def confirm(charge_id): return "receipt-" + charge_id
@DBOS.workflow()
def billing():
    prepared = DBOS.recv("billing.charge.prepared", timeout_seconds=120)
    return confirm(prepared["charge_id"])

DBOS.launch()
from concurrent.futures import ThreadPoolExecutor
def start_one(index):
    if index % 2 == 0:
        handle = DBOS.start_workflow(approvals, f"doc-{{index}}")
        DBOS.send(handle.workflow_id, {{"approved_by": "alice"}}, "approvals.manager")
    else:
        handle = DBOS.start_workflow(billing)
        DBOS.send(handle.workflow_id, {{"charge_id": f"ch-{{index}}"}}, "billing.charge.prepared")
    return handle
started = time.perf_counter()
with ThreadPoolExecutor({DBOS_DRIVER_THREADS}) as pool:
    handles = list(pool.map(start_one, range({runs})))
for handle in handles:
    assert handle.get_result() is not None
print({runs} / (time.perf_counter() - started))
DBOS.destroy()
"""
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=600)  # fmt: skip
    return float(output.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--postgres", default=os.environ.get(
        "STEMLOG_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"))  # fmt: skip
    parser.add_argument("--no-dbos", action="store_true")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for count in [int(n) for n in options.workers.split(",")]:
        name = f"stemlog_scale_{uuid.uuid4().hex[:8]}"
        url = fresh_database(options.postgres, name)
        anyio.run(_create_tables, url)
        workers = spawn_workers(url, count)
        try:
            rate, first_step, resume = anyio.run(stemlog_round, url, options.runs)
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(timeout=30)
            drop_database(options.postgres, name)
        rows.append({"engine": "stemlog", "store": "postgres", "processes": count,
                     "runs_per_s": rate,
                     "start_to_step_p50_ms": percentile(first_step, 0.5),
                     "start_to_step_p99_ms": percentile(first_step, 0.99),
                     "emit_to_resume_p50_ms": percentile(resume, 0.5),
                     "emit_to_resume_p99_ms": percentile(resume, 0.99)})  # fmt: skip
    if not options.no_dbos:
        rows.extend(dbos_rows(options))
    report(rows, options)


async def _create_tables(url: str) -> None:
    async with WorkflowApp.open(url, worker=False):
        pass


def dbos_rows(options: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    name = f"dbos_scale_{uuid.uuid4().hex[:8]}"
    url = fresh_database(options.postgres, name)
    try:
        rows.append({"engine": "dbos", "store": "postgres", "processes": 1,
                     "runs_per_s": dbos_round(url, options.runs)})  # fmt: skip
    finally:
        drop_database(options.postgres, name)
    with tempfile.TemporaryDirectory(prefix="dbos-bench-") as folder:
        sqlite_url = f"sqlite:///{folder}/dbos.sqlite"
        rows.append({"engine": "dbos", "store": "sqlite", "processes": 1,
                     "runs_per_s": dbos_round(sqlite_url, options.runs)})  # fmt: skip
    return rows


def report(rows: list[dict[str, Any]], options: argparse.Namespace) -> None:
    dbos_pg = next((r["runs_per_s"] for r in rows if r["engine"] == "dbos"
                    and r["store"] == "postgres"), None)  # fmt: skip
    for row in rows:
        row["ratio_to_dbos_postgres"] = None if not dbos_pg else row["runs_per_s"] / dbos_pg
    if options.json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    print(f"seed workflows, {options.runs} runs (half approvals, half billing), one pass per "
          "row; latency: 100 runs one at a time, from fact timestamps")  # fmt: skip
    print(f"{'engine':<9}{'store':<10}{'processes':>10}{'runs/s':>9}{'vs DBOS pg':>11}"
          f"{'start→step p50/p99 ms':>24}{'emit→resume p50/p99 ms':>25}")  # fmt: skip
    for r in rows:
        ratio = "" if r["ratio_to_dbos_postgres"] is None else f"{r['ratio_to_dbos_postgres']:.2f}"
        start = (f"{r['start_to_step_p50_ms']:.1f} / {r['start_to_step_p99_ms']:.1f}"
                 if "start_to_step_p50_ms" in r else "")  # fmt: skip
        resume = (f"{r['emit_to_resume_p50_ms']:.1f} / {r['emit_to_resume_p99_ms']:.1f}"
                  if "emit_to_resume_p50_ms" in r else "")  # fmt: skip
        print(f"{r['engine']:<9}{r['store']:<10}{r['processes']:>10}{r['runs_per_s']:>9,.0f}"
              f"{ratio:>11}{start:>24}{resume:>25}")  # fmt: skip


if __name__ == "__main__":
    main()
