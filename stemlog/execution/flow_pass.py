"""One pass of a Flow: run its declared steps in order from the first not completed."""

from __future__ import annotations

from stemlog.authoring.context import FlowContext
from stemlog.codec import JSONValue
from stemlog.execution.drive import Drive
from stemlog.execution.outcomes import RetryScheduled, StepError, Suspended
from stemlog.execution.steps import run_step
from stemlog.model.state import StepKey


async def run_flow(drive: Drive) -> None:
    """Run the flow's next steps; returns when it suspends, waits for a retry, or ends."""
    steps = drive.definition.steps
    for index, spec in enumerate(steps):
        key = (spec.name, 0)
        if key in drive.session.state.completed:
            continue
        previous = (False, None) if index == 0 else _value_of(drive, (steps[index - 1].name, 0))
        try:
            retry = spec.retry or drive.definition.retry
            await run_step(drive, key, spec.handler, index, previous, FlowContext, retry)
        except (Suspended, RetryScheduled):
            return  # already flushed
        except StepError as failure:
            await drive.fail_run(failure.info)
            return
    await drive.complete_run(drive.session.state.completed[(steps[-1].name, 0)])


def _value_of(drive: Drive, key: StepKey) -> tuple[bool, JSONValue]:
    completed = drive.session.state.completed
    return (True, completed[key]) if key in completed else (False, None)
