"""Scale-out on PostgreSQL: worker processes, CPU and SQL per run, wake-up latency, DBOS beside.

For each workload, each partition count (``?partitions=N``; the tables are
created once with that URL before the workers start) and each number of
``stemlog worker`` processes, on a fresh database of the local server:

1. **throughput**: this process (the driver, ``worker=False``) starts
   ``--runs`` runs, half the approvals flow and half the billing script, and
   sends each its event (``send`` is kept until the run waits), 64 in flight,
   then waits for all of them. Workloads: ``seed`` (the seed's two workflows
   as they are) and ``io`` (the same where every step handler first awaits
   5 ms: ``benchmarks/scale_workflows.py``). ``--warmup`` runs go first, untimed.
2. **CPU per run**, summed over every process: the workers and the driver
   (``/proc/<pid>/stat`` utime + stime, ``getrusage`` for this process) and
   PostgreSQL: the backends of the benchmark's database plus the server's
   own processes (WAL writer, checkpointer, ...), read from ``/proc`` around
   the timed part (see ``_measure.py``; backends of other databases — a test
   suite running meanwhile — are left out and shown as ``pg_other`` in
   ``--json``).
3. **SQL per run**: statements and transactions of the timed part, counted
   in every stemlog process by wrapping psycopg (``_sqlcount.py`` says what
   counts; the workers run through ``count_worker.py``, which dumps its counts
   on SIGUSR1). A statement is a round trip; a transaction is a COMMIT or
   ROLLBACK or an autocommitted statement. PostgreSQL counts two kinds more,
   counted apart: a connection's start, and a LISTEN backend's wake-up to
   read notifications (``notif`` per run: NOTIFYs received by the
   processes, ignored ones too; the backend runs a transaction per wake-up,
   at most one per notification). The sum is checked against PostgreSQL's
   own count (``pg_stat_database`` ``xact_commit + xact_rollback`` of the
   database) over the processes' whole lives: once they have exited, every
   backend has flushed its counters (an idle backend of PostgreSQL 15
   flushes only 10 s after its last flush, so a reading right after the
   timed part would miss most of it). ``pg/client`` is that ratio (a little
   under 1 when wake-ups read several notifications at once);
   ``pg_transactions_per_run`` in ``--json`` is the timed part's sum plus the
   lifetime difference spread over the runs.
4. **Latency**, after the timed part, one run at a time (``--latency``
   runs of the seed's approvals flow, whatever the workload), from the facts'
   timestamps (one machine, one clock): start→first step (``RunStarted`` by
   the driver to the first ``StepStarted`` by a worker) and emit→resume (the
   driver waits until the run is waiting on its topic, then ``emit``\\ s:
   ``EventReceived`` to the next ``StepStarted``), p50 and p99. A run that
   has not ended 20 s after its event (or, in the timed part, after all were
   started) is reported as stuck, and the row goes on without it.
5. **DBOS** (the ``bench`` extra) beside each row: the same workload
   (``DBOS.recv`` / ``DBOS.send``; ``dbos_workflows.py``) with the same
   number of DBOS processes sharing one database through a DBOS queue
   (``worker_concurrency=32``, polled every 50 ms), started and sent to by a
   ``DBOSClient`` in a driver process of its own (8 threads), which then
   polls the count of succeeded workflows every 20 ms (not counted, its
   transactions subtracted). CPU, statements and transactions are measured
   the same way. DBOS has no partitions: its row is measured once per
   workload and process count and shown beside both partition counts. Its
   ``io`` steps ``time.sleep(0.005)`` (DBOS steps are synchronous, each
   workflow in a thread of its own). Latency is not measured for DBOS.

``cores`` is CPU seconds per second of the timed part (out of the machine's
2; other work on the machine, another agent's tests, takes the rest).
``--explain`` prints each row's statements by count per run, summed over its
processes, and the driver's share; ``--profile DIR`` profiles every thread of every stemlog worker
with cProfile timed by thread CPU time (``count_worker.py``): the profiler
costs several times the work it measures, which changes how runs batch, so
read it for proportions only.

Targets (from the issue): CPU per run at 8 processes within 1.3x of 1
process; in the ``io`` workload, runs/s at 4 processes >= 1.5x of 1 process;
emit→resume p50 < 10 ms and p99 < 50 ms.

    python benchmarks/scale.py [--runs 600] [--workers 1,2,4,8] [--partitions 1,8]
        [--workloads seed,io] [--repeat 1] [--latency 100] [--no-dbos] [--json]
        [--explain] [--profile DIR] [--save FILE] [--quick]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

The machine has 2 cores shared by the database, the driver and every worker:
compare rows of one run, not figures across runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _sqlcount
import anyio
import orjson
from _measure import (
    Monitor,
    PostgresCpu,
    dbos_available,
    drop_database,
    fresh_database,
    percentile,
    process_cpu,
    self_cpu,
)
from scale_workflows import DEFINITIONS, WORKLOADS

from stemlog import RunStatus, WorkflowApp
from stemlog.examples.approvals import approvals_flow

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DRIVER_CONCURRENCY = 64
"""Starts (and sends) in flight at once from the driving process (stemlog)."""
STUCK_SECONDS = 20
"""A run not ended this long after its event is reported as stuck (the row goes on)."""

COUNTS = _sqlcount.install()


@dataclass
class Worker:
    """A worker process (stemlog's or DBOS's) that dumps its counts on SIGUSR1."""

    process: subprocess.Popen[str]
    stats: Path
    dumps: int = 0

    def request(self) -> None:
        self.dumps += 1
        self.process.send_signal(signal.SIGUSR1)

    def counts(self) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                data: dict[str, Any] = orjson.loads(self.stats.read_bytes())
                if data["seq"] >= self.dumps:
                    return data
            except (OSError, orjson.JSONDecodeError):
                pass
            time.sleep(0.002)
        raise TimeoutError(f"worker {self.process.pid} did not write its counts")

    def final(self) -> dict[str, Any]:
        """The counts it wrote when it exited (its whole life)."""
        data: dict[str, Any] = orjson.loads(self.stats.read_bytes())
        assert data["seq"] > self.dumps, f"worker {self.process.pid} wrote no final counts"
        return data

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def worker_counts(workers: list[Worker]) -> list[dict[str, Any]]:
    for worker in workers:
        worker.request()
    return [worker.counts() for worker in workers]


def _wait_serving(workers: list[Worker]) -> None:
    for worker in workers:
        assert worker.process.stdout is not None
        line = worker.process.stdout.readline()
        assert "serving" in line, f"worker said {line!r}"


def spawn_stemlog_workers(url: str, count: int, folder: Path, options: argparse.Namespace,
                          tag: str) -> list[Worker]:  # fmt: skip
    workers = []
    for number in range(count):
        stats = folder / f"{tag}-worker-{number}.json"
        command = [sys.executable, str(HERE / "count_worker.py"), "--stats", str(stats)]
        if options.explain:
            command.append("--texts")
        if options.profile:
            command += ["--profile", str(Path(options.profile) / f"{tag}-worker-{number}.prof")]
        command += ["--", "--db", url, "worker", "scale_workflows:app",
                    "--concurrency", str(options.concurrency)]  # fmt: skip
        with (folder / f"{tag}-worker-{number}.log").open("w") as log:
            process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log,
                                       text=True)  # fmt: skip
        workers.append(Worker(process, stats))
    _wait_serving(workers)
    return workers


@dataclass
class Snapshot:
    """Everything measured at one moment."""

    cpu_workers: float
    cpu_driver: float
    pg: PostgresCpu
    statements: int
    transactions: int
    notifications: int
    connections: int
    texts: Counter[str]
    driver_texts: Counter[str]


def snapshot(database: str, workers: list[Worker], driver: dict[str, Any], skip: list[int],
             driver_pid: int | None = None) -> Snapshot:  # fmt: skip
    """``driver``: the driver's counts (this process's, or the DBOS driver's reply)."""
    dumps = worker_counts(workers)
    texts: Counter[str] = Counter(driver.get("texts", {}))
    for dump in dumps:
        texts.update(dump.get("texts", {}))
    cpu_workers = sum(process_cpu(w.process.pid) or 0.0 for w in workers)
    cpu_driver = self_cpu() if driver_pid is None else process_cpu(driver_pid) or 0.0
    return Snapshot(
        cpu_workers=cpu_workers, cpu_driver=cpu_driver, pg=PostgresCpu.read(database, skip),
        statements=driver["statements"] + sum(d["statements"] for d in dumps),
        transactions=driver["transactions"] + sum(d["transactions"] for d in dumps),
        notifications=driver["notifications"] + sum(d["notifications"] for d in dumps),
        connections=driver["connections"] + sum(d["connections"] for d in dumps),
        texts=texts, driver_texts=Counter(driver.get("texts", {})),
    )  # fmt: skip


