"""The hot-path shortcuts keep behaviour identical to the slow paths they replace."""

from __future__ import annotations

import copy
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import trio
from hypothesis import given
from hypothesis import strategies as st

from edged.config import Config
from edged.core.commands import DispatchTask
from edged.core.decider import _NS, derive_id
from edged.core.events import TaskResultReceived
from edged.core.model import TaskStatus, WorkflowStatus
from edged.daemon import build_engine
from edged.handlers import HandlerRegistry
from edged.ids import new_execution_id
from edged.journal import Batch, ExecutionRow, open_journal
from edged.journal.codec import SharedValues, decode, encode
from edged.journal.rows import JournalSettings
from edged.journal.schema import connect, open_writer_connection
from edged.runtime.dispatch import Dispatcher, _copy_json, _plainly_json
from edged.runtime.engine import Op, new_workflow
from edged.runtime.registry import DefinitionRegistry
from edged.runtime.timers import TimerService, now_ms
from tests.container_ids import container_ids

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(st.lists(st.text(), min_size=1, max_size=3))
def test_derive_id_is_uuid5(parts: list[str]) -> None:
    # (a first part that is a time-ordered UUID takes the other branch, tested below)
    assert derive_id(*parts) == str(uuid.uuid5(_NS, "/".join(parts)))


def test_derive_id_keeps_the_time_prefix_of_a_time_ordered_parent() -> None:
    parent = new_execution_id()
    task_id = derive_id(parent, "3")
    child_id = derive_id(task_id, "child", "0")
    for derived in (task_id, child_id):
        assert derived[:13] == parent[:13]  # the same 48-bit creation time
        assert uuid.UUID(derived).version == 8 and uuid.UUID(derived).variant == uuid.RFC_4122
    rest = str(uuid.uuid5(_NS, f"{parent}/3"))
    assert task_id[15:] == rest[15:]  # SHA-1 bits as before, after the version nibble
    assert derive_id(parent, "3") == task_id and derive_id(parent, "4") != task_id
    assert len({derive_id(parent, str(seq)) for seq in range(10_000)}) == 10_000


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=4), json_values)
def test_shared_encoding_decodes_to_the_same_doc(doc: dict[str, Any], definition: Any) -> None:
    doc = {**doc, "definition": definition}
    shared = SharedValues()
    first, second = shared.encode(doc, "definition"), shared.encode(doc, "definition")
    assert decode(first) == decode(second) == decode(encode(doc))
    assert first == second


def test_the_definition_is_packed_once_per_object() -> None:
    definition = {"name": "chain", "tasks": [{"taskReferenceName": f"t{i}"} for i in range(50)]}
    shared = SharedValues()
    blob = shared.encode({"input": {}, "definition": definition}, "definition")
    definition["name"] = (
        "changed in place"  # not allowed in real use: proves the cached bytes are reused
    )
    assert decode(shared.encode({"input": {}, "definition": definition}, "definition")) == decode(
        blob
    )
    # An equal but distinct object is encoded afresh.
    fresh = {**definition}
    assert (
        decode(shared.encode({"definition": fresh}, "definition"))["definition"]["name"]
        == "changed in place"
    )


def test_the_cache_is_bounded_and_survives_eviction() -> None:
    shared = SharedValues(max_entries=2)
    definitions = [{"name": f"d{i}"} for i in range(5)]
    for _ in range(2):
        for d in definitions:
            assert decode(shared.encode({"definition": d}, "definition")) == {"definition": d}
    assert len(shared._cache) == 2


async def test_a_journal_round_trips_shared_definitions(tmp_path: Path) -> None:
    definition = {
        "name": "chain",
        "version": 1,
        "tasks": [{"name": "t", "taskReferenceName": f"t{i}"} for i in range(20)],
    }
    with trio.fail_after(10):
        async with open_journal(tmp_path / "j.db") as journal:
            for i in range(3):
                row = ExecutionRow(
                    f"wf{i}",
                    "chain",
                    1,
                    "RUNNING",
                    None,
                    None,
                    None,
                    1,
                    1,
                    None,
                    {"definition": definition, "i": i},
                )
                await journal.commit(Batch(executions=[row]))
        async with open_journal(tmp_path / "j.db") as journal:
            for i in range(3):
                found = await journal.load_execution(f"wf{i}")
                assert found is not None
                assert found[0].doc == {"definition": definition, "i": i}


