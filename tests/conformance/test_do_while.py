"""DoWhileSpec ported: loops with forks, sub-workflows, system tasks, retries,
iteration visibility, SET_VARIABLE in the body and many iterations.

Every test starts the fixture's workflow, plays the worker and checks the task
list as the spec does: (taskType, status) in order, and `iteration` where the
spec asserts it.
"""

from __future__ import annotations

import time
from typing import Any

import trio
from harness import Conductor

Json = dict[str, Any]

FILES = (
    "do_while_integration_test.json",
    "do_while_as_subtask_integration_test.json",
    "simple_one_task_sub_workflow_integration_test.json",
    "do_while_iteration_fix_test.json",
    "do_while_sub_workflow_integration_test.json",
    "do_while_five_loop_over_integration_test.json",
    "do_while_system_tasks.json",
    "do_while_set_variable_fix.json",
    "do_while_high_iteration_test.json",
)


def kinds(wf: Json) -> list[tuple[str, str]]:
    return [(t["taskType"], t["status"]) for t in wf["tasks"]]


def iterations(wf: Json) -> list[int]:
    return [int(t["iteration"]) for t in wf["tasks"]]


LOOP_FORK_OPEN = [
    ("DO_WHILE", "IN_PROGRESS"),
    ("integration_task_0", "COMPLETED"),
    ("FORK", "COMPLETED"),
    ("integration_task_1", "SCHEDULED"),
    ("integration_task_2", "SCHEDULED"),
    ("JOIN", "IN_PROGRESS"),
]


async def test_single_iteration_with_a_fork(conductor: Conductor) -> None:
    c = conductor
    c.register(*FILES)
    with trio.fail_after(20):
        wf_id = await c.start("Do_While_Workflow", {"loop": 1})
        wf = await c.workflow(wf_id)
        assert kinds(wf) == [("DO_WHILE", "IN_PROGRESS"), ("integration_task_0", "SCHEDULED")]
        await c.complete(wf_id, "integration_task_0__1")
        assert kinds(await c.workflow(wf_id)) == LOOP_FORK_OPEN
        await c.complete(wf_id, "integration_task_1__1")
        await c.complete(wf_id, "integration_task_2__1")
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert kinds(wf) == [
            ("DO_WHILE", "COMPLETED"),
            ("integration_task_0", "COMPLETED"),
            ("FORK", "COMPLETED"),
            ("integration_task_1", "COMPLETED"),
            ("integration_task_2", "COMPLETED"),
            ("JOIN", "COMPLETED"),
        ]
        assert iterations(wf)[1:] == [1] * 5
        assert all(t["referenceTaskName"].endswith("__1") for t in wf["tasks"][1:])
        assert wf["tasks"][0]["iteration"] == 1


async def test_sub_workflow_in_the_loop(conductor: Conductor) -> None:
    c = conductor
    c.register(*FILES)
    with trio.fail_after(20):
        wf_id = await c.start("Do_While_Sub_Workflow", {"loop": 1})
        await c.complete(wf_id, "integration_task_0__1")
        await c.complete(wf_id, "integration_task_1__1")
        await c.complete(wf_id, "integration_task_2__1")
        wf = await c.workflow(wf_id)
        # Conductor shows SCHEDULED until its async system-task worker runs
        # the SUB_WORKFLOW; edged starts the child at once (README).
        assert kinds(wf) == [
            ("DO_WHILE", "IN_PROGRESS"),
            ("integration_task_0", "COMPLETED"),
            ("FORK", "COMPLETED"),
            ("integration_task_1", "COMPLETED"),
            ("integration_task_2", "COMPLETED"),
            ("JOIN", "COMPLETED"),
            ("SUB_WORKFLOW", "IN_PROGRESS"),
        ]
        sub = wf["tasks"][6]
        assert sub["referenceTaskName"] == "st1__1"
        child_id = sub["subWorkflowId"]
        child = await c.workflow(child_id)
        assert child["status"] == "RUNNING"
        assert kinds(child) == [("simple_task_in_sub_wf", "SCHEDULED")]
        await c.complete(child_id, "t1")
        assert (await c.workflow(child_id))["status"] == "COMPLETED"
        wf = await c.wait_status(wf_id, "COMPLETED")
        assert kinds(wf)[0] == ("DO_WHILE", "COMPLETED")
        assert kinds(wf)[6] == ("SUB_WORKFLOW", "COMPLETED")


