"""Histories outside the store: :class:`~stemlog.model.records.Fact` records and JSON lines.

A history exported as JSON lines (one fact per line: ``run_id``, ``type``,
``position``, ``timestamp``, ``data``) keeps positions, timestamps (to the
microsecond, in UTC) and payloads exactly, so it imports into another store
and replays identically on another machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO
from uuid import UUID

from stemlog.errors import InvalidPayloadError
from stemlog.model.facts import FACTS_BY_NAME, AnyFact, fact_fields, make_fact
from stemlog.model.records import Fact


def to_record(fact: AnyFact) -> Fact:
    """A stored fact as the app's :class:`Fact` record."""
    return Fact(str(fact.originator_id), type(fact).__name__, fact.originator_version,
                fact.timestamp, fact_fields(fact))  # fmt: skip


def to_fact(record: Fact) -> AnyFact:
    """A record back as the fact object the fold and the aggregate apply.

    Raises:
        InvalidPayloadError: an unknown fact type.
    """
    cls = FACTS_BY_NAME.get(record.type)
    if cls is None:
        raise InvalidPayloadError("history", f"unknown fact type {record.type!r}")
    try:
        return make_fact(cls, UUID(record.run_id), record.position,
                         {**record.data, "timestamp": record.timestamp})  # fmt: skip
    except (KeyError, ValueError) as error:
        raise InvalidPayloadError("history", f"malformed {record.type}: {error}") from None


def as_facts(history: Iterable[Fact | AnyFact]) -> list[AnyFact]:
    """Facts from records (as ``app.history`` gives them) or fact objects, in order.

    Raises:
        InvalidPayloadError: a record of an unknown type or with malformed fields,
            or facts of more than one run.
    """
    facts = [to_fact(item) if isinstance(item, Fact) else item for item in history]
    if facts and any(f.originator_id != facts[0].originator_id for f in facts):
        raise InvalidPayloadError("history", "it holds facts of more than one run")
    return facts


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
            record = Fact.from_json_line(line)
        except InvalidPayloadError as error:
            raise InvalidPayloadError(f"history line {number}", error.reason) from None
        run_id = record.run_id
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
