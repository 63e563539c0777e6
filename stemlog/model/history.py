"""Histories outside the store: :class:`~stemlog.model.records.Fact` records and JSON lines.

A history exported as JSON lines (one fact per line: ``run_id``, ``type``,
``position``, ``timestamp``, ``data``) keeps positions, timestamps (to the
microsecond, in UTC) and payloads exactly, so it imports into another store
and replays identically on another machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import BinaryIO
from uuid import UUID

import orjson

from stemlog.errors import InvalidPayloadError
from stemlog.model.facts import FACTS_BY_NAME, AnyFact, fact_fields, make_fact
from stemlog.model.records import Fact

_DATETIME_FIELDS = frozenset({"deadline", "wake_at", "retry_at"})


def to_record(fact: AnyFact) -> Fact:
    """A stored fact as the app's :class:`Fact` record."""
    return Fact(type(fact).__name__, fact.originator_version, fact.timestamp, fact_fields(fact))


def to_fact(record: Fact, run_id: str) -> AnyFact:
    """A record back as the fact object the fold and the aggregate apply.

    Raises:
        InvalidPayloadError: an unknown fact type.
    """
    cls = FACTS_BY_NAME.get(record.type)
    if cls is None:
        raise InvalidPayloadError("history", f"unknown fact type {record.type!r}")
    try:
        return make_fact(cls, UUID(run_id), record.position,
                         {**record.data, "timestamp": record.timestamp})  # fmt: skip
    except (KeyError, ValueError) as error:
        raise InvalidPayloadError("history", f"malformed {record.type}: {error}") from None


def as_facts(history: Iterable[Fact | AnyFact], run_id: str | None = None) -> list[AnyFact]:
    """Facts from records (``run_id`` needed) or from fact objects, in order."""
    facts: list[AnyFact] = []
    for item in history:
        if isinstance(item, Fact):
            if run_id is None:
                raise InvalidPayloadError("history", "records need the run id they belong to")
            facts.append(to_fact(item, run_id))
        else:
            facts.append(item)
    return facts


def to_json_line(record: Fact, run_id: str) -> bytes:
    """One fact as a JSON line (without the newline)."""
    return orjson.dumps(
        {
            "run_id": run_id,
            "type": record.type,
            "position": record.position,
            "timestamp": record.timestamp,
            "data": record.data,
        }
    )


def from_json_line(line: bytes | str) -> tuple[str, Fact]:
    """``(run_id, record)`` from one JSON line.

    Raises:
        InvalidPayloadError: not a fact line.
    """
    try:
        item = orjson.loads(line)
        data = dict(item["data"])
        for name in _DATETIME_FIELDS & data.keys():
            if data[name] is not None:
                data[name] = datetime.fromisoformat(data[name])
        timestamp = datetime.fromisoformat(item["timestamp"])
        record = Fact(str(item["type"]), int(item["position"]), timestamp, data)
        return str(item["run_id"]), record
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise InvalidPayloadError("history line", str(error)) from None


MAX_LINE_BYTES = 16 * 1024 * 1024
"""The longest JSON line an import takes: one fact, whose values are at most
:data:`stemlog.codec.MAX_VALUE_BYTES` each."""


def bounded_lines(source: BinaryIO) -> Iterator[bytes]:
    """A binary file's lines, never holding more of one than an import takes
    (a longer line is cut one byte past the limit, so it is refused by size)."""
    while line := source.readline(MAX_LINE_BYTES + 2):
        yield line.rstrip(b"\r\n")


def read_json_lines(lines: Iterable[bytes | str] | BinaryIO) -> dict[str, list[Fact]]:
    """Histories by run id from JSON lines, as exported (blank lines are skipped).

    Each run's facts must come in order, from ``RunStarted`` at position 1, one
    position after the other; runs may interleave.

    Raises:
        InvalidPayloadError: naming the line: longer than :data:`MAX_LINE_BYTES`,
            not a fact line, or a fact out of order.
    """
    runs: dict[str, list[Fact]] = {}
    source = bounded_lines(lines) if hasattr(lines, "readline") else lines  # type: ignore[arg-type]
    for number, line in enumerate(source, start=1):
        if len(line) > MAX_LINE_BYTES:
            raise InvalidPayloadError(
                f"history line {number}", f"longer than the limit of {MAX_LINE_BYTES:,} bytes"
            )
        if not line.strip():
            continue
        try:
            run_id, record = from_json_line(line)
        except InvalidPayloadError as error:
            raise InvalidPayloadError(f"history line {number}", error.reason) from None
        records = runs.setdefault(run_id, [])
        expected = len(records) + 1
        if record.position != expected:
            raise InvalidPayloadError(
                f"history line {number}",
                f"run {run_id} has position {record.position} where {expected} is next",
            )
        if expected == 1 and record.type != "RunStarted":
            raise InvalidPayloadError(
                f"history line {number}", f"run {run_id} does not start with RunStarted"
            )
        records.append(record)
    return runs
