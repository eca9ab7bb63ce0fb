"""e2e SubWorkflowTimeoutRetryTests, WorkflowRerunTests (switch_rerun_issue*), DynamicForkTests.

- A parent with a 5 s TIME_OUT_WF workflow timeout times out while its child
  runs: the SUB_WORKFLOW task is CANCELED, the child TERMINATED; retrying the
  child (retryLastFailedTask) reopens it with its CANCELED task followed by
  a new SCHEDULED copy.
- Rerunning from a SWITCH re-evaluates it against the new workflow input and
  the newly chosen case reads outputs of tasks before the rerun point
  (switch_rerun_issue, and inside a DO_WHILE for switch_rerun_issue_2).
- Dynamic forks from an INLINE's output: optional branches, a JOIN with a
  script expression, and `${CPEWF_TASK_ID}` resolved in a forked task's input.
"""

from __future__ import annotations

from typing import Any

import trio
from harness import Conductor

E2E = "e2e/"


async def test_sub_workflow_timeout_then_retry_child(conductor: Conductor) -> None:
    c = conductor
    c.register(E2E + "sub_workflow_tests.json")
    with trio.fail_after(20):
        parent = await c.start(
            "integration_test_wf_with_sub_wf",
            {"param1": "p1 value", "subwf": "sub_workflow"},
            correlationId="wf_with_subwf_test_1",
        )
        await c.complete(parent, "t1")
        tasks = await c.tasks(parent)
        assert [(t["taskType"], t["status"]) for t in tasks] == [
            ("integration_task_1", "COMPLETED"),
            ("SUB_WORKFLOW", "IN_PROGRESS"),
        ]
        child = tasks[1]["subWorkflowId"]
        assert await c.status(child) == "RUNNING"

        await c.advance(7)  # > the parent's 5 s timeoutSeconds
        wf = await c.wait_status(parent, "TIMED_OUT")
        assert [t["status"] for t in wf["tasks"]] == ["COMPLETED", "CANCELED"]
        assert await c.status(child) == "TERMINATED"

        await c.admin("retry", child, resume_subworkflow_tasks=False)
        wf = await c.workflow(child)
        assert wf["status"] == "RUNNING"
        assert [(t["referenceTaskName"], t["status"]) for t in wf["tasks"]] == [
            ("t1", "CANCELED"),
            ("t1", "SCHEDULED"),
        ]
        assert wf["tasks"][1]["retriedTaskId"] == wf["tasks"][0]["taskId"]


def _by_ref(tasks: list[dict[str, Any]], ref: str) -> list[dict[str, Any]]:
    return [t for t in tasks if t["referenceTaskName"] == ref]


async def test_rerun_from_switch_takes_the_new_case(conductor: Conductor) -> None:
    c = conductor
    c.register(E2E + "switch_rerun_issue.json")
    with trio.fail_after(20):
        wf_id = await c.start("switch_rerun_issue", {"case": "no"})
        assert [s for _, _, s in await c.shape(wf_id)] == ["COMPLETED", "IN_PROGRESS"]
        await c.advance(3)
        wf = await c.wait_status(wf_id, "COMPLETED")
        assert [t["referenceTaskName"] for t in wf["tasks"]] == [
            "inline_ref_1",
            "wait_ref",
            "switch_ref",
        ]
        stamp = wf["tasks"][0]["outputData"]["result"]
        switch = wf["tasks"][2]
        assert switch["outputData"]["evaluationResult"] == ["no"]

        await c.admin(
            "rerun",
            wf_id,
            {"reRunFromTaskId": switch["taskId"], "workflowInput": {"case": "yes"}},
        )
        wf = await c.wait_status(wf_id, "COMPLETED")
        assert [(t["referenceTaskName"], t["status"]) for t in wf["tasks"]] == [
            ("inline_ref_1", "COMPLETED"),
            ("wait_ref", "COMPLETED"),
            ("switch_ref", "COMPLETED"),
            ("inline_ref_2", "COMPLETED"),
        ]
        assert wf["tasks"][0]["outputData"]["result"] == stamp  # not re-executed
        assert wf["tasks"][2]["outputData"]["evaluationResult"] == ["yes"]
        assert wf["tasks"][3]["outputData"]["result"] == stamp


