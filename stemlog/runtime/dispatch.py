"""One path for every fact that reaches the log, appended here or by another process.

The store's commit listener (facts this process committed, with their runs)
and the tail (facts of other processes, without them) both hand their facts
to :class:`Dispatcher`, which wakes ``wait_for`` callers, moves the read
models, and — in an app with a worker — arms timers, schedules drives and
delivers children's outcomes to their parents.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import final

from stemlog.model.children import CHILD_TOPIC_PREFIX
from stemlog.model.facts import TERMINAL_FACTS, RunStarted
from stemlog.model.run import Run
from stemlog.model.schedule import may_reschedule, waiting_topic
from stemlog.runtime.background import Background
from stemlog.runtime.signals import RunSignals
from stemlog.runtime.worker import Worker
from stemlog.store.base import Appended, LoggedFact, UnreadableFact

logger = logging.getLogger("stemlog.runs")


@final
class Dispatcher:
    """Turns appended facts into wake-ups, timers, drives and child deliveries."""

    def __init__(
        self,
        signals: RunSignals,
        log_moved: Callable[[], None],
        background: Background,
        deliver_child_outcome: Callable[[str], Awaitable[None]],
        worker: Worker | None,
    ) -> None:
        self._signals = signals
        self._log_moved = log_moved
        self._background = background
        self._deliver = deliver_child_outcome
        self._worker = worker

    def appended(self, appended: Appended) -> None:
        """React to facts that reached the log (called in the event loop)."""
        self._signals.appended(appended.facts)
        self._log_moved()
        if appended.local and logger.isEnabledFor(logging.INFO):
            _log_starts_and_ends(appended)
        if self._worker is None:
            return
        if appended.local:
            for run in appended.runs.values():
                self._committed_here(self._worker, run)
        else:
            self._committed_elsewhere(self._worker, appended.facts)

    def _committed_here(self, worker: Worker, run: Run) -> None:
        worker.note(run)
        state = run.state
        if state.status.is_terminal and state.parent_run_id is not None:
            self._background.submit(self._deliver, state.run_id)
        topic = waiting_topic(state)
        if topic is not None and topic.startswith(CHILD_TOPIC_PREFIX):
            # The child may have ended before its parent waited: look now.
            self._background.submit(self._deliver, topic.removeprefix(CHILD_TOPIC_PREFIX))

    def _committed_elsewhere(self, worker: Worker, facts: Sequence[LoggedFact]) -> None:
        observe: dict[str, None] = {}
        ended: dict[str, None] = {}
        for logged in facts:
            fact = logged.fact
            run_id = str(fact.originator_id)
            if isinstance(fact, UnreadableFact):
                continue  # the read models set such a run aside
            if isinstance(fact, TERMINAL_FACTS):
                ended[run_id] = None
            elif may_reschedule(fact):
                observe[run_id] = None
        for run_id in observe:
            if run_id not in ended:
                self._background.submit(worker.observe, run_id)
        for run_id in ended:
            self._background.submit(self._deliver, run_id)


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
