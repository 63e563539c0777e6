"""What one activation of one run works with: its session, definition and resources."""

from __future__ import annotations

from dataclasses import dataclass
from typing import final

from anyio import CapacityLimiter

from stemlog.authoring.context import ChildLauncher
from stemlog.authoring.definition import WorkflowDefinition
from stemlog.clock import Clock
from stemlog.codec import JSONValue
from stemlog.execution.session import RunSession
from stemlog.model.records import ErrorInfo


@final
@dataclass(frozen=True, slots=True)
class Drive:
    """One run being driven by one definition.

    ``limiter`` bounds the threads of sync handlers; ``children`` starts child
    runs (``None`` where there is no app, e.g. in unit tests).
    """

    session: RunSession
    definition: WorkflowDefinition
    clock: Clock
    limiter: CapacityLimiter
    children: ChildLauncher | None = None

    async def fail_run(self, info: ErrorInfo) -> None:
        """Record ``RunFailed`` and make it durable."""
        at = self.clock.now()
        self.session.do(lambda run: run.fail(info.to_json(), at))
        await self.session.flush()

    async def complete_run(self, result: JSONValue) -> None:
        """Record ``RunCompleted`` and make it durable."""
        at = self.clock.now()
        self.session.do(lambda run: run.complete(result, at))
        await self.session.flush()
