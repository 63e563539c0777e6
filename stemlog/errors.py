"""Errors raised by stemlog.

Every error stemlog raises on purpose derives from :class:`StemlogError`, and
also from the built-in a caller would expect, so ``except LookupError`` or
``except ValueError`` keep working::

    StemlogError
    ├── UnknownWorkflowError (LookupError)   no definition registered under a name
    ├── UnknownRunError (LookupError)        no run with that id in the store
    ├── UnknownStepError (LookupError)       a rewind or fork to a step the run never ran
    ├── InvalidPayloadError (ValueError)     a value stemlog cannot keep: not JSON, a bad duration
    ├── InvalidTopicError (ValueError)       a topic that is not a non-empty string
    ├── InvalidDefinitionError (ValueError)  a malformed Flow or WorkflowScript
    ├── MissingValueError (LookupError)      a required param or previous value is absent
    ├── InvalidStoreURLError (ValueError)    a store URL stemlog does not understand
    ├── RunEndedError (RuntimeError)         a write to a run that has already ended
    ├── RunExistsError (RuntimeError)        a start under a run id or key that is taken
    ├── AppNotOpenError (RuntimeError)       a call on an app outside ``async with``
    ├── StoreUnavailableError (ConnectionError) the store stayed away longer than ``store_timeout``
    ├── StoreWriteError (OSError)            the store refused a write: disk full, read-only
    ├── NonDeterminismError (RuntimeError)   the code asked for another step than the log holds
    ├── StepFailedError (RuntimeError)       a script step failed and has no attempt left
    ├── ChildWorkflowError (RuntimeError)    a child run awaited by its parent did not complete
    ├── EventTimeoutError (TimeoutError)     an awaited event's deadline passed first
    └── ResultNotAvailableError (RuntimeError) ``required_value()`` on a run that did not complete

Errors carry their structured fields as attributes and build their own message.
"""

from __future__ import annotations

from typing import final


class StemlogError(Exception):
    """Root of every error stemlog raises on purpose."""


@final
class UnknownWorkflowError(StemlogError, LookupError):
    """No workflow definition is registered under ``name``."""

    def __init__(self, name: str, version: int | None = None, reason: str | None = None) -> None:
        self.name = name
        self.version = version
        suffix = "" if version is None else f" version {version}"
        why = reason or "register it with the app first"
        super().__init__(f"unknown workflow {name!r}{suffix}: {why}")


@final
class UnknownRunError(StemlogError, LookupError):
    """No run with ``run_id`` exists in the store."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"unknown run {run_id!r}")


@final
class RunExistsError(StemlogError, RuntimeError):
    """A start named a run (by id or key) that exists already, with
    ``if_exists="fail"``, or that runs another workflow than the one asked for."""

    def __init__(self, run_id: str, key: str | None, workflow: str) -> None:
        self.run_id = run_id
        self.key = key
        self.workflow = workflow
        named = run_id if key is None else f"{key!r} ({run_id})"
        super().__init__(f"run {named} exists already, a run of {workflow!r}")


@final
class UnknownStepError(StemlogError, LookupError):
    """The run never started ``step`` (so it cannot be rewound or forked there)."""

    def __init__(self, run_id: str, step: str) -> None:
        self.run_id = run_id
        self.step = step
        super().__init__(f"run {run_id} never ran step {step!r}")


@final
class InvalidPayloadError(StemlogError, ValueError):
    """A value stemlog cannot keep as it is: params or payloads that are not JSON
    values, a duration or a policy that means nothing, a malformed history."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"invalid {what}: {reason}")


@final
class InvalidTopicError(StemlogError, ValueError):
    """A topic must be a non-empty string."""

    def __init__(self, topic: object) -> None:
        self.topic = topic
        super().__init__(f"a topic must be a non-empty string, got {topic!r}")


@final
class InvalidDefinitionError(StemlogError, ValueError):
    """A Flow or WorkflowScript is malformed (no steps, a duplicate step, ...)."""

    def __init__(self, workflow: str, reason: str) -> None:
        self.workflow = workflow
        self.reason = reason
        super().__init__(f"workflow {workflow!r} is invalid: {reason}")


