"""How facts are stored: orjson text, with the datetimes tagged as eventsourcing does.

:class:`OrjsonTranscoder` writes the same bytes as eventsourcing's
``JSONTranscoder`` for the types facts use; :func:`decode_notification` is the
fast way back from a notification to the fact (no cipher, compression or
upcasters are configured, so the stored state is the fact's fields).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.persistence import Notification, StoredEvent, Transcoder

from stemlog.model.facts import FACTS_BY_TOPIC, AnyFact, FactMaker, fact_maker, make_fact
from stemlog.model.records import WorkflowKind
from stemlog.store.base import LoggedFact, StoredRow, UnreadableFact

_DATETIME_TAG = "datetime_iso"
_TIME_FIELDS = ("timestamp", "deadline", "wake_at", "retry_at")
"""The only fields of a fact that hold datetimes (user values are plain JSON)."""


def _tag(value: object) -> object:
    if isinstance(value, datetime):
        return {"_type_": _DATETIME_TAG, "_data_": value.isoformat()}
    raise TypeError(f"cannot store {type(value).__name__} in a fact")


class OrjsonTranscoder(Transcoder):
    """eventsourcing transcoder on orjson.

    Only top-level fields of a fact can hold datetimes (``timestamp``,
    ``wake_at``, ``deadline``, ``retry_at``), because user values are
    normalised to plain JSON before they enter a fact, so decoding restores
    tags at the top level only.
    """

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj, default=_tag, option=orjson.OPT_PASSTHROUGH_DATETIME)

    def decode(self, data: bytes) -> Any:
        return decode_fact_state(data)


def decode_fact_state(data: bytes) -> Any:
    """A stored fact's fields, with its top-level datetimes (and ``RunStarted.kind``)
    restored to their types."""
    state = orjson.loads(data)
    if type(state) is dict:
        for key in _TIME_FIELDS:
            value = state.get(key)
            if type(value) is dict and value.get("_type_") == _DATETIME_TAG:
                state[key] = datetime.fromisoformat(value["_data_"])
        if "kind" in state:
            state["kind"] = WorkflowKind(state["kind"])
    return state


def decode_notification(notification: Notification | StoredEvent) -> AnyFact:
    """A fact from its notification (or stored event), as eventsourcing's mapper would
    build it, without the mapper's generic machinery.

    Raises:
        LookupError: a topic this code does not know.
        ValueError: fields that cannot be this fact's.
    """
    run_id = cast(UUID, notification.originator_id)
    return decode_fields(notification.topic, run_id, notification.originator_version,
                         notification.state)  # fmt: skip


def decode_fields(topic: str, run_id: UUID | str, version: int, state: bytes) -> AnyFact:
    """A fact from its stored topic and fields (``run_id`` may stay text: readers of
    the log only ever ``str()`` it).

    Raises:
        LookupError: a topic this code does not know.
        ValueError: fields that cannot be this fact's.
    """
    spec = _SPECS.get(topic)
    if spec is None:
        raise LookupError(f"unknown fact topic {topic!r}")
    cls, times = spec
    fields = orjson.loads(state)
    if type(fields) is not dict:
        raise ValueError(f"{cls.__name__} is not an object: {fields!r}")
    for key in times:  # only the time fields this kind of fact has
        value = fields.get(key)
        if type(value) is dict and value.get("_type_") == _DATETIME_TAG:
            fields[key] = datetime.fromisoformat(value["_data_"])
    return make_fact(cls, cast(UUID, run_id), version, fields)


def decode_page(
    rows: Sequence[StoredRow],
    partition: int,
    partitions: int,
    unreadable: Callable[[StoredRow, Exception], UnreadableFact],
) -> list[LoggedFact]:
    """A page of the log from its stored rows, in order: :func:`decode_fields` in one
    loop (no call per row but the fact's own making, lookups hoisted, each run id
    put in its usual form once: a rebuild decodes millions of facts). A row that
    cannot be decoded is handed to ``unreadable`` with the error, and what it
    returns takes the fact's place.
    """
    page: list[LoggedFact] = []
    append, specs, loads, parse = page.append, _MAKERS, orjson.loads, datetime.fromisoformat
    ids: dict[UUID | str, UUID | str] = {}
    for row in rows:
        position, stored_id, version, topic, state = row
        run_id = ids.get(stored_id)
        if run_id is None:
            run_id = ids[stored_id] = usual_run_id(stored_id)
        try:
            spec = specs.get(topic)
            if spec is None:
                raise LookupError(f"unknown fact topic {topic!r}")
            make, name, times = spec
            fields = loads(state)
            if type(fields) is not dict:
                raise ValueError(f"{name} is not an object: {fields!r}")
            stamp = fields.get("timestamp")  # every fact's, then the kind's other times
            if type(stamp) is dict and stamp.get("_type_") == _DATETIME_TAG:
                fields["timestamp"] = parse(stamp["_data_"])
            for key in times:
                value = fields.get(key)
                if type(value) is dict and value.get("_type_") == _DATETIME_TAG:
                    fields[key] = parse(value["_data_"])
            fact: AnyFact | UnreadableFact = make(run_id, version, fields)  # type: ignore[arg-type]
        except Exception as error:
            fact = unreadable(row, error)
        append(LoggedFact(position, fact, partition, partitions))
    return page


def usual_run_id(stored: UUID | str) -> UUID | str:
    """A run id as the store returned it, text in its usual form (eventsourcing keeps
    them in SQLite as 32 hex digits); a ``UUID`` as it is."""
    if type(stored) is not str:
        return stored
    if len(stored) != 32:
        return str(UUID(stored))
    return f"{stored[:8]}-{stored[8:12]}-{stored[12:16]}-{stored[16:20]}-{stored[20:]}"


def _times_of(cls: type[Any]) -> tuple[str, ...]:
    names = {name for klass in cls.__mro__ for name in getattr(klass, "__annotations__", {})}
    return ("timestamp", *sorted(names & {"deadline", "wake_at", "retry_at"}))


_SPECS: dict[str, tuple[type[Any], tuple[str, ...]]] = {
    topic: (cls, _times_of(cls)) for topic, cls in FACTS_BY_TOPIC.items()
}
_MAKERS: dict[str, tuple[FactMaker, str, tuple[str, ...]]] = {
    topic: (fact_maker(cls), cls.__name__, times[1:]) for topic, (cls, times) in _SPECS.items()
}
"""Per topic: how its facts are made, its name, its time fields but ``timestamp``."""
