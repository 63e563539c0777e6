"""DBOS, the benchmarks' baseline, in a process of its own (DBOS is a process singleton).

    python benchmarks/dbos_runner.py run --url URL --mode sequential|hundred|burst --runs N
        [--warmup N] [--texts]
    python benchmarks/dbos_runner.py queue-worker --url URL --stats FILE [--texts]
    python benchmarks/dbos_runner.py drive --url URL --workload seed|io --runs N [--texts]

Every command counts the statements and transactions of its process
(:mod:`_sqlcount`, which wraps psycopg and sqlite3 under SQLAlchemy).

``run``: the 3-step workflow (:func:`dbos_workflows.three_steps`) in this
process, after ``--warmup`` runs: ``sequential`` calls it ``--runs`` times,
one after the other (DBOS runs a workflow called directly in the caller's
thread: start and wait); ``hundred`` keeps 100 in flight (100 threads, each
calling it); ``burst`` starts every run with ``DBOS.start_workflow`` then
waits for each handle. Prints one JSON line when DBOS is destroyed: runs/s,
the statements and transactions of the timed part, its CPU seconds, and the
counts of the whole process (``lifetime``: the parent compares them with
PostgreSQL's count once the process is gone).

``queue-worker``: a DBOS process dequeuing :data:`dbos_workflows.QUEUE`
(scale.py's DBOS rows); writes its counts to ``--stats`` on SIGUSR1, and
once more after it stopped (on SIGTERM or SIGINT).

``drive``: a ``DBOSClient`` (no workflow runs here) enqueuing ``--runs``
workflows of ``--workload`` (half approvals, half billing) and sending each
its event from 8 threads, then waiting until all have succeeded (one count
query every 20 ms on a connection that is not counted; ``polls`` says how
many). It prints a JSON line when ready and waits for a line on standard
input before the timed part; prints the part's JSON line and waits for
another line; then closes and prints its lifetime's counts. So the parent
reads the CPU of every process around exactly the timed part.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import _sqlcount
import orjson
import psycopg
from _measure import self_cpu, stats_writer

DRIVER_THREADS = 8
"""Threads enqueuing and sending (DBOS's client API is synchronous)."""


def run(options: argparse.Namespace) -> None:
    counts = _sqlcount.install(texts=options.texts)
    import dbos_workflows as flows
    from dbos import DBOS

    flows.launch(options.url)
    workflow = flows.three_steps

    def sequential(runs: int) -> None:
        for _ in range(runs):
            assert workflow() == 3

    def hundred(runs: int) -> None:
        with ThreadPoolExecutor(100) as pool:
            assert all(value == 3 for value in pool.map(lambda _: workflow(), range(runs)))

    def burst(runs: int) -> None:
        handles = [DBOS.start_workflow(workflow) for _ in range(runs)]
        assert all(handle.get_result() == 3 for handle in handles)

    mode = {"sequential": sequential, "hundred": hundred, "burst": burst}[options.mode]
    mode(options.warmup)
    before, cpu = counts.snapshot(), self_cpu()
    started = time.perf_counter()
    mode(options.runs)
    elapsed = time.perf_counter() - started
    spent, cpu = _sqlcount.delta(before, counts.snapshot()), self_cpu() - cpu
    DBOS.destroy()
    lifetime = {k: v for k, v in counts.snapshot().items() if k != "texts"}
    result: dict[str, Any] = {"runs_per_s": options.runs / elapsed, "cpu": cpu, **spent,
                              "lifetime": lifetime}  # fmt: skip
    print(orjson.dumps(result).decode(), flush=True)


def queue_worker(options: argparse.Namespace) -> None:
    counts = _sqlcount.install(texts=options.texts)
    import dbos_workflows as flows
    from dbos import DBOS

    dump = stats_writer(counts, options.stats)

    stop = threading.Event()
    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    flows.launch(options.url, queue=True)
    print("serving", flush=True)
    while not stop.wait(0.5):
        pass
    DBOS.destroy(workflow_completion_timeout_sec=0)
    dump()  # the lifetime's counts, once the connections are closed


def drive(options: argparse.Namespace) -> None:
    counts = _sqlcount.install(texts=options.texts)
    import dbos_workflows as flows
    from dbos import DBOSClient

    client = DBOSClient(system_database_url=options.url, application_name=flows.APP_NAME)
    approvals, billing = flows.WORKLOADS[options.workload]
    queue = flows.QUEUE

    def start_one(index: int) -> str:
        if index % 2 == 0:
            handle = client.enqueue({"queue_name": queue, "workflow_name": approvals.__qualname__},
                                    f"doc-{index}")  # fmt: skip
            client.send(handle.get_workflow_id(), {"approved_by": "alice"}, "approvals.manager")
        else:
            handle = client.enqueue({"queue_name": queue, "workflow_name": billing.__qualname__})
            client.send(handle.get_workflow_id(), {"charge_id": f"ch-{index}"},
                        "billing.charge.prepared")  # fmt: skip
        return str(handle.get_workflow_id())

    watcher = _sqlcount.exclude(psycopg.connect(options.url, autocommit=True))
    polls = total_polls = 0

    def succeeded() -> int:
        nonlocal polls, total_polls
        polls += 1
        total_polls += 1
        row = watcher.execute(
            "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS'"
        ).fetchone()
        return int(row[0]) if row else 0

    def round_of(runs: int, offset: int) -> float:
        done = succeeded()
        started = time.perf_counter()
        with ThreadPoolExecutor(DRIVER_THREADS) as pool:
            list(pool.map(start_one, range(offset, offset + runs)))
        while succeeded() < done + runs:
            time.sleep(0.02)
        return time.perf_counter() - started

    round_of(options.warmup, 10**6)  # every worker connected, the queue registered
    print(orjson.dumps({"ready": True, "watcher_pid": watcher.info.backend_pid}).decode(),
          flush=True)  # fmt: skip
    sys.stdin.readline()
    before, cpu, polls = counts.snapshot(), self_cpu(), 0
    elapsed = round_of(options.runs, 0)
    spent, cpu = _sqlcount.delta(before, counts.snapshot()), self_cpu() - cpu
    result = {"runs_per_s": options.runs / elapsed, "cpu": cpu, "polls": polls, **spent}
    print(orjson.dumps(result).decode(), flush=True)
    sys.stdin.readline()
    watcher.close()
    client.destroy()
    lifetime = {"lifetime": counts.snapshot(), "polls": total_polls}
    print(orjson.dumps(lifetime).decode(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "queue-worker", "drive"])
    parser.add_argument("--url", required=True, help="DBOS's system database")
    parser.add_argument("--mode", default="sequential", choices=["sequential", "hundred", "burst"])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--workload", default="seed", choices=["seed", "io"])
    parser.add_argument("--stats", type=Path)
    parser.add_argument("--texts", action="store_true", help="keep statements by text")
    options = parser.parse_args()
    {"run": run, "queue-worker": queue_worker, "drive": drive}[options.command](options)


if __name__ == "__main__":
    main()
