"""What the rest of stemlog may know about a store: protocols and plain records.

Read models (``projections``) depend on this module only; the runtime gets the
concrete store from :func:`stemlog.store.urls.parse_store_url` and
:class:`stemlog.store.events.RunStore`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, final
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import ApplicationRecorder

from stemlog.model.facts import AnyFact
from stemlog.model.run import Run
from stemlog.store.catalog import Catalog

T = TypeVar("T")


@final
@dataclass(frozen=True, slots=True)
class UnreadableFact:
    """A stored fact this code cannot decode (an unknown topic, malformed fields).

    It stands in its place in the log, so a reader can set its run aside and
    go on with the others.
    """

    originator_id: UUID
    originator_version: int
    topic: str
    error: str


def partition_name(number: int) -> str:
    """The eventsourcing application of a partition of the log: ``stemlog`` for the
    first (tables ``stemlog_events``, ``stemlog_snapshots``), ``stemlog_p<k>`` for
    the others; also the name its position is tracked under by the read models."""
    return "stemlog" if number == 0 else f"stemlog_p{number}"


StoredRow = tuple[int, "UUID | str", int, str, bytes]
"""One stored fact as read: position, run id, version, topic, encoded fields."""


@final
@dataclass(frozen=True, slots=True)
class LoggedFact:
    """A fact and its position in its partition of the log (that partition's
    eventsourcing notification id)."""

    position: int
    fact: AnyFact | UnreadableFact
    partition: int = 0
    partitions: int = 1
    """How many partitions the log has."""


@final
@dataclass(frozen=True, slots=True)
class Appended:
    """Facts that reached the log, in log order.

    ``runs`` holds the committed aggregates (their state includes these
    facts) where this process committed them; ``local`` says whether it did.
    ``claims`` says, for the runs whose claim the commit took or gave up,
    whether this process's worker holds them now; ``claimable`` whether the
    commit left a run that any worker may claim now.
    """

    facts: Sequence[LoggedFact]
    runs: Mapping[str, Run] = field(default_factory=dict)
    local: bool = True
    claims: Mapping[str, bool] = field(default_factory=dict)
    claimable: bool = False


AppendListener = Callable[[Appended], None]


@final
@dataclass(frozen=True, slots=True)
class Share:
    """A share of a log's runs: those whose id's last hex digit is one of ``digits``.
    Run ids are random (uuid4) or hashed (uuid5, from keys), so each digit holds
    about a sixteenth of the runs: processes that read shares apart fold every
    run, each run in one of them."""

    digits: frozenset[str]

    @classmethod
    def of(cls, low: int, high: int) -> Share:
        """The runs whose last digit is from ``low`` up to ``high`` (exclusive) of 16."""
        return cls(frozenset("0123456789abcdef"[low:high]))

    def kept(self, rows: list[StoredRow]) -> list[StoredRow]:
        """The rows of this share's runs, in order (a run id as stored, a UUID or hex
        digits, ends in the same digit either way)."""
        digits = self.digits
        return [row for row in rows if str(row[1])[-1] in digits]


class LogReader(Protocol):
    """Reads one partition of the log in order (blocking; call it in a worker thread)."""

    def head(self) -> int:
        """The position of the last fact (0 for an empty log)."""
        ...

    def read(
        self, start: int, limit: int, stop: int | None = None, share: Share | None = None
    ) -> list[LoggedFact]:
        """Up to ``limit`` facts from position ``start`` on (up to ``stop``, inclusive);
        with a ``share``, only the facts of its runs among them."""
        ...


class Hints(Protocol):
    """Tells this process when other processes may have written.

    Hints are only wake-ups: whoever is woken reads what it needs (the log
    after its position, a claim round), so a lost hint costs latency, never
    a fact.
    """

    async def run(
        self,
        on_log: Callable[[], None],
        on_ready: Callable[[], None],
        *,
        wants_log: Callable[[], bool],
        wants_ready: bool,
    ) -> None:
        """Until cancelled: call ``on_log`` when facts may have been appended (while
        ``wants_log()`` says anybody here follows the log: it is asked from a
        thread, often), and ``on_ready`` when an append may have left a run to
        claim (if ``wants_ready``: the app has a worker). A backend that pays for
        each hint (PostgreSQL wakes a listening backend per NOTIFY) listens only
        for what is wanted."""
        ...

    def reconsider(self) -> None:
        """``wants_log()`` may have changed: look at it now rather than at the next
        tick (any thread)."""
        ...


class PartitionedLog(Protocol):
    """The log as its partitions (one for memory and SQLite stores)."""

    @property
    def partitions(self) -> int:
        """How many partitions the log has."""
        ...

    def partition(self, number: int) -> LogReader:
        """A reader of one partition."""
        ...


class StoreCore(PartitionedLog, Protocol):
    """What backend-specific parts need of the open store."""

    @property
    def log(self) -> Application[UUID]:
        """The eventsourcing application of partition 0 (its recorder and datastore)."""
        ...

    def partition_recorder(self, number: int) -> ApplicationRecorder:
        """The eventsourcing recorder of one partition (its table, its channel)."""
        ...

    async def blocking(self, function: Callable[..., T], *args: Any) -> T:
        """Run a blocking store call (in a worker thread unless in memory)."""
        ...

    def track_local(self, on: bool = True) -> None:
        """Remember this process's commit positions from now on (``on=False``: stop)."""
        ...

    def take_local(self, partition: int, position: int) -> bool:
        """Whether this process committed the fact at ``position`` (asked once)."""
        ...

    def forget_local_through(self, partition: int, position: int) -> None:
        """Forget local positions of a partition up to ``position`` (the tail passed them)."""
        ...


