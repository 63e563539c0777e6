"""PostgreSQL's side connections: LISTEN for hints, advisory locks for the projectors'
leads. Each holds a connection of its own (not the pool's), made again with
backoff when the server drops it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, final
from uuid import UUID

import anyio
import psycopg
from eventsourcing.application import Application
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Composed, Identifier

from stemlog.store.base import StoreCore
from stemlog.store.postgres_recorder import (
    StemlogPostgresRecorder,
    datastore_of,
    own_connection_settings,
)
from stemlog.store.postgres_sql import READY_CHANNEL

logger = logging.getLogger("stemlog.store")

_LISTEN_BACKOFF = 0.1
"""The first wait before making the LISTEN connection again (it doubles, up to 5 s)."""
_FOLLOW_SECONDS = 30.0
"""How long a process's say that it follows the log lasts (renewed while it does)."""
_FOLLOW_RENEW_SECONDS = 10.0
_LISTEN_TICK = 1.0
"""Seconds between looks at the channels wanted, besides the looks that
:meth:`ListenHints.reconsider` asks for (a wait on the connection's socket; the
renewal of ``stemlog_followers`` needs one every ``_FOLLOW_RENEW_SECONDS``)."""


@final
@dataclass(frozen=True, slots=True)
class _Listening:
    """What one process listens for: the channels, and when it wants each kind."""

    log_channels: tuple[str, ...]
    own: str
    follow: Composed
    unfollow: Composed
    on_log: Callable[[], None]
    on_ready: Callable[[], None]
    wants_log: Callable[[], bool]
    wants_ready: bool
    waker: _Waker

    def wanted(self) -> set[str]:
        """The channels to listen on now."""
        channels = set(self.log_channels) if self.wants_log() else set()
        if self.wants_ready:
            channels.add(READY_CHANNEL)
        return channels


@final
class _Waker:
    """Wakes the LISTEN thread from its wait on the socket (a socket pair: its read
    end is waited on beside the connection)."""

    def __init__(self) -> None:
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)

    def wake(self) -> None:
        """Any thread: end the current wait now."""
        with contextlib.suppress(OSError):  # full (a wake is pending anyway) or closed
            self._write.send(b"\0")

    def fileno(self) -> int:
        return self._read.fileno()

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            while self._read.recv(512):
                pass

    def close(self) -> None:
        self._read.close()
        self._write.close()


