"""`edged graph`: dot parsed by a real dot parser (pydot), Mermaid checked line by line.

The definition (watch_daemon.SHAPES) has a SWITCH with three cases (one ends
in TERMINATE) and an empty default, a FORK_JOIN of two branches with its
JOIN, a DO_WHILE and a SUB_WORKFLOW.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pydot
import pytest
from watch_daemon import SHAPES

from edged.client.graph import STATUS_COLOURS, build_graph, render_dot, render_mermaid, statuses_of

# (source label, target label, edge label) expected for SHAPES, labels' first lines
EXPECTED_EDGES = {
    ("start", "route", None),
    ("route", "left_talk", "left"),
    ("route", "right_talk", "right"),
    ("route", "halt", "stop"),
    ("route", "fan", "default"),
    ("left_talk", "fan", None),
    ("right_talk", "fan", None),
    ("fan", "a1", None),
    ("a1", "a2", None),
    ("fan", "b1", None),
    ("a2", "fan_join", None),
    ("b1", "fan_join", None),
    ("fan_join", "loop", None),
    ("loop", "step", None),
    ("step", "loop", "repeat"),
    ("loop", "child", "done"),
    ("child", "end", None),
}


def dot_graphs(text: str) -> list[Any]:
    # pydot 4.0 still calls pyparsing's camelCase names, deprecated in pyparsing 3.3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        graphs = pydot.graph_from_dot_data(text)
    return list(graphs or [])


def parse_dot(text: str) -> tuple[dict[str, dict[str, str]], set[tuple[str, str, str | None]]]:
    """Nodes (by the first line of their label) with attributes, and labelled edges."""
    graphs = dot_graphs(text)
    assert graphs is not None and len(graphs) == 1
    graph = graphs[0]
    nodes: dict[str, dict[str, str]] = {}
    names: dict[str, str] = {}
    every = list(graph.get_nodes())
    for sub in graph.get_subgraphs():
        every += sub.get_nodes()
    for node in every:
        attrs = {k: v.strip('"') for k, v in node.get_attributes().items()}
        if "label" not in attrs:
            continue  # a member list inside a cluster, or the default node style
        first = attrs["label"].split("\\n")[0]
        nodes[first] = attrs
        names[node.get_name()] = first
    edges = set()
    for edge in graph.get_edges():
        label = edge.get_attributes().get("label")
        edges.add(
            (
                names[edge.get_source()],
                names[edge.get_destination()],
                label.strip('"') if label else None,
            )
        )
    return nodes, edges


def test_dot_has_every_node_and_edge() -> None:
    nodes, edges = parse_dot(render_dot(build_graph(SHAPES)))
    assert edges == EXPECTED_EDGES
    assert nodes["route"]["shape"] == "diamond"
    assert nodes["fan"]["shape"] == "trapezium" and nodes["fan_join"]["shape"] == "invtrapezium"
    assert nodes["loop"]["shape"] == "hexagon"
    assert nodes["child"]["shape"] == "box3d"
    assert nodes["child"]["label"] == "child\\nsub-workflow: talker"
    assert nodes["halt"]["shape"] == "octagon"
    assert all("fillcolor" not in attrs for attrs in nodes.values()), "no execution: no colours"
    graph = dot_graphs(render_dot(build_graph(SHAPES)))[0]
    (cluster,) = graph.get_subgraphs()
    assert cluster.get_name() == "cluster_loop_n10"


def test_mermaid_lines() -> None:
    text = render_mermaid(build_graph(SHAPES))
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    labels = {}
    for line in lines:
        found = re.fullmatch(r'\s+(n\d+)\W{1,2}"([^"]*)"\W{1,2}', line)
        if found:
            labels[found[1]] = found[2].split("<br/>")[0]
    edges = set()
    for line in lines:
        found = re.fullmatch(r"\s+(n\d+) (-->|-\.->)(?:\|([^|]*)\|)? (n\d+)", line)
        if found:
            edges.add((labels[found[1]], labels[found[4]], found[3]))
            assert (found[2] == "-.->") == (found[3] == "repeat"), line
    assert edges == EXPECTED_EDGES
    assert '  n1{"route<br/>SWITCH"}' in lines
    assert '  subgraph loop_n10 ["DO_WHILE loop"]' in lines
    assert not any(line.strip().startswith("class ") for line in lines)


def test_colours_follow_the_latest_attempt() -> None:
    execution = {
        "tasks": [
            {"referenceTaskName": "route", "status": "COMPLETED", "seq": 1},
            {"referenceTaskName": "left_talk", "status": "FAILED", "seq": 2},
            {"referenceTaskName": "left_talk", "status": "COMPLETED", "seq": 3},  # a retry
            {"referenceTaskName": "loop", "status": "IN_PROGRESS", "seq": 4},
            {"referenceTaskName": "step__1", "status": "COMPLETED", "seq": 5},
            {"referenceTaskName": "step__2", "status": "FAILED", "seq": 6},
            "hostile",
            {"referenceTaskName": 7, "status": None},
        ]
    }
    statuses = statuses_of(execution)
    assert statuses["left_talk"] == "COMPLETED" and statuses["step"] == "FAILED"
    nodes, _ = parse_dot(render_dot(build_graph(SHAPES, statuses)))
    assert nodes["left_talk"]["fillcolor"] == STATUS_COLOURS["COMPLETED"]
    assert nodes["step"]["fillcolor"] == STATUS_COLOURS["FAILED"]
    assert nodes["loop"]["fillcolor"] == STATUS_COLOURS["IN_PROGRESS"]
    assert "fillcolor" not in nodes["right_talk"]
    lines = render_mermaid(build_graph(SHAPES, statuses)).splitlines()
    assert "  class n10 IN_PROGRESS" in lines
    assert "  classDef FAILED fill:#f4a6a6,stroke:#555" in lines


def test_hostile_labels_stay_inside_their_quotes() -> None:
    doc: dict[str, Any] = copy.deepcopy(SHAPES)
    doc["name"] = 'evil"} digraph {'
    doc["tasks"][0]["taskReferenceName"] = 'r"o\\u\nte -->|x| <b>&'
    doc["tasks"][0]["decisionCases"] = {'a|b"]': [], "": None}
    nodes, edges = parse_dot(render_dot(build_graph(doc)))
    assert 'r\\"o\\\\u' in next(iter(k for k in nodes if k.startswith("r")))
    assert {label for _, _, label in edges} >= {'a|b\\"]', ""}
    mermaid = render_mermaid(build_graph(doc))
    node_line = next(line for line in mermaid.splitlines() if line.startswith("  n1{"))
    assert node_line.count('"') == 2 and "<b>" not in node_line and "#lt;b#gt;" in node_line
    assert "-->|a#124;b#quot;]| " in mermaid


def test_empty_and_malformed_definitions_still_render() -> None:
    for doc in (
        {"name": "empty", "tasks": []},
        {"name": "junk", "tasks": [1, None, {"type": "FORK_JOIN"}]},
    ):
        nodes, edges = parse_dot(render_dot(build_graph(doc)))
        assert "start" in nodes and "end" in nodes
        assert edges


@pytest.mark.parametrize("fmt", ["dot", "mermaid"])
def test_graph_command_reads_json_and_yaml(tmp_path: Path, fmt: str) -> None:
    import yaml

    for name, text in (("f.json", json.dumps(SHAPES)), ("f.yaml", yaml.safe_dump(SHAPES))):
        path = tmp_path / name
        path.write_text(text)
        result = subprocess.run(
            [sys.executable, "-m", "edged.cli", "graph", str(path), "--format", fmt],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        expected = (
            render_dot(build_graph(SHAPES)) if fmt == "dot" else render_mermaid(build_graph(SHAPES))
        )
        assert result.stdout == expected
    missing = subprocess.run(
        [sys.executable, "-m", "edged.cli", "graph", str(tmp_path / "f.json"), "--name", "nope"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert missing.returncode == 2 and "no workflow 'nope'" in missing.stderr


def test_inline_sub_workflow_gets_its_own_cluster() -> None:
    doc: dict[str, Any] = copy.deepcopy(SHAPES)
    inner = {"name": "inner", "tasks": [{"name": "x", "taskReferenceName": "a1", "type": "SIMPLE"}]}
    doc["tasks"][-1]["subWorkflowParam"] = {"workflowDefinition": inner}
    built = build_graph(doc, {"a1": "COMPLETED", "child": "IN_PROGRESS"})
    child = next(n for n in built.nodes if n.label.startswith("child\n"))
    assert child.label == "child\nsub-workflow: inline definition" and child.status == "IN_PROGRESS"
    (inner_node,) = [n for n in built.nodes if n.label == "a1\nx"]
    assert inner_node.status is None, "the child's a1 is not the parent's a1"
    assert (f"sub_{child.id}", "sub-workflow inner (inline)", [inner_node.id]) in built.clusters
    assert (child.id, inner_node.id, None, True) in built.edges
    _, edges = parse_dot(render_dot(built))
    assert ("child", "end", None) in edges  # the parent goes on after the child
    mermaid = render_mermaid(built).splitlines()
    assert f"  {child.id} -.-> {inner_node.id}" in mermaid