async def test_rerun_from_nested_switch_in_do_while(conductor: Conductor) -> None:
    c = conductor
    c.register(E2E + "switch_rerun_issue_2.json")
    with trio.fail_after(30):
        wf_id = await c.start("switch_rerun_issue_2", {"case": "no"})
        for _ in range(3):
            await c.advance(2)
        wf = await c.wait_status(wf_id, "COMPLETED")
        assert wf["tasks"][0]["outputData"]["iteration"] == 3
        switches = _by_ref(wf["tasks"], "switch_ref__3")
        assert [t["outputData"]["evaluationResult"] for t in switches] == [["no"]]
        assert not _by_ref(wf["tasks"], "inline_ref_3__3")

        await c.admin(
            "rerun",
            wf_id,
            {"reRunFromTaskId": switches[0]["taskId"], "workflowInput": {"case": "yes"}},
        )
        wf = await c.wait_status(wf_id, "COMPLETED")
        stamp = _by_ref(wf["tasks"], "inline_ref_1__3")[0]["outputData"]["result"]
        for ref in ("inline_ref_2__3", "inline_ref_3__3"):
            (task,) = _by_ref(wf["tasks"], ref)
            assert task["status"] == "COMPLETED"
            assert task["outputData"]["result"] == stamp
        assert _by_ref(wf["tasks"], "switch_ref_1__3")[0]["status"] == "COMPLETED"
        assert not _by_ref(wf["tasks"], "inline_ref_2__1")  # earlier iterations untouched


async def test_dynamic_fork_of_optional_tasks(conductor: Conductor) -> None:
    c = conductor
    c.register(E2E + "dyn_fork_test.json")
    with trio.fail_after(20):
        wf_id = await c.start("dyn_fork_test")
        shape = await c.shape(wf_id)
        assert shape == [
            ("INLINE", "inline_ref", "COMPLETED"),
            ("FORK", "dyn_fork_ref", "COMPLETED"),
            ("simple_1", "simple_1", "SCHEDULED"),
            ("simple_2", "simple_2", "SCHEDULED"),
            ("simple_3", "simple_3", "SCHEDULED"),
            ("JOIN", "join_1", "IN_PROGRESS"),
        ]
        # No task def: Conductor's default (retryCount 3) retries the failure first,
        # as testTaskDynamicForkOptional shows (FAILED, then a SCHEDULED copy).
        await c.fail(wf_id, "simple_2", "first attempt")
        shape = await c.shape(wf_id)
        assert shape[3] == ("simple_2", "simple_2", "FAILED")
        assert shape[5:] == [
            ("JOIN", "join_1", "IN_PROGRESS"),
            ("simple_2", "simple_2", "SCHEDULED"),
        ]
        assert await c.status(wf_id) == "RUNNING"
        for ref in ("simple_1", "simple_2", "simple_3"):
            await c.complete(wf_id, ref)
        wf = await c.wait_status(wf_id, "COMPLETED")
        assert [t["status"] for t in wf["tasks"]] == ["COMPLETED"] * 3 + ["FAILED"] + [
            "COMPLETED"
        ] * 3


async def test_dynamic_fork_task_sees_its_own_task_id(conductor: Conductor) -> None:
    c = conductor
    c.register(E2E + "cpewf_task_id_dyn_fork_wf.json")
    c.register(overrides=[_e2e_taskdef("cpewf_task_id_dyn_fork_task_def.json")])
    with trio.fail_after(20):
        wf_id = await c.start("mailbot_workflow")
        task = await c.pending_task(wf_id, "fail_on_purpose_ref")
        assert task["inputData"]["task_id"] == task["taskId"]
        await c.fail(wf_id, "fail_on_purpose_ref")
        await c.advance(1)  # retryDelaySeconds 1
        retried = await c.pending_task(wf_id, "fail_on_purpose_ref")
        assert retried["taskId"] != task["taskId"]
        assert retried["inputData"]["task_id"] == retried["taskId"]
        assert retried["retryCount"] == 1
        await c.fail(wf_id, "fail_on_purpose_ref")
        await c.advance(1)
        await c.fail(wf_id, "fail_on_purpose_ref")  # retryCount 2: the third failure ends it
        wf = await c.wait_status(wf_id, "FAILED")
        attempts = [t for t in wf["tasks"] if t["taskDefName"] == "fail_on_purpose"]
        assert len(attempts) == 3
        assert all(t["inputData"]["task_id"] == t["taskId"] for t in attempts)


def _e2e_taskdef(name: str) -> dict[str, Any]:
    import json

    from harness import FIXTURES

    doc: dict[str, Any] = json.loads((FIXTURES / "e2e" / name).read_text())
    return doc


# ------------------------------------ DynamicForkTests' own workflow (Java-built)


