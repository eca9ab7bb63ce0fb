"""SubWorkflowSpec, SubWorkflowRetrySpec, SubWorkflowRestartSpec, SubWorkflowRerunSpec
and StartWorkflowSpec, ported.

A three-level hierarchy (root -> mid -> leaf, the same definition nested by
input) fails from the leaf up.  Retrying the root starts a NEW mid workflow;
retrying with resumeSubworkflowTasks retries the leaf in place and puts the
mid and root SUB_WORKFLOW tasks back IN_PROGRESS; retrying (or restarting,
or rerunning) the mid or the leaf pushes RUNNING up to the parents
(Conductor's updateAndPushParents).
"""

from __future__ import annotations

import pytest
import trio
from harness import Conductor

WITH_SUB = "integration_test_wf_with_sub_wf"
SIMPLE = "integration_test_wf"


@pytest.fixture
async def failed_hierarchy(conductor: Conductor) -> tuple[Conductor, str, str, str]:
    """SubWorkflowRetrySpec.setup(): root, mid and leaf all FAILED by the leaf's t2."""
    c = conductor
    c.register(
        "simple_workflow_1_integration_test.json",
        "workflow_with_sub_workflow_1_integration_test.json",
        "simple_one_task_sub_workflow_integration_test.json",
    )
    c.taskdef("integration_task_2", retryCount=0)
    c.taskdef("sub_workflow_task", retryCount=0)
    with trio.fail_after(20):
        root = await c.start(
            WITH_SUB, {"param1": "p1", "param2": "p2", "subwf": WITH_SUB, "nextSubwf": SIMPLE}
        )
        await c.complete(root, "t1", {"op": "task1.done"})
        tasks = await c.tasks(root)
        assert [(t["taskType"], t["status"]) for t in tasks] == [
            ("integration_task_1", "COMPLETED"),
            ("SUB_WORKFLOW", "IN_PROGRESS"),
        ]
        mid = tasks[1]["subWorkflowId"]
        assert await c.shape(mid) == [("integration_task_1", "t1", "SCHEDULED")]
        await c.complete(mid, "t1", {"op": "task1.done"})
        leaf = (await c.tasks(mid))[1]["subWorkflowId"]
        wf = await c.workflow(leaf)
        assert wf["workflowName"] == SIMPLE
        assert wf["parentWorkflowId"] == mid
        await c.complete(leaf, "t1", {"op": "task1.done"})
        await c.fail(leaf, "t2", "failed")
        for wid in (leaf, mid, root):
            assert await c.status(wid) == "FAILED", wid
        assert [s for _, _, s in await c.shape(mid)] == ["COMPLETED", "FAILED"]
        assert [s for _, _, s in await c.shape(root)] == ["COMPLETED", "FAILED"]
    return c, root, mid, leaf


async def test_retry_on_the_root_spawns_a_new_hierarchy(
    failed_hierarchy: tuple[Conductor, str, str, str],
) -> None:
    c, root, mid, leaf = failed_hierarchy
    with trio.fail_after(20):
        await c.admin("retry", root, resume_subworkflow_tasks=False)
        tasks = await c.tasks(root)
        assert [(t["taskType"], t["status"]) for t in tasks] == [
            ("integration_task_1", "COMPLETED"),
            ("SUB_WORKFLOW", "FAILED"),
            ("SUB_WORKFLOW", "IN_PROGRESS"),
        ]
        assert tasks[1]["retried"] and tasks[2]["retriedTaskId"] == tasks[1]["taskId"]
        new_mid = tasks[2]["subWorkflowId"]
        assert new_mid != mid
        await c.complete(new_mid, "t1", {"op": "x"})
        new_leaf = (await c.tasks(new_mid))[1]["subWorkflowId"]
        assert new_leaf != leaf
        await c.complete(new_leaf, "t1")
        await c.complete(new_leaf, "t2")
        for wid in (new_leaf, new_mid, root):
            assert await c.status(wid) == "COMPLETED"
        assert [s for _, _, s in await c.shape(root)] == ["COMPLETED", "FAILED", "COMPLETED"]
        assert await c.status(mid) == "FAILED"  # the old hierarchy stays as it was


async def test_retry_on_the_root_with_resume_retries_the_leaf(
    failed_hierarchy: tuple[Conductor, str, str, str],
) -> None:
    c, root, mid, leaf = failed_hierarchy
    with trio.fail_after(20):
        await c.admin("retry", root, resume_subworkflow_tasks=True)
        await c.settle()
        for wid in (root, mid):
            wf = await c.workflow(wid)
            assert wf["status"] == "RUNNING"
            assert [(t["taskType"], t["status"]) for t in wf["tasks"]] == [
                ("integration_task_1", "COMPLETED"),
                ("SUB_WORKFLOW", "IN_PROGRESS"),
            ]
        tasks = await c.tasks(leaf)
        assert [(t["taskType"], t["status"]) for t in tasks] == [
            ("integration_task_1", "COMPLETED"),
            ("integration_task_2", "FAILED"),
            ("integration_task_2", "SCHEDULED"),
        ]
        assert tasks[1]["retried"] and tasks[2]["retriedTaskId"] == tasks[1]["taskId"]
        await c.complete(leaf, "t2", {"op": "task1.done"})
        for wid in (leaf, mid, root):
            assert await c.status(wid) == "COMPLETED"
        assert [s for _, _, s in await c.shape(root)] == ["COMPLETED", "COMPLETED"]


