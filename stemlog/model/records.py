"""Records the app returns: statuses, results, run views and facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import final

import orjson

from stemlog.codec import JSONObject, JSONValue
from stemlog.errors import InvalidPayloadError, ResultNotAvailableError

_DATETIME_FIELDS = frozenset({"deadline", "wake_at", "retry_at"})
"""Fact fields that hold times (ISO strings in a JSON line)."""


class RunStatus(StrEnum):
    """Where a run stands; compares equal to its string value."""

    RUNNING = "running"
    SUSPENDED = "suspended"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """Completed, failed and cancelled runs never change again."""
        return self in _TERMINAL


_TERMINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class WorkflowKind(StrEnum):
    """The two workflow models."""

    FLOW = "flow"
    SCRIPT = "script"


@final
@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error as recorded in the log."""

    type: str
    message: str
    traceback: str | None = None

    def to_json(self) -> JSONObject:
        """The form stored in facts (``StepFailed.error``, ``RunFailed.error``)."""
        return {"type": self.type, "message": self.message, "traceback": self.traceback}

    @classmethod
    def from_json(cls, data: JSONValue) -> ErrorInfo:
        """The error a fact recorded."""
        if not isinstance(data, dict):
            return cls("stemlog.UnreadableError", repr(data))
        traceback = data.get("traceback")
        return cls(
            str(data.get("type")),
            str(data.get("message")),
            traceback if isinstance(traceback, str) else None,
        )


@final
@dataclass(frozen=True, slots=True)
class WorkflowResult:
    """What ``wait_for`` and ``start_and_wait`` return; they never raise on timeout."""

    run_id: str
    status: RunStatus
    value: JSONValue = None
    error: ErrorInfo | None = None
    timed_out: bool = False

    def required_value(self) -> JSONValue:
        """The run's result.

        Raises:
            ResultNotAvailableError: the run did not complete (or the wait timed out).
        """
        if self.status is not RunStatus.COMPLETED or self.timed_out:
            raise ResultNotAvailableError(self.run_id, self.status, self.timed_out)
        return self.value


@final
@dataclass(frozen=True, slots=True)
class RunView:
    """One run as status queries show it (read from the ``runs`` projection)."""

    run_id: str
    workflow: str
    kind: WorkflowKind
    version: int
    status: RunStatus
    params: dict[str, JSONValue]
    result: JSONValue
    error: ErrorInfo | None
    current_step: str | None
    wait_topic: str | None
    wake_at: datetime | None
    deadline: datetime | None
    attempts: int
    parent_run_id: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    cancel_reason: str | None
    created_at: datetime
    updated_at: datetime
    ended_at: datetime | None
    blocked_on_version: int | None = None
    """Set when this app's worker does not have the workflow version the run is pinned to."""
    blocked: str | None = None
    """Why the run is set aside, if it is: one of its facts cannot be read or folded
    (the app and every other run go on; the worker leaves this one alone)."""
    key: str | None = None
    """The business key the run was started by (``start(..., run_id="order-1")``)."""


@final
@dataclass(frozen=True, slots=True)
class Fact:
    """One fact of a run's history, as ``app.history`` returns it.

    ``position`` is 1-based within the run; the fact's fields are in ``data``
    and are also readable as attributes (``fact.step``). Each record names its
    run, so a history is all that :func:`stemlog.fold`, :func:`stemlog.replay`,
    ``app.import_history`` and the JSON-lines form (:meth:`to_json_line`,
    :meth:`from_json_line`) need.
    """

    run_id: str
    type: str
    position: int
    timestamp: datetime
    data: dict[str, JSONValue] = field(default_factory=dict)

    def to_json_line(self) -> bytes:
        """The fact as one JSON line (without the newline): ``run_id``, ``type``,
        ``position``, ``timestamp`` (to the microsecond, UTC) and ``data``, exactly."""
        return orjson.dumps({
            "run_id": self.run_id, "type": self.type, "position": self.position,
            "timestamp": self.timestamp, "data": self.data,
        })  # fmt: skip

    @classmethod
    def from_json_line(cls, line: bytes | str) -> Fact:
        """A fact back from :meth:`to_json_line`.

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
            return cls(str(item["run_id"]), str(item["type"]), int(item["position"]),
                       timestamp, data)  # fmt: skip
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise InvalidPayloadError("history line", str(error)) from None

    def __getattr__(self, name: str) -> JSONValue:
        if name.startswith("__") or name == "data":
            raise AttributeError(name)
        try:
            return self.data[name]
        except KeyError:
            raise AttributeError(f"{self.type} has no field {name!r}") from None
