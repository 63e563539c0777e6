"""One pass of a WorkflowScript: continue ``run`` (or re-enter it) and record how it ends.

Each ``script.step`` call is matched, in order, against the steps the log
recorded (:class:`~stemlog.authoring.script.ScriptContext`): a completed step
returns its recorded value without calling its handler; a step that failed
with no attempt left raises :class:`StepFailedError` again; the first step not
yet completed is executed here. A request that does not match the log at its
position is a :class:`NonDeterminismError`, which fails the run.

With a worker's :class:`~stemlog.execution.parked.ParkedScripts`, an
execution that suspended is continued by the next drive instead of being
re-entered from its top; without one (one-off drives) every pass re-enters.
"""

from __future__ import annotations

import anyio

from stemlog.execution.drive import Drive
from stemlog.execution.parked import ParkedScripts, ScriptExecution


async def run_script(drive: Drive, scripts: ParkedScripts | None = None) -> None:
    """Run the script until it suspends, waits for a retry, or ends."""
    run = drive.definition.run
    assert run is not None, "a script definition has its run function"
    run_id = drive.session.run_id
    if scripts is None:
        async with anyio.create_task_group() as group:
            execution = ScriptExecution(run_id, run)
            group.start_soon(execution.serve)
            try:
                await execution.advance(drive)
            finally:
                execution.abandon()
        return
    execution = scripts.take(run_id, drive.session.state) or scripts.begin(run_id, run)
    try:
        finished = await execution.advance(drive)
    except BaseException:
        execution.abandon()
        raise
    if finished:
        execution.abandon()
    else:
        scripts.keep(execution)