def costs(before: Snapshot, after: Snapshot, runs: int) -> dict[str, Any]:
    pg = after.pg.since(before.pg)
    workers = after.cpu_workers - before.cpu_workers
    driver = after.cpu_driver - before.cpu_driver
    texts = after.texts.copy()
    texts.subtract(before.texts)
    by_driver = after.driver_texts.copy()
    by_driver.subtract(before.driver_texts)
    top = [(k, v) for k, v in texts.most_common(12) if v > 0]
    return {
        "cpu_ms_per_run": (workers + driver + pg["pg"]) / runs * 1e3,
        "cpu_workers_ms_per_run": workers / runs * 1e3,
        "cpu_driver_ms_per_run": driver / runs * 1e3,
        "cpu_pg_ms_per_run": pg["pg"] / runs * 1e3,
        "cpu_pg_backends_ms_per_run": pg["pg_backends"] / runs * 1e3,
        "cpu_pg_other_databases_ms_per_run": pg["pg_other"] / runs * 1e3,
        "statements_per_run": (after.statements - before.statements) / runs,
        "transactions_per_run": (after.transactions - before.transactions) / runs,
        "notifications_per_run": (after.notifications - before.notifications) / runs,
        "connections_per_run": (after.connections - before.connections) / runs,
        "top_statements": {k: v / runs for k, v in top},
        "top_statements_by_driver": {k: by_driver[k] / runs for k, _ in top},
    }  # fmt: skip


