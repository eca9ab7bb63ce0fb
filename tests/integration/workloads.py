"""Definitions of the crash-test workload and the outputs they must produce.

`mixed` exercises every durable path at once: a FORK_JOIN whose branches run
a sync handler and a flaky one (fails attempt 0, retried), a DO_WHILE of `k`
iterations around a sync and an async handler, a short WAIT, and a
SUB_WORKFLOW whose child runs an async handler and a WAIT of its own.
`expected_output(n, k)` computes from the input alone what a correct run
returns, so a step applied twice or lost shows up as a wrong number.
"""

from __future__ import annotations

from typing import Any


def simple(name: str, ref: str, **params: Any) -> dict[str, Any]:
    return {"name": name, "taskReferenceName": ref, "type": "SIMPLE", "inputParameters": params}


def wait(ref: str, duration: str) -> dict[str, Any]:
    return {
        "name": "wait",
        "taskReferenceName": ref,
        "type": "WAIT",
        "inputParameters": {"duration": duration},
    }


CHILD: dict[str, Any] = {
    "name": "it_child",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [
        simple("it_square", "csq", x="${workflow.input.x}"),
        wait("cwait", "1 seconds"),
        simple("it_add", "cadd", a="${csq.output.sq}", b=1),
    ],
    "outputParameters": {"sq_plus_1": "${cadd.output.sum}"},
}

MIXED: dict[str, Any] = {
    "name": "it_mixed",
    "version": 1,
    "schemaVersion": 2,
    "inputParameters": ["n", "k"],
    "tasks": [
        {
            "name": "fork",
            "taskReferenceName": "fork",
            "type": "FORK_JOIN",
            "forkTasks": [
                [simple("it_add", "add1", a="${workflow.input.n}", b=1)],
                [simple("it_flaky", "flaky1", x="${workflow.input.n}")],
                [simple("it_square", "sq1", x="${workflow.input.n}")],
            ],
        },
        {
            "name": "join",
            "taskReferenceName": "join",
            "type": "JOIN",
            "joinOn": ["add1", "flaky1", "sq1"],
        },
        {
            "name": "loop",
            "taskReferenceName": "loop",
            "type": "DO_WHILE",
            "inputParameters": {"k": "${workflow.input.k}"},
            "loopCondition": "if ($.loop['iteration'] < $.k) { true; } else { false; }",
            "loopOver": [
                simple("it_add", "ladd", a="${loop.output.iteration}", b="${workflow.input.n}"),
                simple("it_square", "lsq", x="${ladd.output.sum}"),
            ],
        },
        wait("pause", "1 seconds"),
        {
            "name": "child",
            "taskReferenceName": "child",
            "type": "SUB_WORKFLOW",
            "inputParameters": {"x": "${add1.output.sum}"},
            "subWorkflowParam": {"name": "it_child", "version": 1},
        },
        simple("it_flaky", "flaky2", x="${child.output.sq_plus_1}"),
    ],
    "outputParameters": {
        "add": "${add1.output.sum}",
        "flaky": "${flaky1.output.v}",
        "square": "${sq1.output.sq}",
        "iterations": "${loop.output.iteration}",
        "last_square": "${lsq.output.sq}",
        "child": "${child.output.sq_plus_1}",
        "final": "${flaky2.output.v}",
    },
}

TASKDEFS: list[dict[str, Any]] = [
    {"name": "it_add", "retryCount": 0, "responseTimeoutSeconds": 60, "timeoutSeconds": 0},
    {"name": "it_square", "retryCount": 0, "responseTimeoutSeconds": 60, "timeoutSeconds": 0},
    {
        "name": "it_flaky",
        "retryCount": 2,
        "retryLogic": "FIXED",
        "retryDelaySeconds": 0,
        "responseTimeoutSeconds": 60,
        "timeoutSeconds": 0,
    },
    {"name": "it_slow", "retryCount": 0, "responseTimeoutSeconds": 60, "timeoutSeconds": 0},
]


def expected_output(n: int, k: int) -> dict[str, Any]:
    child = (n + 1) ** 2 + 1
    return {
        "add": n + 1,
        "flaky": n * 10,
        "square": n * n,
        "iterations": k,
        "last_square": (k + n) ** 2,
        "child": child,
        "final": child * 10,
    }


def expected_refs(k: int) -> dict[str, int]:
    """Each ref of a finished `mixed` execution and how many COMPLETED tasks carry it."""
    refs = {
        "fork": 1,
        "join": 1,
        "add1": 1,
        "flaky1": 1,
        "sq1": 1,
        "loop": 1,
        "pause": 1,
        "child": 1,
        "flaky2": 1,
    }
    for i in range(1, k + 1):
        refs[f"ladd__{i}"] = 1
        refs[f"lsq__{i}"] = 1
    return refs
