"""A real `edged run` for the CLI and stream tests (tests/cli, tests/api/test_streams.py).

Reuses tests/integration's `Daemon` (tests/integration/daemon_harness.py) with the handlers of
`watch_handlers.py` and the definitions in `WORKFLOWS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tests.integration.daemon_harness as it

HERE = Path(__file__).resolve().parent


Daemon = it.Daemon


def talk(ref: str, lines: list[str] | None = None, ms: int | str = 0) -> dict[str, Any]:
    return {
        "name": "cli_talk",
        "taskReferenceName": ref,
        "type": "SIMPLE",
        "inputParameters": {"lines": lines or [], "ms": ms},
    }


WORKFLOWS: list[dict[str, Any]] = [
    {
        "name": "talker",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            talk("first", ["hello from first", "second line"]),
            talk("second", ["${workflow.input.word}"], "${workflow.input.ms}"),
        ],
    },
    {
        "name": "failer",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            talk("before", ["about to fail"]),
            {
                "name": "cli_fail",
                "taskReferenceName": "boom",
                "type": "SIMPLE",
                "inputParameters": {"reason": "${workflow.input.reason}"},
            },
        ],
    },
    {
        "name": "waiter",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {"name": "wait", "taskReferenceName": "gate", "type": "WAIT"},
            talk("after", ["${gate.output.note}"]),
        ],
    },
]


SHAPES: dict[str, Any] = {
    "name": "shapes",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [
        {
            "name": "route",
            "taskReferenceName": "route",
            "type": "SWITCH",
            "evaluatorType": "value-param",
            "expression": "switchCaseValue",
            "inputParameters": {"switchCaseValue": "${workflow.input.path}"},
            "decisionCases": {
                "left": [talk("left_talk", ["went left"])],
                "right": [talk("right_talk")],
                "stop": [
                    {
                        "name": "halt",
                        "taskReferenceName": "halt",
                        "type": "TERMINATE",
                        "inputParameters": {"terminationStatus": "COMPLETED"},
                    }
                ],
            },
            "defaultCase": [],
        },
        {
            "name": "fan",
            "taskReferenceName": "fan",
            "type": "FORK_JOIN",
            "forkTasks": [[talk("a1"), talk("a2")], [talk("b1")]],
        },
        {
            "name": "fan_join",
            "taskReferenceName": "fan_join",
            "type": "JOIN",
            "joinOn": ["a2", "b1"],
        },
        {
            "name": "loop",
            "taskReferenceName": "loop",
            "type": "DO_WHILE",
            "loopCondition": "if ($.loop['iteration'] < 2) { true; } else { false; }",
            "loopOver": [talk("step")],
        },
        {
            "name": "child",
            "taskReferenceName": "child",
            "type": "SUB_WORKFLOW",
            "subWorkflowParam": {"name": "talker", "version": 1},
            "inputParameters": {"word": "from the parent", "ms": 0},
        },
    ],
}
WORKFLOWS.append(SHAPES)


def make_daemon(tmp_path: Path, **config: Any) -> Any:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    d = Daemon(
        data_dir=data,
        defs_dir=it.write_defs(tmp_path / "defs", *WORKFLOWS),
        config=it.handler_config(
            tmp_path / "edged.yaml",
            python={"paths": [str(HERE)], "modules": ["watch_handlers"]},
            **config,
        ),
    )
    d.start()
    return d
