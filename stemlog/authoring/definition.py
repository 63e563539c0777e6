"""The frozen form of a workflow: what an app registers and a run is pinned to.

:class:`WorkflowDefinition` is immutable; ``Flow`` and ``WorkflowScript``
(:mod:`stemlog.authoring.workflows`) are the authoring objects and expose it
as ``.definition``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias, final

from stemlog.authoring.context import StepHandler
from stemlog.authoring.policies import RetryPolicy
from stemlog.authoring.script import ScriptContext
from stemlog.model.records import WorkflowKind

ScriptRun: TypeAlias = Callable[[ScriptContext], Awaitable[Any]]
"""A WorkflowScript's ``run(script)``."""


@final
@dataclass(frozen=True, slots=True)
class StepSpec:
    """One declared flow step."""

    name: str
    handler: StepHandler
    auto_version: bool = False
    retry: RetryPolicy | None = None


@final
@dataclass(frozen=True, slots=True)
class WorkflowDefinition:
    """The registrable, immutable form of a Flow or WorkflowScript.

    ``fingerprint`` identifies a flow's declared step list (a run started with
    one fingerprint is never driven by a flow that declares other steps).
    """

    name: str
    kind: WorkflowKind
    version: int
    steps: tuple[StepSpec, ...]
    run: ScriptRun | None
    fingerprint: str
    retry: RetryPolicy | None = None
    """The retry policy of steps that declare none."""

    @property
    def definition(self) -> WorkflowDefinition:
        """Itself, so a definition and its authoring object are interchangeable."""
        return self

    def manifest(self) -> dict[str, Any]:
        """A JSON description of the definition for tooling and dashboards."""
        return {
            "name": self.name,
            "kind": str(self.kind),
            "version": self.version,
            "steps": [step.name for step in self.steps],
            "fingerprint": self.fingerprint,
        }


def fingerprint(kind: WorkflowKind, name: str, version: int, steps: tuple[str, ...]) -> str:
    """A short, stable hash of what a definition declares."""
    text = "\x1f".join((str(kind), name, str(version), *steps))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
