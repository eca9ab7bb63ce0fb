"""ForkJoinSpec, ExclusiveJoinSpec and DynamicForkJoinSpec, ported.

FORK_JOIN schedules each branch's first task, then the JOIN (IN_PROGRESS);
the JOIN completes when every joinOn task is terminal, with their outputs
keyed by ref.  A branch failure with no retries left fails the workflow and
cancels the JOIN; retry reopens the JOIN and reschedules the failed task.
EXCLUSIVE_JOIN takes the output of the first joinOn (or default) task that
ran.  FORK_JOIN_DYNAMIC forks over a list of WorkflowTasks with inputs.
"""

from __future__ import annotations

import pytest
import trio
from harness import Conductor


@pytest.fixture
def forks(conductor: Conductor) -> Conductor:
    conductor.register(
        "fork_join_integration_test.json",
        "fork_join_with_no_task_retry_integration_test.json",
        "fork_join_permissive_integration_test.json",
        "nested_fork_join_integration_test.json",
        "exclusive_join_integration_test.json",
        "dynamic_fork_join_integration_test.json",
        "simple_workflow_1_integration_test.json",
        "simple_workflow_3_integration_test.json",
    )
    return conductor


async def test_fork_join_success(forks: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await forks.start("FanInOutTest", {"param1": "p1 value", "param2": "p2 value"})
        assert await forks.shape(wf_id) == [
            ("FORK", "fanouttask", "COMPLETED"),
            ("integration_task_1", "t1", "SCHEDULED"),
            ("integration_task_2", "t2", "SCHEDULED"),
            ("JOIN", "fanouttask_join", "IN_PROGRESS"),
        ]
        await forks.complete(wf_id, "t1", {"op": 1})
        assert (await forks.shape(wf_id))[4] == ("integration_task_3", "t3", "SCHEDULED")
        await forks.complete(wf_id, "t2", {"op": 2})
        assert (await forks.shape(wf_id))[3] == ("JOIN", "fanouttask_join", "IN_PROGRESS")
        await forks.complete(wf_id, "t3", {"op": 3})
        tasks = await forks.tasks(wf_id)
        join = tasks[3]
        assert join["status"] == "COMPLETED"
        assert join["outputData"] == {"t3": {"op": 3}, "t2": {"op": 2}}
        assert (tasks[5]["taskType"], tasks[5]["status"]) == ("integration_task_4", "SCHEDULED")
        await forks.complete(wf_id, "t4")
        assert await forks.status(wf_id) == "COMPLETED"


async def test_fork_branch_failure_with_retry(forks: Conductor) -> None:
    with trio.fail_after(20):
        forks.taskdef("integration_task_2", retryDelaySeconds=0)
        wf_id = await forks.start("FanInOutTest", {})
        await forks.fail(wf_id, "t2", "first failure")
        shape = await forks.shape(wf_id)
        assert shape[-2:] == [
            ("integration_task_2", "t2", "FAILED"),
            ("integration_task_2", "t2", "SCHEDULED"),
        ] or shape[2] == ("integration_task_2", "t2", "FAILED")
        assert await forks.status(wf_id) == "RUNNING"
        await forks.complete(wf_id, "t2")
        await forks.complete(wf_id, "t1")
        await forks.complete(wf_id, "t3")
        await forks.complete(wf_id, "t4")
        assert await forks.status(wf_id) == "COMPLETED"


async def test_fork_branch_failure_without_retry_fails_and_retries(forks: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await forks.start("FanInOutTest_2", {})
        await forks.fail(wf_id, "t1", "no retries left")
        wf = await forks.workflow(wf_id)
        assert wf["status"] == "FAILED"
        assert await forks.shape(wf_id) == [
            ("FORK", "fanouttask", "COMPLETED"),
            ("integration_task_0_RT_1", "t1", "FAILED"),
            ("integration_task_0_RT_2", "t2", "CANCELED"),
            ("JOIN", "fanouttask_join", "CANCELED"),
        ]
        await forks.admin("retry", wf_id, resume_subworkflow_tasks=False)
        shape = await forks.shape(wf_id)
        assert await forks.status(wf_id) == "RUNNING"
        assert shape[3] == ("JOIN", "fanouttask_join", "IN_PROGRESS")
        assert sorted(shape[4:]) == [
            ("integration_task_0_RT_1", "t1", "SCHEDULED"),
            ("integration_task_0_RT_2", "t2", "SCHEDULED"),
        ]
        for ref in ("t1", "t2", "t3", "t4"):
            await forks.complete(wf_id, ref)
        assert await forks.status(wf_id) == "COMPLETED"


async def test_permissive_branch_failure_fails_the_workflow_after_the_join(
    forks: Conductor,
) -> None:
    with trio.fail_after(20):
        forks.taskdef("integration_task_1", retryCount=0)
        wf_id = await forks.start("FanInOutPermissiveTest", {})
        await forks.fail(wf_id, "t1", "permissive failure")
        # the other branch goes on; the workflow is still running
        assert await forks.status(wf_id) == "RUNNING"
        await forks.complete(wf_id, "t2")
        wf = await forks.workflow(wf_id)
        assert wf["status"] == "FAILED"
        join = next(t for t in wf["tasks"] if t["taskType"] == "JOIN")
        assert join["status"] == "FAILED"
        assert "permissive failure" in (join["reasonForIncompletion"] or "")


async def test_nested_forks_with_a_decision(forks: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await forks.start("FanInOutNestedTest", {"case": "a"})
        assert [(t, r, s) for t, r, s in await forks.shape(wf_id)] == [
            ("FORK", "fork1", "COMPLETED"),
            ("integration_task_11", "t11", "SCHEDULED"),
            ("FORK", "fork2", "COMPLETED"),
            ("integration_task_12", "t12", "SCHEDULED"),
            ("integration_task_13", "t13", "SCHEDULED"),
            ("JOIN", "join2", "IN_PROGRESS"),
            ("JOIN", "join1", "IN_PROGRESS"),
        ]
        for ref in ("t11", "t12", "t13"):
            await forks.complete(wf_id, ref)
        shape = await forks.shape(wf_id)
        assert ("DECISION", "d1", "COMPLETED") in shape
        assert ("integration_task_16", "t16", "SCHEDULED") in shape
        assert ("integration_task_14", "t14", "SCHEDULED") in shape
        for ref in ("t14", "t16", "t19", "t20"):
            await forks.complete(wf_id, ref)
        shape = await forks.shape(wf_id)
        assert ("JOIN", "join2", "COMPLETED") in shape
        assert ("JOIN", "join1", "COMPLETED") in shape
        assert shape[-1] == ("integration_task_15", "t15", "SCHEDULED")
        await forks.complete(wf_id, "t15")
        assert await forks.status(wf_id) == "COMPLETED"


@pytest.mark.parametrize(
    ("decisions", "path", "joined"),
    [
        ({"decision_1": "true", "decision_2": "true"}, ["task2", "task3"], "task3"),
        ({"decision_1": "true", "decision_2": "false"}, ["task2"], "task2"),
        ({"decision_1": "false", "decision_3": "true"}, ["task4", "task5"], "task5"),
        ({"decision_1": "false", "decision_3": "false"}, ["task4"], "task4"),
    ],
)
async def test_exclusive_join(
    forks: Conductor, decisions: dict[str, str], path: list[str], joined: str
) -> None:
    with trio.fail_after(20):
        wf_id = await forks.start("ExclusiveJoinTestWorkflow", {"payload": "p", **decisions})
        await forks.complete(wf_id, "task1", {"taskReferenceName": "task1"})
        for ref in path:
            await forks.complete(wf_id, ref, {"taskReferenceName": ref})
        wf = await forks.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        last = wf["tasks"][-1]
        assert (last["taskType"], last["status"]) == ("EXCLUSIVE_JOIN", "COMPLETED")
        assert last["outputData"]["taskReferenceName"] == joined


async def test_dynamic_fork_join(forks: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await forks.start("DynamicFanInOutTest", {})
        dynamic = [
            {"name": "integration_task_2", "taskReferenceName": "xdt1", "type": "SIMPLE"},
            {"name": "integration_task_3", "taskReferenceName": "xdt2", "type": "SIMPLE"},
        ]
        inputs = {"xdt1": {"k1": "v1"}, "xdt2": {"k2": "v2"}}
        await forks.complete(wf_id, "dt1", {"dynamicTasks": dynamic, "dynamicTasksInput": inputs})
        tasks = await forks.tasks(wf_id)
        assert [(t["taskType"], t["referenceTaskName"], t["status"]) for t in tasks] == [
            ("integration_task_1", "dt1", "COMPLETED"),
            ("FORK", "dynamicfanouttask", "COMPLETED"),
            ("integration_task_2", "xdt1", "SCHEDULED"),
            ("integration_task_3", "xdt2", "SCHEDULED"),
            ("JOIN", "dynamicfanouttask_join", "IN_PROGRESS"),
        ]
        assert tasks[2]["inputData"] == {"k1": "v1"}
        assert tasks[4]["inputData"]["joinOn"] == ["xdt1", "xdt2"]
        await forks.complete(wf_id, "xdt1", {"ok": 1})
        await forks.complete(wf_id, "xdt2", {"ok": 2})
        tasks = await forks.tasks(wf_id)
        assert tasks[4]["status"] == "COMPLETED"
        assert tasks[4]["outputData"] == {"xdt1": {"ok": 1}, "xdt2": {"ok": 2}}
        assert (tasks[5]["taskType"], tasks[5]["status"]) == ("integration_task_4", "SCHEDULED")
        await forks.complete(wf_id, "task4")
        assert await forks.status(wf_id) == "COMPLETED"


async def test_dynamic_fork_failure_and_retry(forks: Conductor) -> None:
    with trio.fail_after(20):
        forks.taskdef("integration_task_2", retryCount=0)
        wf_id = await forks.start("DynamicFanInOutTest", {})
        dynamic = [
            {"name": "integration_task_2", "taskReferenceName": "xdt1", "type": "SIMPLE"},
            {"name": "integration_task_3", "taskReferenceName": "xdt2", "type": "SIMPLE"},
        ]
        await forks.complete(
            wf_id, "dt1", {"dynamicTasks": dynamic, "dynamicTasksInput": {"xdt1": {}, "xdt2": {}}}
        )
        await forks.fail(wf_id, "xdt1", "boom")
        wf = await forks.workflow(wf_id)
        assert wf["status"] == "FAILED"
        assert [t["status"] for t in wf["tasks"]] == [
            "COMPLETED",
            "COMPLETED",
            "FAILED",
            "CANCELED",
            "CANCELED",
        ]
        await forks.admin("retry", wf_id, resume_subworkflow_tasks=False)
        shape = await forks.shape(wf_id)
        assert await forks.status(wf_id) == "RUNNING"
        assert shape[4] == ("JOIN", "dynamicfanouttask_join", "IN_PROGRESS")
        for ref in ("xdt1", "xdt2", "task4"):
            await forks.complete(wf_id, ref)
        assert await forks.status(wf_id) == "COMPLETED"