# -- stemlog ---------------------------------------------------------------------------


async def stemlog_round(url: str, database: str, workload: str, workers: list[Worker],
                        options: argparse.Namespace) -> dict[str, Any]:  # fmt: skip
    flow, script = WORKLOADS[workload]
    monitor = Monitor(options.postgres)  # only its backend's pid is used here
    try:
        async with WorkflowApp.open(url, worker=False) as app:
            app.register_workflows(DEFINITIONS)

            async def start_one(index: int) -> str:
                if index % 2 == 0:
                    run_id = await app.start(flow, {"draft": {"document_id": f"doc-{index}"}})
                    await app.send(run_id, "approvals.manager", {"approved_by": "alice"})
                else:
                    run_id = await app.start(script)
                    await app.send(run_id, "billing.charge.prepared",
                                   {"charge_id": f"ch-{index}"})  # fmt: skip
                return run_id

            async def round_of(runs: int) -> float:
                run_ids: list[str] = []
                limiter = anyio.CapacityLimiter(DRIVER_CONCURRENCY)

                async def limited(index: int) -> None:
                    async with limiter:
                        run_ids.append(await start_one(index))

                started = time.perf_counter()
                async with anyio.create_task_group() as group:
                    for index in range(runs):
                        group.start_soon(limited, index)
                for run_id in run_ids:
                    result = await app.wait_for(run_id, timeout=STUCK_SECONDS)
                    if result.status is not RunStatus.COMPLETED:
                        stuck.append(run_id)  # not resumed: reported, the row goes on
                return time.perf_counter() - started

            stuck: list[str] = []
            await round_of(options.warmup)
            skip = [monitor.pid]
            before = snapshot(database, workers, COUNTS.snapshot(), skip)
            elapsed = await round_of(options.runs)
            after = snapshot(database, workers, COUNTS.snapshot(), skip)
            first_step, resume = await latencies(app, options.latency, stuck)
    finally:
        monitor.close()
    return {"runs_per_s": options.runs / elapsed, **costs(before, after, options.runs),
            "stuck_runs": stuck,
            "start_to_step_p50_ms": percentile(first_step, 0.5),
            "start_to_step_p99_ms": percentile(first_step, 0.99),
            "emit_to_resume_p50_ms": percentile(resume, 0.5),
            "emit_to_resume_p99_ms": percentile(resume, 0.99)}  # fmt: skip


