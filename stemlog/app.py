"""The embedded app: the public API, a thin facade over an open runtime.

``async with WorkflowApp.open(url) as app`` opens the log and its read
models and starts the background tasks (projector, tail, and the worker
unless ``worker=False``) in the app's one task group; leaving the block
stops them and closes the store. Closing and reopening on the same SQLite
file or PostgreSQL database continues every run where its log stands.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, BinaryIO, Literal, TypeVar, final, overload

import anyio
from anyio import AsyncContextManagerMixin

from stemlog.authoring.context import check_topic
from stemlog.authoring.definition import WorkflowDefinition
from stemlog.authoring.refs import WorkflowRef
from stemlog.authoring.registry import Registry
from stemlog.authoring.workflows import Definable
from stemlog.clock import Clock, Duration, SystemClock, optional_seconds, to_seconds
from stemlog.codec import JSONValue, normalize_json
from stemlog.errors import (
    AppNotOpenError,
    InvalidPayloadError,
    UnknownRunError,
    UnknownWorkflowError,
)
from stemlog.execution.replay import ReplayReport, replay
from stemlog.model.facts import RunCompleted, RunFailed
from stemlog.model.fold import fold
from stemlog.model.history import as_facts, read_json_lines, to_record
from stemlog.model.ids import parse_run_id
from stemlog.model.policy import CancellationPolicy
from stemlog.model.records import ErrorInfo, Fact, RunStatus, RunView, WorkflowResult
from stemlog.runtime.queries import Queries, Stats
from stemlog.runtime.read_models import ReadModels
from stemlog.runtime.runtime import Runtime, open_runtime
from stemlog.runtime.signals import TerminalFact
from stemlog.store.urls import parse_store_url

Startable = str | Definable | WorkflowRef[Any]
IfExists = Literal["return", "fail"]
P = TypeVar("P")


def _run_id(run_id: object) -> str:
    """A run id or key as the run's id (what the store and the signals know it by).

    Raises:
        UnknownRunError: neither a UUID nor a usable key.
    """
    return str(parse_run_id(run_id))


@final
class WorkflowApp(AsyncContextManagerMixin):
    """A stemlog engine embedded in your process. Create it with :meth:`open`."""

    def __init__(
        self,
        url: str,
        *,
        worker: bool = True,
        clock: Clock | None = None,
        lease: Duration = 30.0,
        concurrency: int = 64,
        store_timeout: Duration = 30.0,
        create: bool = True,
    ) -> None:
        self.url = url
        self._backend = parse_store_url(url)
        self._clock: Clock = clock or SystemClock()
        self._with_worker = worker
        self._lease = to_seconds(lease, "lease", positive=True)
        self._store_timeout = to_seconds(store_timeout, "store_timeout", positive=True)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidPayloadError("concurrency", f"an int >= 1 is needed, got {concurrency!r}")
        self._concurrency = concurrency
        self._create = create
        self._registry = Registry()
        self._runtime: Runtime | None = None

    @classmethod
    def open(
        cls,
        url: str,
        *,
        worker: bool = True,
        clock: Clock | None = None,
        lease: Duration = 30.0,
        concurrency: int = 64,
        store_timeout: Duration = 30.0,
        create: bool = True,
    ) -> WorkflowApp:
        """An app on ``memory://``, ``sqlite:///path`` or ``postgresql://...``.

        Use it with ``async with``: entering opens the store and starts the
        background tasks, leaving stops them and closes the store.

        Args:
            url: the store (see :func:`stemlog.store.urls.parse_store_url`).
            worker: run the built-in worker (drives runs, fires timers).
            clock: where time comes from (tests inject a ``ManualClock``).
            lease: how long a claim on a run lasts without a heartbeat.
            concurrency: how many runs the worker drives at once.
            store_timeout: how long a call waits for a store that went away
                (a restarting database, a locked file) before it fails with
                ``StoreUnavailableError``; the background work keeps retrying.
            create: create the store if it does not exist yet; ``False`` makes a
                missing SQLite file an ``InvalidStoreURLError`` instead (for tools
                that only read or act on runs that must exist).

        Raises:
            InvalidStoreURLError: the URL is not understood.
            InvalidPayloadError: a duration or ``concurrency`` that means nothing.
        """
        return cls(url, worker=worker, clock=clock, lease=lease, concurrency=concurrency,
                   store_timeout=store_timeout, create=create)  # fmt: skip

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[WorkflowApp]:
        async with open_runtime(
            self._backend, self._registry, self._clock,
            worker=self._with_worker, concurrency=self._concurrency, lease=self._lease,
            store_timeout=self._store_timeout, create=self._create,
        ) as runtime:  # fmt: skip
            self._runtime = runtime
            try:
                yield self
            finally:
                self._runtime = None

    def _open(self) -> Runtime:
        runtime = self._runtime
        if runtime is None:
            raise AppNotOpenError()
        return runtime

    # -- registration -----------------------------------------------------------

    def register_flows(self, flows: Sequence[Definable]) -> None:
        """Register flows (or their definitions) so runs of them can start and be driven.

        Registering in an open app resumes the runs of those workflows that the
        log left runnable (registration usually follows ``open``).
        """
        self.register_workflows(flows)

    def register_scripts(self, scripts: Sequence[Definable]) -> None:
        """Register workflow scripts (or their definitions)."""
        self.register_workflows(scripts)

    def register_workflows(self, definitions: Sequence[Definable]) -> None:
        """Register definitions of either kind."""
        self._registry.add_all(definitions)
        runtime = self._runtime
        if runtime is not None:
            runtime.recover_soon()

    def definitions(self) -> list[WorkflowDefinition]:
        """Every registered definition (to register the same ones in another app)."""
        return self._registry.all()

    def manifest(self) -> list[dict[str, Any]]:
        """Every definition registered in this app, described for tooling."""
        return [definition.manifest() for definition in self._registry.all()]

    async def workflows(self) -> list[dict[str, Any]]:
        """Every workflow version any app has registered with this store (the store's
        catalog), described as :meth:`manifest` describes this app's: what a process
        without the code can start by name.

        Raises:
            StoreUnavailableError: the store stayed away longer than ``store_timeout``.
        """
        runtime = self._open()
        await runtime.catalog.flush()
        entries = await runtime.store.blocking(runtime.store.catalog.entries)
        return [entry.manifest() for entry in entries]

    # -- runs -------------------------------------------------------------------

    @overload
    async def start(
        self,
        workflow: WorkflowRef[P],
        params: P | None = None,
        *,
        run_id: str | None = None,
        if_exists: IfExists = "return",
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
        policy: CancellationPolicy | None = None,
    ) -> str: ...

    @overload
    async def start(
        self,
        workflow: str | Definable,
        params: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        if_exists: IfExists = "return",
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
        policy: CancellationPolicy | None = None,
    ) -> str: ...

    async def start(
        self,
        workflow: Startable,
        params: Any = None,
        *,
        run_id: str | None = None,
        if_exists: IfExists = "return",
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
        policy: CancellationPolicy | None = None,
    ) -> str:
        """Start a run; returns its id once ``RunStarted`` is durable.

        ``run_id`` names the run: a UUID, or a business key of yours
        (``"order-1234"``) that maps to the UUID ``uuid5(STEMLOG_NAMESPACE, key)``
        and is kept as ``RunView.key``; any method that takes a run id takes the
        key too. Starting a run that exists writes nothing: its id is returned
        (``if_exists="return"``, an idempotent start) or :class:`RunExistsError`
        is raised (``"fail"``); a key taken by a run of another workflow is
        always an error. A ref's params object is encoded by the ref. ``ttl``
        hides the run from ``list_runs`` that long after it ended (its facts are
        kept); ``policy`` lets the worker cancel it by itself.

        Raises:
            UnknownWorkflowError: the workflow is not registered.
            InvalidPayloadError: params are not a mapping of JSON values; a run id
                that is neither a UUID nor a non-empty key.
            RunExistsError: the run exists (``if_exists="fail"``, or another workflow).
        """
        return await self._open().commands.start(
            workflow, params, parent_run_id=parent_run_id, ttl=ttl, policy=policy,
            run_id=run_id, if_exists=if_exists,
        )  # fmt: skip

    @overload
    async def start_and_wait(
        self,
        workflow: WorkflowRef[P],
        params: P | None = None,
        *,
        timeout: Duration | None = None,
        run_id: str | None = None,
        if_exists: IfExists = "return",
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
        policy: CancellationPolicy | None = None,
    ) -> WorkflowResult: ...

    @overload
    async def start_and_wait(
        self,
        workflow: str | Definable,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: Duration | None = None,
        run_id: str | None = None,
        if_exists: IfExists = "return",
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
        policy: CancellationPolicy | None = None,
    ) -> WorkflowResult: ...

    async def start_and_wait(
        self,
        workflow: Startable,
        params: Any = None,
        *,
        timeout: Duration | None = None,
        run_id: str | None = None,
        if_exists: IfExists = "return",
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
        policy: CancellationPolicy | None = None,
    ) -> WorkflowResult:
        """Start a run (as :meth:`start`) and wait for it to end (or for ``timeout``)."""
        run_id = await self.start(
            workflow, params, parent_run_id=parent_run_id, ttl=ttl, policy=policy,
            run_id=run_id, if_exists=if_exists,
        )  # fmt: skip
        return await self._wait(run_id, timeout, known_running=self._open().worker is not None)

    async def wait_for(self, run_id: str, timeout: Duration | None = None) -> WorkflowResult:
        """Wait until the run ends, woken by its terminal fact (no polling).

        Returns a result with ``timed_out=True`` and the current status when
        ``timeout`` passes first; never raises for a timeout.

        Raises:
            UnknownRunError: no such run.
        """
        run_id = _run_id(run_id)
        return await self._wait(run_id, timeout, known_running=False)

    async def _wait(
        self, run_id: str, timeout: Duration | None, *, known_running: bool
    ) -> WorkflowResult:
        # known_running: this app just started the run and its worker drives it,
        # so its terminal fact will pass through this app's commit listener.
        runtime = self._open()
        with anyio.move_on_after(optional_seconds(timeout, "timeout")):
            while True:
                ended = runtime.signals.watch(run_id)
                try:
                    fact = runtime.signals.ended(run_id)
                    if fact is not None:  # get_run/list_runs catch up before reading
                        return _result_of(run_id, fact)
                    if not known_running:
                        state = (await runtime.store.load(run_id)).state
                        if state.status.is_terminal:
                            return WorkflowResult(run_id, state.status, state.result, state.error)
                    known_running = False
                    await ended.wait()
                finally:
                    runtime.signals.unwatch(run_id, ended)
        state = (await runtime.store.load(run_id)).state
        return WorkflowResult(run_id, state.status, state.result, state.error, timed_out=True)

    async def emit(self, topic: str, payload: JSONValue = None) -> list[str]:
        """Deliver ``payload`` to every run waiting on ``topic``, atomically and durably.

        Returns the ids of the runs it reached. Runs not waiting yet do not get
        it (as in Stem); use :meth:`send` to buffer for one run.

        Raises:
            InvalidTopicError: ``topic`` is not a non-empty string.
            InvalidPayloadError: ``payload`` is not a JSON value.
        """
        check_topic(topic)
        value = normalize_json(payload, "payload")
        return await self._open().commands.emit(topic, value)

    async def send(self, run_id: str, topic: str, payload: JSONValue = None) -> None:
        """Deliver ``payload`` to one run; kept until the run waits on ``topic``.

        Raises:
            UnknownRunError: no such run.
            RunEndedError: the run has ended.
            InvalidTopicError, InvalidPayloadError: bad input (nothing is written).
        """
        run_id = _run_id(run_id)
        check_topic(topic)
        value = normalize_json(payload, "payload")
        await self._open().commands.send(run_id, topic, value)

    async def cancel(self, run_id: str, reason: str | None = None) -> None:
        """End a run and its running children as ``cancelled``.

        A step in flight finishes, but nothing more of the run is recorded.

        Raises:
            UnknownRunError: no such run.
            RunEndedError: the run has already ended.
        """
        run_id = _run_id(run_id)
        if reason is not None and not isinstance(reason, str):
            raise InvalidPayloadError("reason", f"a string or None is needed, got {reason!r}")
        await self._open().commands.cancel(run_id, reason)

    async def rewind(self, run_id: str, step: str) -> None:
        """Run ``step`` and the steps after it again (``RunRewound``; nothing is deleted).

        Raises:
            UnknownRunError: no such run.
            UnknownStepError: the run never ran ``step``.
        """
        run_id = _run_id(run_id)
        _check_step(step)
        await self._open().commands.rewind(run_id, step)

    async def fork(self, run_id: str, step: str) -> str:
        """Start a new run whose history is this run's up to ``step``; returns its id.

        The new run records ``forked_from`` and runs ``step`` onwards itself.

        Raises:
            UnknownRunError: no such run.
            UnknownStepError: the run never ran ``step``.
        """
        run_id = _run_id(run_id)
        _check_step(step)
        run = await self._open().commands.fork(run_id, step)
        return run.state.run_id

    async def import_history(self, history: Sequence[Fact]) -> str:
        """Append a run's history, as ``app.history`` returned it (in another store,
        say), to this store; the run's id.

        Positions, timestamps and payloads are kept exactly; the run keeps its
        id. Importing the same history again changes nothing. An app with a
        worker continues an imported run that has not ended if its workflow is
        registered (open with ``worker=False`` to only inspect).

        Raises:
            InvalidPayloadError: malformed history, facts of more than one run, or
                another history of that run already exists here.
        """
        facts = as_facts(history)
        run = await self._open().commands.import_run(facts)
        return run.state.run_id

    async def export_json_lines(self, run_id: str) -> list[bytes]:
        """The run's history as JSON lines (one fact a line, no newlines), exactly:
        what :meth:`import_json_lines` takes in another store.

        Raises:
            UnknownRunError: no such run.
        """
        return [fact.to_json_line() for fact in await self.history(run_id)]

    async def import_json_lines(self, lines: Iterable[bytes | str] | BinaryIO) -> dict[str, int]:
        """Import the histories in exported JSON lines; the number of facts by run id.

        Each run keeps its id, positions, timestamps and payloads; importing the
        same history again changes nothing. Every line is checked before
        anything is written.

        Raises:
            InvalidPayloadError: naming the line: over
                :data:`stemlog.model.history.MAX_LINE_BYTES`, malformed, or a fact
                out of order; or another history of a run exists here already.
        """
        histories = read_json_lines(lines)
        for records in histories.values():
            await self.import_history(records)
        return {run_id: len(records) for run_id, records in histories.items()}

    async def replay(self, run_id: str, *, until: int | None = None) -> ReplayReport:
        """Replay a run against the definition it is pinned to (see :func:`stemlog.replay`).

        Raises:
            UnknownRunError: no such run.
            UnknownWorkflowError: its workflow version is not registered here.
        """
        run_id = _run_id(run_id)
        facts = await self._open().store.facts(run_id)
        if not facts:
            raise UnknownRunError(run_id)
        state = fold(facts[:1])
        definition = self._registry.resolve(state.workflow, state.workflow_version)
        if definition is None:
            raise UnknownWorkflowError(state.workflow, state.workflow_version)
        return replay(facts, definition, until=until)

    # -- queries ----------------------------------------------------------------

    def _queries(self) -> Queries:
        runtime = self._open()
        return Queries(
            runtime.views,
            runtime.store,
            self._clock,
            self._registry if runtime.worker else None,
        )

    async def get_run(self, run_id: str, *, consistent: bool = False) -> RunView | None:
        """The run as the ``runs`` view shows it (caught up to the log), or ``None``.

        With ``consistent=True`` the run's own facts are read and folded instead
        of the view (one run's full history, not a single row).
        """
        queries = self._queries()
        try:
            run_id = _run_id(run_id)
        except UnknownRunError:
            return None
        if not consistent:
            return await queries.get_run(run_id)
        try:
            facts = await self._open().store.facts(run_id)
        except UnknownRunError:
            return None
        return await queries.fold_view(facts) if facts else None

    async def list_runs(
        self,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 100,
        after: str | None = None,
        *,
        include_expired: bool = False,
    ) -> list[RunView]:
        """Runs in start order, filtered.

        Pass the last run id of a page as ``after`` to get the next page. Runs
        whose ``ttl`` has passed since they ended are left out unless
        ``include_expired``.
        """
        if status is not None and status not in set(RunStatus):
            known = ", ".join(RunStatus)
            raise InvalidPayloadError("status", f"one of {known} is needed, got {status!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidPayloadError("limit", f"an int >= 0 is needed, got {limit!r}")
        if after is not None:
            after = _run_id(after)
        return await self._queries().list_runs(workflow, status, limit, after, include_expired)

    @property
    def read_models(self) -> ReadModels:
        """Status, rebuild, audit copies and verification of the read models."""
        return ReadModels(self._open().views)

    async def stats(self) -> Stats:
        """The ``step_stats`` and ``workflow_stats`` models, caught up to the log."""
        return await self._queries().stats()

    async def runs_waiting_on(self, topic: str) -> list[str]:
        """Ids of the runs suspended on ``topic`` now."""
        check_topic(topic)
        return await self._queries().waiting_on(topic)

    async def history(self, run_id: str) -> list[Fact]:
        """Every fact of the run, in order.

        Raises:
            UnknownRunError: no such run.
        """
        facts = await self._open().store.facts(_run_id(run_id))
        if not facts:
            raise UnknownRunError(run_id)
        return [to_record(fact) for fact in facts]


def _check_step(step: object) -> None:
    if not isinstance(step, str) or not step:
        raise InvalidPayloadError("step", f"a step name is needed, got {step!r}")


def _result_of(run_id: str, fact: TerminalFact) -> WorkflowResult:
    if isinstance(fact, RunCompleted):
        return WorkflowResult(run_id, RunStatus.COMPLETED, fact.result)
    if isinstance(fact, RunFailed):
        return WorkflowResult(run_id, RunStatus.FAILED, None, ErrorInfo.from_json(fact.error))
    return WorkflowResult(run_id, RunStatus.CANCELLED)