async def test_two_iterations_of_five_tasks(conductor: Conductor) -> None:
    c = conductor
    c.register(*FILES)
    with trio.fail_after(20):
        wf_id = await c.start("do_while_five_loop_over_integration_test", {"loop": 2})
        wf = await c.workflow(wf_id)
        assert kinds(wf) == [
            ("DO_WHILE", "IN_PROGRESS"),
            ("LAMBDA", "COMPLETED"),
            ("JSON_JQ_TRANSFORM", "COMPLETED"),
            ("integration_task_1", "SCHEDULED"),
        ]
        assert iterations(wf)[1:] == [1, 1, 1]
        await c.complete(wf_id, "integration_task_1__1")
        wf = await c.workflow(wf_id)
        assert kinds(wf)[3:] == [
            ("integration_task_1", "COMPLETED"),
            ("JSON_JQ_TRANSFORM", "COMPLETED"),
            ("integration_task_2", "SCHEDULED"),
        ]
        await c.complete(wf_id, "integration_task_2__1")
        wf = await c.workflow(wf_id)
        assert len(wf["tasks"]) == 9
        assert kinds(wf)[6:] == [
            ("LAMBDA", "COMPLETED"),
            ("JSON_JQ_TRANSFORM", "COMPLETED"),
            ("integration_task_1", "SCHEDULED"),
        ]
        assert iterations(wf)[6:] == [2, 2, 2]
        # the JQ task saw the LAMBDA of its own iteration
        assert wf["tasks"][7]["outputData"]["result"] == {"out": {"locationId": "some location id"}}
        await c.complete(wf_id, "integration_task_1__2")
        await c.complete(wf_id, "integration_task_2__2")
        wf = await c.workflow(wf_id)
        assert wf["status"] == "RUNNING"
        assert len(wf["tasks"]) == 12
        assert kinds(wf)[0] == ("DO_WHILE", "COMPLETED")
        assert kinds(wf)[11] == ("integration_task_3", "SCHEDULED")
        assert iterations(wf)[6:] == [2, 2, 2, 2, 2, 0]
        await c.complete(wf_id, "integration_task_3")
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert len(wf["tasks"]) == 12


async def test_two_iterations_of_system_tasks_finish_in_one_go(conductor: Conductor) -> None:
    c = conductor
    c.register(*FILES)
    with trio.fail_after(20):
        wf_id = await c.start("do_while_system_tasks", {"loop": 2})
        wf = await c.workflow(wf_id)
        assert wf["status"] == "RUNNING"
        assert kinds(wf) == [
            ("DO_WHILE", "COMPLETED"),
            ("LAMBDA", "COMPLETED"),
            ("JSON_JQ_TRANSFORM", "COMPLETED"),
            ("JSON_JQ_TRANSFORM", "COMPLETED"),
            ("LAMBDA", "COMPLETED"),
            ("JSON_JQ_TRANSFORM", "COMPLETED"),
            ("JSON_JQ_TRANSFORM", "COMPLETED"),
            ("integration_task_1", "SCHEDULED"),
        ]
        assert iterations(wf)[1:] == [1, 1, 1, 2, 2, 2, 0]
        await c.complete(wf_id, "integration_task_1")
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert len(wf["tasks"]) == 8


async def test_failed_task_in_the_loop_then_workflow_retry(conductor: Conductor) -> None:
    c = conductor
    c.register(*FILES)
    c.taskdef("integration_task_0", retryCount=0)
    with trio.fail_after(20):
        wf_id = await c.start("Do_While_Workflow", {"loop": 1})
        await c.fail(wf_id, "integration_task_0__1", "induced..failure")
        wf = await c.workflow(wf_id)
        assert wf["status"] == "FAILED"
        assert kinds(wf) == [("DO_WHILE", "CANCELED"), ("integration_task_0", "FAILED")]
        await c.admin("retry", wf_id, resume_subworkflow_tasks=False)
        wf = await c.workflow(wf_id)
        assert wf["status"] == "RUNNING"
        assert kinds(wf) == [
            ("DO_WHILE", "IN_PROGRESS"),
            ("integration_task_0", "FAILED"),
            ("integration_task_0", "SCHEDULED"),
        ]
        await c.complete(wf_id, "integration_task_0__1")
        await c.complete(wf_id, "integration_task_1__1")
        await c.complete(wf_id, "integration_task_2__1")
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert kinds(wf)[:3] == [
            ("DO_WHILE", "COMPLETED"),
            ("integration_task_0", "FAILED"),
            ("integration_task_0", "COMPLETED"),
        ]
        assert len(wf["tasks"]) == 7


