"""HierarchicalForkJoinSubworkflowRetry/Restart/RerunSpec and NestedForkJoinSubWorkflowSpec.

Three levels of `hierarchical_fork_join_swf` (root -> mid -> leaf): each
forks a SUB_WORKFLOW next to an `integration_task_2` and joins them; the leaf
is `integration_test_wf`.  The leaf's t2 fails (retryCount 0), which fails
the mid and the root with their JOIN CANCELED.  Retrying, restarting or
rerunning any level must bring every level back to RUNNING with its JOIN
IN_PROGRESS again (Conductor shows that after a "sweep"; edged decides the
parents at once), and completing the leaf completes all three.
`nested_fork_join_swf` puts the same fork inside an outer fork.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from harness import Conductor

HIER = "hierarchical_fork_join_swf"
NESTED = "nested_fork_join_swf"
LEAF = "integration_test_wf"

Levels = tuple[Conductor, str, str, str]


def _kinds(wf: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["taskType"], t["status"]) for t in wf["tasks"]]


def _level(sub: str, join: str) -> list[tuple[str, str]]:
    """FORK, SUB_WORKFLOW, integration_task_2 (done), JOIN of one level."""
    return [
        ("FORK", "COMPLETED"),
        ("SUB_WORKFLOW", sub),
        ("integration_task_2", "COMPLETED"),
        ("JOIN", join),
    ]


async def _sub_id(c: Conductor, wf_id: str) -> str:
    (sub,) = [t for t in await c.tasks(wf_id) if t["taskType"] == "SUB_WORKFLOW"][-1:]
    sub_id: str = sub["subWorkflowId"]
    return sub_id


async def _run_level(c: Conductor, wf_id: str) -> str:
    """A fresh hierarchical level: complete its t2, return its child's id."""
    wf = await c.workflow(wf_id)
    assert wf["status"] == "RUNNING"
    assert _kinds(wf) == [
        ("FORK", "COMPLETED"),
        ("SUB_WORKFLOW", "IN_PROGRESS"),  # Conductor: SCHEDULED until its system-task worker
        ("integration_task_2", "SCHEDULED"),
        ("JOIN", "IN_PROGRESS"),
    ]
    await c.complete(wf_id, "t2", {"op": "task2.done"})
    return await _sub_id(c, wf_id)


async def _finish_leaf(c: Conductor, leaf: str) -> None:
    wf = await c.workflow(leaf)
    assert wf["status"] == "RUNNING"
    if wf["tasks"][0]["status"] != "COMPLETED":
        await c.complete(leaf, "t1", {"op": "task1.done"})
    await c.complete(leaf, "t2", {"op": "task2.done"})
    assert await c.status(leaf) == "COMPLETED"


@pytest.fixture
async def failed_levels(conductor: Conductor) -> Levels:
    c = conductor
    c.register("hierarchical_fork_join_swf.json", "simple_workflow_1_integration_test.json")
    c.taskdef("integration_task_2", retryCount=0)
    c.taskdef("sub_workflow_task", retryCount=0)
    with trio.fail_after(20):
        root = await c.start(
            HIER,
            {"param1": "p1 value", "param2": "p2 value", "subwf": HIER, "nextSubwf": LEAF},
            correlationId="retry_on_root_in_3level_wf",
        )
        mid = await _run_level(c, root)
        leaf = await _run_level(c, mid)
        assert [t for _, t in _kinds(await c.workflow(leaf))] == ["SCHEDULED"]
        await c.complete(leaf, "t1", {"op": "task1.done"})
        await c.fail(leaf, "t2", "failed")
        assert _kinds(await c.workflow(leaf)) == [
            ("integration_task_1", "COMPLETED"),
            ("integration_task_2", "FAILED"),
        ]
        for wid in (mid, root):
            wf = await c.wait_status(wid, "FAILED")
            assert _kinds(wf) == _level("FAILED", "CANCELED"), wid
    return c, root, mid, leaf


