"""TaskLimitsWorkflowSpec: rateLimitPerFrequency and concurrentExecLimit, applied at poll.

Conductor applies both limits when a worker polls; edged's tasks without a
binding wait in `dispatcher.pending` and `Dispatcher.poll()` applies them the
same way.  USER_TASK (Conductor's async system task stub) is a work task
here, so the "system task" case is polled like the simple one.
"""

from __future__ import annotations

from harness import Conductor


async def _one_task(c: Conductor, wf_id: str) -> tuple[str, str, str]:
    (only,) = await c.shape(wf_id)
    return only


async def _rate_limited(c: Conductor, workflow: str, task: str, task_type: str) -> None:
    c.register(
        "rate_limited_system_task_workflow_integration_test.json",
        "rate_limited_simple_task_workflow_integration_test.json",
    )
    first = await c.start(workflow)
    assert await _one_task(c, first) == (task_type, task, "SCHEDULED")
    polled = await c.poll_name(task)
    assert polled is not None and polled["workflowInstanceId"] == first
    assert polled["status"] == "IN_PROGRESS"
    await c.complete(first, task)
    assert await c.status(first) == "COMPLETED"

    second = await c.start(workflow)
    assert await _one_task(c, second) == (task_type, task, "SCHEDULED")
    assert await c.poll_name(task) is None  # one per 10 s window
    assert await _one_task(c, second) == (task_type, task, "SCHEDULED")

    await c.advance(10)
    polled = await c.poll_name(task)
    assert polled is not None and polled["workflowInstanceId"] == second
    await c.complete(second, task)
    assert await _one_task(c, second) == (task_type, task, "COMPLETED")
    assert await c.status(second) == "COMPLETED"


async def test_rate_limit_simple_task(conductor: Conductor) -> None:
    await _rate_limited(
        conductor,
        "test_rate_limit_simple_task_workflow",
        "test_simple_task_with_rateLimits",
        "test_simple_task_with_rateLimits",
    )


async def test_rate_limit_system_task(conductor: Conductor) -> None:
    await _rate_limited(
        conductor,
        "test_rate_limit_system_task_workflow",
        "test_task_with_rateLimits",
        "USER_TASK",
    )


async def test_concurrency_limit(conductor: Conductor) -> None:
    c = conductor
    task = "test_task_with_concurrency_limit"
    c.register("concurrency_limited_task_workflow_integration_test.json")
    first = await c.start("test_concurrency_limits_workflow")
    assert await _one_task(c, first) == (task, task, "SCHEDULED")
    polled = await c.poll_name(task)
    assert polled is not None and polled["workflowInstanceId"] == first

    second = await c.start("test_concurrency_limits_workflow")
    assert await _one_task(c, second) == (task, task, "SCHEDULED")
    assert await c.poll_name(task) is None  # the first still holds the only slot
    await c.advance(60)  # time does not free a concurrency slot
    assert await c.poll_name(task) is None

    await c.complete(first, task)
    assert await _one_task(c, first) == (task, task, "COMPLETED")
    assert await c.status(first) == "COMPLETED"
    polled = await c.poll_name(task)
    assert polled is not None and polled["workflowInstanceId"] == second
    assert c.engine.dispatcher.polled_count() == 1


async def test_concurrency_slot_freed_by_terminate_and_failure(conductor: Conductor) -> None:
    """Any end frees the slot: a terminated workflow, a failed (retried) task."""
    c = conductor
    task = "test_task_with_concurrency_limit"
    c.register("concurrency_limited_task_workflow_integration_test.json")
    first = await c.start("test_concurrency_limits_workflow")
    second = await c.start("test_concurrency_limits_workflow")
    assert (await c.poll_name(task) or {}).get("workflowInstanceId") == first
    assert await c.poll_name(task) is None
    await c.admin("terminate", first, "enough")
    assert (await c.poll_name(task) or {}).get("workflowInstanceId") == second
    assert c.engine.dispatcher.polled_count() == 1
    await c.fail(second, task)  # retryCount 0: the workflow fails, the slot frees
    assert await c.status(second) == "FAILED"
    assert c.engine.dispatcher.polled_count() == 0
