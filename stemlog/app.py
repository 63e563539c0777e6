"""The embedded app: registration, starts, events, queries, and its background tasks.

``async with WorkflowApp.open(url) as app`` opens the log and its views,
starts the group committer, the projector and (unless ``worker=False``) the
worker in one task group, and on exit stops them and closes the store. Closing
and reopening on the same SQLite file or PostgreSQL database continues every
run where its log stands.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, final

import anyio
from anyio.abc import TaskGroup

from stemlog.clock import Clock, Duration, SystemClock, to_seconds
from stemlog.codec import JSONValue, normalize_json
from stemlog.context import check_topic
from stemlog.definitions import Definable, WorkflowDefinition, as_definition
from stemlog.delivery import Delivery
from stemlog.errors import UnknownRunError, UnknownWorkflowError
from stemlog.facts import RunCompleted, RunFailed, fact_fields
from stemlog.queries import Queries
from stemlog.records import ErrorInfo, Fact, RunStatus, RunView, WorkflowResult
from stemlog.registry import Registry
from stemlog.run import Run
from stemlog.signals import RunSignals, TerminalFact
from stemlog.store import RunStore, parse_run_id
from stemlog.urls import parse_store_url
from stemlog.views import ViewKeeper
from stemlog.worker import Worker


@final
class WorkflowApp:
    """A stemlog engine embedded in your process. Create it with :meth:`open`."""

    def __init__(
        self,
        url: str,
        *,
        worker: bool = True,
        clock: Clock | None = None,
        lease: Duration = 30.0,
        concurrency: int = 64,
    ) -> None:
        self.url = url
        self._config = parse_store_url(url)
        self._clock: Clock = clock or SystemClock()
        self._with_worker = worker
        self._lease = to_seconds(lease)
        self._concurrency = max(int(concurrency), 1)
        self._registry = Registry()
        self._signals = RunSignals()
        self._group: TaskGroup | None = None
        self._store: RunStore | None = None
        self._views: ViewKeeper | None = None
        self._worker: Worker | None = None

    @classmethod
    def open(
        cls,
        url: str,
        *,
        worker: bool = True,
        clock: Clock | None = None,
        lease: Duration = 30.0,
        concurrency: int = 64,
    ) -> WorkflowApp:
        """An app on ``memory://``, ``sqlite:///path`` or ``postgresql://...``.

        Use it with ``async with``: entering opens the store and starts the
        background tasks, leaving stops them and closes the store.

        Args:
            url: the store (see :func:`stemlog.urls.parse_store_url`).
            worker: run the built-in worker (drives runs, fires timers).
            clock: where time comes from (tests inject a ``ManualClock``).
            lease: how long a claim on a run lasts without a heartbeat.
            concurrency: how many runs the worker drives at once.

        Raises:
            InvalidStoreURLError: the URL is not understood.
        """
        return cls(url, worker=worker, clock=clock, lease=lease, concurrency=concurrency)

    async def __aenter__(self) -> WorkflowApp:
        store = await anyio.to_thread.run_sync(RunStore, self._config)
        self._store = store
        try:
            self._views = await anyio.to_thread.run_sync(ViewKeeper.create, store)
            self._group = await anyio.create_task_group().__aenter__()
            if self._with_worker:
                self._worker = Worker(
                    store,
                    self._registry.resolve,
                    self._clock,
                    concurrency=self._concurrency,
                    lease=self._lease,
                )
                await self._group.start(self._worker.run)
                worker_ = self._worker
                store.solo = lambda: worker_.busy() <= 1
            store.add_listener(self._on_commit)
            await self._group.start(self._views.run, self._on_page)
            if self._worker is not None:
                await self._views.recover(self._worker)
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        group, self._group = self._group, None
        if group is not None:
            group.cancel_scope.cancel()
            await group.__aexit__(None, None, None)
        store, self._store = self._store, None
        if store is not None:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(store.close)

    # -- background wiring ----------------------------------------------------

    def _on_commit(self, facts: Sequence[Any]) -> None:
        self._signals.facts_committed(facts)
        if self._views is not None:
            self._views.log_moved()

    def _on_page(self, facts: Sequence[Any], rows: Sequence[Any]) -> None:
        # Facts seen by the projector include those of other processes.
        self._signals.facts_committed(facts)
        if self._worker is not None:
            self._views_feed_worker(rows)

    def _views_feed_worker(self, rows: Sequence[Any]) -> None:
        from projections.rows import timer_due

        assert self._worker is not None
        for row in rows:
            self._worker.set_timer(row.run_id, timer_due(row))

    def _require_open(self) -> tuple[RunStore, ViewKeeper]:
        if self._store is None or self._views is None:
            raise RuntimeError("the app is not open: use 'async with WorkflowApp.open(url) as app'")
        return self._store, self._views

    def _delivery(self) -> Delivery:
        store, views = self._require_open()
        return Delivery(store, views, self._clock, self._worker)

    # -- registration -----------------------------------------------------------

    def register_flows(self, flows: Sequence[Definable]) -> None:
        """Register flows (or their definitions) so runs of them can start and be driven."""
        self._registry.add_all(flows)

    def register_scripts(self, scripts: Sequence[Definable]) -> None:
        """Register workflow scripts (or their definitions)."""
        self._registry.add_all(scripts)

    def register_workflows(self, definitions: Sequence[Definable]) -> None:
        """Register definitions of either kind."""
        self._registry.add_all(definitions)

    def manifest(self) -> list[dict[str, Any]]:
        """Every registered definition, described for tooling."""
        return [definition.manifest() for definition in self._registry.all()]

    # -- runs -------------------------------------------------------------------

    async def start(
        self,
        workflow: str | Definable,
        params: Mapping[str, Any] | None = None,
        *,
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
    ) -> str:
        """Start a run; returns its id once ``RunStarted`` is durable.

        Raises:
            UnknownWorkflowError: the workflow is not registered.
            InvalidPayloadError: params are not a mapping of JSON values.
        """
        store, _ = self._require_open()
        definition = self._definition(workflow)
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            from stemlog.errors import InvalidPayloadError

            raise InvalidPayloadError("params", "params must be a mapping of names to values")
        stored_params = normalize_json(dict(params), "params")
        run_id = uuid.uuid4()
        run = Run.begin(
            run_id=run_id,
            at=self._clock.now(),
            workflow=definition.name,
            kind=str(definition.kind),
            workflow_version=definition.version,
            params=stored_params,
            fingerprint=definition.fingerprint,
            parent_run_id=parent_run_id,
            policy=None,
            ttl=None if ttl is None else to_seconds(ttl), forked_from=None,
        )
        await store.commit(run)
        if self._worker is not None:
            self._worker.schedule(str(run_id), run)
        return str(run_id)

    def _definition(self, workflow: str | Definable) -> WorkflowDefinition:
        if isinstance(workflow, str):
            return self._registry.latest(workflow)
        definition = as_definition(workflow)
        registered = self._registry.resolve(definition.name, definition.version)
        if registered is None:
            raise UnknownWorkflowError(definition.name, definition.version)
        return registered

    async def start_and_wait(
        self,
        workflow: str | Definable,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: Duration | None = None,
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
    ) -> WorkflowResult:
        """Start a run and wait for it to end (or for ``timeout``)."""
        run_id = await self.start(workflow, params, parent_run_id=parent_run_id, ttl=ttl)
        return await self._wait(run_id, timeout, known_running=self._worker is not None)

    async def wait_for(self, run_id: str, timeout: Duration | None = None) -> WorkflowResult:
        """Wait until the run ends, woken by its terminal fact (no polling).

        Returns a result with ``timed_out=True`` and the current status when
        ``timeout`` passes first; never raises for a timeout.

        Raises:
            UnknownRunError: no such run.
        """
        parse_run_id(run_id)
        return await self._wait(run_id, timeout, known_running=False)

    async def _wait(
        self, run_id: str, timeout: Duration | None, *, known_running: bool
    ) -> WorkflowResult:
        # known_running: this app just started the run and its worker drives it,
        # so its terminal fact will pass through this app's commit listener.
        store, _ = self._require_open()
        with anyio.move_on_after(None if timeout is None else to_seconds(timeout)):
            while True:
                ended = self._signals.watch(run_id)
                fact = self._signals.ended(run_id)
                if fact is not None:
                    return _result_of(run_id, fact)
                if not known_running:
                    state = (await store.load(run_id)).state
                    if state.status.is_terminal:
                        return WorkflowResult(run_id, state.status, state.result, state.error)
                known_running = False
                await ended.wait()
        state = (await store.load(run_id)).state
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
        return await self._delivery().emit(topic, value)

    async def send(self, run_id: str, topic: str, payload: JSONValue = None) -> None:
        """Deliver ``payload`` to one run; kept until the run waits on ``topic``.

        Raises:
            UnknownRunError: no such run.
            RunEndedError: the run has ended.
            InvalidTopicError, InvalidPayloadError: bad input (nothing is written).
        """
        check_topic(topic)
        value = normalize_json(payload, "payload")
        await self._delivery().send(run_id, topic, value)

    async def cancel(self, run_id: str, reason: str | None = None) -> None:
        """End a run as ``cancelled``; a step in flight finishes, nothing more runs.

        Raises:
            UnknownRunError: no such run.
            RunEndedError: the run has already ended.
        """
        await self._delivery().cancel(run_id, reason)

    # -- queries ----------------------------------------------------------------

    def _queries(self) -> Queries:
        _, views = self._require_open()
        return Queries(views, self._worker.leases if self._worker else None)

    async def get_run(self, run_id: str) -> RunView | None:
        """The run as the ``runs`` view shows it (caught up to the log), or ``None``."""
        return await self._queries().get_run(run_id)

    async def list_runs(
        self,
        workflow: str | None = None,
        status: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[RunView]:
        """Runs in start order, filtered.

        Pass the last run id of a page as ``after`` to get the next page.
        """
        return await self._queries().list_runs(workflow, status, limit, after)

    async def runs_waiting_on(self, topic: str) -> list[str]:
        """Ids of the runs suspended on ``topic`` now."""
        check_topic(topic)
        return await self._queries().waiting_on(topic)

    async def history(self, run_id: str) -> list[Fact]:
        """Every fact of the run, in order.

        Raises:
            UnknownRunError: no such run.
        """
        store, _ = self._require_open()
        facts = await store.facts(run_id)
        if not facts:
            raise UnknownRunError(run_id)
        return [
            Fact(type(f).__name__, f.originator_version, f.timestamp, fact_fields(f)) for f in facts
        ]


def _result_of(run_id: str, fact: TerminalFact) -> WorkflowResult:
    if isinstance(fact, RunCompleted):
        return WorkflowResult(run_id, RunStatus.COMPLETED, fact.result)
    if isinstance(fact, RunFailed):
        return WorkflowResult(run_id, RunStatus.FAILED, None, ErrorInfo.from_json(fact.error))
    return WorkflowResult(run_id, RunStatus.CANCELLED)
