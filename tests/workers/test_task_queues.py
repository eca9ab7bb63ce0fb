"""TaskQueues on its own: queue names, Conductor's active-domain choice, waiters and their bound."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from edged.core.commands import DispatchTask
from edged.runtime.task_queues import TaskQueues, queue_name

NOW = 1_700_000_000_000


def cmd(task_id: str, name: str = "resize", domain: str | None = None) -> DispatchTask:
    return DispatchTask(
        workflow_id="wf",
        task_id=task_id,
        task_type="SIMPLE",
        def_name=name,
        ref="r",
        input={},
        attempt=0,
        generation=0,
        taskdef=None,
        domain=domain,
    )


def test_queue_names_follow_conductor() -> None:
    assert queue_name("resize", None) == "resize"
    assert queue_name("resize", "") == "resize"
    assert queue_name("resize", "cam1") == "cam1:resize"


@pytest.mark.parametrize(
    ("mapping", "active", "expected"),
    [
        (None, set(), None),
        ("cam1", set(), "cam1"),
        ("cam1,cam2", set(), "cam2"),  # nobody active: the last one
        ("cam1,cam2", {"cam1"}, "cam1"),
        ("cam1,cam2", {"cam2"}, "cam2"),
        ("cam1,cam2", {"cam1", "cam2"}, "cam1"),  # the first active one in list order
        ("cam1,NO_DOMAIN", set(), None),
        ("cam1, no_domain", set(), None),
        ("cam1,NO_DOMAIN", {"cam1"}, "cam1"),
        ("NO_DOMAIN", set(), None),
        (" , ", set(), None),
    ],
)
def test_active_domain(mapping: str | None, active: set[str], expected: str | None) -> None:
    queues = TaskQueues()
    for domain in active:
        queues.record_poll("resize", domain, "w", NOW - 1000)
    queues.record_poll("resize", "stale", "w", NOW - 60_000)
    queues.record_poll("other", "cam2", "w", NOW)  # another task type's worker
    assert queues.active_domain("resize", mapping, NOW) == expected


def test_a_worker_that_stopped_polling_is_not_active() -> None:
    queues = TaskQueues(active_worker_ms=10_000)
    queues.record_poll("resize", "cam1", "w", NOW - 10_001)
    assert queues.active_domain("resize", "cam1,NO_DOMAIN", NOW) is None


def test_push_pop_remove_and_duplicates() -> None:
    queues = TaskQueues()
    assert queues.push(cmd("a"), NOW) == "resize"
    assert queues.push(cmd("b", domain="cam1"), NOW) == "cam1:resize"
    assert queues.push(cmd("a"), NOW) == "resize"  # a duplicate dispatch is queued once
    queues.push(cmd("c"), NOW)
    assert queues.sizes() == {"resize": 2, "cam1:resize": 1}
    queues.remove(["a", "unknown"])
    assert queues.sizes() == {"resize": 1, "cam1:resize": 1}
    assert not queues.queued("a") and queues.queued("c")
    assert queues.pop("resize").task_id == "c"
    queues.push(cmd("d"), NOW)
    queues.push(cmd("e"), NOW, front=True)
    assert [c.task_id for c in queues.pending["resize"]] == ["e", "d"]


async def test_a_push_wakes_the_waiters_of_its_queue_only() -> None:
    queues = TaskQueues()
    woken: list[str] = []

    async def waiter(name: str) -> None:
        with trio.move_on_after(5):
            if await queues.wait(name):
                woken.append(name)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter, "resize")
            nursery.start_soon(waiter, "cam1:resize")
            await trio.testing.wait_all_tasks_blocked()
            assert queues.waiting() == 2
            queues.push(cmd("a"), NOW)
            await trio.testing.wait_all_tasks_blocked()
            assert woken == ["resize"]
            nursery.cancel_scope.cancel()
    assert queues.waiting() == 0  # the cancelled waiter left too


async def test_waiters_are_bounded() -> None:
    queues = TaskQueues(max_waiters=1)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(queues.wait, "resize")
            await trio.testing.wait_all_tasks_blocked()
            assert await queues.wait("resize") is False  # at once, not parked
            assert queues.stats["refused_waiters"] == 1
            nursery.cancel_scope.cancel()


def test_poll_data_is_bounded() -> None:
    queues = TaskQueues(max_waiters=2)  # remembers at most 8 (type, domain) pairs
    for n in range(100):
        queues.record_poll(f"type{n}", None, "w", NOW)
    assert len(queues.poll_data()) == 8
    queues.record_poll("type0", None, "w2", NOW + 1)  # a known one is still updated
    assert [p.worker_id for p in queues.poll_data("type0")] == ["w2"]
