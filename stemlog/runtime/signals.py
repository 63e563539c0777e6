"""Waking ``wait_for`` callers when a run's terminal fact reaches the log.

The hub also remembers the most recent terminal facts, so a ``wait_for`` on
a run that just ended answers without reading the store.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import final

import anyio

from stemlog.model.facts import TERMINAL_FACTS, RunCancelled, RunCompleted, RunFailed, RunRewound
from stemlog.store.base import LoggedFact, UnreadableFact

_REMEMBERED = 10_000

TerminalFact = RunCompleted | RunFailed | RunCancelled


@final
class RunSignals:
    """One-shot events per run id, set when a terminal fact of that run is seen."""

    def __init__(self) -> None:
        self._waiting: dict[str, list[anyio.Event]] = {}
        self._ended: OrderedDict[str, TerminalFact] = OrderedDict()
        self.on_first_watch: Callable[[str], None] = lambda run_id: None
        """Called when a run gets its first watcher (the tail may be wanted now)."""

    def ended(self, run_id: str) -> TerminalFact | None:
        """The run's terminal fact, if this app saw it recently."""
        return self._ended.get(run_id)

    def watch(self, run_id: str) -> anyio.Event:
        """An event set at the run's next terminal fact (register before checking state)."""
        event = anyio.Event()
        events = self._waiting.setdefault(run_id, [])
        events.append(event)
        if len(events) == 1:
            self.on_first_watch(run_id)
        return event

    def unwatch(self, run_id: str, event: anyio.Event) -> None:
        """Forget a watcher that stopped waiting (a timeout, a cancelled caller)."""
        events = self._waiting.get(run_id)
        if events is not None and event in events:
            events.remove(event)
            if not events:
                del self._waiting[run_id]

    def has_watchers(self) -> bool:
        """Whether somebody waits for a run to end."""
        return bool(self._waiting)

    def watched(self) -> list[str]:
        """The runs somebody waits for."""
        return list(self._waiting)

    def look_again(self) -> None:
        """Wake every watcher to read its run's stored state again (the tail jumped to
        the log's head: an end before it is in that state, one after it is read)."""
        waiting, self._waiting = self._waiting, {}
        for events in waiting.values():
            for event in events:
                event.set()

    def appended(self, facts: Iterable[LoggedFact]) -> None:
        """Wake the watchers of every run that ended in ``facts``."""
        for logged in facts:
            fact = logged.fact
            if isinstance(fact, UnreadableFact):
                continue
            if isinstance(fact, TERMINAL_FACTS):
                run_id = str(fact.originator_id)
                self._ended[run_id] = fact
                self._ended.move_to_end(run_id)
                if len(self._ended) > _REMEMBERED:
                    self._ended.popitem(last=False)
                for event in self._waiting.pop(run_id, ()):
                    event.set()
            elif isinstance(fact, RunRewound):
                # A rewound run moves again: it is no longer ended.
                self._ended.pop(str(fact.originator_id), None)
