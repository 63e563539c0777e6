"""How facts are stored: orjson text, with the datetimes tagged as eventsourcing does.

:class:`OrjsonTranscoder` writes the same bytes as eventsourcing's
``JSONTranscoder`` for the types facts use; :func:`decode_notification` is the
fast way back from a notification to the fact (no cipher, compression or
upcasters are configured, so the stored state is the fact's fields).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.persistence import Notification, StoredEvent, Transcoder

from stemlog.model.facts import FACTS_BY_TOPIC, AnyFact, make_fact
from stemlog.model.records import WorkflowKind

_DATETIME_TAG = "datetime_iso"
_TIME_FIELDS = frozenset({"timestamp", "deadline", "wake_at", "retry_at"})
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
    if isinstance(state, dict):
        for key in _TIME_FIELDS.intersection(state):
            value = state[key]
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
    cls = FACTS_BY_TOPIC.get(notification.topic)
    if cls is None:
        raise LookupError(f"unknown fact topic {notification.topic!r}")
    fields = decode_fact_state(notification.state)
    run_id = cast(UUID, notification.originator_id)
    return make_fact(cls, run_id, notification.originator_version, fields)
