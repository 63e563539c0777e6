"""Round trips per run: SQL statements and transactions of a sequential 3-step script, beside DBOS.

One process, the worker in the same app: ``start_and_wait`` of a 3-step
``WorkflowScript`` (async handlers) in a loop, ``--runs`` times after
``--warmup`` untimed runs, on PostgreSQL (a fresh database, ``?partitions=1``)
and on SQLite (a fresh file, ``synchronous=FULL``). Baseline in the same run:
DBOS (the ``bench`` extra) running the same 3-step workflow (``DBOS.workflow``
calling three ``DBOS.step``) one after the other, called directly (start
and wait), on the same PostgreSQL server and on SQLite, in a process of its
own (``dbos_runner.py run``). Both are counted the same way (``_sqlcount.py``
wraps psycopg and sqlite3; DBOS goes through SQLAlchemy over them).

What is counted, per run of the timed part:

* **statements**: on PostgreSQL, round trips: one ``execute`` or
  ``executemany`` (psycopg pipelines its rows) or one command psycopg sends
  by itself (``BEGIN``, ``COMMIT``, ``ROLLBACK``). On SQLite, statement
  executions as ``sqlite3_trace`` reports them (``BEGIN``/``COMMIT`` too; an
  ``executemany`` of n rows is n), with no network round trip behind them.
* **transactions** (``xacts``): those the process asks for — one per
  ``COMMIT``/``ROLLBACK`` (an explicit transaction, read-only or not), plus
  one per statement run in autocommit outside a transaction block (each is a
  transaction of its own; on PostgreSQL a read in autocommit too).
* on PostgreSQL also ``notif``, the NOTIFYs the process's LISTEN connection
  received (its own appends' hints included, which it ignores: the listening
  backend still wakes up and runs a transaction to read them), and new
  connections. **pg xacts** is what PostgreSQL counts
  (``pg_stat_database.xact_commit + xact_rollback``): xacts + notif + new
  connections of the timed part, corrected by the difference between
  PostgreSQL's count and that sum over the process's whole life (read once
  every backend has exited and flushed its counters — PostgreSQL 15 flushes
  an idle backend's counters only 10 s after its last flush). ``pg/client``
  is that lifetime ratio (1.00: nothing unexplained).

The whole life includes opening (tables created), background work (claim
rounds every 2 s, renewals, the projector's pages) and closing; the timed
part includes whatever background work fell into it.

Targets (PostgreSQL): <= 15 statements and <= 5 transactions per run (pg xacts).

    python benchmarks/round_trips.py [--runs 300] [--warmup 30] [--repeat 3]
        [--stores postgres,sqlite] [--no-dbos] [--explain] [--json] [--quick]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

``--explain`` prints the statements of each engine and store by count per
run (psycopg's SQL text; SQLite's with literals folded to ``?``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
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
    self_cpu,
)

from stemlog import RunStatus, WorkflowApp, WorkflowScript

HERE = Path(__file__).resolve().parent
COUNTS = _sqlcount.install()
TARGETS = {"statements": 15, "transactions": 5}


def three_steps() -> WorkflowScript:
    async def step(ctx: Any) -> int:
        return int(ctx.step_index)

    async def run(script: Any) -> int:
        total = 0
        for name in ("one", "two", "three"):
            total += await script.step(name, step)
        return total

    return WorkflowScript("bench.round-trips", run=run)


def per_run(spent: dict[str, Any], runs: int) -> dict[str, Any]:
    texts = Counter(spent.get("texts", {}))
    return {"statements_per_run": spent["statements"] / runs,
            "transactions_per_run": spent["transactions"] / runs,
            "notifications_per_run": spent.get("notifications", 0) / runs,
            "connections_per_run": spent.get("connections", 0) / runs,
            "top_statements": {k: v / runs for k, v in texts.most_common(25) if v > 0}}  # fmt: skip


def asked(counts: dict[str, Any]) -> int:
    """What PostgreSQL counts as transactions for what a process did (see the docstring)."""
    return int(counts["transactions"] + counts.get("connections", 0)
               + counts.get("notifications", 0))  # fmt: skip


def with_server(row: dict[str, Any], server: int, client: int, runs: int) -> dict[str, Any]:
    timed = row["transactions_per_run"] + row["notifications_per_run"] + row["connections_per_run"]
    return {**row, "lifetime_pg_transactions": server, "lifetime_client_transactions": client,
            "pg_over_client": server / client if client else None,
            "pg_transactions_per_run": timed + (server - client) / runs}  # fmt: skip


# -- stemlog ---------------------------------------------------------------------------


async def stemlog_measure(url: str, database: str | None, options: argparse.Namespace,
                          skip: list[int]) -> dict[str, Any]:  # fmt: skip
    script = three_steps()
    async with WorkflowApp.open(url) as app:
        app.register_workflows([script])
        for _ in range(options.warmup):
            await app.start_and_wait(script, timeout=30)
        pg = PostgresCpu.read(database, skip) if database else None
        before, cpu = COUNTS.snapshot(), self_cpu()
        started = time.perf_counter()
        for _ in range(options.runs):
            result = await app.start_and_wait(script, timeout=30)
            assert result.status is RunStatus.COMPLETED, result
        elapsed = time.perf_counter() - started
        spent, cpu = _sqlcount.delta(before, COUNTS.snapshot()), self_cpu() - cpu
        pg_cpu = PostgresCpu.read(database, skip).since(pg)["pg"] if database and pg else 0.0
    return {"runs_per_s": options.runs / elapsed,
            "cpu_ms_per_run": (cpu + pg_cpu) / options.runs * 1e3,
            **per_run(spent, options.runs)}  # fmt: skip


def stemlog_postgres(options: argparse.Namespace) -> dict[str, Any]:
    name = f"stemlog_rt_{uuid.uuid4().hex[:8]}"
    url = fresh_database(options.postgres, name) + "?partitions=1"
    monitor = Monitor(options.postgres)
    try:
        server, client = monitor.transactions(name), COUNTS.snapshot()
        row = anyio.run(stemlog_measure, url, name, options, [monitor.pid])
        monitor.wait_gone(name)
        server = monitor.transactions(name) - server
        return with_server(row, server, asked(COUNTS.snapshot()) - asked(client), options.runs)
    finally:
        monitor.close()
        drop_database(options.postgres, name)


def stemlog_sqlite(options: argparse.Namespace, folder: Path) -> dict[str, Any]:
    url = f"sqlite:///{folder / f'rt-{uuid.uuid4().hex[:8]}.db'}"
    return anyio.run(stemlog_measure, url, None, options, [])


# -- DBOS ------------------------------------------------------------------------------


def dbos_measure(url: str, options: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, str(HERE / "dbos_runner.py"), "run", "--url", url,
               "--mode", "sequential", "--runs", str(options.runs),
               "--warmup", str(options.warmup)]  # fmt: skip
    if options.explain:
        command.append("--texts")
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=900)
    result: dict[str, Any] = orjson.loads(output.stdout.strip().splitlines()[-1])
    return result


def dbos_postgres(options: argparse.Namespace) -> dict[str, Any]:
    name = f"dbos_rt_{uuid.uuid4().hex[:8]}"
    url = fresh_database(options.postgres, name)
    monitor = Monitor(options.postgres)
    try:
        server = monitor.transactions(name)
        result = dbos_measure(url, options)
        monitor.wait_gone(name)
        server = monitor.transactions(name) - server
        row = {"runs_per_s": result["runs_per_s"],
               "cpu_ms_per_run": result["cpu"] / options.runs * 1e3,
               **per_run(result, options.runs)}  # fmt: skip
        return with_server(row, server, asked(result["lifetime"]), options.runs)
    finally:
        monitor.close()
        drop_database(options.postgres, name)


def dbos_sqlite(options: argparse.Namespace, folder: Path) -> dict[str, Any]:
    result = dbos_measure(f"sqlite:///{folder / f'dbos-{uuid.uuid4().hex[:8]}.sqlite'}", options)
    cpu = result["cpu"] / options.runs * 1e3
    return {"runs_per_s": result["runs_per_s"], "cpu_ms_per_run": cpu,
            **per_run(result, options.runs)}  # fmt: skip


# -- the table -------------------------------------------------------------------------


def median_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key, value in rows[0].items():
        numbers = [row[key] for row in rows if isinstance(row.get(key), int | float)]
        merged[key] = statistics.median(numbers) if len(numbers) == len(rows) else value
    return merged


def run_all(options: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    rows = []
    for store in options.stores.split(","):
        measures = [("stemlog", stemlog_postgres if store == "postgres" else
                     lambda o: stemlog_sqlite(o, folder))]  # fmt: skip
        if not options.no_dbos:
            measures.append(("dbos", dbos_postgres if store == "postgres" else
                             lambda o: dbos_sqlite(o, folder)))  # fmt: skip
        for engine, measure in measures:
            measured = median_row([measure(options) for _ in range(options.repeat)])
            rows.append({"engine": engine, "store": store, **measured})
            print(f"  .. {engine} {store}: {measured['statements_per_run']:.1f} statements/run",
                  file=sys.stderr, flush=True)  # fmt: skip
    return rows


def evaluate(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    verdicts = []
    checks = [
        ("statements/run", "statements_per_run", "statements"),
        (
            "transactions/run as PostgreSQL counts them (pg xacts)",
            "pg_transactions_per_run",
            "transactions",
        ),
        ("transactions/run asked for (xacts)", "transactions_per_run", "transactions"),
    ]
    for row in rows:
        if row["engine"] != "stemlog" or row["store"] != "postgres":
            continue
        for label, key, target in checks:
            limit = TARGETS[target]
            verdicts.append({"target": f"PostgreSQL: {label} <= {limit}", "value": row[key],
                             "met": row[key] <= limit})  # fmt: skip
    return verdicts


def print_table(rows: list[dict[str, Any]], verdicts: list[dict[str, Any]],
                options: argparse.Namespace) -> None:  # fmt: skip
    print(f"sequential 3-step runs, in-process worker: {options.runs} timed after "
          f"{options.warmup}; median of {options.repeat}; per run")  # fmt: skip
    head = (f"{'engine':<9}{'store':<10}{'runs/s':>8}{'CPU ms':>8}{'stmts':>7}{'xacts':>7}"
            f"{'notif':>7}{'conn':>6}{'pg xacts':>9}{'pg/client':>10}"
            f"{'stmts vs DBOS':>14}{'xacts vs DBOS':>14}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for r in rows:
        base = next((b for b in rows if b["engine"] == "dbos" and b["store"] == r["store"]), None)
        stmts = (
            "" if base is None else f"{r['statements_per_run'] / base['statements_per_run']:.2f}"
        )
        xacts = ("" if base is None else
                 f"{r['transactions_per_run'] / base['transactions_per_run']:.2f}")  # fmt: skip
        pg = r.get("pg_transactions_per_run")
        ratio = r.get("pg_over_client")
        print(f"{r['engine']:<9}{r['store']:<10}{r['runs_per_s']:>8.0f}{r['cpu_ms_per_run']:>8.2f}"
              f"{r['statements_per_run']:>7.2f}{r['transactions_per_run']:>7.2f}"
              f"{r['notifications_per_run']:>7.2f}{r['connections_per_run']:>6.2f}"
              f"{'' if pg is None else f'{pg:.2f}':>9}{'' if ratio is None else f'{ratio:.3f}':>10}"
              f"{stmts:>14}{xacts:>14}")  # fmt: skip
    if options.explain:
        for r in rows:
            print(f"\nstatements per run: {r['engine']} on {r['store']}")
            for text, count in r["top_statements"].items():
                print(f"  {count:7.2f}  {text}")
    if verdicts:
        print("\ntargets")
    for v in verdicts:
        print(f"  {'met   ' if v['met'] else 'MISSED'}  {v['target']}: {v['value']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stores", default="postgres,sqlite")
    parser.add_argument("--postgres", default=os.environ.get(
        "STEMLOG_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"))  # fmt: skip
    parser.add_argument("--no-dbos", action="store_true")
    parser.add_argument("--explain", "--verbose", action="store_true",
                        help="the statements of each row by count per run")  # fmt: skip
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    options = parser.parse_args()
    if options.quick:
        options.runs, options.warmup, options.repeat = 50, 10, 1
    options.no_dbos = not dbos_available(not options.no_dbos)
    if options.explain:
        COUNTS.texts = Counter()
    with tempfile.TemporaryDirectory(prefix="stemlog-rt-") as folder:
        rows = run_all(options, Path(folder))
    verdicts = evaluate(rows)
    if options.json:
        print(orjson.dumps({"rows": rows, "targets": verdicts},
                           option=orjson.OPT_INDENT_2).decode())  # fmt: skip
    else:
        print_table(rows, verdicts, options)


if __name__ == "__main__":
    main()