async def latencies(app: WorkflowApp, runs: int,
                    stuck: list[str]) -> tuple[list[float], list[float]]:  # fmt: skip
    """Start→first step and emit→resume delays (ms), one run at a time; a run that does
    not end within :data:`STUCK_SECONDS` goes to ``stuck`` instead."""
    first_step, resume = [], []
    for index in range(runs):
        run_id = await app.start(approvals_flow, {"draft": {"document_id": f"latency-{index}"}})
        with anyio.fail_after(30):
            while run_id not in await app.runs_waiting_on("approvals.manager"):  # noqa: ASYNC110
                await anyio.sleep(0.002)
        reached = await app.emit("approvals.manager", {"approved_by": "bob"})
        assert reached == [run_id], reached
        result = await app.wait_for(run_id, timeout=STUCK_SECONDS)
        if result.status is not RunStatus.COMPLETED:
            stuck.append(run_id)
            continue
        facts = await app.history(run_id)
        first = next(f for f in facts if f.type == "StepStarted")
        first_step.append((first.timestamp - facts[0].timestamp).total_seconds() * 1e3)
        received = next(i for i, f in enumerate(facts) if f.type == "EventReceived")
        again = next(f for f in facts[received:] if f.type == "StepStarted")
        resume.append((again.timestamp - facts[received].timestamp).total_seconds() * 1e3)
    return first_step, resume


async def _create_tables(url: str) -> None:
    async with WorkflowApp.open(url, worker=False):
        pass


def stemlog_row(options: argparse.Namespace, workload: str, partitions: int, count: int,
                folder: Path) -> dict[str, Any]:  # fmt: skip
    name = f"stemlog_scale_{uuid.uuid4().hex[:8]}"
    url = fresh_database(options.postgres, name) + f"?partitions={partitions}"
    monitor = Monitor(options.postgres)
    try:
        server = monitor.transactions(name)
        client = COUNTS.snapshot()
        anyio.run(_create_tables, url)
        tag = f"{workload}-p{partitions}-n{count}"
        workers = spawn_stemlog_workers(url, count, folder, options, tag)
        try:
            row = anyio.run(stemlog_round, url, name, workload, workers, options)
        finally:
            for worker in workers:
                worker.stop()
        monitor.wait_gone(name)
        server = monitor.transactions(name) - server
        client = asked(COUNTS.snapshot()) - asked(client)
        client += sum(asked(worker.final()) for worker in workers)
        return {**row, **check(server, client, row, options.runs)}
    finally:
        monitor.close()
        drop_database(options.postgres, name)


def asked(counts: dict[str, Any]) -> int:
    """The transactions PostgreSQL counts for what a process did: those it asked for, a
    connection's start, a listener's wake-up per notification (at most)."""
    return int(counts["transactions"] + counts["connections"] + counts["notifications"])


def check(server: int, client: int, row: dict[str, Any], runs: int) -> dict[str, Any]:
    """PostgreSQL's count of the row's transactions against the processes' own count
    (:func:`asked`), over their whole lives (exact: every backend flushed its statistics
    when it exited)."""
    estimate = (row["transactions_per_run"] + row["notifications_per_run"]
                + row["connections_per_run"] + (server - client) / runs)  # fmt: skip
    return {"lifetime_pg_transactions": server, "lifetime_client_transactions": client,
            "pg_over_client": server / client if client else None,
            "pg_transactions_per_run": estimate}  # fmt: skip


