"""Driving a run forward: run its next steps until it suspends or ends.

The executor never decides from anything but the folded state of the run's
facts, so a drive after a crash or a restart continues exactly where the log
stands: a completed step is never executed again; a suspended step is
re-entered from its top with its resume input; a step whose start is in the
log without an outcome runs again as the next attempt.

Durability points: ``StepStarted`` is committed before its handler runs (so
attempts are counted from the log, even when a handler kills its process); a
completed step's value is committed together with the next fact (the next
``StepStarted``, a wait, or the run's end), so a crash in between re-runs that
step: steps are executed at least once and recorded exactly once.
"""

from __future__ import annotations

import logging
from typing import final

from stemlog.errors import NonDeterminismError
from stemlog.execution.determinism import check_flow
from stemlog.execution.drive import Drive
from stemlog.execution.flow_pass import run_flow
from stemlog.execution.outcomes import error_info
from stemlog.execution.parked import ParkedScripts
from stemlog.execution.script_pass import run_script
from stemlog.model.records import WorkflowKind
from stemlog.model.schedule import DueReason, runnable, wake_due
from stemlog.model.state import step_label

logger = logging.getLogger("stemlog.worker")


@final
class RunDriver:
    """Executes one run of one definition until it suspends, ends, or is taken away."""

    def __init__(self, drive: Drive, scripts: ParkedScripts | None = None) -> None:
        self._drive = drive
        self._scripts = scripts

    async def drive(self) -> None:
        """Run steps while the run is runnable; returns when it suspends or ends."""
        await self._drive.session.run_with(self._run)

    async def wake_if_due(self) -> None:
        """Record the end of a due sleep (``SleepElapsed``) or deadline (``EventTimedOut``)."""
        await self._drive.session.run_with(self._wake_if_due)

    async def _wake_if_due(self) -> None:
        session, now = self._drive.session, self._drive.clock.now()
        due = wake_due(session.state)
        if due is None or due.at > now or due.reason is DueReason.RETRY:
            return
        if due.reason is DueReason.WAKE:
            session.do(lambda run: run.elapse_sleep(now))
        else:
            session.do(lambda run: run.time_out_event(now))
        await session.flush()

    async def _run(self) -> None:
        drive = self._drive
        state = drive.session.state
        if state.fingerprint != drive.definition.fingerprint:
            _, divergence = check_flow(state, drive.definition.steps)
            if divergence is None:  # same steps recorded so far: name which list changed
                recorded = ", ".join(step_label(key) for key in state.steps)
                declared = ", ".join(spec.name for spec in drive.definition.steps)
                divergence = NonDeterminismError(
                    state.run_id, len(state.steps), f"steps [{recorded}]", f"steps [{declared}]"
                )
            logger.warning("run %s diverged from its history: %s", state.run_id, divergence,
                           extra={"run_id": state.run_id, "workflow": state.workflow})  # fmt: skip
            await drive.fail_run(error_info(divergence))
            return
        flow = drive.definition.kind is WorkflowKind.FLOW
        while runnable(drive.session.state, drive.clock.now()):
            before = drive.session.state.position
            if flow:
                await run_flow(drive)
            else:
                await run_script(drive, self._scripts)
            if drive.session.state.position == before:
                return  # nothing more can happen without outside input