@given(
    st.lists(
        st.tuples(st.sampled_from(["arm", "cancel"]), st.integers(0, 40), st.integers(0, 10**6)),
        max_size=400,
    )
)
def test_timer_heap_compaction_keeps_the_armed_set(ops: list[tuple[str, int, int]]) -> None:
    fired: list[tuple[str, int]] = []
    service = TimerService(lambda key, _wid, at: fired.append((key, at)))
    armed: dict[str, int] = {}
    for kind, k, at in ops:
        if kind == "arm":
            service.arm(f"k{k}", "wf", at)
            armed[f"k{k}"] = at
        else:
            service.cancel(f"k{k}")
            armed.pop(f"k{k}", None)
    assert len(service) == len(armed)
    assert len(service._heap) <= 2 * len(armed) + 1025
    due = service.next_due_ms()
    assert due == (min(armed.values()) if armed else None)


def test_cancelled_timers_do_not_pile_up() -> None:
    service = TimerService(lambda *_: None)
    for i in range(100_000):  # every task arms a response timeout its result cancels
        service.arm(f"rt:{i}", "wf", 3_600_000 + i)
        service.cancel(f"rt:{i}")
    assert len(service._heap) < 2_000


async def test_timers_fire_in_order_after_compaction() -> None:
    # TimerService reads the wall clock (journal times), so this waits ~30 ms for real.
    fired: list[str] = []
    all_fired = trio.Event()

    def fire(key: str, _wid: str, _at: int) -> None:
        fired.append(key)
        if len(fired) == 3:
            all_fired.set()

    service = TimerService(fire)
    base = now_ms()
    for i in range(3_000):
        service.arm(f"stale{i}", "wf", base + 10_000_000)
        service.cancel(f"stale{i}")
    for i in (3, 1, 2):
        service.arm(f"live{i}", "wf", base + i * 10)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(service.run)
            await all_fired.wait()
            nursery.cancel_scope.cancel()
    assert fired == ["live1", "live2", "live3"]


@given(json_values)
def test_handler_inputs_are_copied_like_deepcopy(value: Any) -> None:
    copied = _copy_json(value)
    assert copied == copy.deepcopy(value)
    assert not set(container_ids(copied)) & set(container_ids(value))


def test_a_doc_too_deep_around_a_shared_definition_is_still_split() -> None:
    deep: Any = []
    for _ in range(1_030):  # deeper than msgpack's unpacker accepts, outside the shared value
        deep = [deep]
    doc = {"definition": {"name": "d", "tasks": [{"x": "y" * 2_000}]}, "input": deep}
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(5_000)  # only for comparing the nested lists
    try:
        assert decode(SharedValues().encode(doc, "definition")) == doc
    finally:
        sys.setrecursionlimit(limit)


async def test_the_rate_limit_tick_wakes_for_waiting_tasks() -> None:
    # The rate window is wall-clock (now_ms), so this waits up to 1 s for real.
    results: list[str] = []
    done = trio.Event()

    async def report(_wid: str, event: TaskResultReceived) -> None:
        results.append(event.task_id)
        if len(results) == 3:
            done.set()

    handlers = HandlerRegistry()
    handlers.register("limited", lambda ctx: {"ok": True})
    dispatcher = Dispatcher(report, registry=handlers)
    taskdef = {"name": "limited", "rateLimitPerFrequency": 2, "rateLimitFrequencyInSeconds": 1}
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(dispatcher.run)
            await trio.sleep(0.2)  # the tick is idle: nothing waits
            for i in range(3):
                dispatcher.submit(
                    DispatchTask(
                        workflow_id="wf",
                        task_id=f"t{i}",
                        task_type="SIMPLE",
                        def_name="limited",
                        ref=f"r{i}",
                        input={},
                        attempt=0,
                        generation=0,
                        taskdef=taskdef,
                        domain=None,
                    )
                )
            assert dispatcher.stats["waiting_for_limit"] == 1
            await done.wait()
            nursery.cancel_scope.cancel()
    assert sorted(results) == ["t0", "t1", "t2"]


