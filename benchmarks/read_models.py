"""Read-model benchmarks: rebuild rate, and query latency as the models grow.

1. Rebuild: N runs of the seed's two workflows (approvals flow: 11 facts,
   billing script: 9 facts) are written to a SQLite file; the read models are
   rebuilt from position 0 as ``stemlog projections rebuild`` does (with a
   helper process, :mod:`projections.parallel`) and in this process alone, and
   the rates (facts/s) are printed beside the raw rate of reading the same
   notification log (eventsourcing's ``select_notifications``, pages of 1,000,
   no decoding) and the rate of reading it decoded by eventsourcing's mapper,
   measured in the same run, with the ratios. ``--repeat N`` measures the four
   N times in turn and prints medians (the ratios: the median of each
   round's), steadier on a busy machine.
2. Latency: ``list_runs(status=..., workflow=...)`` (first page of 100) and
   ``runs_waiting_on(topic)`` on models holding 10k, 100k and 1M runs (rows
   written straight into the tables), median of many calls. Flat is the goal.

    python benchmarks/read_models.py [--runs 100000] [--sizes 10000,100000,1000000]
                                     [--repeat 1] [--json]

(Named ``read_models.py``, not ``projections.py``: a script of that name would
shadow the ``projections`` package for every script in this folder.)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from projections import audit
from projections.runs import RunRow
from projections.view import RunsQuery
from projections.views.schema import COLUMNS, row_to_record
from projections.views.sqlite import SQLiteRunsView
from stemlog.model.records import RunStatus
from stemlog.model.run import Run
from stemlog.runtime.read_models import StoreModels
from stemlog.store.events import RunStore
from stemlog.store.log import RunLog
from stemlog.store.urls import parse_store_url

START = datetime(2030, 1, 1, tzinfo=UTC)
_COMMON = {"workflow_version": 1, "params": {"draft": {"document_id": "doc"}},
           "parent_run_id": None, "policy": None, "ttl": None, "forked_from": None}  # fmt: skip


def approvals_run(at: datetime) -> Run:
    run = Run.begin(run_id=uuid.uuid4(), at=at, workflow="approvals.flow", kind="flow",
                    fingerprint="approvals", **_COMMON)  # fmt: skip
    run.start_step(("draft", 0), 1, at)
    run.complete_step(("draft", 0), "doc", at)
    run.start_step(("manager-review", 0), 1, at)
    run.await_event(("manager-review", 0), "approvals.manager", None, at)
    run.receive_event("approvals.manager", {"approved_by": "alice"}, uuid.uuid4().hex, at)
    run.start_step(("manager-review", 0), 1, at)
    run.complete_step(("manager-review", 0), "alice", at)
    run.start_step(("finalize", 0), 1, at)
    run.complete_step(("finalize", 0), "approved-by:alice", at)
    run.complete("approved-by:alice", at + timedelta(milliseconds=5))
    return run


def billing_run(at: datetime) -> Run:
    run = Run.begin(run_id=uuid.uuid4(), at=at, workflow="billing.retry-script", kind="script",
                    fingerprint="billing", **_COMMON)  # fmt: skip
    run.start_step(("charge", 0), 1, at)
    run.await_event(("charge", 0), "billing.charge.prepared", None, at)
    run.receive_event("billing.charge.prepared", {"charge_id": "ch"}, uuid.uuid4().hex, at)
    run.start_step(("charge", 0), 1, at)
    run.complete_step(("charge", 0), "ch", at)
    run.start_step(("confirm", 0), 1, at)
    run.complete_step(("confirm", 0), "receipt-ch", at)
    run.complete("receipt-ch", at + timedelta(milliseconds=3))
    return run


def write_seed_runs(log: RunLog, runs: int) -> int:
    """Append ``runs`` finished runs, 100 runs per commit; returns the facts written."""
    batch: list[Run] = []
    for index in range(runs):
        at = START + timedelta(milliseconds=index)
        batch.append(approvals_run(at) if index % 2 == 0 else billing_run(at))
        if len(batch) == 100:
            log.save(*batch)
            batch.clear()
    if batch:
        log.save(*batch)
    return log.recorder.max_notification_id() or 0


def read_rate(log: RunLog, decode: bool) -> float:
    started, position, count = time.perf_counter(), 0, 0
    while True:
        page = log.recorder.select_notifications(start=position + 1, limit=1000)
        if not page:
            break
        if decode:
            for notification in page:
                log.mapper.to_domain_event(notification)
        count += len(page)
        position = page[-1].id
    return count / (time.perf_counter() - started)


def rebuild_benchmark(runs: int, folder: Path, repeat: int = 1) -> dict[str, Any]:
    """Rates of the raw read, the decoded read and the rebuilds (with a helper process
    and alone), measured one after the other ``repeat`` times: medians, and the median
    of each round's ratios (a round's figures share the machine's load of the moment)."""
    store = RunStore(parse_store_url(f"sqlite:///{folder / 'rebuild.db'}"))
    log = store.log
    rounds: list[tuple[float, float, float, float]] = []
    try:
        facts = write_seed_runs(log, runs)
        view = store.tracking_recorder(SQLiteRunsView)
        for _ in range(repeat):
            raw = read_rate(log, decode=False)
            decoded = read_rate(log, decode=True)
            helped = audit.rebuild(store, view, helper=StoreModels.of(store))
            alone = audit.rebuild(store, view)
            assert helped.position == alone.position == facts
            rounds.append((helped.events_per_second, raw, decoded, alone.events_per_second))
    finally:
        store.close()
    rebuilt, raws, decodeds, alones = zip(*rounds, strict=True)
    return {
        "runs": runs, "facts": facts, "repeat": repeat,
        "rebuild_facts_per_s": statistics.median(rebuilt),
        "raw_read_facts_per_s": statistics.median(raws),
        "decoded_read_facts_per_s": statistics.median(decodeds),
        "one_process_facts_per_s": statistics.median(alones),
        "ratio_to_raw": statistics.median(r / w for r, w, _, _ in rounds),
        "ratio_to_decoded": statistics.median(r / d for r, _, d, _ in rounds),
        "one_process_ratio_to_raw": statistics.median(a / w for _, w, _, a in rounds),
        "rounds": rounds,
    }  # fmt: skip