# -- DBOS ------------------------------------------------------------------------------


def dbos_row(options: argparse.Namespace, workload: str, count: int,
             folder: Path) -> dict[str, Any]:  # fmt: skip
    name = f"dbos_scale_{uuid.uuid4().hex[:8]}"
    url = fresh_database(options.postgres, name)
    runner = [sys.executable, str(HERE / "dbos_runner.py")]
    texts = ["--texts"] if options.explain else []
    workers: list[Worker] = []
    monitor = Monitor(options.postgres)
    try:
        server = monitor.transactions(name)
        for number in range(count):  # the first one creates DBOS's tables
            stats = folder / f"dbos-{workload}-n{count}-worker-{number}.json"
            with (folder / f"dbos-{workload}-n{count}-worker-{number}.log").open("w") as log:
                command = [*runner, "queue-worker", "--url", url, "--stats", str(stats), *texts]
                process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                           stderr=log, text=True)  # fmt: skip
            workers.append(Worker(process, stats))
            if number == 0:
                _wait_serving(workers)
        _wait_serving(workers[1:])
        driver = subprocess.Popen(
            [*runner, "drive", "--url", url, "--workload", workload, "--runs", str(options.runs),
             "--warmup", str(options.warmup), *texts],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert driver.stdin is not None
        assert driver.stdout is not None
        ready = orjson.loads(driver.stdout.readline())
        skip = [monitor.pid, ready["watcher_pid"]]
        zero = {"statements": 0, "transactions": 0, "notifications": 0, "connections": 0}
        before = snapshot(name, workers, zero, skip, driver.pid)
        driver.stdin.write("go\n")
        driver.stdin.flush()
        result = orjson.loads(driver.stdout.readline())
        after = snapshot(name, workers, result, skip, driver.pid)
        driver.stdin.write("exit\n")
        driver.stdin.flush()
        lifetime = orjson.loads(driver.stdout.readline())
        driver.wait(timeout=60)
        for worker in workers:
            worker.stop()
        row = {"runs_per_s": result["runs_per_s"], **costs(before, after, options.runs)}
        monitor.wait_gone(name)
        server = monitor.transactions(name) - server - lifetime["polls"]
        client = asked(lifetime["lifetime"])
        client += sum(asked(worker.final()) for worker in workers)
        return {**row, **check(server, client, row, options.runs)}
    finally:
        monitor.close()
        for worker in workers:
            worker.stop()
        drop_database(options.postgres, name)


# -- the table -------------------------------------------------------------------------


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key, value in rows[0].items():
        if isinstance(value, int | float):
            merged[key] = statistics.median(row[key] for row in rows)
        elif isinstance(value, list):
            merged[key] = [item for row in rows for item in row[key]]
        else:
            merged[key] = value
    return merged


def run_all(options: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    counts = [int(n) for n in options.workers.split(",")]
    for workload in options.workloads.split(","):
        dbos: dict[int, dict[str, Any] | None] = {}
        for count in counts:
            if options.no_dbos:
                dbos[count] = None
                continue
            dbos[count] = median_row([dbos_row(options, workload, count, folder)
                                      for _ in range(options.repeat)])  # fmt: skip
            _progress(f"dbos {workload} n={count}: {dbos[count]['runs_per_s']:.0f} runs/s")
        for partitions in [int(n) for n in options.partitions.split(",")]:
            for count in counts:
                measured = median_row([stemlog_row(options, workload, partitions, count, folder)
                                       for _ in range(options.repeat)])  # fmt: skip
                _progress(f"stemlog {workload} p={partitions} n={count}: "
                          f"{measured['runs_per_s']:.0f} runs/s")  # fmt: skip
                rows.append({"workload": workload, "partitions": partitions, "processes": count,
                             **measured, "dbos": dbos[count]})  # fmt: skip
    return rows


def _progress(text: str) -> None:
    print(f"  .. {text}", file=sys.stderr, flush=True)


def ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else value / base


def evaluate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, one verdict each."""
    verdicts = []
    groups: dict[tuple[str, int], dict[int, dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["workload"], row["partitions"]), {})[row["processes"]] = row
    for (workload, partitions), by_count in groups.items():
        if 1 in by_count and 8 in by_count:
            value = by_count[8]["cpu_ms_per_run"] / by_count[1]["cpu_ms_per_run"]
            verdicts.append({"target": f"{workload} p={partitions}: CPU/run 8 procs <= 1.3x 1 proc",
                             "value": value, "met": value <= 1.3})  # fmt: skip
        if workload == "io" and 1 in by_count and 4 in by_count:
            value = by_count[4]["runs_per_s"] / by_count[1]["runs_per_s"]
            verdicts.append({"target": f"io p={partitions}: runs/s 4 procs >= 1.5x 1 proc",
                             "value": value, "met": value >= 1.5})  # fmt: skip
    for row in rows:
        label = f"{row['workload']} p={row['partitions']} n={row['processes']}"
        if row["stuck_runs"]:
            verdicts.append({"target": f"{label}: every run resumed within {STUCK_SECONDS} s",
                             "value": len(row["stuck_runs"]), "met": False,
                             "runs": row["stuck_runs"]})  # fmt: skip
        p50, p99 = row["emit_to_resume_p50_ms"], row["emit_to_resume_p99_ms"]
        verdicts.append({"target": f"{label}: emit→resume p50 < 10 ms, p99 < 50 ms",
                         "value": [p50, p99], "met": p50 < 10 and p99 < 50})  # fmt: skip
    return verdicts


def print_tables(rows: list[dict[str, Any]], verdicts: list[dict[str, Any]],
                 options: argparse.Namespace) -> None:  # fmt: skip
    print(f"{options.runs} runs a row (half approvals, half billing) after {options.warmup} "
          f"untimed; worker --concurrency {options.concurrency}; median of {options.repeat}; "
          f"DBOS: as many queue workers, client driver")  # fmt: skip
    print("\nthroughput and CPU per run (workers + driver + PostgreSQL; cores: CPU seconds per "
          "second, of the machine's 2)")  # fmt: skip
    head = (f"{'workload':<9}{'parts':>5}{'procs':>6}{'runs/s':>8}{'DBOS':>7}{'ratio':>7}"
            f"{'CPU ms/run':>11}{'wrk/drv/pg':>16}{'cores':>6}{'DBOS CPU':>9}{'ratio':>7}"
            f"{'cores':>6}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for r in rows:
        d = r["dbos"] or {}
        rate = ratio(r["runs_per_s"], d.get("runs_per_s"))
        cpu = ratio(r["cpu_ms_per_run"], d.get("cpu_ms_per_run"))
        split = (f"{r['cpu_workers_ms_per_run']:.1f}/{r['cpu_driver_ms_per_run']:.1f}/"
                 f"{r['cpu_pg_ms_per_run']:.1f}")  # fmt: skip
        print(f"{r['workload']:<9}{r['partitions']:>5}{r['processes']:>6}{r['runs_per_s']:>8.0f}"
              f"{_f(d.get('runs_per_s'), '.0f'):>7}{_f(rate, '.2f'):>7}"
              f"{r['cpu_ms_per_run']:>11.2f}{split:>16}{cores(r):>6}"
              f"{_f(d.get('cpu_ms_per_run'), '.2f'):>9}{_f(cpu, '.2f'):>7}"
              f"{cores(d) if d else '':>6}")  # fmt: skip
    print("\nSQL per run (statements and transactions sent by every process; notif: NOTIFYs "
          "received; pg/client: PostgreSQL's count of transactions over the processes' "
          "(whole lives)) and latency (ms)")  # fmt: skip
    head = (f"{'workload':<9}{'parts':>5}{'procs':>6}{'stmts':>7}{'DBOS':>7}{'xacts':>7}"
            f"{'DBOS':>7}{'notif':>7}{'DBOS':>6}{'pg/client':>10}{'DBOS':>6}"
            f"{'start→step p50/p99':>20}{'emit→resume p50/p99':>21}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for r in rows:
        d = r["dbos"] or {}
        start = f"{r['start_to_step_p50_ms']:.1f} / {r['start_to_step_p99_ms']:.1f}"
        resume = f"{r['emit_to_resume_p50_ms']:.1f} / {r['emit_to_resume_p99_ms']:.1f}"
        print(f"{r['workload']:<9}{r['partitions']:>5}{r['processes']:>6}"
              f"{r['statements_per_run']:>7.1f}{_f(d.get('statements_per_run'), '.1f'):>7}"
              f"{r['transactions_per_run']:>7.1f}{_f(d.get('transactions_per_run'), '.1f'):>7}"
              f"{r['notifications_per_run']:>7.1f}{_f(d.get('notifications_per_run'), '.1f'):>6}"
              f"{_f(r['pg_over_client'], '.3f'):>10}{_f(d.get('pg_over_client'), '.3f'):>6}"
              f"{start:>20}{resume:>21}")  # fmt: skip
    if options.explain:
        for r in rows:
            print(f"\ntop statements per run: stemlog {r['workload']} p={r['partitions']} "
                  f"n={r['processes']}")  # fmt: skip
            print("    all  driver")
            for text, count in r["top_statements"].items():
                print(f"  {count:5.2f}  {r['top_statements_by_driver'][text]:6.2f}  {text}")
            if r["dbos"]:
                print("  DBOS:")
                for text, count in r["dbos"]["top_statements"].items():
                    driver = r["dbos"]["top_statements_by_driver"][text]
                    print(f"  {count:5.2f}  {driver:6.2f}  {text}")
    print("\ntargets")
    for v in verdicts:
        value = v["value"]
        if isinstance(value, list):
            shown = f"{value[0]:.1f} / {value[1]:.1f} ms"
        elif isinstance(value, int):
            shown = f"{value} run(s) stuck: {', '.join(v.get('runs', []))}"
        else:
            shown = f"{value:.2f}x"
        print(f"  {'met   ' if v['met'] else 'MISSED'}  {v['target']}: {shown}")


def cores(row: dict[str, Any]) -> str:
    """CPU seconds spent per second of the timed part: how many of the cores it kept busy."""
    return f"{row['cpu_ms_per_run'] * row['runs_per_s'] / 1e3:.2f}"


def _f(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=64)
    parser.add_argument("--latency", type=int, default=100, help="runs timed one at a time")
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--partitions", default="1,8")
    parser.add_argument("--workloads", default="seed,io")
    parser.add_argument("--concurrency", type=int, default=32, help="each worker's --concurrency")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--postgres", default=os.environ.get(
        "STEMLOG_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"))  # fmt: skip
    parser.add_argument("--no-dbos", action="store_true")
    parser.add_argument("--explain", action="store_true", help="top statements of each row")
    parser.add_argument("--profile", help="a folder for each worker's cProfile stats")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--save", type=Path, help="also write the JSON to this file")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    options = parser.parse_args()
    if options.quick:
        options.runs, options.warmup, options.latency = 100, 20, 20
        options.workers, options.partitions, options.workloads = "1,2", "1", "seed"
    options.no_dbos = not dbos_available(not options.no_dbos)
    if options.explain:
        COUNTS.texts = Counter()
    if options.profile:
        Path(options.profile).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="stemlog-scale-") as folder:
        rows = run_all(options, Path(folder))
    verdicts = evaluate(rows)
    output = orjson.dumps({"rows": rows, "targets": verdicts}, option=orjson.OPT_INDENT_2)
    if options.save:
        options.save.write_bytes(output)
    if options.json:
        print(output.decode())
    else:
        print_tables(rows, verdicts, options)


if __name__ == "__main__":
    main()
