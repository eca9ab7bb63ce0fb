"""The live feed (edged.runtime.feed) on its own: fan-out, bounds, cut-off, wake-ups.

The engine calls the feed synchronously after each commit; these tests call
it the same way with real `Workflow` and `HistoryEvent` values, on Trio's
MockClock (no real sleeping).
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from edged.core.model import Workflow
from edged.journal import HistoryEvent
from edged.runtime.feed import Feed, FeedFull, Subscription
from edged.runtime.rows import new_workflow

DEFINITION = {"name": "pump", "version": 1, "tasks": []}


def workflow(workflow_id: str, name: str = "pump") -> Workflow:
    return new_workflow({**DEFINITION, "name": name}, workflow_id=workflow_id, input={})


def rows(wf: Workflow, first_id: int, count: int) -> list[tuple[int, HistoryEvent]]:
    return [
        (first_id + i, HistoryEvent(wf.workflow_id, 1000 + i, "TaskScheduled", {"n": i}))
        for i in range(count)
    ]


def test_fan_out_by_execution_name_and_everything() -> None:
    feed = Feed(capacity=100)
    a, b = workflow("a"), workflow("b", name="other")
    with (
        feed.subscribe(workflow_id="a") as only_a,
        feed.subscribe(name="other") as by_name,
        feed.subscribe() as everything,
    ):
        feed(a, rows(a, 1, 2))
        feed(b, rows(b, 3, 1))
        assert [e.id for e in only_a.take_nowait()] == [1, 2]
        assert [(e.id, e.name) for e in by_name.take_nowait()] == [(3, "other")]
        got = everything.take_nowait()
        assert [e.id for e in got] == [1, 2, 3]
        assert (
            got[0].workflow_id == "a" and got[0].kind == "TaskScheduled" and got[0].body == {"n": 0}
        )
        assert feed.statistics().subscribers == 3
    assert feed.statistics().subscribers == 0
    feed(a, rows(a, 4, 1))  # nobody listens: nothing kept anywhere


def test_a_full_buffer_cuts_off_only_that_subscriber() -> None:
    feed = Feed(capacity=3)
    wf = workflow("w")
    slow = feed.open()
    fast = feed.open()
    feed(wf, rows(wf, 1, 2))
    assert [e.id for e in fast.take_nowait()] == [1, 2]
    feed(wf, rows(wf, 3, 2))  # slow now holds 3 and cannot take the 4th
    assert slow.overflowed and not fast.overflowed
    assert [e.id for e in slow.take_nowait()] == [1, 2, 3]  # keeps what it had
    feed(wf, rows(wf, 5, 1))
    assert slow.take_nowait() == []  # removed from the feed: nothing new
    assert [e.id for e in fast.take_nowait()] == [3, 4, 5]
    stats = feed.statistics()
    assert stats.cut_off == 1 and stats.subscribers == 1
    feed.close(slow)  # closing a cut-off subscription is harmless
    feed.close(fast)
    feed.close(fast)
    assert feed.statistics().subscribers == 0


def test_subscriptions_are_bounded() -> None:
    feed = Feed(max_subscribers=2)
    first = feed.open(workflow_id="x")
    feed.open(name="pump")
    with pytest.raises(FeedFull, match="limit 2"):
        feed.open()
    assert feed.statistics().refused == 1
    feed.close(first)
    feed.close(feed.open())


async def test_take_waits_for_events_or_times_out(autojump_clock: trio.testing.MockClock) -> None:
    feed = Feed(capacity=10)
    wf = workflow("w")
    with feed.subscribe(workflow_id="w") as sub:
        with trio.fail_after(5):
            assert await sub.take(1.0) == []  # the keep-alive tick
        async with trio.open_nursery() as nursery:

            async def later() -> None:
                await trio.sleep(0.5)
                feed(wf, rows(wf, 7, 2))

            nursery.start_soon(later)
            with trio.fail_after(5):
                got = await sub.take(60.0)
        assert [e.id for e in got] == [7, 8]


async def test_a_cut_off_subscriber_wakes_up_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    feed = Feed(capacity=1)
    wf = workflow("w")
    with feed.subscribe() as sub:
        feed(wf, rows(wf, 1, 1))
        assert [e.id for e in await sub.take(60.0)] == [1]
        feed(wf, rows(wf, 2, 2))  # 2 fits, 3 overflows
        with trio.fail_after(1):
            assert [e.id for e in await sub.take(60.0)] == [2]
            assert await sub.take(60.0) == []  # drained and cut off: no waiting
        assert sub.overflowed


async def test_a_refused_subscription_pokes_idle_streams(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Idle streams write a keep-alive at once (their take returns []), so the
    slots of vanished clients are found out before the refused client retries."""
    feed = Feed(max_subscribers=2)
    woke: list[float] = []
    async with trio.open_nursery() as nursery:
        for which in ({"workflow_id": "w"}, {}):
            sub = feed.open(**which)

            async def wait(sub: Subscription = sub) -> None:
                assert await sub.take(3600.0) == []
                woke.append(trio.current_time())

            nursery.start_soon(wait)
        await trio.sleep(10)
        with pytest.raises(FeedFull):
            feed.open(name="pump")
    assert woke == [10, 10]