def synthetic_rows(count: int) -> list[tuple[Any, ...]]:
    rows = []
    for index in range(count):
        suspended = index % 10 == 0
        row = RunRow(
            run_id=str(uuid.UUID(int=index)), seq=index + 1,
            workflow=("approvals.flow", "billing.retry-script", "other")[index % 3],
            kind="flow", version=1,
            status=RunStatus.SUSPENDED if suspended else RunStatus.COMPLETED,
            params={}, created_at=START, updated_at=START, position=5, parent_run_id=None,
            ttl=None, result=None, error=None, current_step="review" if suspended else None,
            wait_topic=f"topic.{index % 1000}" if suspended else None, wake_at=None,
            deadline=None, retry_at=None, attempts=0, cancel_reason=None,
            ended_at=None if suspended else START, expires_at=None, due_at=None, state={},
        )  # fmt: skip
        rows.append(row_to_record(row))
    return rows


def latency_benchmark(size: int, folder: Path, calls: int) -> dict[str, Any]:
    log = RunLog(env=parse_store_url(f"sqlite:///{folder / f'latency-{size}.db'}").env)
    try:
        view = log.factory.tracking_recorder(SQLiteRunsView)
        records = synthetic_rows(size)
        with view.datastore.transaction(commit=True) as cursor:
            cursor.executemany(view.render(_insert_runs()), records)
            topic = COLUMNS.index("wait_topic")
            watchers = [(r[topic], r[0]) for r in records if r[topic] is not None]
            cursor.executemany(view.render("INSERT INTO {watchers} VALUES (?, ?)"), watchers)
        query = RunsQuery(workflow="billing.retry-script", status=RunStatus.SUSPENDED, limit=100)
        list_ms = _median_ms(lambda: view.list_rows(query), calls)
        wait_ms = _median_ms(lambda: view.waiting_on("topic.7"), calls)
    finally:
        log.close()
    return {"runs": size, "list_runs_ms": list_ms, "runs_waiting_on_ms": wait_ms}


def _insert_runs() -> str:
    return f"INSERT INTO {{runs}} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def _median_ms(action: Any, calls: int) -> float:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1e3)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of raw read, decoded read and rebuild (medians)",
    )
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="stemlog-bench-") as folder:
        rebuild = rebuild_benchmark(options.runs, Path(folder), options.repeat)
        sizes = [int(size) for size in options.sizes.split(",")]
        latency = [latency_benchmark(size, Path(folder), options.calls) for size in sizes]
    if options.json:
        print(orjson.dumps({"rebuild": rebuild, "latency": latency}).decode())
        return
    rounds = f", median of {options.repeat} rounds" if options.repeat > 1 else ""
    print(f"rebuild of the read models, SQLite file, {rebuild['runs']:,} seed runs{rounds}")
    print("(ratios: to the raw read of the same log in the same round; target >= 0.5)")
    print(f"{'facts':>10} {'raw read/s':>11} {'decoded/s':>10} {'rebuild/s':>10} {'ratio':>6} "
          f"{'one process/s':>14} {'ratio':>6}")  # fmt: skip
    r = rebuild
    print(f"{r['facts']:>10,} {r['raw_read_facts_per_s']:>11,.0f} "
          f"{r['decoded_read_facts_per_s']:>10,.0f} {r['rebuild_facts_per_s']:>10,.0f} "
          f"{r['ratio_to_raw']:>6.2f} {r['one_process_facts_per_s']:>14,.0f} "
          f"{r['one_process_ratio_to_raw']:>6.2f}")  # fmt: skip
    print()
    print(f"query latency, median of {options.calls} calls (ms)")
    print(f"{'runs':>10} {'list_runs':>10} {'runs_waiting_on':>16}")
    for row in latency:
        runs, listed, waiting = row["runs"], row["list_runs_ms"], row["runs_waiting_on_ms"]
        print(f"{runs:>10,} {listed:>10.3f} {waiting:>16.3f}")


if __name__ == "__main__":
    main()
