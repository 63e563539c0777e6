"""Rebuilding a partition's read models in two processes.

A rebuild is Python work: decoding a fact and folding it cost about twice
what reading it does, so one process cannot replay the log at half the rate
of a raw read. Two can, on two cores.

The runs are shared out by the last byte of their ids (:class:`Share`). For
each range of positions, a *helper* process (spawned, with its own
connections) reads the range, keeps its share's facts, folds them and sends
the rows and stats they leave; this process folds the other share of the
same range, merges both and writes the page with its position in one
transaction, as the projector does. The helper folds the next range while
this process writes, and is told each position committed.

A run continues from the row its previous range left: each side carries the
rows of its own last range and reads older ones from the models. The helper
reads a row only once this process has committed the range before its last
one (where that row was written), so it never reads a row that is not there
yet.

The helper is only an aid. If it cannot start, fails or dies, the rebuild
goes on in this process from the position committed last: every page
written holds both shares, so nothing is half done.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import final

from projections.page import StatsDelta, cycle_collection_paused, fold_page
from projections.projector import Projector, previous_rows
from projections.runs import RunRow
from projections.view import RunsView
from projections.views.schema import EncodedRows, encode_rows
from projections.views.sql import SQLRunsView
from stemlog.store.base import LogReader, PartitionedLog, Share

logger = logging.getLogger("stemlog.projections")

ModelsOpener = Callable[[], AbstractContextManager[tuple[PartitionedLog, RunsView]]]
"""Opens the log and the models again (in the helper process, so it must pickle:
a module-level class or function of what the store was opened with)."""

HELPER_SHARE = Share.of(0, 10)
"""The helper folds about three runs in four: this process also writes every page."""
OWN_SHARE = Share.of(10, 16)

HELPER_FROM = 200_000
"""Fewer facts than this to replay are replayed in this process alone: starting a
helper (a new interpreter importing stemlog) costs about what 50,000 facts do."""


class HelperLostError(Exception):
    """The helper process failed or went away; the rebuild goes on without it."""


@final
@dataclass(frozen=True, slots=True)
class FoldedShare:
    """What one share of a range of positions leaves: its rows (encoded, as stored)
    and what it adds to the stats."""

    first: int
    last: int
    rows: EncodedRows
    stats: StatsDelta


@final
class ShareFolder:
    """Folds one share of a partition's runs, range by range, in order."""

    def __init__(
        self,
        log: LogReader,
        load: Callable[[Sequence[str]], Mapping[str, RunRow]],
        share: Share,
    ) -> None:
        self._log = log
        self._load = load
        self._share = share
        self._carried: dict[str, RunRow] = {}

    def fold(self, first: int, last: int) -> FoldedShare:
        """Fold the share's facts at positions ``first`` to ``last``."""
        page = self._log.read(first, last - first + 1, last, self._share)
        previous = previous_rows(page, self._carried, self._load)
        rows, stats = fold_page(page, previous)
        self._carried = {row.run_id: row for row in rows}
        return FoldedShare(first, last, encode_rows(rows, previous), stats)


def ranges(after: int, stop: int, size: int) -> Iterator[tuple[int, int]]:
    """The ranges of positions, ``size`` at most, from ``after + 1`` to ``stop``."""
    for first in range(after + 1, stop + 1, size):
        yield first, min(first + size - 1, stop)


def replay_with_helper(
    projector: Projector, stop: int, opener: ModelsOpener, on_page: Callable[[int], None]
) -> None:
    """Apply the projector's partition up to ``stop`` with a helper process; each
    position committed is passed to ``on_page``. Returns early, leaving the rest
    to the caller, if the helper is lost.

    Raises:
        PositionConflictError: another projector moved the models meanwhile.
    """
    view, partition = projector.view, projector.partition
    if not isinstance(view, SQLRunsView):
        return  # models in memory: a process of their own could not reach them
    after = view.position(partition)
    try:
        channel, helper = _start_helper(opener, partition, after, stop, projector.page_size)
    except Exception as error:  # no process could be started here: the caller goes on alone
        logger.warning("rebuild goes on in one process: no helper (%s)", error)
        return
    own = ShareFolder(projector.log, view.load_rows, OWN_SHARE)
    try:
        for first, last in ranges(after, stop, projector.page_size):
            with cycle_collection_paused():
                mine = own.fold(first, last)
                theirs = _receive(channel, first, last)
                mine.rows.extend(theirs.rows)
                mine.stats.merge(theirs.stats)
                view.write_encoded_page(mine.rows, first - 1, last, mine.stats, partition)
                del mine, theirs
            with contextlib.suppress(OSError):  # it may have ended after its last range
                channel.send(last)
            on_page(last)
    except HelperLostError as error:
        logger.warning("rebuild goes on in one process: %s", error)
    finally:
        channel.close()
        helper.join(timeout=5)
        if helper.is_alive():
            helper.kill()
            helper.join()


def _start_helper(
    opener: ModelsOpener, partition: int, after: int, stop: int, size: int
) -> tuple[Connection, multiprocessing.process.BaseProcess]:
    # "spawn": a fork would copy this process's threads' locks (the app's, the pools').
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    helper = context.Process(
        target=help_rebuild, args=(opener, partition, after, stop, size, theirs),
        name="stemlog-rebuild-helper", daemon=True,
    )  # fmt: skip
    helper.start()
    theirs.close()
    return ours, helper


def _receive(channel: Connection, first: int, last: int) -> FoldedShare:
    try:
        message = channel.recv()
    except (EOFError, OSError) as error:
        raise HelperLostError(f"the helper process ended ({error!r})") from error
    if isinstance(message, str):
        raise HelperLostError(f"the helper failed: {message}")
    if not isinstance(message, FoldedShare) or (message.first, message.last) != (first, last):
        raise HelperLostError(f"the helper sent {message!r} for {first}..{last}")
    return message


def help_rebuild(
    opener: ModelsOpener, partition: int, after: int, stop: int, size: int, channel: Connection
) -> None:
    """The helper process: fold :data:`HELPER_SHARE` of each range and send it; on a
    failure, send its description instead and end."""
    try:
        with opener() as (log, view):
            committed = after

            def load(run_ids: Sequence[str]) -> Mapping[str, RunRow]:
                nonlocal committed
                while committed < needed:  # the range before the last one is written
                    committed = channel.recv()
                return view.load_rows(run_ids)

            folder = ShareFolder(log.partition(partition), load, HELPER_SHARE)
            needed = after
            previous_first = after + 1
            for first, last in ranges(after, stop, size):
                needed = previous_first - 1
                with cycle_collection_paused():
                    channel.send(folder.fold(first, last))
                previous_first = first
                while channel.poll():  # read the positions told so far: they never pile up
                    committed = channel.recv()
    except Exception as error:
        with contextlib.suppress(OSError):
            channel.send(f"{type(error).__name__}: {error}")
    finally:
        channel.close()
