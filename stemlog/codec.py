"""JSON values with orjson: what a payload may be, and its normal form.

A *JSON value* in stemlog is what orjson encodes: ``None``, bools, 64-bit ints,
finite floats, strings, lists and dicts with string keys, plus what orjson
serialises natively (dataclasses, datetimes, UUIDs, enums), which are stored in
their JSON form. Every user value is normalised to that JSON form *before* it
enters a fact, so the code sees the same value live and on replay, and a value
that cannot be stored is refused before anything is appended.
"""

from __future__ import annotations

import math
from typing import TypeAlias

import orjson

from stemlog.errors import InvalidPayloadError

JSONValue: TypeAlias = "bool | int | float | str | list[JSONValue] | dict[str, JSONValue] | None"
"""A value made of JSON types only (see the module docstring)."""

JSONObject: TypeAlias = "dict[str, JSONValue]"
"""A JSON object: params, error records, policies."""


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
        raise InvalidPayloadError(what, f"cannot be stored as JSON: {error}") from None
    if value is None or type(value) in (str, bool, int):
        return value  # type: ignore[return-value]  # checked by type() above
    normal: JSONValue = orjson.loads(encoded)
    return normal


def dumps(value: JSONValue) -> bytes:
    """Encode an already validated JSON value."""
    return orjson.dumps(value)


def loads(data: bytes | str) -> JSONValue:
    """Decode JSON text or bytes."""
    decoded: JSONValue = orjson.loads(data)
    return decoded
