"""JSON values with orjson: what a payload may be, and its normal form.

A *JSON value* in stemlog is what orjson encodes: ``None``, bools, 64-bit ints,
finite floats, strings (valid Unicode: no lone surrogates), lists and dicts
with string keys, plus what orjson serialises natively (dataclasses,
datetimes, UUIDs, enums), which are stored in their JSON form. Every user
value is normalised to that JSON form *before* it enters a fact, so the code
sees the same value live and on replay, and a value that cannot be stored as
it is — a non-string key, NaN or an infinity, an integer over 64 bits, a lone
surrogate, nesting deeper than :data:`MAX_DEPTH` levels, or an encoding larger
than :data:`MAX_VALUE_BYTES` — is refused with
:class:`~stemlog.errors.InvalidPayloadError` before anything is appended.
Nothing is ever changed silently (``{1: "a"}`` is refused, not stored as
``{"1": "a"}``).
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

MAX_DEPTH = 100
"""How deeply lists and objects may nest in one value."""
MAX_VALUE_BYTES = 4 * 1024 * 1024
"""The largest encoded value (params, a step's value, a payload, a result): 4 MiB.
A run's facts are read whenever it is loaded, so large blobs belong in a blob
store, with their key in the run."""


def _check_tree(value: object, depth: int) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidPayloadError("value", f"{value!r} is not a finite number")
    if isinstance(value, dict | list):
        if depth >= MAX_DEPTH:
            raise InvalidPayloadError("value", f"nests deeper than {MAX_DEPTH} levels")
        for item in value.values() if isinstance(value, dict) else value:
            _check_tree(item, depth + 1)


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
        encoded = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError) as error:
        reason = str(error)
        if "Recursion limit" in reason:
            reason = f"nests deeper than {MAX_DEPTH} levels"
        raise InvalidPayloadError(what, f"cannot be stored as JSON: {reason}") from None
    if len(encoded) > MAX_VALUE_BYTES:
        raise InvalidPayloadError(
            what, f"is {len(encoded):,} bytes as JSON, over the limit of {MAX_VALUE_BYTES:,}"
        )
    if value is None or type(value) in (str, bool, int):
        return value  # type: ignore[return-value]  # checked by type() above
    normal: JSONValue = orjson.loads(encoded)
    # NaN and infinities encode as null; nesting is bounded by the brackets.
    if b"null" in encoded or encoded.count(b"[") + encoded.count(b"{") >= MAX_DEPTH:
        try:
            _check_tree(value if b"null" in encoded else normal, 0)
        except InvalidPayloadError as error:
            raise InvalidPayloadError(what, error.reason) from None
    return normal


def dumps(value: JSONValue) -> bytes:
    """Encode an already validated JSON value."""
    return orjson.dumps(value)


def loads(data: bytes | str) -> JSONValue:
    """Decode JSON text or bytes."""
    decoded: JSONValue = orjson.loads(data)
    return decoded
