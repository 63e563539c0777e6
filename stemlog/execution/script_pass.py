"""One pass of a WorkflowScript: re-enter ``run`` and record how it ends.

``run(script)`` is called from its top on every pass. Each ``script.step``
call is matched, in order, against the steps the log recorded
(:class:`~stemlog.authoring.script.ScriptContext`): a completed step returns
its recorded value without calling its handler; a step that failed with no
attempt left raises :class:`StepFailedError` again; the first step not yet
completed is executed here. A request that does not match the log at its
position is a :class:`NonDeterminismError`, which fails the run.
"""

from __future__ import annotations

import logging
from typing import final

from stemlog.authoring.context import ScriptStepContext, ScriptStepHandler
from stemlog.authoring.policies import RetryPolicy
from stemlog.authoring.script import ScriptContext
from stemlog.codec import JSONValue, normalize_json
from stemlog.errors import StepFailedError
from stemlog.execution.drive import Drive
from stemlog.execution.outcomes import (
    RetryScheduled,
    StepError,
    Suspended,
    error_info,
    interrupt_of,
    is_cancellation,
)
from stemlog.execution.steps import run_step
from stemlog.model.state import RunState, StepKey

logger = logging.getLogger("stemlog.worker")


@final
class _LiveSteps:
    """Runs the steps the log has no outcome for (the live side of ``ScriptContext``)."""

    def __init__(self, drive: Drive) -> None:
        self._drive = drive

    @property
    def state(self) -> RunState:
        return self._drive.session.state

    async def execute(
        self,
        key: StepKey,
        fn: ScriptStepHandler,
        position: int,
        previous: tuple[bool, JSONValue],
        retry: RetryPolicy | None,
    ) -> JSONValue:
        drive = self._drive
        policy = retry or drive.definition.retry
        try:
            return await run_step(drive, key, fn, position, previous, ScriptStepContext, policy)
        except StepError as failure:
            await drive.session.flush()
            info = failure.info
            raise StepFailedError(key[0], key[1], info.type, info.message) from None


async def run_script(drive: Drive) -> None:
    """One pass of a script: re-enter ``run`` and record how it ends."""
    run = drive.definition.run
    assert run is not None, "a script definition has its run function"
    script = ScriptContext(_LiveSteps(drive))
    try:
        result = normalize_json(await run(script), "the result of run")
        script.check_end()
    except BaseException as error:
        if is_cancellation(error):
            raise
        interrupt = interrupt_of(error)
        if isinstance(interrupt, Suspended | RetryScheduled):
            await drive.session.flush()
            return
        if interrupt is not None:
            raise interrupt from None  # StopDrive: the session ends the drive quietly
        if not isinstance(error, Exception | BaseExceptionGroup):
            raise
        _log_end(drive, script.divergence, error)
        await drive.fail_run(error_info(script.divergence or error))
        return
    if script.divergence is not None:  # the code caught the divergence: still a failure
        _log_end(drive, script.divergence, None)
        await drive.fail_run(error_info(script.divergence))
        return
    await drive.complete_run(result)


def _log_end(drive: Drive, divergence: BaseException | None, error: BaseException | None) -> None:
    state = drive.session.state
    extra = {"run_id": state.run_id, "workflow": state.workflow}
    if divergence is not None:
        logger.warning("run %s diverged from its history: %s", state.run_id, divergence,
                       extra=extra)  # fmt: skip
    elif error is not None:
        logger.warning("run %s: run raised %s: %s", state.run_id, type(error).__name__, error,
                       exc_info=error, extra=extra)  # fmt: skip
