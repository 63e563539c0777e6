"""A run's history: reading it, exporting and importing it, replaying it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import BinaryIO

from stemlog.app.core import AppCore, run_id_of
from stemlog.errors import UnknownRunError, UnknownWorkflowError
from stemlog.execution.replay import ReplayReport, replay
from stemlog.model.fold import fold
from stemlog.model.history import as_facts, read_json_lines, to_record
from stemlog.model.records import Fact


class RunHistories(AppCore):
    """Histories in and out (part of :class:`~stemlog.app.WorkflowApp`)."""

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
        run_id = run_id_of(run_id)
        facts = await self._open().store.facts(run_id)
        if not facts:
            raise UnknownRunError(run_id)
        state = fold(facts[:1])
        definition = self._registry.resolve(state.workflow, state.workflow_version)
        if definition is None:
            raise UnknownWorkflowError(state.workflow, state.workflow_version)
        return replay(facts, definition, until=until)

    async def history(self, run_id: str) -> list[Fact]:
        """Every fact of the run, in order.

        Raises:
            UnknownRunError: no such run.
        """
        facts = await self._open().store.facts(run_id_of(run_id))
        if not facts:
            raise UnknownRunError(run_id)
        return [to_record(fact) for fact in facts]
