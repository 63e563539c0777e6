"""The benchmarks' workflows written for DBOS (the baseline), declared at import.

* ``three_steps``: three ``DBOS.step`` calls (throughput.py, round_trips.py);
* ``approvals`` / ``billing``: the seed's two workflows with ``DBOS.recv``
  (scale.py), and ``io_approvals`` / ``io_billing``: the same with 5 ms of
  blocking I/O in every step (DBOS steps are synchronous; each workflow has
  its own thread, so ``time.sleep`` is DBOS's equivalent of an awaited sleep).

DBOS is a process singleton: a process imports this module, then calls
:func:`launch`. Queue workers share the work through :data:`QUEUE`.
"""

from __future__ import annotations

import time
from typing import Any

from dbos import DBOS

APP_NAME = "stemlog-bench"
QUEUE = "stemlog-bench"
IO_SECONDS = 0.005


@DBOS.step()
def step_value(index: int) -> int:
    return index


@DBOS.workflow()
def three_steps() -> int:
    return sum(step_value(index) for index in range(3))


@DBOS.step()
def draft(doc: str, io: float) -> str:
    if io:
        time.sleep(io)
    return doc


@DBOS.step()
def finalize(by: str, io: float) -> str:
    if io:
        time.sleep(io)
    return "approved-by:" + by


@DBOS.step()
def confirm(charge_id: str, io: float) -> str:
    if io:
        time.sleep(io)
    return "receipt-" + charge_id


@DBOS.step()
def io_only(io: float) -> None:
    time.sleep(io)


def _approvals(doc: str, io: float) -> str:
    draft(doc, io)
    decision = DBOS.recv("approvals.manager", timeout_seconds=120)
    if io:
        io_only(io)  # the manager-review step's own I/O, after the event
    return finalize(decision["approved_by"], io)


def _billing(io: float) -> str:
    prepared = DBOS.recv("billing.charge.prepared", timeout_seconds=120)
    if io:
        io_only(io)  # the charge step's own I/O, after the event
    return confirm(prepared["charge_id"], io)


@DBOS.workflow()
def approvals(doc: str) -> str:
    return _approvals(doc, 0.0)


@DBOS.workflow()
def billing() -> str:
    return _billing(0.0)


@DBOS.workflow()
def io_approvals(doc: str) -> str:
    return _approvals(doc, IO_SECONDS)


@DBOS.workflow()
def io_billing() -> str:
    return _billing(IO_SECONDS)


WORKLOADS: dict[str, tuple[Any, Any]] = {
    "seed": (approvals, billing),
    "io": (io_approvals, io_billing),
}


def launch(system_url: str, *, queue: bool = False, pool_size: int | None = None) -> None:
    """Configure and launch DBOS on ``system_url``; with ``queue``, this process also
    dequeues from :data:`QUEUE` (32 workflows at a time, polled every 50 ms)."""
    config: dict[str, Any] = {"name": APP_NAME, "system_database_url": system_url,
                              "log_level": "WARNING"}  # fmt: skip
    if pool_size is not None:
        config["sys_db_pool_size"] = pool_size
    DBOS(config=config)  # type: ignore[arg-type]
    if not queue:
        DBOS.listen_queues([])
    DBOS.launch()
    if queue:  # a queue is registered (in the database) by a launched DBOS
        DBOS.register_queue(QUEUE, worker_concurrency=32, polling_interval_sec=0.05,
                            on_conflict="always_update")  # fmt: skip
