"""TaskLimitsWorkflowSpec: rateLimitPerFrequency and concurrentExecLimit, applied at poll.

Conductor applies both limits when a worker polls; edged's tasks without a
binding wait in `dispatcher.pending` and `Dispatcher.poll()` applies them the
same way.  USER_TASK (Conductor's async system task stub) is a work task
here, so the "system task" case is polled like the simple one.
"""

from __future__ import annotations

from unittest.mock import patch

from harness import Conductor
from hypothesis import given, settings
from hypothesis import strategies as st

from edged.core.commands import DispatchTask
from edged.core.events import TaskResultReceived
from edged.handlers import HandlerRegistry
from edged.runtime import dispatch
from edged.runtime.dispatch import Dispatcher


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


# ------------------------------------------------ poll limits as an invariant

_LIMITED = {
    "name": "limited",
    "concurrentExecLimit": 2,
    "rateLimitPerFrequency": 3,
    "rateLimitFrequencyInSeconds": 1,
}

_steps = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.integers(1, 3)),
        st.tuples(st.just("poll"), st.integers(1, 4)),
        st.tuples(st.just("end"), st.integers(0, 5)),
        st.tuples(st.just("wait_ms"), st.integers(0, 1500)),
    ),
    max_size=40,
)


@given(_steps)
@settings(max_examples=150, deadline=None)
def test_poll_never_exceeds_the_limits(steps: list[tuple[str, int]]) -> None:
    """Whatever the order of submits, polls, ends and time: at most 2 held, at most 3 per
    rate window, each task handed once and in FIFO order."""
    clock = {"ms": 1_000_000}

    async def report(workflow_id: str, event: TaskResultReceived) -> None:
        raise AssertionError("a pending task never reports")

    disp = Dispatcher(report, registry=HandlerRegistry())
    submitted: list[str] = []
    handed: list[str] = []
    held: list[str] = []
    window: list[int] = []  # hand-out times
    with patch.object(dispatch, "now_ms", lambda: clock["ms"]):
        for op, n in steps:
            if op == "submit":
                for _ in range(n):
                    task_id = f"t{len(submitted)}"
                    submitted.append(task_id)
                    disp.submit(
                        DispatchTask(
                            "wf", task_id, "SIMPLE", "limited", task_id, {}, 0, 0, _LIMITED
                        )
                    )
            elif op == "poll":
                got = [cmd.task_id for cmd in disp.poll("limited", n)]
                assert len(got) <= n
                handed += got
                held += got
                window += [clock["ms"]] * len(got)
            elif op == "end" and held:
                disp.ended([held.pop(n % len(held))])
            else:
                clock["ms"] += n
            assert len(held) <= 2
            assert disp.polled_count() == len(held)
            # Fixed 1 s windows, each opened >= 1 s after the previous one: at most
            # 1 + elapsed // 1 s of them so far, 3 hand-outs each.
            assert len(window) <= 3 * (1 + (clock["ms"] - 1_000_000) // 1000)
    assert handed == submitted[: len(handed)]  # FIFO, nothing twice, nothing invented