def _listen(settings: dict[str, Any], listening: _Listening, stopped: Callable[[], bool]) -> None:
    """In a worker thread: LISTEN on the channels wanted now (a partition's log
    channel while somebody here follows the log, the ready channel when the app
    has a worker), and call back.

    Each listening backend wakes up (a transaction, CPU on the server) for each
    NOTIFY on its channels, its own process's included, so channels nobody here
    wants are not listened on: they are LISTENed to and UNLISTENed as the wish
    changes (looked at when the waker says so, and every ``_LISTEN_TICK``
    seconds; when log hints start, the log is read once for what came before).
    NOTIFY is only a hint (whoever is woken reads or claims from the database,
    so nothing is missed); hints whose payload is this process's ``own`` name
    are its own appends', which it knows of already. The connection is its own
    (not the pool's), closed when the app stops. When the server goes away the
    connection is made again with backoff, and both callbacks are called once it
    is back, for what was appended meanwhile.
    """
    delay = _LISTEN_BACKOFF
    while not stopped():
        try:
            with psycopg.connect(autocommit=True, connect_timeout=5, **settings) as connection:
                subscription = _Subscription(listening)
                delay = _LISTEN_BACKOFF
                anyio.from_thread.run_sync(listening.on_log)
                anyio.from_thread.run_sync(listening.on_ready)
                while not stopped():
                    subscription.refresh(connection)
                    _deliver(connection, listening)
                    _wait_readable(connection, listening.waker, _LISTEN_TICK)
        except psycopg.Error as error:
            if stopped():
                return
            logger.debug("LISTEN connection lost (%s); again in %.1f s", error, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        except RuntimeError:
            return  # the event loop has ended: the app closed


def _deliver(connection: psycopg.Connection[Any], listening: _Listening) -> None:
    """Read the notifications that came and call back once per kind, however many
    came together (each call is a round trip to the event loop)."""
    ready = logged = False
    for notify in connection.notifies(timeout=0):
        if notify.payload == listening.own:
            continue  # this process's own append: it knows already
        if notify.channel == READY_CHANNEL:
            ready = True
        else:
            logged = True
    if ready:
        anyio.from_thread.run_sync(listening.on_ready)
    if logged:
        anyio.from_thread.run_sync(listening.on_log)


def _wait_readable(connection: psycopg.Connection[Any], waker: _Waker, timeout: float) -> None:
    """Sleep until the server sends something, ``waker`` is woken or ``timeout`` passes.

    Not ``connection.notifies(timeout=...)``: psycopg 3.3 waits for a deadline
    with millisecond polls and spins through the last millisecond, about 1 ms of
    CPU a call — 20 ms of CPU a second for an idle process at a 50 ms tick. The
    socket's wait costs microseconds; ``notifies(timeout=0)`` then reads what
    came (and what an earlier statement on this connection received meanwhile).
    """
    with contextlib.suppress(OSError, ValueError):  # a closed socket: the read says so
        select.select([connection.fileno(), waker.fileno()], [], [], timeout)
    waker.drain()


@final
class _Subscription:
    """The channels one LISTEN connection hears, kept to what is wanted now.

    While it hears the log's channels it also says so in ``stemlog_followers``
    (renewed every ``_FOLLOW_RENEW_SECONDS``, lapsing after ``_FOLLOW_SECONDS`` if
    the process dies): appends notify the log's channels only while somebody
    follows, since every listening backend of the database wakes for each NOTIFY.
    """

    def __init__(self, listening: _Listening) -> None:
        self._listening = listening
        self._heard: set[str] = set()
        self._renewed: float | None = None

    def refresh(self, connection: psycopg.Connection[Any]) -> None:
        """LISTEN to the channels newly wanted, UNLISTEN the others. When the log's
        channels are newly heard, read the log once (what came before)."""
        listening = self._listening
        wanted = listening.wanted()
        logs = set(listening.log_channels)
        following = bool(wanted & logs)
        now = time.monotonic()
        if following and (self._renewed is None or now - self._renewed > _FOLLOW_RENEW_SECONDS):
            connection.execute(listening.follow, (listening.own, int(_FOLLOW_SECONDS * 1e6)))
            self._renewed = now
        if wanted == self._heard:
            return
        for channel in sorted(wanted - self._heard):
            connection.execute(SQL("LISTEN {0}").format(Identifier(channel)))
        for channel in sorted(self._heard - wanted):
            connection.execute(SQL("UNLISTEN {0}").format(Identifier(channel)))
        if not following and self._renewed is not None:
            connection.execute(listening.unfollow, (listening.own,))
            self._renewed = None
        if (wanted - self._heard) & logs:
            anyio.from_thread.run_sync(listening.on_log)
        self._heard = wanted


@final
class ListenHints:
    """Hints from PostgreSQL's LISTEN/NOTIFY (one connection per process)."""

    def __init__(self, store: StoreCore) -> None:
        recorder = store.log.recorder
        assert isinstance(recorder, StemlogPostgresRecorder), "a PostgreSQL store's recorder"
        self._settings = own_connection_settings(recorder.datastore)
        channels = []
        for number in range(store.partitions):
            partition = store.partition_recorder(number)
            assert isinstance(partition, PostgresApplicationRecorder), "a PostgreSQL recorder"
            channels.append(partition.channel_name)
        self._log_channels = tuple(channels)
        self._own = recorder.origin
        self._follow = recorder.follow_statement
        self._unfollow = recorder.unfollow_statement
        self._waker: _Waker | None = None

    async def run(
        self,
        on_log: Callable[[], None],
        on_ready: Callable[[], None],
        *,
        wants_log: Callable[[], bool],
        wants_ready: bool,
    ) -> None:
        waker = self._waker = _Waker()
        listening = _Listening(self._log_channels, self._own, self._follow, self._unfollow,
                               on_log, on_ready, wants_log, wants_ready, waker)  # fmt: skip
        stop = False

        def listen() -> None:
            try:
                _listen(self._settings, listening, lambda: stop)
            finally:
                waker.close()

        try:
            await anyio.to_thread.run_sync(listen, abandon_on_cancel=True)
        finally:
            stop = True
            waker.wake()  # the thread ends now, not at its next tick

    def reconsider(self) -> None:
        """Look at the channels wanted now (the tail started or stopped following)."""
        if self._waker is not None:
            self._waker.wake()


@final
class AdvisoryLeadership:
    """The projectors' leads as session advisory locks, one per partition, held on a
    connection of its own: when the process dies or the server drops the
    connection, its locks go with it and other processes take the leads at
    their next try.

    The processes share the partitions: each counts the processes competing
    (the connections named ``stemlog-projector:<schema>``) and leads at most its
    share, ``ceil(partitions / processes)``, giving up the excess when more
    arrive. It tries the free partitions from an offset of its own, so
    processes starting together spread over them.
    """

    def __init__(self, log: Application[UUID], partitions: int) -> None:
        datastore = datastore_of(log)
        self._settings = own_connection_settings(datastore)
        self._name = f"stemlog-projector:{datastore.schema}"
        self._keys = [f"{datastore.schema}.stemlog_projector.{p}" for p in range(partitions)]
        self._offset = int.from_bytes(os.urandom(2), "big") % partitions
        self._connection: psycopg.Connection[tuple[Any, ...]] | None = None
        self._held: set[int] = set()

    def lead(self) -> frozenset[int]:
        try:
            connection = self._connect()
            competing = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                (self._name,),
            ).fetchone()
            share = math.ceil(len(self._keys) / max(int(competing[0]) if competing else 1, 1))
            for number in sorted(self._held, reverse=True)[: max(len(self._held) - share, 0)]:
                connection.execute("SELECT pg_advisory_unlock(hashtext(%s))",
                                   (self._keys[number],))  # fmt: skip
                self._held.discard(number)
            for step in range(len(self._keys)):
                if len(self._held) >= share:
                    break
                number = (self._offset + step) % len(self._keys)
                if number in self._held:
                    continue
                row = connection.execute("SELECT pg_try_advisory_lock(hashtext(%s))",
                                         (self._keys[number],)).fetchone()  # fmt: skip
                if row is not None and row[0]:
                    self._held.add(number)
        except psycopg.Error:
            self.resign()  # the connection went, and its locks with it
        return frozenset(self._held)

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._connection is None or self._connection.closed:
            self._held.clear()
            self._connection = psycopg.connect(
                autocommit=True, connect_timeout=2, application_name=self._name, **self._settings
            )
        return self._connection

    def resign(self) -> None:
        connection, self._connection = self._connection, None
        self._held.clear()
        if connection is not None:
            with contextlib.suppress(psycopg.Error):
                connection.close()
