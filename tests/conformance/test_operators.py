"""LambdaAndTerminateTaskSpec, SetVariableTaskSpec, WaitTaskSpec and DoWhileSpec, ported
(the parts the time allowed; see README.md for what is not ported yet).
"""

from __future__ import annotations

import trio
from harness import Conductor


async def test_decision_then_terminate_fails_with_output(conductor: Conductor) -> None:
    c = conductor
    c.register("decision_and_terminate_integration_test.json")
    with trio.fail_after(20):
        wf_id = await c.start(
            "ConditionalTerminateWorkflow", {"param1": "p1", "param2": "p2", "case": "two"}
        )
        await c.complete(wf_id, "t1", {"op": "task1.done"})
        wf = await c.workflow(wf_id)
        assert wf["status"] == "FAILED"
        assert [(t["taskType"], t["status"]) for t in wf["tasks"]] == [
            ("integration_task_1", "COMPLETED"),
            ("DECISION", "COMPLETED"),
            ("TERMINATE", "COMPLETED"),
        ]
        assert wf["output"] == {"output": "task1.done"}


async def test_lambda_then_terminate_completes_early(conductor: Conductor) -> None:
    c = conductor
    c.register(
        "terminate_task_completed_workflow_integration_test.json",
        "failure_workflow_for_terminate_task_workflow.json",
    )
    with trio.fail_after(20):
        wf_id = await c.start("test_terminate_task_wf", {"a": 1})
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert [(t["taskType"], t["status"]) for t in wf["tasks"]] == [
            ("LAMBDA", "COMPLETED"),
            ("TERMINATE", "COMPLETED"),
        ]
        assert wf["tasks"][0]["outputData"] == {"result": {"testvalue": True}}
        assert wf["output"] == {"result": {"testvalue": True}}


async def test_set_variable(conductor: Conductor) -> None:
    c = conductor
    c.register("simple_set_variable_workflow_integration_test.json")
    with trio.fail_after(20):
        wf_id = await c.start("test_set_variable_wf", {"var": "var_test_value"})
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert wf["variables"] == {"var": "var_test_value"}
        assert wf["output"] == {"variables": {"var": "var_test_value"}}


async def test_wait_completes_on_signal(conductor: Conductor) -> None:
    c = conductor
    c.register("wait_workflow_integration_test.json")
    with trio.fail_after(20):
        wf_id = await c.start("test_wait_workflow", {})
        assert await c.shape(wf_id) == [("WAIT", "wait0", "IN_PROGRESS")]
        await c.admin("signal", wf_id, "COMPLETED", {"ok": True})
        shape = await c.shape(wf_id)
        assert shape == [("WAIT", "wait0", "COMPLETED"), ("integration_task_1", "t1", "SCHEDULED")]
        await c.complete(wf_id, "t1")
        assert await c.status(wf_id) == "COMPLETED"


async def test_two_do_whiles_with_a_fork_inside(conductor: Conductor) -> None:
    c = conductor
    c.register("do_while_multiple_integration_test.json")
    with trio.fail_after(20):
        wf_id = await c.start("Do_While_Multiple", {"loop": 2, "loop2": 1})
        shape = await c.shape(wf_id)
        assert shape == [
            ("DO_WHILE", "loopTask", "IN_PROGRESS"),
            ("integration_task_0", "integration_task_0__1", "SCHEDULED"),
        ]
        for i in (1, 2):
            await c.complete(wf_id, f"integration_task_0__{i}")
            await c.complete(wf_id, f"integration_task_1__{i}")
            await c.complete(wf_id, f"integration_task_2__{i}")
        tasks = await c.tasks(wf_id)
        loop = tasks[0]
        assert loop["status"] == "COMPLETED"
        assert loop["outputData"]["iteration"] == 2
        assert [(t["referenceTaskName"], t["status"]) for t in tasks[1:7]] == [
            ("integration_task_0__1", "COMPLETED"),
            ("fork__1", "COMPLETED"),
            ("integration_task_1__1", "COMPLETED"),
            ("integration_task_2__1", "COMPLETED"),
            ("join__1", "COMPLETED"),
            ("integration_task_0__2", "COMPLETED"),
        ]
        assert [t["iteration"] for t in tasks[1:6]] == [1] * 5
        second = next(t for t in tasks if t["referenceTaskName"] == "loopTask2")
        assert second["status"] == "IN_PROGRESS"
        await c.complete(wf_id, "integration_task_3__1")
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert wf["tasks"][-2]["outputData"]["iteration"] == 1
