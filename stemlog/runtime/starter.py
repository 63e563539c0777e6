"""Creating runs: validating a start and appending its ``RunStarted``.

Used by ``app.start``, by child workflows (with a deterministic run id, so a
second start of the same child finds the first) and by ``app.fork``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, final

from stemlog.authoring.definitions import Definable, WorkflowDefinition, as_definition
from stemlog.authoring.policies import CancellationPolicy
from stemlog.authoring.refs import WorkflowRef
from stemlog.authoring.registry import Registry
from stemlog.clock import Clock, Duration, to_seconds
from stemlog.codec import JSONValue, normalize_json
from stemlog.errors import InvalidPayloadError, UnknownWorkflowError
from stemlog.execution.session import ConflictError
from stemlog.model.facts import fact_fields
from stemlog.model.fold import RunState
from stemlog.model.run import Run
from stemlog.store.events import RunStore


def stored_params(params: Mapping[str, Any] | None) -> dict[str, JSONValue]:
    """Params as stored in ``RunStarted``.

    Raises:
        InvalidPayloadError: not a mapping of JSON values.
    """
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise InvalidPayloadError("params", "params must be a mapping of names to values")
    value: dict[str, JSONValue] = normalize_json(dict(params), "params")
    return value


@final
class Starter:
    """Starts runs of registered definitions."""

    def __init__(self, store: RunStore, registry: Registry, clock: Clock) -> None:
        self._store = store
        self._registry = registry
        self._clock = clock

    def definition(self, workflow: str | Definable | WorkflowRef[Any]) -> WorkflowDefinition:
        """The registered definition a start refers to.

        Raises:
            UnknownWorkflowError: not registered in this app.
        """
        if isinstance(workflow, str):
            return self._registry.latest(workflow)
        definition = (
            workflow.definition if isinstance(workflow, WorkflowRef) else as_definition(workflow)
        )
        registered = self._registry.resolve(definition.name, definition.version)
        if registered is None:
            raise UnknownWorkflowError(definition.name, definition.version)
        return registered

    async def start(
        self,
        workflow: str | Definable | WorkflowRef[Any],
        params: Mapping[str, Any] | None,
        *,
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
        policy: CancellationPolicy | None = None,
        run_id: str | None = None,
    ) -> Run:
        """Append ``RunStarted`` of a new run and return the committed aggregate.

        With ``run_id`` given and already taken, raises ``ConflictError``.
        """
        definition = self.definition(workflow)
        if isinstance(workflow, WorkflowRef) and params is not None:
            params = workflow.encode(params)
        if policy is not None and not isinstance(policy, CancellationPolicy):
            raise InvalidPayloadError("policy", "policy must be a CancellationPolicy")
        run = Run.begin(
            run_id=uuid.UUID(run_id) if run_id else uuid.uuid4(),
            at=self._clock.now(),
            workflow=definition.name,
            kind=str(definition.kind),
            workflow_version=definition.version,
            params=stored_params(params),
            fingerprint=definition.fingerprint,
            parent_run_id=parent_run_id,
            policy=None if policy is None else policy.to_json(),
            ttl=None if ttl is None else to_seconds(ttl),
            forked_from=None,
        )
        await self._store.commit(run)
        return run

    async def start_child(
        self, workflow: Any, params: Any, parent_run_id: str, run_id: str
    ) -> tuple[str, Run | None]:
        """Start the child ``run_id``, or find it started; the aggregate when new."""
        try:
            run = await self.start(workflow, params, parent_run_id=parent_run_id, run_id=run_id)
        except ConflictError:
            return run_id, None
        return run_id, run

    async def import_run(self, facts: list[Any]) -> Run:
        """Append a history exactly as given (same run id, positions, timestamps).

        Raises:
            InvalidPayloadError: the run id already exists in this store, or the
                facts do not form a valid history.
        """
        first = facts[0]
        try:
            run = Run.begin(run_id=first.originator_id, at=first.timestamp, **fact_fields(first))
            for fact in facts[1:]:
                run.trigger_event(type(fact), timestamp=fact.timestamp, **fact_fields(fact))
        except (TypeError, ValueError, AttributeError, KeyError) as error:
            raise InvalidPayloadError("history", f"not a valid run history: {error}") from None
        try:
            await self._store.commit(run)
        except ConflictError:
            raise InvalidPayloadError(
                "history", f"run {first.originator_id} already exists in this store"
            ) from None
        return run

    async def fork(self, source: RunState, facts: list[Any], upto: int) -> Run:
        """A new run whose history is ``facts[:upto]`` of ``source`` (RunStarted first)."""
        first = facts[0]
        fields = fact_fields(first)
        fields.update(
            parent_run_id=None,
            forked_from={"run_id": source.run_id, "position": upto},
        )
        run = Run.begin(run_id=uuid.uuid4(), at=first.timestamp, **fields)
        for fact in facts[1:upto]:
            run.trigger_event(type(fact), timestamp=fact.timestamp, **fact_fields(fact))
        await self._store.commit(run)
        return run
