"""`edged graph`: a workflow definition as a Graphviz dot or Mermaid flowchart.

Theory of operation.  `build_graph` walks the definition's task list once
and produces a small graph model (`Graph`: nodes, edges, clusters); the two
renderers only print that model, so both formats always show the same graph.

The walk threads a list of *open ends* (node, edge label) through the tasks:
each task node is joined from every open end, then leaves its own ends.
SWITCH/DECISION leaves one end per case (labelled with the case value, plus
``default``); FORK_JOIN leaves the ends of every branch, which the JOIN that
follows collects; DO_WHILE draws its body in a cluster with a dashed edge
back to the loop node and leaves a ``done`` end; TERMINATE leaves none; a
SUB_WORKFLOW node names the workflow it starts (an inline definition is drawn
in its own cluster, entered by a dashed edge).  The last open ends go to an
``end`` node.

With an execution (Conductor's Workflow JSON), each node is coloured by the
status of its task's latest attempt (loop iterations ``ref__N`` count for
``ref``); tasks that never ran stay white.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Graph", "build_graph", "render_dot", "render_mermaid", "statuses_of"]

STATUS_COLOURS = {
    "COMPLETED": "#b7e1b0",
    "COMPLETED_WITH_ERRORS": "#f5d491",
    "IN_PROGRESS": "#fff3a3",
    "SCHEDULED": "#cfe2ff",
    "FAILED": "#f4a6a6",
    "FAILED_WITH_TERMINAL_ERROR": "#f4a6a6",
    "TIMED_OUT": "#f4a6a6",
    "CANCELED": "#d9d9d9",
    "SKIPPED": "#d9d9d9",
}

_DECISIONS = frozenset({"SWITCH", "DECISION"})
_ITERATION = re.compile(r"__\d+$")


@dataclass(slots=True)
class Node:
    id: str
    label: str
    shape: str  # "task", "decision", "fork", "join", "loop", "sub", "terminal", "stop"
    ref: str | None = None
    status: str | None = None


@dataclass(slots=True)
class Graph:
    name: str
    nodes: list[Node] = field(default_factory=list)
    edges: list[tuple[str, str, str | None, bool]] = field(default_factory=list)  # dashed last
    clusters: list[tuple[str, str, list[str]]] = field(default_factory=list)  # id, label, nodes

    def node(self, label: str, shape: str, ref: str | None = None) -> Node:
        made = Node(f"n{len(self.nodes)}", label, shape, ref)
        self.nodes.append(made)
        return made


End = tuple[str, str | None]  # an open end: (node id, label of the edge leaving it)


def statuses_of(execution: dict[str, Any]) -> dict[str, str]:
    """Task reference name -> status of its latest attempt, from Conductor's Workflow JSON."""
    found: dict[str, tuple[int, str]] = {}
    for index, task in enumerate(execution.get("tasks") or []):
        if not isinstance(task, dict):
            continue
        ref, status = task.get("referenceTaskName"), task.get("status")
        if not isinstance(ref, str) or not isinstance(status, str):
            continue
        raw_seq = task.get("seq")
        seq = raw_seq if isinstance(raw_seq, int) else index
        for key in {ref, _ITERATION.sub("", ref)}:
            if key not in found or found[key][0] <= seq:
                found[key] = (seq, status)
    return {ref: status for ref, (_, status) in found.items()}


def build_graph(definition: dict[str, Any], statuses: dict[str, str] | None = None) -> Graph:
    graph = Graph(str(definition.get("name") or "workflow"))
    start = graph.node("start", "terminal")
    ends = _walk(graph, _tasks(definition.get("tasks")), [(start.id, None)])
    end = graph.node("end", "terminal")
    for node_id, label in ends:
        graph.edges.append((node_id, end.id, label, False))
    if statuses:
        for node in graph.nodes:
            if node.ref is not None:
                node.status = statuses.get(node.ref)
    return graph


def _tasks(value: Any) -> list[dict[str, Any]]:
    return [t for t in value if isinstance(t, dict)] if isinstance(value, list) else []


def _join(graph: Graph, ends: list[End], node_id: str) -> None:
    for source, label in ends:
        graph.edges.append((source, node_id, label, False))


def _walk(graph: Graph, tasks: list[dict[str, Any]], ends: list[End]) -> list[End]:
    for task in tasks:
        ends = _task(graph, task, ends)
    return ends