async def test_recovered_executions_share_one_definition_object(tmp_path: Path) -> None:
    definition = DefinitionRegistry.check_workflow(
        {
            "name": "stuck",
            "version": 1,
            "tasks": [{"name": "unbound", "taskReferenceName": "a", "type": "SIMPLE"}],
        }
    )
    registry = DefinitionRegistry()
    registry.put_workflow(definition)
    cfg = Config(data_dir=tmp_path)
    with trio.fail_after(20):
        for round_ in range(2):
            async with open_journal(cfg.journal_path) as journal:
                engine = build_engine(journal, registry, cfg, handler_registry=HandlerRegistry())
                async with trio.open_nursery() as nursery:
                    await nursery.start(engine.run)
                    if round_ == 0:
                        for i in range(3):
                            wf = new_workflow(dict(definition), workflow_id=f"wf{i}", input={})
                            await engine.submit(Op(wf.workflow_id, create=wf))
                    else:
                        recovered = [engine.live[f"wf{i}"].definition for i in range(3)]
                        assert recovered[0] == definition
                        assert recovered[0] is recovered[1] is recovered[2]
                    nursery.cancel_scope.cancel()


any_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.binary(max_size=2)
    | st.sets(st.integers(), max_size=2)
    | st.tuples(st.integers()),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=4) | st.integers() | st.none(), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(any_values)
def test_the_json_shortcut_never_accepts_what_json_dumps_refuses(value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
        dumps_ok = True
    except (TypeError, ValueError):
        dumps_ok = False
    if _plainly_json(value):
        assert dumps_ok


@given(json_values)
def test_the_json_shortcut_takes_plain_json(value: Any) -> None:
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:
        return  # an infinity: refused by both (see the test above)
    assert _plainly_json({"result": value})


def test_the_json_shortcut_stops_at_cycles_and_nan() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    assert not _plainly_json(cyclic)
    assert not _plainly_json({"x": float("nan")})
    assert not _plainly_json({1: "int key"})  # json.dumps takes it; the slow path decides


def test_status_flags_match_their_definitions() -> None:
    for wf_status in WorkflowStatus:
        assert wf_status.terminal == (wf_status.value not in ("RUNNING", "PAUSED"))
        assert wf_status.successful == (wf_status.value in ("COMPLETED", "PAUSED"))
    for status in TaskStatus:
        assert status.terminal == (status.value not in ("IN_PROGRESS", "SCHEDULED"))
        assert status.successful == (
            status.value in ("COMPLETED", "COMPLETED_WITH_ERRORS", "SKIPPED")
        )
        assert TaskStatus(status.value).terminal == status.terminal


def test_the_writer_gets_the_bigger_page_cache(tmp_path: Path) -> None:
    settings = JournalSettings(cache_size_kib=2_048, writer_cache_size_kib=8_192)
    writer = open_writer_connection(tmp_path / "j.db", settings)
    reader = connect(tmp_path / "j.db", settings, read_only=True)
    try:
        assert writer.execute("PRAGMA cache_size").fetchone()[0] == -8_192
        assert reader.execute("PRAGMA cache_size").fetchone()[0] == -2_048
    finally:
        writer.close()
        reader.close()


@given(
    st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    json_values,
    json_values,
)
def test_shared_encoding_of_several_keys_decodes_to_the_same_doc(
    doc: dict[str, Any], wt: Any, taskdef: Any
) -> None:
    doc = {**doc, "wt": wt, "taskdef": taskdef}
    shared = SharedValues()
    first = shared.encode(doc, "wt", "taskdef")
    second = shared.encode(doc, "wt", "taskdef")
    assert decode(first) == decode(second) == decode(encode(doc)) == doc
