"""The writes of the app's commands: start, emit, send, cancel, rewind, fork, import,
and the delivery of a child's outcome to its parent.

Each validates first, loads the runs it touches, decides on their folded
state, and commits; when another writer appended meanwhile (optimistic
concurrency), it reloads and decides again. ``emit`` reads the runs waiting
on its topic from the run index (kept in the transaction of every append, so
a run that waits is found as soon as its wait is committed) and commits the
deliveries to all of them in one atomic append, so once it returns no
delivery can be lost. Commands never schedule anything themselves: their
commits take the claim of a run for this app's worker when it has room
(``claim_mode``), and what they commit reaches the worker through the
dispatcher, like every other fact.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, final

from stemlog.authoring.definition import WorkflowDefinition
from stemlog.authoring.refs import WorkflowRef
from stemlog.authoring.registry import Registry
from stemlog.authoring.workflows import Definable, Flow, WorkflowScript, as_definition
from stemlog.clock import Clock, Duration, optional_seconds
from stemlog.codec import JSONObject, JSONValue, normalize_json
from stemlog.errors import (
    InvalidPayloadError,
    RunEndedError,
    RunExistsError,
    StemlogError,
    UnknownRunError,
    UnknownStepError,
    UnknownWorkflowError,
)
from stemlog.model.children import child_end_event_id, child_outcome, child_topic
from stemlog.model.facts import AnyFact, StepStarted, fact_fields
from stemlog.model.ids import new_run_id, parse_run_id
from stemlog.model.policy import CancellationPolicy
from stemlog.model.run import Run
from stemlog.runtime.read_side import ReadSide
from stemlog.store.catalog import CatalogEntry
from stemlog.store.events import RunStore
from stemlog.store.index import ClaimMode

Startable = str | Definable | WorkflowRef[Any]
_Change = Callable[[Run, datetime], None]

_ATTEMPTS = 50


class ConflictingWritersError(StemlogError, RuntimeError):
    """A write kept losing optimistic-concurrency races (other writers, every time)."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"{what} kept conflicting with other writers; try again")


def stored_params(params: Mapping[str, Any] | None) -> JSONObject:
    """Params as stored in ``RunStarted``.

    Raises:
        InvalidPayloadError: not a mapping of JSON values.
    """
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise InvalidPayloadError("params", "params must be a mapping of names to values")
    value = normalize_json(dict(params), "params")
    assert isinstance(value, dict), "a mapping normalises to a JSON object"
    return value


