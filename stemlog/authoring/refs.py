"""Typed handles to a definition: encode a params object, start, wait."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar, final

from stemlog.authoring.definition import WorkflowDefinition
from stemlog.clock import Duration
from stemlog.errors import InvalidPayloadError
from stemlog.model.policy import CancellationPolicy
from stemlog.model.records import WorkflowResult

P = TypeVar("P")


class AppLike(Protocol):
    """What refs and definitions need of an app (``WorkflowApp`` is one)."""

    async def start(
        self,
        workflow: Any,
        params: Mapping[str, Any] | None = None,
        *,
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
        policy: CancellationPolicy | None = None,
    ) -> str: ...

    async def start_and_wait(
        self,
        workflow: Any,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: Duration | None = None,
    ) -> WorkflowResult: ...

    async def wait_for(self, run_id: str, timeout: Duration | None = None) -> WorkflowResult: ...


def encode_params_object(params: Any) -> Mapping[str, Any]:
    """A params object as a mapping: via ``to_json()``, a dataclass, a pydantic model, or a mapping.

    Raises:
        InvalidPayloadError: the object is none of those.
    """
    if isinstance(params, Mapping):
        return params
    to_json = getattr(params, "to_json", None)
    if callable(to_json):
        encoded = to_json()
    elif dataclasses.is_dataclass(params) and not isinstance(params, type):
        encoded = dataclasses.asdict(params)
    elif callable(getattr(params, "model_dump", None)):
        encoded = params.model_dump(mode="json")
    else:
        raise InvalidPayloadError("params", f"cannot encode a {type(params).__name__} as JSON")
    if not isinstance(encoded, Mapping):
        raise InvalidPayloadError("params", "a params object must encode to a JSON object")
    return encoded


@final
class WorkflowRef(Generic[P]):
    """A handle that starts runs of one definition from a typed params object."""

    def __init__(
        self,
        definition: WorkflowDefinition,
        encode_params: Callable[[P], Mapping[str, Any]] | None = None,
    ) -> None:
        self.definition = definition
        self._encode = encode_params

    @property
    def name(self) -> str:
        return self.definition.name

    def encode(self, params: P | None) -> Mapping[str, Any] | None:
        """The params as the mapping stored in ``RunStarted``."""
        if params is None:
            return None
        if self._encode is None:
            return encode_params_object(params)
        return self._encode(params)

    async def start(
        self,
        app: AppLike,
        params: P | None = None,
        parent_run_id: str | None = None,
        ttl: Duration | None = None,
    ) -> str:
        """Start a run; returns its id."""
        return await app.start(
            self.definition, self.encode(params), parent_run_id=parent_run_id, ttl=ttl
        )

    async def start_and_wait(
        self, app: AppLike, params: P | None = None, timeout: Duration | None = None
    ) -> WorkflowResult:
        """Start a run and wait for it to end (or ``timeout``)."""
        return await app.start_and_wait(self.definition, self.encode(params), timeout=timeout)

    async def wait_for(
        self, app: AppLike, run_id: str, timeout: Duration | None = None
    ) -> WorkflowResult:
        """Wait for a run of this definition to end (or ``timeout``)."""
        return await app.wait_for(run_id, timeout=timeout)
