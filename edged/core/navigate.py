"""Where a WorkflowTask sits in its definition, and what comes after it.

A definition is a tree of task lists: the root list, SWITCH/DECISION cases,
FORK_JOIN branches and DO_WHILE bodies.  The decider moves forward edge by
edge: when a task ends it asks for the node after it in the same list; at the
end of a list it climbs to the owner (after a SWITCH, to the JOIN of a fork,
back to the DO_WHILE of a loop, or to the end of the workflow).

The index is built once per pinned definition and cached (bounded); it keeps
a reference to the definition so an id is never reused under it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

SlotKind = Literal["root", "case", "branch", "loop"]


@dataclass(frozen=True, slots=True)
class Slot:
    kind: SlotKind
    owner: str | None  # taskReferenceName of the SWITCH / FORK_JOIN / DO_WHILE
    items: list[dict[str, Any]]
    index: int
    next: dict[str, Any] | None = None  # items[index + 1] when a node (definitions never change)


class NodeFacts(NamedTuple):
    """What scheduling reads from one WorkflowTask node, read once per pinned definition."""

    base_ref: str  # taskReferenceName
    kind: str  # type ("SIMPLE" when absent)
    name: str  # name (the ref when absent)
    params: Any  # inputParameters as written ({} when absent)
    pinned: bool  # `nodes` holds this node for its ref: its own parameters are never changed


def node_facts(node: dict[str, Any], pinned: bool = False) -> NodeFacts:
    """What scheduling reads from `node` (the index keeps them for the pinned definition's
    nodes; a node from elsewhere, a dynamic fork's say, is read with this each time)."""
    ref = str(node.get("taskReferenceName", ""))
    return NodeFacts(
        ref,
        str(node.get("type") or "SIMPLE"),
        str(node.get("name") or ref),
        node.get("inputParameters") or {},
        pinned,
    )


class DefinitionIndex:
    __slots__ = ("definition", "facts", "name", "nodes", "slots", "timeout_s", "version")

    def __init__(self, definition: dict[str, Any]) -> None:
        self.definition = definition
        self.slots: dict[str, Slot] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        # by id(node): the index holds the definition, so no other object takes a node's id
        self.facts: dict[int, NodeFacts] = {}
        # Workflow.name / Workflow.version and the workflow's timeoutSeconds (0: none),
        # read at every start and end
        name = definition.get("name", "")
        self.name: str = name if isinstance(name, str) else ""
        version = definition.get("version", 1)
        self.version: int = version if isinstance(version, int) else 1
        timeout_s = definition.get("timeoutSeconds")
        self.timeout_s = 0
        if isinstance(timeout_s, int) and not isinstance(timeout_s, bool) and timeout_s > 0:
            self.timeout_s = timeout_s
        tasks = definition.get("tasks")
        if isinstance(tasks, list):
            self._walk(tasks, "root", None)

    def _walk(self, items: list[Any], kind: SlotKind, owner: str | None) -> None:
        for index, node in enumerate(items):
            if not isinstance(node, dict):
                continue
            ref = node.get("taskReferenceName")
            if isinstance(ref, str):
                after = items[index + 1] if index + 1 < len(items) else None
                nxt = after if isinstance(after, dict) else None
                self.slots.setdefault(ref, Slot(kind, owner, items, index, nxt))
                first = self.nodes.setdefault(ref, node)
                self.facts[id(node)] = node_facts(node, first is node)
            kind_of = node.get("type", "SIMPLE")
            if kind_of in ("SWITCH", "DECISION"):
                cases = node.get("decisionCases") or {}
                if isinstance(cases, dict):
                    for case in cases.values():
                        if isinstance(case, list):
                            self._walk(case, "case", ref)
                default = node.get("defaultCase") or []
                if isinstance(default, list):
                    self._walk(default, "case", ref)
            elif kind_of == "FORK_JOIN":
                for branch in node.get("forkTasks") or []:
                    if isinstance(branch, list):
                        self._walk(branch, "branch", ref)
            elif kind_of == "DO_WHILE":
                body = node.get("loopOver") or []
                if isinstance(body, list):
                    self._walk(body, "loop", ref)

    def slot(self, base_ref: str) -> Slot | None:
        return self.slots.get(base_ref)

    def node(self, base_ref: str) -> dict[str, Any] | None:
        return self.nodes.get(base_ref)

    def next_in_list(self, base_ref: str) -> dict[str, Any] | None:
        slot = self.slots.get(base_ref)
        return None if slot is None else slot.next

    def loop_body_refs(self, loop_ref: str) -> set[str]:
        """Every base ref nested anywhere under the DO_WHILE `loop_ref`."""
        out: set[str] = set()
        for ref in self.slots:
            owner: str | None = ref
            while owner is not None:
                slot = self.slots.get(owner)
                if slot is None:
                    break
                if slot.kind == "loop" and slot.owner == loop_ref:
                    out.add(ref)
                    break
                owner = slot.owner
        return out


_CACHE: OrderedDict[int, DefinitionIndex] = OrderedDict()
_CACHE_MAX = 512


def index_of(definition: dict[str, Any]) -> DefinitionIndex:
    key = id(definition)
    found = _CACHE.get(key)
    if found is not None and found.definition is definition:
        _CACHE.move_to_end(key)
        return found
    built = DefinitionIndex(definition)
    _CACHE[key] = built
    if len(_CACHE) > _CACHE_MAX:
        _CACHE.popitem(last=False)
    return built


def first_task(items: Any) -> dict[str, Any] | None:
    if isinstance(items, list) and items and isinstance(items[0], dict):
        return items[0]
    return None