async def _all_complete(c: Conductor, *wf_ids: str) -> None:
    for wid in wf_ids:
        await c.wait_status(wid, "COMPLETED")


async def _reopened(c: Conductor, *wf_ids: str) -> None:
    """A parent pushed back to RUNNING: its SUB_WORKFLOW and JOIN IN_PROGRESS again."""
    for wid in wf_ids:
        wf = await c.wait_status(wid, "RUNNING")
        assert _kinds(wf) == _level("IN_PROGRESS", "IN_PROGRESS"), wid


async def _retried_level(c: Conductor, wf_id: str, old_child: str) -> str:
    """A level retried without resume: a NEW SUB_WORKFLOW task and a new child."""
    wf = await c.wait_status(wf_id, "RUNNING")
    tasks = wf["tasks"]
    assert _kinds(wf) == [*_level("FAILED", "IN_PROGRESS"), ("SUB_WORKFLOW", "IN_PROGRESS")]
    assert tasks[1]["retried"] and tasks[4]["retriedTaskId"] == tasks[1]["taskId"]
    new_child: str = tasks[4]["subWorkflowId"]
    assert new_child != old_child
    return new_child


async def test_retry_root(failed_levels: Levels) -> None:
    c, root, mid, leaf = failed_levels
    with trio.fail_after(20):
        await c.admin("retry", root, resume_subworkflow_tasks=False)
        new_mid = await _retried_level(c, root, mid)
        new_leaf = await _run_level(c, new_mid)
        assert new_leaf != leaf
        await _finish_leaf(c, new_leaf)
        await _all_complete(c, new_mid, root)
        assert await c.status(mid) == "FAILED"  # the old hierarchy stays as it was


async def test_retry_mid(failed_levels: Levels) -> None:
    c, root, mid, leaf = failed_levels
    with trio.fail_after(20):
        await c.admin("retry", mid, resume_subworkflow_tasks=False)
        new_leaf = await _retried_level(c, mid, leaf)
        await _reopened(c, root)
        await _finish_leaf(c, new_leaf)
        await _all_complete(c, mid, root)


async def test_retry_leaf(failed_levels: Levels) -> None:
    c, root, mid, leaf = failed_levels
    with trio.fail_after(20):
        await c.admin("retry", leaf, resume_subworkflow_tasks=False)
        wf = await c.wait_status(leaf, "RUNNING")
        assert [(t["referenceTaskName"], t["status"]) for t in wf["tasks"]] == [
            ("t1", "COMPLETED"),
            ("t2", "FAILED"),
            ("t2", "SCHEDULED"),
        ]
        assert wf["tasks"][2]["retriedTaskId"] == wf["tasks"][1]["taskId"]
        await _reopened(c, mid, root)
        await _finish_leaf(c, leaf)
        await _all_complete(c, mid, root)


@pytest.mark.parametrize("level", ["root", "mid"])
async def test_retry_with_resume(failed_levels: Levels, level: str) -> None:
    c, root, mid, leaf = failed_levels
    with trio.fail_after(20):
        await c.admin("retry", root if level == "root" else mid, resume_subworkflow_tasks=True)
        await _reopened(c, mid, root)
        wf = await c.wait_status(leaf, "RUNNING")
        assert [t["status"] for t in wf["tasks"]] == ["COMPLETED", "FAILED", "SCHEDULED"]
        await _finish_leaf(c, leaf)
        await _all_complete(c, mid, root)


async def test_restart_root(failed_levels: Levels) -> None:
    c, root, mid, leaf = failed_levels
    with trio.fail_after(20):
        await c.admin("restart", root, use_latest_definitions=False)
        new_mid = await _run_level(c, root)
        assert new_mid != mid
        new_leaf = await _run_level(c, new_mid)
        assert new_leaf != leaf
        await _finish_leaf(c, new_leaf)
        await _all_complete(c, new_mid, root)


