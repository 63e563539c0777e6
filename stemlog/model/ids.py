"""Run ids: UUIDs, given to callers as strings."""

from __future__ import annotations

from uuid import UUID, uuid4

from stemlog.errors import UnknownRunError


def parse_run_id(run_id: object) -> UUID:
    """A run id as a UUID.

    Raises:
        UnknownRunError: ``run_id`` is not a UUID, so no such run can exist.
    """
    if isinstance(run_id, UUID):
        return run_id
    try:
        return UUID(str(run_id))
    except ValueError:
        raise UnknownRunError(str(run_id)) from None


def new_run_id() -> UUID:
    """A fresh, random run id."""
    return uuid4()
