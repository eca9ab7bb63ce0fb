"""Definitions known to the daemon: workflow defs by (name, version), task defs by name.

Definitions are validated and normalized on the way in (from `--defs`, the
API or a bundle) and kept in memory; the journal holds the durable copy.
Executions pin the definition they started with, so replacing a definition
never changes a running execution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edged.defs import (
    KNOWN_TASK_TYPES,
    DefinitionError,
    Fault,
    normalize_taskdef,
    normalize_workflow,
    validate_taskdef,
    validate_workflow,
)
from edged.errors import NotFound


class DefinitionRegistry:
    def __init__(self) -> None:
        self.workflows: dict[str, dict[int, dict[str, Any]]] = {}
        self.taskdefs: dict[str, dict[str, Any]] = {}
        self.event_handlers: list[dict[str, Any]] = []
        # called with a workflow name after a version of it was put or removed (adapters
        # follow definitions this way, e.g. MQTT trigger rules)
        self.workflow_listeners: list[Callable[[str], None]] = []

    # --------------------------------------------------------------- checks

    @staticmethod
    def check_workflow(doc: Any, source: str | None = None) -> dict[str, Any]:
        faults = validate_workflow(doc, task_types=KNOWN_TASK_TYPES)
        if faults:
            if source:
                faults = [Fault(f.path, f.message, f.source or source, f.line) for f in faults]
            raise DefinitionError(faults)
        return normalize_workflow(doc)

    @staticmethod
    def check_taskdef(doc: Any) -> dict[str, Any]:
        faults = validate_taskdef(doc)
        if faults:
            raise DefinitionError(faults)
        return normalize_taskdef(doc)

    # ---------------------------------------------------------------- reads

    def workflow(self, name: str, version: int | None = None) -> dict[str, Any]:
        versions = self.workflows.get(name)
        if not versions:
            raise NotFound(f"No such workflow defined. name={name}, version={version}")
        if version is None:
            return versions[max(versions)]
        found = versions.get(version)
        if found is None:
            raise NotFound(f"No such workflow defined. name={name}, version={version}")
        return found

    def has_workflow(self, name: str) -> bool:
        return bool(self.workflows.get(name))

    def all_workflows(self) -> list[dict[str, Any]]:
        return [
            d for name in sorted(self.workflows) for _, d in sorted(self.workflows[name].items())
        ]

    def taskdef(self, name: str) -> dict[str, Any] | None:
        return self.taskdefs.get(name)

    # --------------------------------------------------------------- writes

    def put_workflow(self, definition: dict[str, Any]) -> None:
        name = str(definition["name"])
        self.workflows.setdefault(name, {})[int(definition.get("version", 1))] = definition
        self._changed(name)

    def _changed(self, name: str) -> None:
        for listener in self.workflow_listeners:
            listener(name)

    def remove_workflow(self, name: str, version: int) -> None:
        versions = self.workflows.get(name)
        if not versions or version not in versions:
            raise NotFound(f"No such workflow definition: {name} version: {version}")
        del versions[version]
        if not versions:
            del self.workflows[name]
        self._changed(name)

    def put_taskdef(self, taskdef: dict[str, Any]) -> None:
        self.taskdefs[str(taskdef["name"])] = taskdef

    def remove_taskdef(self, name: str) -> None:
        if name not in self.taskdefs:
            raise NotFound(f"No such task definition: {name}")
        del self.taskdefs[name]