async def test_restart_mid(failed_levels: Levels) -> None:
    c, root, mid, leaf = failed_levels
    with trio.fail_after(20):
        await c.admin("restart", mid, use_latest_definitions=False)
        await _reopened(c, root)
        new_leaf = await _run_level(c, mid)
        assert new_leaf != leaf
        await _finish_leaf(c, new_leaf)
        await _all_complete(c, mid, root)


async def test_restart_leaf(failed_levels: Levels) -> None:
    c, root, mid, leaf = failed_levels
    with trio.fail_after(20):
        await c.admin("restart", leaf, use_latest_definitions=False)
        await _reopened(c, mid, root)
        assert await c.shape(leaf) == [("integration_task_1", "t1", "SCHEDULED")]
        await _finish_leaf(c, leaf)
        await _all_complete(c, mid, root)


async def test_rerun_root(failed_levels: Levels) -> None:
    """A rerun without reRunFromTaskId: a new execution with the same id."""
    c, root, mid, leaf = failed_levels
    with trio.fail_after(20):
        await c.admin("rerun", root, {"reRunFromWorkflowId": root})
        new_mid = await _run_level(c, root)
        assert new_mid != mid
        new_leaf = await _run_level(c, new_mid)
        assert new_leaf != leaf
        await _finish_leaf(c, new_leaf)
        await _all_complete(c, new_mid, root)


async def test_rerun_mid(failed_levels: Levels) -> None:
    c, root, mid, leaf = failed_levels
    with trio.fail_after(20):
        await c.admin("rerun", mid, {"reRunFromWorkflowId": mid})
        await _reopened(c, root)
        new_leaf = await _run_level(c, mid)
        assert new_leaf != leaf
        await _finish_leaf(c, new_leaf)
        await _all_complete(c, mid, root)


async def test_rerun_leaf(failed_levels: Levels) -> None:
    c, root, mid, leaf = failed_levels
    with trio.fail_after(20):
        await c.admin("rerun", leaf, {"reRunFromWorkflowId": leaf})
        assert await c.shape(leaf) == [("integration_task_1", "t1", "SCHEDULED")]
        await _reopened(c, mid, root)
        await _finish_leaf(c, leaf)
        await _all_complete(c, mid, root)


async def test_rerun_leaf_from_its_failed_task(failed_levels: Levels) -> None:
    c, root, mid, leaf = failed_levels
    failed = (await c.tasks(leaf))[1]
    with trio.fail_after(20):
        await c.admin("rerun", leaf, {"reRunFromTaskId": failed["taskId"]})
        wf = await c.wait_status(leaf, "RUNNING")
        assert [(t["referenceTaskName"], t["status"]) for t in wf["tasks"]] == [
            ("t1", "COMPLETED"),
            ("t2", "SCHEDULED"),
        ]
        await _reopened(c, mid, root)
        await _finish_leaf(c, leaf)
        await _all_complete(c, mid, root)


# --------------------------------------------------------------- nested fork


def _nested(sub: str, inner_join: str, outer_join: str) -> list[tuple[str, str, str]]:
    return [
        ("FORK", "outer_fork", "COMPLETED"),
        ("FORK", "inner_fork", "COMPLETED"),
        ("SUB_WORKFLOW", "st1", sub),
        ("integration_task_2", "t2", "COMPLETED"),
        ("integration_task_2", "t3", "COMPLETED"),
        ("JOIN", "inner_join", inner_join),
        ("JOIN", "outer_join", outer_join),
    ]