def _fan_in_out(c: Conductor) -> None:
    """DynamicForkTests.registerWorkflowDef: dt1 hands the fork its tasks and inputs."""
    c.register(
        overrides=[
            {"name": n, "ownerEmail": "test@orkes.io"}
            for n in ("dt1", "dt2", "integration_task_2", "integration_task_3")
        ]
    )
    from edged.runtime.registry import DefinitionRegistry

    wf = {
        "name": "DynamicFanInOutTest",
        "version": 1,
        "ownerEmail": "test@orkes.io",
        "timeoutSeconds": 600,
        "timeoutPolicy": "TIME_OUT_WF",
        "inputParameters": ["value", "inlineValue"],
        "tasks": [
            {"name": "dt1", "taskReferenceName": "dt1", "type": "SIMPLE"},
            {
                "name": "dynamicFork",
                "taskReferenceName": "dynamicFork",
                "type": "FORK_JOIN_DYNAMIC",
                "inputParameters": {
                    "dynamicTasks": "${dt1.output.dynamicTasks}",
                    "dynamicTasksInput": "${dt1.output.dynamicTasksInput}",
                },
                "dynamicForkTasksParam": "dynamicTasks",
                "dynamicForkTasksInputParamName": "dynamicTasksInput",
            },
            {"name": "join_dynamic", "taskReferenceName": "join_dynamic", "type": "JOIN"},
        ],
    }
    c.engine.registry.put_workflow(DefinitionRegistry.check_workflow(wf))


async def test_dynamic_fork_optional_branch_retried(conductor: Conductor) -> None:
    """testTaskDynamicForkOptional: the optional branch's failure is retried first."""
    c = conductor
    _fan_in_out(c)
    with trio.fail_after(20):
        wf_id = await c.start("DynamicFanInOutTest")
        await c.complete(
            wf_id,
            "dt1",
            {
                "dynamicTasks": [
                    {"name": "integration_task_2", "taskReferenceName": "xdt1"},
                    {"name": "integration_task_3", "taskReferenceName": "xdt2", "optional": True},
                ],
                "dynamicTasksInput": {"xdt1": {"k1": "v1"}, "xdt2": {"k2": "v2"}},
            },
        )
        wf = await c.workflow(wf_id)
        assert [t["status"] for t in wf["tasks"]] == [
            "COMPLETED",
            "COMPLETED",
            "SCHEDULED",
            "SCHEDULED",
            "IN_PROGRESS",
        ]
        assert wf["tasks"][2]["inputData"] == {"k1": "v1"}
        await c.fail(wf_id, "xdt2")
        wf = await c.workflow(wf_id)
        assert wf["status"] == "RUNNING"
        assert [t["status"] for t in wf["tasks"]] == [
            "COMPLETED",
            "COMPLETED",
            "SCHEDULED",
            "FAILED",
            "IN_PROGRESS",
            "SCHEDULED",
        ]
        await c.complete(wf_id, "xdt1")
        await c.complete(wf_id, "xdt2")
        wf = await c.wait_status(wf_id, "COMPLETED")
        assert [t["status"] for t in wf["tasks"]][2:5] == ["COMPLETED", "FAILED", "COMPLETED"]


async def test_dynamic_fork_of_a_sub_workflow_without_a_task_name(conductor: Conductor) -> None:
    """testTaskDynamicForkEmptyTaskName: the SUB_WORKFLOW runs, named by its subWorkflowParam."""
    c = conductor
    _fan_in_out(c)
    c.register("simple_one_task_sub_workflow_integration_test.json")
    sub_name = "sub_workflow"  # the name of simple_one_task_sub_workflow's definition
    with trio.fail_after(20):
        wf_id = await c.start("DynamicFanInOutTest")
        await c.complete(
            wf_id,
            "dt1",
            {
                "dynamicTasks": [
                    {
                        "taskReferenceName": "test_task",
                        "type": "SUB_WORKFLOW",
                        "subWorkflowParam": {"name": sub_name},
                    }
                ],
                "dynamicTasksInput": {},
            },
        )
        wf = await c.workflow(wf_id)
        assert wf["status"] == "RUNNING"
        assert [t["status"] for t in wf["tasks"]] == [
            "COMPLETED",
            "COMPLETED",
            "IN_PROGRESS",
            "IN_PROGRESS",
        ]
        assert wf["tasks"][2]["subWorkflowId"]


async def test_dynamic_fork_task_without_a_reference_name(conductor: Conductor) -> None:
    """testTaskDynamicForkNullTaskReferenceName: the workflow fails, naming the bad input."""
    c = conductor
    _fan_in_out(c)
    with trio.fail_after(20):
        wf_id = await c.start("DynamicFanInOutTest")
        await c.complete(
            wf_id,
            "dt1",
            {
                "dynamicTasks": [{"type": "SUB_WORKFLOW", "subWorkflowParam": {"name": "http"}}],
                "dynamicTasksInput": {},
            },
        )
        wf = await c.wait_status(wf_id, "FAILED")
        # Conductor terminates before recording the fork (1 task); edged keeps it, FAILED
        assert [(t["taskType"], t["status"]) for t in wf["tasks"]] == [
            ("dt1", "COMPLETED"),
            ("FORK", "FAILED"),
        ]
        assert "Input 'dynamicTasks' is invalid" in wf["reasonForIncompletion"]