class Backend(Protocol):
    """One kind of store, as parsed from its URL; everything backend-specific."""

    @property
    def name(self) -> str:
        """``memory``, ``sqlite`` or ``postgres``."""
        ...

    @property
    def url(self) -> str:
        """The URL the store was opened with."""
        ...

    @property
    def where(self) -> str:
        """The store named for people and logs (no password)."""
        ...

    @property
    def env(self) -> Mapping[str, str]:
        """The eventsourcing environment of the store's application."""
        ...

    @property
    def inline_calls(self) -> bool:
        """Blocking calls are pure CPU work: run them on the event loop."""
        ...

    @property
    def commits_inline_when_alone(self) -> bool:
        """A lone commit is cheaper on the event loop than a thread hop."""
        ...

    def exists(self) -> bool:
        """Whether the store is there to open (a SQLite file is; a server is asked on open)."""
        ...

    def schema_lock(self) -> AbstractContextManager[None]:
        """Held while the tables are created (processes may start together)."""
        ...

    def read_rows(
        self,
        log: Application[UUID],
        start: int,
        limit: int,
        stop: int | None,
        share: Share | None = None,
    ) -> list[StoredRow]:
        """The log's rows from ``start`` on (up to ``stop``; with a ``share``, only its
        runs' rows): the store's fastest read."""
        ...

    def partition_count(self, log: Application[UUID]) -> int:
        """How many partitions the store's log has (fixed when it was created; blocking).

        Raises:
            InvalidStoreURLError: the URL names another count than the store has.
        """
        ...

    def partition_env(self, number: int, log: Application[UUID]) -> dict[str, str]:
        """The eventsourcing environment of partition ``number`` (> 0), sharing the
        connections of partition 0's application ``log``."""
        ...

    def prepare(self, store: StoreCore) -> None:
        """Finish opening the store once its partitions exist (in the schema lock):
        side objects that need them all, checks that it takes writes."""
        ...

    def heal(self, log: Application[UUID]) -> None:
        """After a call met an unavailable store: drop connections it may have killed
        (blocking; never raises)."""
        ...

    def catalog(self, store: StoreCore) -> Catalog:
        """The store's table of registered workflows (:mod:`stemlog.store.catalog`)."""
        ...

    def hints(self, store: StoreCore) -> Hints | None:
        """How this process hears of other processes' writes (``None``: none can write)."""
        ...

    def leadership(self, store: StoreCore) -> Leadership:
        """How this process finds out whether it keeps the read models."""
        ...

    @property
    def tail_interval(self) -> float | None:
        """Seconds between reads of the log when no hint comes (``None``: no other
        process can write, so there is nothing to follow)."""
        ...


class Leadership(Protocol):
    """Which process keeps which partitions' read models in the background (blocking).

    One projector per partition: the other processes read the models it
    keeps, and catch them up themselves only before a query that must see the
    head.
    """

    def lead(self) -> frozenset[int]:
        """The partitions this process leads now: it takes free ones up to its share
        and gives up the excess (asked every few seconds, so a lead lost with its
        connection, or a share that shrank as processes arrived, is noticed)."""
        ...

    def resign(self) -> None:
        """Stop leading (the app closes)."""
        ...


@final
class SoleLeader:
    """Leadership where one process is all there is (``memory://``)."""

    def lead(self) -> frozenset[int]:
        return frozenset({0})

    def resign(self) -> None:
        """Nothing to give up."""


@contextlib.contextmanager
def no_lock() -> Iterator[None]:
    """A schema lock for stores that one process opens at a time."""
    yield


def rows_of_notifications(
    log: Application[UUID], start: int, limit: int, stop: int | None, share: Share | None
) -> list[StoredRow]:
    """:meth:`Backend.read_rows` through eventsourcing's ``select_notifications``."""
    notifications = log.recorder.select_notifications(start, limit, stop)
    rows = [(n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in notifications]
    return rows if share is None else share.kept(rows)
