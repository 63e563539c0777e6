"""Which workflow definitions an app knows, by name and version."""

from __future__ import annotations

from collections.abc import Iterable
from typing import final

from stemlog.authoring.definition import WorkflowDefinition
from stemlog.authoring.workflows import Definable, as_definition
from stemlog.errors import InvalidDefinitionError, UnknownWorkflowError


@final
class Registry:
    """Definitions by ``(name, version)``; new runs take a name's highest version."""

    def __init__(self) -> None:
        self._definitions: dict[tuple[str, int], WorkflowDefinition] = {}

    def add_all(self, items: Iterable[Definable]) -> None:
        """Register definitions; re-registering the same definition is a no-op.

        Raises:
            InvalidDefinitionError: another definition already holds that name and version.
        """
        definitions = [as_definition(item) for item in items]
        for definition in definitions:
            key = (definition.name, definition.version)
            known = self._definitions.get(key)
            if known is not None and known.fingerprint != definition.fingerprint:
                raise InvalidDefinitionError(
                    definition.name, f"version {definition.version} is already registered"
                )
        for definition in definitions:
            self._definitions[(definition.name, definition.version)] = definition

    def resolve(self, name: str, version: int) -> WorkflowDefinition | None:
        """The definition a run of ``name`` at ``version`` is pinned to, if registered."""
        return self._definitions.get((name, version))

    def latest(self, name: str) -> WorkflowDefinition:
        """The highest registered version of ``name``.

        Raises:
            UnknownWorkflowError: nothing is registered under ``name``.
        """
        versions = [d for (n, _), d in self._definitions.items() if n == name]
        if not versions:
            raise UnknownWorkflowError(name)
        return max(versions, key=lambda d: d.version)

    def all(self) -> list[WorkflowDefinition]:
        """Every registered definition, by name then version."""
        return [self._definitions[key] for key in sorted(self._definitions)]
