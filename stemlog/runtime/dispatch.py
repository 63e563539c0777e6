"""One path for every fact that reaches the log, appended here or by another process.

The store's commit listener (facts this process committed, with their runs
and the claims the commit settled) and the tail (facts of other processes,
read while a ``wait_for`` here wants them) both hand their facts to
:class:`Dispatcher`, which wakes ``wait_for`` callers, moves the read models,
and — for this process's commits, in an app with a worker — tells the worker
what it holds and what may be claimed. Other processes' work reaches the
worker through the run index, never through their facts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import final

from stemlog.model.facts import TERMINAL_FACTS, RunStarted
from stemlog.runtime.signals import RunSignals
from stemlog.runtime.worker import Worker
from stemlog.store.base import Appended

logger = logging.getLogger("stemlog.runs")


@final
class Dispatcher:
    """Turns appended facts into wake-ups, read-model catch-ups and the worker's claims."""

    def __init__(
        self, signals: RunSignals, log_moved: Callable[[Appended], None], worker: Worker | None
    ) -> None:
        self._signals = signals
        self._log_moved = log_moved
        self._worker = worker

    def appended(self, appended: Appended) -> None:
        """React to facts that reached the log (called in the event loop)."""
        self._signals.appended(appended.facts)
        self._log_moved(appended)
        if not appended.local:
            return
        if logger.isEnabledFor(logging.INFO):
            _log_starts_and_ends(appended)
        worker = self._worker
        if worker is not None:
            for run_id, run in appended.runs.items():
                worker.note(run, appended.claims.get(run_id), appended.claimable)


def _log_starts_and_ends(appended: Appended) -> None:
    for logged in appended.facts:
        fact = logged.fact
        if isinstance(fact, RunStarted):
            run_id = str(fact.originator_id)
            logger.info("run %s of %s started", run_id, fact.workflow,
                        extra={"run_id": run_id, "workflow": fact.workflow})  # fmt: skip
        elif isinstance(fact, TERMINAL_FACTS):
            run_id = str(fact.originator_id)
            run = appended.runs.get(run_id)
            state = None if run is None else run.state
            workflow = None if state is None else state.workflow
            status = type(fact).__name__.removeprefix("Run").lower()
            logger.info("run %s of %s ended %s", run_id, workflow, status,
                        extra={"run_id": run_id, "workflow": workflow})  # fmt: skip
