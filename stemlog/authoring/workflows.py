"""The authoring objects: :class:`Flow` (declared steps) and :class:`WorkflowScript`.

Both expose their frozen :class:`~stemlog.authoring.definition.WorkflowDefinition`
as ``.definition``; an app registers either, and a run is pinned to a
definition by name and version.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeAlias, TypeVar, final, overload

from stemlog.authoring.context import FlowContext
from stemlog.authoring.definition import StepSpec, WorkflowDefinition, fingerprint
from stemlog.authoring.policies import RetryPolicy
from stemlog.authoring.refs import AppLike, WorkflowRef, encode_params_object
from stemlog.authoring.script import ScriptContext
from stemlog.clock import Duration
from stemlog.errors import InvalidDefinitionError
from stemlog.model.records import WorkflowKind, WorkflowResult

P = TypeVar("P")


def _check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidDefinitionError(str(name), f"{what} must be a non-empty string")
    return name


def _check_version(name: str, version: object) -> int:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise InvalidDefinitionError(name, f"version must be an int >= 1, got {version!r}")
    return version


class _Startable(ABC):
    """Start helpers shared by Flow and WorkflowScript."""

    @property
    @abstractmethod
    def definition(self) -> WorkflowDefinition:
        """The frozen definition that apps register."""

    @property
    def name(self) -> str:
        return self.definition.name

    @overload
    def ref(self) -> WorkflowRef[Any]: ...

    @overload
    def ref(self, encode_params: Callable[[P], Mapping[str, Any]]) -> WorkflowRef[P]: ...

    def ref(
        self, encode_params: Callable[[Any], Mapping[str, Any]] | None = None
    ) -> WorkflowRef[Any]:
        """A handle that encodes its params with ``encode_params``: typed by it, so
        ``app.start(ref, params)`` accepts only that params type."""
        return WorkflowRef(self.definition, encode_params)

    @overload
    def ref_json(self) -> WorkflowRef[Any]: ...

    @overload
    def ref_json(self, params_type: type[P]) -> WorkflowRef[P]: ...

    def ref_json(self, params_type: type[Any] | None = None) -> WorkflowRef[Any]:
        """A handle whose params object becomes JSON via ``to_json()``, a dataclass or
        pydantic; ``ref_json(Order)`` types it, so ``app.start`` takes only ``Order``."""
        return WorkflowRef(self.definition, encode_params_object)

    async def start(self, app: AppLike, **options: Any) -> str:
        """Start a run with no params; ``options`` as in ``WorkflowApp.start``."""
        return await app.start(self.definition, **options)

    async def start_and_wait(
        self, app: AppLike, *, timeout: Duration | None = None
    ) -> WorkflowResult:
        """Start a run with no params and wait for it to end (or ``timeout``)."""
        return await app.start_and_wait(self.definition, timeout=timeout)


@final
class Flow(_Startable):
    """A workflow whose plan is a declared list of steps, run in order.

    Steps are declared with :meth:`step` as a decorator or a call, or in a
    ``build(flow)`` function as in Stem. The flow's result is its last step's value.
    """

    def __init__(
        self,
        name: str,
        build: Callable[[Flow], None] | None = None,
        *,
        version: int = 1,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._name = _check_name(name, "a workflow name")
        self._version = _check_version(name, version)
        self._retry = retry
        self._steps: list[StepSpec] = []
        self._definition: WorkflowDefinition | None = None
        if build is not None:
            build(self)

    @overload
    def step(
        self,
        name: str,
        fn: None = None,
        *,
        auto_version: bool = False,
        retry: RetryPolicy | None = None,
    ) -> Callable[[Callable[[FlowContext], Any]], Callable[[FlowContext], Any]]: ...

    @overload
    def step(
        self,
        name: str,
        fn: Callable[[FlowContext], Any],
        *,
        auto_version: bool = False,
        retry: RetryPolicy | None = None,
    ) -> Callable[[FlowContext], Any]: ...

    def step(
        self,
        name: str,
        fn: Callable[[FlowContext], Any] | None = None,
        *,
        auto_version: bool = False,
        retry: RetryPolicy | None = None,
    ) -> Any:
        """Declare the next step; use as ``@flow.step("name")`` or ``flow.step("name", fn)``.

        Raises:
            InvalidDefinitionError: empty or duplicate step name, or a handler that
                is not callable.
        """
        _check_name(name, "a step name")
        if any(spec.name == name for spec in self._steps):
            raise InvalidDefinitionError(self._name, f"step {name!r} is declared twice")

        def declare(handler: Callable[[FlowContext], Any]) -> Callable[[FlowContext], Any]:
            if not callable(handler):
                raise InvalidDefinitionError(self._name, f"step {name!r} needs a callable")
            self._steps.append(StepSpec(name, handler, auto_version, retry))
            self._definition = None
            return handler

        return declare if fn is None else declare(fn)

    @property
    def definition(self) -> WorkflowDefinition:
        """The frozen definition of the steps declared so far.

        Raises:
            InvalidDefinitionError: the flow declares no step.
        """
        if self._definition is None:
            if not self._steps:
                raise InvalidDefinitionError(self._name, "a flow needs at least one step")
            steps = tuple(self._steps)
            digest = fingerprint(
                WorkflowKind.FLOW, self._name, self._version, tuple(s.name for s in steps)
            )
            self._definition = WorkflowDefinition(
                self._name, WorkflowKind.FLOW, self._version, steps, None, digest, self._retry
            )
        return self._definition


@final
class WorkflowScript(_Startable):
    """A workflow whose plan is an async function; ``script.step`` calls are checkpoints.

    ``run(script)`` is re-entered from the top whenever the run resumes; each
    completed step returns its recorded value without calling its handler, so
    the code between steps must be deterministic (no clock, no randomness, no
    I/O outside steps).
    """

    def __init__(
        self,
        name: str,
        run: Callable[[ScriptContext], Awaitable[Any]],
        *,
        version: int = 1,
        retry: RetryPolicy | None = None,
    ) -> None:
        _check_name(name, "a workflow name")
        if not callable(run):
            raise InvalidDefinitionError(name, "run must be an async function")
        digest = fingerprint(WorkflowKind.SCRIPT, name, _check_version(name, version), ())
        self._definition = WorkflowDefinition(
            name, WorkflowKind.SCRIPT, version, (), run, digest, retry
        )

    @property
    def definition(self) -> WorkflowDefinition:
        return self._definition


Definable: TypeAlias = Flow | WorkflowScript | WorkflowDefinition
"""Anything accepted where a definition is taken."""


def as_definition(value: Definable) -> WorkflowDefinition:
    """The frozen definition of a Flow, WorkflowScript or definition."""
    return value.definition