async def test_failed_task_in_the_loop_is_retried_automatically(conductor: Conductor) -> None:
    c = conductor
    c.register(*FILES)
    c.taskdef("integration_task_0", retryCount=1, retryDelaySeconds=0)
    with trio.fail_after(20):
        wf_id = await c.start("Do_While_Workflow", {"loop": 1})
        await c.fail(wf_id, "integration_task_0__1", "induced..failure")
        wf = await c.workflow(wf_id)
        assert wf["status"] == "RUNNING"
        assert kinds(wf) == [
            ("DO_WHILE", "IN_PROGRESS"),
            ("integration_task_0", "FAILED"),
            ("integration_task_0", "SCHEDULED"),
        ]
        failed, again = wf["tasks"][1], wf["tasks"][2]
        assert failed["retried"] is True
        assert again["retryCount"] == 1
        assert again["retriedTaskId"] == failed["taskId"]
        assert again["iteration"] == 1
        await c.complete(wf_id, "integration_task_0__1")
        await c.complete(wf_id, "integration_task_1__1")
        await c.complete(wf_id, "integration_task_2__1")
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert len(wf["tasks"]) == 7


async def test_loop_as_a_fork_branch(conductor: Conductor) -> None:
    c = conductor
    c.register(*FILES)
    with trio.fail_after(20):
        wf_id = await c.start("Do_While_SubTask", {"loop": 1})
        wf = await c.workflow(wf_id)
        # Conductor lists the JOIN before the loop body (the body is scheduled
        # by the DO_WHILE's own execution afterwards); edged walks the branch
        # first, so the body's first task precedes the other branch.
        assert sorted(kinds(wf)) == sorted(
            [
                ("FORK", "COMPLETED"),
                ("DO_WHILE", "IN_PROGRESS"),
                ("integration_task_2", "SCHEDULED"),
                ("JOIN", "IN_PROGRESS"),
                ("integration_task_0", "SCHEDULED"),
            ]
        )
        await c.complete(wf_id, "integration_task_0__1")
        await c.complete(wf_id, "integration_task_1__1")
        wf = await c.workflow(wf_id)
        by_ref = {t["referenceTaskName"]: t["status"] for t in wf["tasks"]}
        assert by_ref["loopTask"] == "COMPLETED"
        assert by_ref["join"] == "IN_PROGRESS"
        await c.complete(wf_id, "integration_task_2")
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert len(wf["tasks"]) == 6


async def test_iteration_is_visible_to_scripts_in_the_body(conductor: Conductor) -> None:
    c = conductor
    c.register(*FILES)
    with trio.fail_after(20):
        wf_id = await c.start("Do_While_Workflow_Iteration_Fix", {"loop": 2})
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert kinds(wf) == [
            ("DO_WHILE", "COMPLETED"),
            ("LAMBDA", "COMPLETED"),
            ("LAMBDA", "COMPLETED"),
        ]
        assert [t["outputData"]["result"] for t in wf["tasks"][1:]] == [0, 1]


async def test_set_variable_in_the_body_ends_the_loop(conductor: Conductor) -> None:
    c = conductor
    c.register(*FILES)
    with trio.fail_after(20):
        wf_id = await c.start("do_while_Set_variable_fix", {"value": 2})
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert kinds(wf) == [("DO_WHILE", "COMPLETED"), ("SET_VARIABLE", "COMPLETED")]
        assert wf["tasks"][1]["inputData"]["value"] == "0"


async def test_many_iterations_finish_quickly(conductor: Conductor) -> None:
    c = conductor
    c.register(*FILES)
    loops = 1000
    with trio.fail_after(30):
        began = time.monotonic()
        wf_id = await c.start("do_while_high_iteration_test", {"loop": loops})
        wf = await c.wait_status(wf_id, "COMPLETED")
        elapsed_s = time.monotonic() - began
        assert len(wf["tasks"]) == loops + 1
        assert wf["tasks"][0]["outputData"]["iteration"] == loops
        assert wf["tasks"][0]["iteration"] == loops
        assert wf["tasks"][-1]["iteration"] == loops
        assert wf["tasks"][-1]["referenceTaskName"] == f"lambda_task__{loops}"
        # Conductor's regression bar is "no StackOverflowError"; ours is time
        assert elapsed_s < 15, elapsed_s
