"""Hypothesis strategies for small Conductor workflow definitions.

Theory of operation: a definition is drawn as a *shape* (a tree of node kinds)
and then turned into a WorkflowDef with fresh, unique task reference names, so
every drawn definition passes validation.  The grammar covers the constructs
the decider owns (SUB_WORKFLOW is left to the runtime tests):

    list   := node+
    node   := SIMPLE | WAIT | SET_VARIABLE | INLINE | TERMINATE
            | SWITCH(value-param) {case: list} default: list
            | FORK_JOIN [list, list...] followed by its JOIN
            | DO_WHILE(list) with a loopCondition on the iteration, or `items`

DO_WHILE bodies never hold another DO_WHILE (Conductor does not nest loops).
Work tasks use a few names whose TaskDefs (drawn too) set retries, retry
logic and delays, timeouts and response timeouts; WorkflowTasks may be
optional or permissive.  Sizes stay small so each example runs in
milliseconds.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import strategies as st

from edged.runtime.registry import DefinitionRegistry

WORK_NAMES = ("w_a", "w_b", "w_c")
SWITCH_KEYS = ("x", "y")
CASE_VALUES = ("1", "2", "3")

Shape = tuple[Any, ...]


def _leaf() -> st.SearchStrategy[Shape]:
    flags = st.sampled_from(["", "", "", "optional", "permissive"])
    return st.one_of(
        st.tuples(st.just("SIMPLE"), st.sampled_from(WORK_NAMES), flags),
        st.tuples(st.just("SIMPLE"), st.sampled_from(WORK_NAMES), flags),
        st.tuples(st.just("WAIT"), st.sampled_from(["", "", "3s", "1m"])),
        st.tuples(st.just("SET_VARIABLE")),
        st.tuples(st.just("INLINE"), st.sampled_from(["value-param", "javascript"])),
        st.tuples(st.just("TERMINATE"), st.sampled_from(["COMPLETED", "FAILED", "TERMINATED"])),
    )


def _shape_list(
    inner: st.SearchStrategy[Shape], max_size: int = 3
) -> st.SearchStrategy[list[Shape]]:
    return st.lists(inner, min_size=1, max_size=max_size)


def _composite(children: st.SearchStrategy[Shape], *, loops: bool) -> st.SearchStrategy[Shape]:
    switch = st.tuples(
        st.just("SWITCH"),
        st.sampled_from(SWITCH_KEYS),
        st.dictionaries(
            st.sampled_from(CASE_VALUES), _shape_list(children, 2), min_size=1, max_size=2
        ),
        st.one_of(st.just([]), _shape_list(children, 2)),
    )
    fork = st.tuples(
        st.just("FORK_JOIN"), st.lists(_shape_list(children, 2), min_size=1, max_size=3)
    )
    options = [switch, fork]
    if loops:
        no_loop_body = st.recursive(_leaf(), lambda c: _composite(c, loops=False), max_leaves=3)
        loop = st.tuples(
            st.just("DO_WHILE"),
            st.sampled_from(["condition", "items"]),
            st.integers(1, 3),
            _shape_list(no_loop_body, 2),
        )
        options.append(loop)
    return st.one_of(*options)


def shapes() -> st.SearchStrategy[list[Shape]]:
    node = st.recursive(_leaf(), lambda c: _composite(c, loops=True), max_leaves=6)
    return st.lists(node, min_size=1, max_size=4)


class _Builder:
    def __init__(self) -> None:
        self.counter = itertools.count(1)

    def ref(self, prefix: str) -> str:
        return f"{prefix}{next(self.counter)}"

    def tasks(self, items: list[Shape]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for shape in items:
            out.extend(self.node(shape))
        return out

    def node(self, shape: Shape) -> list[dict[str, Any]]:
        kind = shape[0]
        if kind == "SIMPLE":
            _, name, flag = shape
            wt: dict[str, Any] = {
                "name": name,
                "taskReferenceName": self.ref("t"),
                "type": "SIMPLE",
                "inputParameters": {"x": "${workflow.input.x}"},
            }
            if flag:
                wt[flag] = True
            return [wt]
        if kind == "WAIT":
            wt = {"name": "wait", "taskReferenceName": self.ref("wait"), "type": "WAIT"}
            if shape[1]:
                wt["inputParameters"] = {"duration": shape[1]}
            return [wt]
        if kind == "SET_VARIABLE":
            ref = self.ref("setv")
            return [
                {
                    "name": ref,
                    "taskReferenceName": ref,
                    "type": "SET_VARIABLE",
                    "inputParameters": {ref: "${workflow.input.x}"},
                }
            ]
        if kind == "INLINE":
            ref = self.ref("inl")
            expression = "x" if shape[1] == "value-param" else "(function(){ return $.x + 1; })()"
            params = {"evaluatorType": shape[1], "expression": expression, "x": 1}
            return [
                {"name": ref, "taskReferenceName": ref, "type": "INLINE", "inputParameters": params}
            ]
        if kind == "TERMINATE":
            ref = self.ref("term")
            params = {"terminationStatus": shape[1], "workflowOutput": {"by": ref}}
            return [
                {
                    "name": ref,
                    "taskReferenceName": ref,
                    "type": "TERMINATE",
                    "inputParameters": params,
                }
            ]
        if kind == "SWITCH":
            _, key, cases, default = shape
            ref = self.ref("sw")
            return [
                {
                    "name": ref,
                    "taskReferenceName": ref,
                    "type": "SWITCH",
                    "evaluatorType": "value-param",
                    "expression": "v",
                    "inputParameters": {"v": f"${{workflow.input.{key}}}"},
                    "decisionCases": {value: self.tasks(body) for value, body in cases.items()},
                    "defaultCase": self.tasks(default),
                }
            ]
        if kind == "FORK_JOIN":
            ref = self.ref("fork")
            branches = [self.tasks(branch) for branch in shape[1]]
            join_ref = self.ref("join")
            join_on = [branch[-1]["taskReferenceName"] for branch in branches]
            fork = {
                "name": ref,
                "taskReferenceName": ref,
                "type": "FORK_JOIN",
                "forkTasks": branches,
            }
            join = {
                "name": join_ref,
                "taskReferenceName": join_ref,
                "type": "JOIN",
                "joinOn": join_on,
            }
            return [fork, join]
        if kind == "DO_WHILE":
            _, mode, count, body = shape
            ref = self.ref("loop")
            wt = {
                "name": ref,
                "taskReferenceName": ref,
                "type": "DO_WHILE",
                "loopOver": self.tasks(body),
            }
            if mode == "items":
                wt["inputParameters"] = {"items": list(range(count))}
            else:
                wt["inputParameters"] = {"limit": count}
                wt["loopCondition"] = (
                    f"if ($.{ref}['iteration'] < $.limit) {{ true; }} else {{ false; }}"
                )
            return [wt]
        raise AssertionError(f"unknown shape {kind}")


def build_definition(items: list[Shape], *, timeout_s: int = 0) -> dict[str, Any]:
    tasks = _Builder().tasks(items)
    doc: dict[str, Any] = {
        "name": "prop",
        "version": 1,
        "schemaVersion": 2,
        "tasks": tasks,
        "outputParameters": {"x": "${workflow.input.x}"},
    }
    if timeout_s:
        doc["timeoutSeconds"] = timeout_s
        doc["timeoutPolicy"] = "TIME_OUT_WF"
    return DefinitionRegistry.check_workflow(doc)


def taskdefs() -> st.SearchStrategy[dict[str, dict[str, Any]]]:
    one = st.fixed_dictionaries(
        {
            "retryCount": st.integers(0, 2),
            "retryLogic": st.sampled_from(["FIXED", "LINEAR_BACKOFF", "EXPONENTIAL_BACKOFF"]),
            "retryDelaySeconds": st.sampled_from([0, 0, 1, 5]),
            "backoffScaleFactor": st.integers(1, 3),
            "timeoutSeconds": st.sampled_from([0, 0, 30]),  # responseTimeout is capped below
            "timeoutPolicy": st.sampled_from(["RETRY", "TIME_OUT_WF", "ALERT_ONLY"]),
            "responseTimeoutSeconds": st.sampled_from([10, 3600]),
            "pollTimeoutSeconds": st.sampled_from([None, None, 15]),
        }
    )
    return st.fixed_dictionaries(
        {name: one.map(lambda d, n=name: _taskdef(n, d)) for name in WORK_NAMES}
    )


def _taskdef(name: str, fields: dict[str, Any]) -> dict[str, Any]:
    if fields["timeoutSeconds"]:
        # Conductor refuses responseTimeoutSeconds above timeoutSeconds
        fields = {**fields, "responseTimeoutSeconds": min(fields["responseTimeoutSeconds"], 20)}
    return DefinitionRegistry.check_taskdef({"name": name, **fields})


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    return build_definition(draw(shapes()), timeout_s=draw(st.sampled_from([0, 0, 0, 120])))


def workflow_inputs() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"x": st.integers(0, 3), "y": st.sampled_from((*CASE_VALUES, "none"))}
    ).map(lambda d: {"x": d["x"], "y": d["y"]})
