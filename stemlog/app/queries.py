"""Reading runs from the read models: one run, lists, waiters, statistics."""

from __future__ import annotations

from stemlog.app.core import AppCore, run_id_of
from stemlog.authoring.context import check_topic
from stemlog.errors import InvalidPayloadError, UnknownRunError
from stemlog.model.records import RunStatus, RunView
from stemlog.runtime.queries import Queries, Stats
from stemlog.runtime.read_models import ReadModels


class RunQueries(AppCore):
    """Queries (part of :class:`~stemlog.app.WorkflowApp`)."""

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
            run_id = run_id_of(run_id)
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
        id_prefix: str | None = None,
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
            after = run_id_of(after)
        if id_prefix is not None and not isinstance(id_prefix, str):
            raise InvalidPayloadError("id_prefix", f"a string is needed, got {id_prefix!r}")
        return await self._queries().list_runs(
            workflow, status, limit, after, include_expired, id_prefix
        )

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
