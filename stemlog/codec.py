"""JSON encoding with orjson: payload validation and the store's transcoder.

A *JSON value* in stemlog is what orjson encodes: ``None``, bools, 64-bit ints,
finite floats, strings, lists and dicts with string keys, plus what orjson
serialises natively (dataclasses, datetimes, UUIDs, enums), which are stored in
their JSON form. Every user value is normalised to that JSON form *before* it
enters a fact, so the code sees the same value live and on replay, and a value
that cannot be stored is refused before anything is appended.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, TypeAlias

import orjson
from eventsourcing.persistence import Transcoder

from stemlog.errors import InvalidPayloadError

JSONValue: TypeAlias = Any
"""A value made of JSON types only (see the module docstring)."""

_DATETIME_TAG = "datetime_iso"


def _reject_non_finite(value: object) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise TypeError(f"{value!r} is not a finite number")
    if isinstance(value, dict):
        for item in value.values():
            _reject_non_finite(item)
    elif isinstance(value, list):
        for item in value:
            _reject_non_finite(item)


def normalize_json(value: object, what: str) -> JSONValue:
    """Return ``value`` as the JSON value it will be stored as.

    Args:
        value: any object orjson can serialise.
        what: how the value is named in the error ("params", "payload", ...).

    Raises:
        InvalidPayloadError: orjson cannot encode it, or it holds NaN/infinity
            (which orjson would silently turn into ``null``).
    """
    try:
        encoded = orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        if b"null" in encoded:
            _reject_non_finite(value)
    except (TypeError, orjson.JSONEncodeError) as error:
        raise InvalidPayloadError(what, str(error)) from None
    if value is None or type(value) in (str, bool, int):
        return value
    return orjson.loads(encoded)


def dumps(value: JSONValue) -> bytes:
    """Encode an already validated JSON value."""
    return orjson.dumps(value)


def loads(data: bytes | str) -> JSONValue:
    """Decode JSON text or bytes."""
    return orjson.loads(data)


def _tag(value: object) -> object:
    if isinstance(value, datetime):
        return {"_type_": _DATETIME_TAG, "_data_": value.isoformat()}
    raise TypeError(f"cannot store {type(value).__name__} in a fact")


class OrjsonTranscoder(Transcoder):
    """eventsourcing transcoder on orjson.

    Writes the same bytes as eventsourcing's ``JSONTranscoder`` for the types
    facts use (datetimes tagged ``datetime_iso``). Only top-level fields of a
    fact can hold datetimes (``timestamp``, ``wake_at``, ``deadline``,
    ``retry_at``), because user values are normalised to plain JSON before they
    enter a fact, so decoding restores tags at the top level only.
    """

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj, default=_tag, option=orjson.OPT_PASSTHROUGH_DATETIME)

    def decode(self, data: bytes) -> Any:
        return decode_fact_state(data)


def decode_fact_state(data: bytes) -> Any:
    """A stored fact's fields, with its top-level datetimes restored."""
    state = orjson.loads(data)
    if isinstance(state, dict):
        for key in _TIME_FIELDS.intersection(state):
            value = state[key]
            if type(value) is dict and value.get("_type_") == _DATETIME_TAG:
                state[key] = datetime.fromisoformat(value["_data_"])
    return state


_TIME_FIELDS = frozenset({"timestamp", "deadline", "wake_at", "retry_at"})
"""The only fields of a fact that hold datetimes (user values are plain JSON)."""