@final
class MissingValueError(StemlogError, LookupError):
    """A required param or previous value is absent."""

    def __init__(self, what: str, run_id: str) -> None:
        self.what = what
        self.run_id = run_id
        super().__init__(f"run {run_id} has no {what}")


@final
class InvalidStoreURLError(StemlogError, ValueError):
    """The store URL is not ``memory://``, ``sqlite:///path`` or ``postgresql://...``."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"invalid store URL {url!r}: {reason}")


@final
class RunEndedError(StemlogError, RuntimeError):
    """The run has ended (completed, failed or cancelled) and takes no more input."""

    def __init__(self, run_id: str, status: str) -> None:
        self.run_id = run_id
        self.status = status
        super().__init__(f"run {run_id} has ended ({status}) and takes no more input")


@final
class AppNotOpenError(StemlogError, RuntimeError):
    """The app is used outside ``async with WorkflowApp.open(url) as app``."""

    def __init__(self) -> None:
        super().__init__("the app is not open: use 'async with WorkflowApp.open(url) as app'")


@final
class StoreUnavailableError(StemlogError, ConnectionError):
    """The store could not be reached (or stayed locked) for longer than the call may wait.

    A read can simply be made again. A write may or may not have reached the
    store just before it went away (its reply was lost): read the run back
    (``get_run(run_id, consistent=True)``) before writing again.
    """

    def __init__(self, where: str, reason: str, waited: float | None = None) -> None:
        self.where = where
        self.reason = reason
        self.waited = waited
        after = "" if waited is None else f" for {waited:.1f} s"
        super().__init__(f"store {where} is unavailable{after}: {reason}")


@final
class StoreWriteError(StemlogError, OSError):
    """The store refused a write (a full disk, a read-only file or database).

    Nothing was written; the app keeps running and the write can be made
    again once the store accepts writes.
    """

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"store {where} refused the write: {reason}")


@final
class NonDeterminismError(StemlogError, RuntimeError):
    """Replayed code asked for a different step than the log recorded.

    Attributes:
        run_id: the run being replayed.
        position: the 0-based index of the step request that diverged.
        recorded: what the log holds at that position (``None`` past its end).
        requested: what the code asked for.
    """

    def __init__(self, run_id: str, position: int, recorded: str | None, requested: str) -> None:
        self.run_id = run_id
        self.position = position
        self.recorded = recorded
        self.requested = requested
        super().__init__(
            f"run {run_id} diverged from its history at step request {position}: "
            f"recorded {recorded!r}, code asked for {requested!r}"
        )


@final
class StepFailedError(StemlogError, RuntimeError):
    """A script step raised and has no attempt left; raised inside ``run``."""

    def __init__(self, step: str, iteration: int, error_type: str, message: str) -> None:
        self.step = step
        self.iteration = iteration
        self.error_type = error_type
        self.error_message = message
        super().__init__(f"step {step!r} failed: {error_type}: {message}")


@final
class ChildWorkflowError(StemlogError, RuntimeError):
    """A child run that its parent waited for ended ``failed`` or ``cancelled``."""

    def __init__(
        self, child_run_id: str, status: str, error_type: str | None, message: str
    ) -> None:
        self.child_run_id = child_run_id
        self.status = status
        self.error_type = error_type
        self.error_message = message
        detail = f"{error_type}: {message}" if error_type else message
        super().__init__(f"child run {child_run_id} ended {status}: {detail}")


@final
class EventTimeoutError(StemlogError, TimeoutError):
    """The deadline of ``wait_for_event`` passed before the event arrived."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        super().__init__(f"no event on topic {topic!r} arrived before the deadline")


@final
class ResultNotAvailableError(StemlogError, RuntimeError):
    """``WorkflowResult.required_value()`` on a run that has not completed."""

    def __init__(self, run_id: str, status: str, timed_out: bool) -> None:
        self.run_id = run_id
        self.status = status
        self.timed_out = timed_out
        why = "the wait timed out" if timed_out else f"the run is {status}"
        super().__init__(f"run {run_id} has no result: {why}")