@final
class Commands:
    """The app's writes, each retried on optimistic-concurrency conflicts."""

    def __init__(self, store: RunStore, views: ReadSide, registry: Registry, clock: Clock):
        self._store = store
        self._views = views
        self._registry = registry
        self._clock = clock
        self.claim_mode: Callable[[Run], ClaimMode] = lambda run: ClaimMode.KEEP
        """What commits do to claims (the worker, if the app has one, takes them)."""
        self.start_here: Callable[[Run], Awaitable[bool]] | None = None
        """Hands a new run, not stored yet, to the app's worker, which stores it with its
        first step (see :mod:`stemlog.runtime.writes`); whether it did."""

    async def _commit(self, *runs: Run) -> bool:
        return await self._store.commit(*runs, claim=self.claim_mode)

    # -- starting runs --------------------------------------------------------

    def definition(self, workflow: Startable) -> WorkflowDefinition:
        """The registered definition a start refers to.

        Raises:
            UnknownWorkflowError: not registered in this app.
        """
        if isinstance(workflow, str):
            return self._registry.latest(workflow)
        if isinstance(workflow, WorkflowRef):
            definition = workflow.definition
        elif isinstance(workflow, Flow | WorkflowScript | WorkflowDefinition):
            definition = as_definition(workflow)
        else:
            raise UnknownWorkflowError(
                repr(workflow), reason="a workflow is a name, a Flow, a WorkflowScript, "
                "a definition or a ref",
            )  # fmt: skip
        registered = self._registry.resolve(definition.name, definition.version)
        if registered is None:
            raise UnknownWorkflowError(definition.name, definition.version)
        return registered

    async def start(
        self,
        workflow: Startable,
        params: Mapping[str, Any] | None,
        *,
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
        policy: CancellationPolicy | None = None,
        run_id: object = None,
        if_exists: str = "return",
    ) -> str:
        """Append ``RunStarted`` of a new run; its id.

        ``run_id`` may be a UUID or a business key (see :mod:`stemlog.model.ids`).
        When that run exists, nothing is written: its id is returned
        (``if_exists="return"``) unless it runs another workflow, or
        :class:`RunExistsError` is raised (``"fail"``).

        Raises:
            InvalidPayloadError: a bad ``run_id``, ``if_exists``, params, ttl or policy.
            UnknownWorkflowError: not registered in this app.
            RunExistsError: the run exists and may not be returned.
        """
        if if_exists not in ("return", "fail"):
            raise InvalidPayloadError("if_exists", "if_exists is 'return' or 'fail'")
        uuid_, key = new_run_id(run_id)
        definition = await self._pinned(workflow)
        ttl_seconds = optional_seconds(ttl, "ttl")
        if isinstance(workflow, WorkflowRef) and params is not None:
            params = workflow.encode(params)
        if policy is not None and not isinstance(policy, CancellationPolicy):
            raise InvalidPayloadError("policy", "policy must be a CancellationPolicy")
        if parent_run_id is not None:
            parent_run_id = await self._known(parent_run_id)
        begin = functools.partial(
            Run.begin,
            run_id=uuid_,
            at=self._clock.now(),
            workflow=definition.name,
            kind=definition.kind,
            workflow_version=definition.version,
            params=stored_params(params),
            fingerprint=definition.fingerprint,
            parent_run_id=parent_run_id,
            policy=None if policy is None else policy.to_json(),
            ttl=ttl_seconds,
            forked_from=None,
            key=key,
        )
        run = begin()
        # A run of a new random id (no other start can name it) that this app's worker
        # drives at once is stored with its first step.
        here = self.start_here
        if (
            run_id is None
            and parent_run_id is None
            and here is not None
            and self.claim_mode(run) is ClaimMode.TAKE
        ):
            if await here(run):
                return str(uuid_)
            run = begin()  # its drive stored nothing: store it here
        if await self._commit(run):
            return run.state.run_id
        return await self._existing(run, if_exists)

    async def _pinned(self, workflow: Startable) -> WorkflowDefinition | CatalogEntry:
        """What a new run is pinned to: the registered definition, or for a name this
        app has not registered, the newest version any app recorded in the store's
        catalog (a worker that registered it drives the run).

        Raises:
            UnknownWorkflowError: neither here nor in the catalog.
        """
        try:
            return self.definition(workflow)
        except UnknownWorkflowError:
            if not isinstance(workflow, str):
                raise
        entries = await self._store.blocking(self._store.catalog.entries)
        known = [entry for entry in entries if entry.name == workflow]
        if not known:
            raise UnknownWorkflowError(
                workflow, reason="neither this app nor any app on this store registered it"
            )
        return max(known, key=lambda entry: entry.version)

    async def _known(self, run_id: str) -> str:
        """The id of a run that must exist (a parent), given by id or key.

        Raises:
            UnknownRunError: no such run (naming it as given).
        """
        try:
            return (await self._store.load(str(parse_run_id(run_id)))).state.run_id
        except UnknownRunError:
            raise UnknownRunError(str(run_id)) from None

    async def _existing(self, run: Run, if_exists: str) -> str:
        """The id of the run that was there first, if the caller may have it."""
        state = run.state
        other = (await self._store.load(state.run_id)).state
        if if_exists == "fail" or other.workflow != state.workflow:
            raise RunExistsError(other.run_id, other.key, other.workflow)
        return other.run_id

    async def start_child(self, workflow: Any, params: Any, parent_run_id: str, run_id: str) -> str:
        """Start the child ``run_id``, or find it started (a re-executed step); its id."""
        return await self.start(workflow, params, parent_run_id=parent_run_id, run_id=run_id)

    async def import_run(self, facts: list[AnyFact]) -> Run:
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
        if not await self._commit(run):
            raise InvalidPayloadError(
                "history", f"run {first.originator_id} already exists in this store"
            )
        return run

    async def fork(self, run_id: str, step: str) -> Run:
        """A new run whose history is this run's up to the first start of ``step``.

        Raises:
            UnknownRunError: no such run.
            UnknownStepError: the run never ran ``step``.
        """
        facts = await self._store.facts(run_id)
        if not facts:
            raise UnknownRunError(run_id)
        upto = next(
            (i for i, f in enumerate(facts) if isinstance(f, StepStarted) and f.step == step),
            None,
        )
        if upto is None:
            raise UnknownStepError(run_id, step)
        first = facts[0]
        fields = fact_fields(first)
        fields.update(parent_run_id=None, key=None,
                      forked_from={"run_id": str(run_id), "position": upto})  # fmt: skip
        run = Run.begin(run_id=new_run_id()[0], at=first.timestamp, **fields)
        for fact in facts[1:upto]:
            run.trigger_event(type(fact), timestamp=fact.timestamp, **fact_fields(fact))
        await self._commit(run)
        return run

    # -- writes to existing runs ------------------------------------------------

    async def emit(self, topic: str, payload: JSONValue) -> list[str]:
        """Deliver to every run waiting on ``topic`` now, in one atomic append."""
        event_id = uuid.uuid4().hex
        for _ in range(_ATTEMPTS):
            candidates = await self._store.waiting_on(topic)
            runs: list[Run] = []
            for run_id in candidates:
                try:
                    run = await self._store.load(run_id)
                except UnknownRunError:
                    continue
                wait = run.state.wait
                if wait is not None and wait.topic == topic:
                    runs.append(run)
            at = self._clock.now()
            for run in runs:
                run.receive_event(topic, payload, event_id, at)
            if await self._commit(*runs):
                return [run.state.run_id for run in runs]
        raise ConflictingWritersError(f"emit on {topic!r}")

    async def send(self, run_id: str, topic: str, payload: JSONValue) -> None:
        """Deliver to one run, kept until it waits on ``topic``."""
        event_id = uuid.uuid4().hex
        await self._update(run_id, lambda run, at: run.receive_event(topic, payload, event_id, at))

    async def cancel(self, run_id: str, reason: str | None) -> None:
        """Cancel the run, then its children that are still going (depth first).

        A cancelled child's parent hears of it as of any child's end: the
        append that ends the child makes its waiting parent due, and the worker
        that claims the parent delivers the outcome.
        """
        await self._update(run_id, lambda run, at: run.cancel(reason, at))
        await self._views.catch_up()
        for child in await self._views.call(self._views.view.children, run_id):
            with contextlib.suppress(RunEndedError, UnknownRunError):
                await self.cancel(child, reason or f"parent {run_id} cancelled")

    async def rewind(self, run_id: str, step: str) -> None:
        """Run ``step`` and the steps after it again."""
        await self._update(run_id, lambda run, at: run.rewind(step, at))

    async def deliver_child_outcome(self, child_run_id: str) -> None:
        """Tell the parent how its child ended (idempotent; a no-op while it runs)."""
        try:
            child = (await self._store.load(child_run_id)).state
        except UnknownRunError:
            return
        parent = child.parent_run_id
        if parent is None or not child.status.is_terminal:
            return
        error = None if child.error is None else child.error.to_json()
        outcome = child_outcome(str(child.status), child.result, error)
        topic, event_id = child_topic(child_run_id), child_end_event_id(child_run_id)
        with contextlib.suppress(RunEndedError, UnknownRunError):
            await self._update(
                parent, lambda run, at: run.receive_event(topic, outcome, event_id, at)
            )

    async def _update(self, run_id: str, change: _Change) -> Run:
        for _ in range(_ATTEMPTS):
            run = await self._store.load(run_id)
            change(run, self._clock.now())
            if await self._commit(run):
                return run
        raise ConflictingWritersError(f"a write to run {run_id}")