# ------------------------------ WorkflowRerunTests' own workflows (RegistrationUtil)


def _put(c: Conductor, *workflows: dict[str, Any]) -> None:
    from edged.runtime.registry import DefinitionRegistry

    for wf in workflows:
        c.engine.registry.put_workflow(DefinitionRegistry.check_workflow(wf))


def _def(name: str, tasks: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "version": 1,
        "ownerEmail": "test@conductor.io",
        "inputParameters": ["value", "inlineValue"],
        "timeoutSeconds": 600,
        "timeoutPolicy": "TIME_OUT_WF",
        "tasks": tasks,
    }


async def test_rerun_from_a_failed_simple_task(conductor: Conductor) -> None:
    """testRerunSimpleWorkflow / testFailTaskAndRerun: INLINE then a SIMPLE that fails."""
    c = conductor
    taskdef = {"name": "re-run-task1", "retryCount": 0, "ownerEmail": "test@conductor.io"}
    _put(
        c,
        _def(
            "re-run-workflow",
            [
                {
                    "name": "re-run-task1",
                    "taskReferenceName": "inline_re-run-task1",
                    "type": "INLINE",
                    "taskDefinition": taskdef,
                    "inputParameters": {"evaluatorType": "graaljs", "expression": "true;"},
                },
                {
                    "name": "re-run-task2",
                    "taskReferenceName": "re-run-task2",
                    "type": "SIMPLE",
                    "taskDefinition": taskdef,
                    "inputParameters": {"value": "${workflow.input.value}", "order": "123"},
                },
            ],
        ),
    )
    with trio.fail_after(20):
        wf_id = await c.start("re-run-workflow")
        failed = await c.fail(wf_id, "re-run-task2")
        assert await c.status(wf_id) == "FAILED"
        await c.admin(
            "rerun", wf_id, {"reRunFromWorkflowId": wf_id, "reRunFromTaskId": failed["taskId"]}
        )
        wf = await c.workflow(wf_id)
        assert wf["status"] == "RUNNING"
        assert wf["tasks"][1]["status"] == "SCHEDULED"
        await c.complete(wf_id, "re-run-task2")
        assert await c.status(wf_id) == "COMPLETED"


async def test_rerun_a_failed_child_reopens_its_parent(conductor: Conductor) -> None:
    """testRerunWithSubWorkflow / testRerunSubWorkflowAfterArchival."""
    c = conductor
    task = {
        "name": "re-run-with-sub-task",
        "taskReferenceName": "re-run-with-sub-task",
        "type": "SIMPLE",
        "taskDefinition": {"name": "re-run-with-sub-task", "retryCount": 0},
        "inputParameters": {"evaluatorType": "graaljs", "expression": "true;"},
    }
    sub = {
        "name": "workflow-re-run-sub-workflow",
        "taskReferenceName": "workflow-re-run-sub-workflow",
        "type": "SUB_WORKFLOW",
        "taskDefinition": {"name": "workflow-re-run-sub-workflow", "retryCount": 0},
        "subWorkflowParam": {"name": "workflow-re-run-sub-workflow", "version": 1, "priority": 12},
        "inputParameters": {"subWorkflowName": "workflow-re-run-sub-workflow"},
    }
    _put(
        c,
        _def("workflow-re-run-sub-workflow", [task]),
        _def("workflow-re-run-with-sub-workflow", [sub]),
    )
    with trio.fail_after(20):
        parent = await c.start("workflow-re-run-with-sub-workflow")
        parent_tasks = len(await c.tasks(parent))
        child = (await c.tasks(parent))[0]["subWorkflowId"]
        failed = await c.fail(child, "re-run-with-sub-task")
        assert await c.status(child) == "FAILED"
        await c.wait_status(parent, "FAILED")
        await c.admin(
            "rerun", child, {"reRunFromWorkflowId": child, "reRunFromTaskId": failed["taskId"]}
        )
        assert await c.shape(child) == [
            ("re-run-with-sub-task", "re-run-with-sub-task", "SCHEDULED")
        ]
        wf = await c.wait_status(parent, "RUNNING")
        assert len(wf["tasks"]) >= parent_tasks  # the parent's tasks are not wiped
        assert wf["tasks"][0]["taskType"] == "SUB_WORKFLOW"
        assert wf["tasks"][0]["subWorkflowId"] == child
        await c.complete(child, "re-run-with-sub-task")
        assert await c.status(child) == "COMPLETED"
        await c.wait_status(parent, "COMPLETED")