async def test_retry_on_the_mid_level_pushes_the_root(
    failed_hierarchy: tuple[Conductor, str, str, str],
) -> None:
    c, root, mid, leaf = failed_hierarchy
    with trio.fail_after(20):
        await c.admin("retry", mid, resume_subworkflow_tasks=False)
        tasks = await c.tasks(mid)
        assert [(t["taskType"], t["status"]) for t in tasks] == [
            ("integration_task_1", "COMPLETED"),
            ("SUB_WORKFLOW", "FAILED"),
            ("SUB_WORKFLOW", "IN_PROGRESS"),
        ]
        assert await c.status(root) == "RUNNING"
        assert [s for _, _, s in await c.shape(root)] == ["COMPLETED", "IN_PROGRESS"]
        new_leaf = tasks[2]["subWorkflowId"]
        assert new_leaf != leaf
        await c.complete(new_leaf, "t1")
        await c.complete(new_leaf, "t2")
        for wid in (new_leaf, mid, root):
            assert await c.status(wid) == "COMPLETED"


async def test_retry_on_the_leaf_pushes_mid_and_root(
    failed_hierarchy: tuple[Conductor, str, str, str],
) -> None:
    c, root, mid, leaf = failed_hierarchy
    with trio.fail_after(20):
        await c.admin("retry", leaf, resume_subworkflow_tasks=False)
        assert [s for _, _, s in await c.shape(leaf)] == ["COMPLETED", "FAILED", "SCHEDULED"]
        for wid in (mid, root):
            assert await c.status(wid) == "RUNNING"
            assert [s for _, _, s in await c.shape(wid)] == ["COMPLETED", "IN_PROGRESS"]
        await c.complete(leaf, "t2")
        for wid in (leaf, mid, root):
            assert await c.status(wid) == "COMPLETED"


async def test_restart_of_the_leaf_pushes_mid_and_root(
    failed_hierarchy: tuple[Conductor, str, str, str],
) -> None:
    c, root, mid, leaf = failed_hierarchy
    with trio.fail_after(20):
        await c.admin("restart", leaf, use_latest_definitions=False)
        assert await c.shape(leaf) == [("integration_task_1", "t1", "SCHEDULED")]
        for wid in (mid, root):
            assert await c.status(wid) == "RUNNING"
        await c.complete(leaf, "t1")
        await c.complete(leaf, "t2")
        for wid in (leaf, mid, root):
            assert await c.status(wid) == "COMPLETED"


async def test_rerun_of_the_mid_level_from_its_sub_workflow_task(
    failed_hierarchy: tuple[Conductor, str, str, str],
) -> None:
    c, root, mid, leaf = failed_hierarchy
    with trio.fail_after(20):
        sub_task = (await c.tasks(mid))[1]
        await c.admin("rerun", mid, {"reRunFromTaskId": sub_task["taskId"]})
        assert await c.status(mid) == "RUNNING"
        assert await c.status(root) == "RUNNING"
        tasks = await c.tasks(mid)
        assert tasks[-1]["taskType"] == "SUB_WORKFLOW" and tasks[-1]["status"] == "IN_PROGRESS"
        new_leaf = tasks[-1]["subWorkflowId"]
        assert new_leaf != leaf
        await c.complete(new_leaf, "t1")
        await c.complete(new_leaf, "t2")
        for wid in (new_leaf, mid, root):
            assert await c.status(wid) == "COMPLETED"


async def test_terminating_the_parent_terminates_the_child(conductor: Conductor) -> None:
    c = conductor
    c.register(
        "workflow_with_sub_workflow_1_integration_test.json",
        "simple_workflow_1_integration_test.json",
    )
    with trio.fail_after(20):
        root = await c.start(WITH_SUB, {"param1": "p1", "param2": "p2", "subwf": SIMPLE})
        await c.complete(root, "t1")
        child = (await c.tasks(root))[1]["subWorkflowId"]
        await c.admin("terminate", root, "parent terminated")
        assert await c.status(root) == "TERMINATED"
        await c.wait_status(child, "TERMINATED")


async def test_start_workflow_task_starts_an_independent_workflow(conductor: Conductor) -> None:
    c = conductor
    c.register(
        "workflow_that_starts_another_workflow.json", "simple_workflow_1_integration_test.json"
    )
    with trio.fail_after(20):
        request = {
            "name": SIMPLE,
            "input": {"param1": "p1", "param2": "p2"},
            "correlationId": "started",
        }
        wf_id = await c.start("workflow_that_starts_another_workflow", {"startWorkflow": request})
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        task = wf["tasks"][0]
        assert (task["taskType"], task["status"]) == ("START_WORKFLOW", "COMPLETED")
        started = task["outputData"]["workflowId"]
        other = await c.workflow(started)
        assert other["status"] == "RUNNING"
        assert other["parentWorkflowId"] is None
        assert other["correlationId"] == "started"
        assert other["input"] == {"param1": "p1", "param2": "p2"}


async def test_retry_of_the_leaf_reaches_parents_that_left_the_cache(
    failed_hierarchy: tuple[Conductor, str, str, str],
) -> None:
    """A child retried long after its parents finished: they are read back from the journal."""
    c, root, mid, leaf = failed_hierarchy
    with trio.fail_after(20):
        for wid in (root, mid):
            c.engine.recent.pop(wid, None)  # as if evicted by newer executions
            assert wid not in c.engine.live
        await c.admin("retry", leaf, resume_subworkflow_tasks=False)
        for wid in (mid, root):
            assert await c.status(wid) == "RUNNING"
        await c.complete(leaf, "t2")
        for wid in (leaf, mid, root):
            assert await c.status(wid) == "COMPLETED"
