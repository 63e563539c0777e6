"""Run ids: UUIDs, given to callers as strings, and business keys that map to them.

A caller may name a run by its UUID or by a key of its own (``"order-1234"``):
a key maps to the UUID ``uuid5(STEMLOG_NAMESPACE, key)``, the same in every
process and store, so starting a run by key is idempotent (as Temporal's
workflow ids, DBOS's ``SetWorkflowID`` and Restate's idempotency keys are). A
string that parses as a UUID is taken as the run's UUID, never as a key.
"""

from __future__ import annotations

from uuid import UUID, uuid4, uuid5

from stemlog.errors import InvalidPayloadError, UnknownRunError

STEMLOG_NAMESPACE = UUID("bb8407a6-2c26-5945-99b7-9fee1dde79a2")
"""The namespace of run keys, ``uuid5(NAMESPACE_URL, "stemlog:run-key")``: a key's
run id is ``uuid5(STEMLOG_NAMESPACE, key)``. Never change it: stored runs are
found by it."""

MAX_KEY_LENGTH = 1000
"""The longest run key, in characters."""


def parse_run_id(run_id: object) -> UUID:
    """A run id, or a run key, as the run's UUID.

    Raises:
        UnknownRunError: ``run_id`` is neither a UUID nor a usable key, so no
            such run can exist.
    """
    if isinstance(run_id, UUID):
        return run_id
    if not isinstance(run_id, str) or not run_id or len(run_id) > MAX_KEY_LENGTH:
        raise UnknownRunError(str(run_id))
    return run_uuid(run_id)


def run_uuid(id_or_key: str) -> UUID:
    """The UUID a non-empty string names: itself if it parses as one, else its key's."""
    try:
        return UUID(id_or_key)
    except ValueError:
        return uuid5(STEMLOG_NAMESPACE, id_or_key)


def key_of(id_or_key: str) -> str | None:
    """The key in a run id given by a caller, ``None`` when it is a UUID."""
    try:
        UUID(id_or_key)
    except ValueError:
        return id_or_key
    return None


def new_run_id(id_or_key: object = None) -> tuple[UUID, str | None]:
    """The id (and key) of a run being started: fresh and random without ``id_or_key``.

    Raises:
        InvalidPayloadError: ``id_or_key`` is not a non-empty string (of at most
            :data:`MAX_KEY_LENGTH` characters) or a UUID.
    """
    if id_or_key is None:
        return uuid4(), None
    if isinstance(id_or_key, UUID):
        return id_or_key, None
    if not isinstance(id_or_key, str) or not id_or_key.strip():
        raise InvalidPayloadError("run_id", "a run id is a UUID or a non-empty key string")
    if len(id_or_key) > MAX_KEY_LENGTH:
        raise InvalidPayloadError("run_id", f"a run key is at most {MAX_KEY_LENGTH} characters")
    return run_uuid(id_or_key), key_of(id_or_key)