def _task(graph: Graph, task: dict[str, Any], ends: list[End]) -> list[End]:
    kind = str(task.get("type") or "SIMPLE")
    ref = str(task.get("taskReferenceName") or task.get("name") or "?")
    name = str(task.get("name") or ref)
    label = ref if name == ref else f"{ref}\n{name}"
    if kind in _DECISIONS:
        node = graph.node(f"{ref}\n{kind}", "decision", ref)
        _join(graph, ends, node.id)
        out: list[End] = []
        cases = task.get("decisionCases")
        for case, branch in (cases if isinstance(cases, dict) else {}).items():
            out += _walk(graph, _tasks(branch), [(node.id, str(case))])
        return out + _walk(graph, _tasks(task.get("defaultCase")), [(node.id, "default")])
    if kind == "FORK_JOIN":
        node = graph.node(f"{ref}\nFORK", "fork", ref)
        _join(graph, ends, node.id)
        out = []
        branches = task.get("forkTasks")
        for branch in branches if isinstance(branches, list) else []:
            out += _walk(graph, _tasks(branch), [(node.id, None)])
        return out or [(node.id, None)]
    if kind == "DO_WHILE":
        node = graph.node(f"{ref}\nDO_WHILE", "loop", ref)
        _join(graph, ends, node.id)
        first = len(graph.nodes)
        body_ends = _walk(graph, _tasks(task.get("loopOver")), [(node.id, None)])
        for source, back in body_ends:
            graph.edges.append((source, node.id, back or "repeat", True))
        members = [n.id for n in graph.nodes[first:]]
        if members:
            graph.clusters.append((f"loop_{node.id}", f"DO_WHILE {ref}", members))
        return [(node.id, "done")]
    if kind == "SUB_WORKFLOW":
        param = task.get("subWorkflowParam")
        sub = param.get("name") if isinstance(param, dict) else None
        inline = isinstance(param, dict) and isinstance(param.get("workflowDefinition"), dict)
        target = sub or ("inline definition" if inline else "?")
        node = graph.node(f"{ref}\nsub-workflow: {target}", "sub", ref)
        _join(graph, ends, node.id)
        if inline:
            assert isinstance(param, dict)
            _inline(graph, node, ref, param["workflowDefinition"])
        return [(node.id, None)]
    if kind == "TERMINATE":
        node = graph.node(f"{ref}\nTERMINATE", "stop", ref)
        _join(graph, ends, node.id)
        return []
    elif kind == "JOIN":
        node = graph.node(f"{ref}\nJOIN", "join", ref)
    elif kind in ("SIMPLE", "HTTP") or kind == name:
        node = graph.node(label if kind == "SIMPLE" else f"{label}\n{kind}", "task", ref)
    else:
        node = graph.node(f"{label}\n{kind}", "task", ref)
    _join(graph, ends, node.id)
    return [(node.id, None)]


def _inline(graph: Graph, node: Node, ref: str, definition: dict[str, Any]) -> None:
    """An inline sub-workflow: its tasks in a cluster, entered by a dashed edge.

    Its refs live in the child execution, so its nodes are never coloured
    from the parent's statuses."""
    first_node, first_edge = len(graph.nodes), len(graph.edges)
    _walk(graph, _tasks(definition.get("tasks")), [(node.id, None)])
    for index in range(first_edge, len(graph.edges)):
        source, target, label, _ = graph.edges[index]
        if source == node.id:
            graph.edges[index] = (source, target, label, True)
    members = graph.nodes[first_node:]
    for member in members:
        member.ref = None
    if members:
        title = f"sub-workflow {definition.get('name') or ref} (inline)"
        graph.clusters.append((f"sub_{node.id}", title, [m.id for m in members]))


# -- dot ---------------------------------------------------------------------

_DOT_SHAPES = {
    "task": "box",
    "decision": "diamond",
    "fork": "trapezium",
    "join": "invtrapezium",
    "loop": "hexagon",
    "sub": "box3d",
    "terminal": "ellipse",
    "stop": "octagon",
}


def _dot_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def render_dot(graph: Graph) -> str:
    lines = [
        f"digraph {_dot_quote(graph.name)} {{",
        "  rankdir=TB;",
        '  node [style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];',
    ]
    for node in graph.nodes:
        attrs = [f"label={_dot_quote(node.label)}", f"shape={_DOT_SHAPES[node.shape]}"]
        if node.status is not None:
            colour = STATUS_COLOURS.get(node.status, "#ffffff")
            attrs += [f"fillcolor={_dot_quote(colour)}", f"tooltip={_dot_quote(node.status)}"]
        lines.append(f"  {node.id} [{', '.join(attrs)}];")
    for cluster_id, title, members in graph.clusters:
        lines.append(f"  subgraph cluster_{cluster_id} {{")
        lines.append(f"    label={_dot_quote(title)}; style=dashed;")
        lines.append(f"    {' '.join(members)};")
        lines.append("  }")
    for source, target, label, dashed in graph.edges:
        attrs = []
        if label is not None:
            attrs.append(f"label={_dot_quote(label)}")
        if dashed:
            attrs.append("style=dashed")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f"  {source} -> {target}{suffix};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- mermaid -----------------------------------------------------------------

_MERMAID_SHAPES = {
    "task": ("[", "]"),
    "decision": ("{", "}"),
    "fork": ("[/", "\\]"),
    "join": ("[\\", "/]"),
    "loop": ("{{", "}}"),
    "sub": ("[[", "]]"),
    "terminal": ("([", "])"),
    "stop": ("((", "))"),
}


def _mermaid_text(text: str) -> str:
    # Mermaid's entity codes; <br/> breaks lines inside a quoted label.
    for raw, code in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(raw, code)
    return text.replace("\n", "<br/>")


def _mermaid_edge_label(text: str) -> str:
    return _mermaid_text(text).replace("|", "#124;")


def render_mermaid(graph: Graph) -> str:
    lines = ["flowchart TD"]
    for node in graph.nodes:
        left, right = _MERMAID_SHAPES[node.shape]
        lines.append(f'  {node.id}{left}"{_mermaid_text(node.label)}"{right}')
    for cluster_id, title, members in graph.clusters:
        lines.append(f'  subgraph {cluster_id} ["{_mermaid_text(title)}"]')
        lines.extend(f"    {member}" for member in members)
        lines.append("  end")
    for source, target, label, dashed in graph.edges:
        arrow = "-.->" if dashed else "-->"
        middle = f"|{_mermaid_edge_label(label)}|" if label is not None else ""
        lines.append(f"  {source} {arrow}{middle} {target}")
    used = sorted({n.status for n in graph.nodes if n.status in STATUS_COLOURS} - {None})
    for status in used:
        lines.append(f"  classDef {status} fill:{STATUS_COLOURS[status]},stroke:#555")
    for status in used:
        ids = ",".join(n.id for n in graph.nodes if n.status == status)
        lines.append(f"  class {ids} {status}")
    return "\n".join(lines) + "\n"
