"""fork_join_sync_* (a JOIN with `joinMode: SYNC`).

Conductor's SYNC mode makes the JOIN an ordinary synchronous system task:
it is evaluated in the decide that saw its last member end, with no
evaluation offset (Join.isAsync / getEvaluationOffset).  edged evaluates
every JOIN that way, so `joinMode` needs no code: these tests pin that the
JOIN ends in the same decision as its last member (same endTime) and that
the tasks after it are scheduled then, for a flat fork, a nested fork and a
failing optional branch.
"""

from __future__ import annotations

from typing import Any

import trio
from harness import Conductor


def _task(wf: dict[str, Any], ref: str) -> dict[str, Any]:
    (task,) = [t for t in wf["tasks"] if t["referenceTaskName"] == ref]
    return task


async def test_sync_join_ends_with_its_last_member(conductor: Conductor) -> None:
    c = conductor
    c.register("fork_join_sync_mode_integration_test.json")
    with trio.fail_after(20):
        wf_id = await c.start("ForkJoinSyncModeTest")
        assert await c.shape(wf_id) == [
            ("FORK", "forkTask", "COMPLETED"),
            ("integration_task_1", "branch_a", "SCHEDULED"),
            ("integration_task_2", "branch_b", "SCHEDULED"),
            ("integration_task_3", "branch_c", "SCHEDULED"),
            ("JOIN", "joinTask", "IN_PROGRESS"),
        ]
        await c.complete(wf_id, "branch_b", {"b": 2})
        await c.complete(wf_id, "branch_a", {"a": 1})
        assert (await c.shape(wf_id))[4] == ("JOIN", "joinTask", "IN_PROGRESS")
        await c.complete(wf_id, "branch_c", {"c": 3})
        wf = await c.workflow(wf_id)
        join = _task(wf, "joinTask")
        assert join["status"] == "COMPLETED"
        assert join["endTime"] == _task(wf, "branch_c")["endTime"]
        assert join["outputData"] == {
            "branch_a": {"a": 1},
            "branch_b": {"b": 2},
            "branch_c": {"c": 3},
        }
        assert (await c.shape(wf_id))[5] == ("integration_task_4", "postJoinTask", "SCHEDULED")
        await c.complete(wf_id, "postJoinTask")
        assert await c.status(wf_id) == "COMPLETED"


async def test_sync_joins_nested(conductor: Conductor) -> None:
    c = conductor
    c.register("fork_join_sync_nested_integration_test.json")
    with trio.fail_after(20):
        wf_id = await c.start("ForkJoinSyncNestedTest")
        assert await c.shape(wf_id) == [
            ("FORK", "outer_fork", "COMPLETED"),
            ("FORK", "inner_fork", "COMPLETED"),
            ("integration_task_1", "inner_a", "SCHEDULED"),
            ("integration_task_2", "inner_b", "SCHEDULED"),
            ("integration_task_3", "outer_c", "SCHEDULED"),
            ("JOIN", "inner_join", "IN_PROGRESS"),
            ("JOIN", "outer_join", "IN_PROGRESS"),
        ]
        await c.complete(wf_id, "inner_a")
        await c.complete(wf_id, "inner_b", {"b": 1})
        wf = await c.workflow(wf_id)
        assert _task(wf, "inner_join")["status"] == "COMPLETED"
        assert _task(wf, "inner_join")["endTime"] == _task(wf, "inner_b")["endTime"]
        assert _task(wf, "outer_join")["status"] == "IN_PROGRESS"
        await c.complete(wf_id, "outer_c", {"c": 1})
        wf = await c.workflow(wf_id)
        outer = _task(wf, "outer_join")
        assert outer["status"] == "COMPLETED"
        assert outer["outputData"]["outer_c"] == {"c": 1}
        assert outer["outputData"]["inner_join"] == {"inner_b": {"b": 1}}
        await c.complete(wf_id, "postJoinTask")
        assert await c.status(wf_id) == "COMPLETED"


async def test_sync_join_with_a_failed_optional_branch(conductor: Conductor) -> None:
    c = conductor
    c.register("fork_join_sync_optional_fail_integration_test.json")
    c.taskdef("integration_task_2", retryCount=0)
    with trio.fail_after(20):
        wf_id = await c.start("ForkJoinSyncOptionalFailTest")
        await c.fail(wf_id, "branch_optional", "optional branch failed")
        wf = await c.workflow(wf_id)
        assert _task(wf, "branch_optional")["status"] == "COMPLETED_WITH_ERRORS"
        assert _task(wf, "joinTask")["status"] == "IN_PROGRESS"  # still waits for the other
        await c.complete(wf_id, "branch_required", {"r": 1})
        wf = await c.workflow(wf_id)
        join = _task(wf, "joinTask")
        assert join["status"] == "COMPLETED_WITH_ERRORS"
        optional = _task(wf, "branch_optional")
        assert join["reasonForIncompletion"] == (
            f"integration_task_2/{optional['taskId']} completed with errors"
        )
        assert join["endTime"] == _task(wf, "branch_required")["endTime"]
        assert _task(wf, "postJoinTask")["status"] == "SCHEDULED"
        await c.complete(wf_id, "postJoinTask")
        assert await c.status(wf_id) == "COMPLETED"