@pytest.fixture
async def failed_nested(conductor: Conductor) -> tuple[Conductor, str, str]:
    c = conductor
    c.register("nested_fork_join_swf.json", "simple_workflow_1_integration_test.json")
    c.taskdef("integration_task_2", retryCount=0)
    c.taskdef("sub_workflow_task", retryCount=0)
    with trio.fail_after(20):
        parent = await c.start(
            NESTED,
            {"param1": "p1 value", "param2": "p2 value", "subwf": LEAF},
        )
        # Conductor's order: every branch task, then the inner and the outer JOIN
        assert await c.shape(parent) == [
            ("FORK", "outer_fork", "COMPLETED"),
            ("FORK", "inner_fork", "COMPLETED"),
            ("SUB_WORKFLOW", "st1", "IN_PROGRESS"),
            ("integration_task_2", "t2", "SCHEDULED"),
            ("integration_task_2", "t3", "SCHEDULED"),
            ("JOIN", "inner_join", "IN_PROGRESS"),
            ("JOIN", "outer_join", "IN_PROGRESS"),
        ]
        await c.complete(parent, "t2")
        await c.complete(parent, "t3")
        child = await _sub_id(c, parent)
        await c.complete(child, "t1")
        await c.fail(child, "t2", "failed")
        await c.wait_status(parent, "FAILED")
        assert await c.shape(parent) == _nested("FAILED", "CANCELED", "CANCELED")
    return c, parent, child


async def test_nested_retry_parent(failed_nested: tuple[Conductor, str, str]) -> None:
    c, parent, child = failed_nested
    with trio.fail_after(20):
        await c.admin("retry", parent, resume_subworkflow_tasks=False)
        await c.wait_status(parent, "RUNNING")
        assert await c.shape(parent) == [
            *_nested("FAILED", "IN_PROGRESS", "IN_PROGRESS"),
            ("SUB_WORKFLOW", "st1", "IN_PROGRESS"),
        ]
        new_child = await _sub_id(c, parent)
        assert new_child != child
        await _finish_leaf(c, new_child)
        await _all_complete(c, parent)


async def test_nested_retry_child(failed_nested: tuple[Conductor, str, str]) -> None:
    c, parent, child = failed_nested
    with trio.fail_after(20):
        await c.admin("retry", child, resume_subworkflow_tasks=False)
        await c.wait_status(parent, "RUNNING")
        assert await c.shape(parent) == _nested("IN_PROGRESS", "IN_PROGRESS", "IN_PROGRESS")
        await _finish_leaf(c, child)
        await _all_complete(c, parent)


async def test_nested_restart_and_rerun_child(failed_nested: tuple[Conductor, str, str]) -> None:
    c, parent, child = failed_nested
    with trio.fail_after(20):
        failed = (await c.tasks(child))[1]
        await c.admin("rerun", child, {"reRunFromTaskId": failed["taskId"]})
        await c.wait_status(parent, "RUNNING")
        await c.fail(child, "t2", "again")
        await c.wait_status(parent, "FAILED")
        await c.admin("restart", child, use_latest_definitions=False)
        await c.wait_status(parent, "RUNNING")
        assert await c.shape(parent) == _nested("IN_PROGRESS", "IN_PROGRESS", "IN_PROGRESS")
        await _finish_leaf(c, child)
        await _all_complete(c, parent)


async def test_nested_restart_parent(failed_nested: tuple[Conductor, str, str]) -> None:
    c, parent, child = failed_nested
    with trio.fail_after(20):
        await c.admin("restart", parent, use_latest_definitions=False)
        wf = await c.wait_status(parent, "RUNNING")
        assert [s for _, _, s in await c.shape(parent)] == [
            "COMPLETED",
            "COMPLETED",
            "IN_PROGRESS",
            "SCHEDULED",
            "SCHEDULED",
            "IN_PROGRESS",
            "IN_PROGRESS",
        ]
        new_child = wf["tasks"][2]["subWorkflowId"]
        assert new_child != child
        await c.complete(parent, "t2")
        await c.complete(parent, "t3")
        await _finish_leaf(c, new_child)
        wf = await c.wait_status(parent, "COMPLETED")
        assert [t["status"] for t in wf["tasks"]] == ["COMPLETED"] * 7
