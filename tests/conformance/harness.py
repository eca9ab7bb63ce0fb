"""A Conductor-like test harness around the real edged engine.

Theory of operation
-------------------
Conductor's Spock specs start a workflow, then play the worker by hand:
poll a task by name, complete or fail it, and check the workflow.  Here the
same engine the daemon runs (real SQLite journal in tmp_path, the owner
task, dispatcher, timers) runs in-process; work tasks have no binding, so
they wait in `dispatcher.pending` exactly as they would for a Conductor
poller, and the harness completes them through `EngineService` the way the
REST API does.  The harness's own stub task types (USER_TASK,
BLOCKING_SYSTEM_TASK) are unknown to edged, hence work tasks too.

Time: the engine reads wall-clock milliseconds through `now_ms`.  The
harness swaps in a clock with an offset so `advance(s)` moves edged's time
forward without sleeping (timeouts, WAIT durations, retry delays) while
every `trio.fail_after` bound keeps running on real time.

Task defs: the ones Conductor's WorkflowTestUtil registers before every
spec (integration_task_0..20 with retryCount 1, and the named specials).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from edged.config import Config
from edged.daemon import build_engine
from edged.defs import KNOWN_TASK_TYPES, load_file
from edged.journal import open_journal
from edged.runtime import dispatch, engine, service, sinks, timers
from edged.runtime.engine import Engine
from edged.runtime.registry import DefinitionRegistry
from edged.runtime.service import EngineService

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared/conformance/conductor"
HARNESS = FIXTURES / "test-harness"
HARNESS_TYPES = frozenset(KNOWN_TASK_TYPES) | {"USER_TASK", "BLOCKING_SYSTEM_TASK"}
STEP_S = 10.0  # every harness wait is bounded by this (real seconds)

Json = dict[str, Any]


def need_fixtures() -> None:
    if not FIXTURES.is_dir():
        pytest.skip(
            f"Conductor conformance fixtures not found at {FIXTURES}", allow_module_level=True
        )


def _td(name: str, retry: int = 0, timeout_s: int = 0, response_s: int = 0, **extra: Any) -> Json:
    doc: Json = {
        "name": name,
        "retryCount": retry,
        "timeoutSeconds": timeout_s,
        "ownerEmail": "test@harness.com",
    }
    if response_s:
        doc["responseTimeoutSeconds"] = response_s
    doc.update(extra)
    return doc


def harness_taskdefs() -> list[Json]:
    """WorkflowTestUtil.taskDefinitions(): what every Conductor spec starts with."""
    defs = [_td(f"integration_task_{i}", 1, 120, 120) for i in range(21)]
    defs += [_td(f"integration_task_0_RT_{i}", 0, 120, 120) for i in range(5)]
    defs += [
        _td("short_time_out", 1, 5, 5),
        _td("task_rt", 1, 120, 10, retryDelaySeconds=0),
        _td("task_optional", 1, 5, 5, timeoutPolicy="RETRY", retryDelaySeconds=0),
        _td("simple_task_in_sub_wf", 0),
        _td("sub_workflow_task", 1, 0, 5, retryDelaySeconds=0),
        _td("waitTimeout", 1, 2, 2, timeoutPolicy="RETRY", retryDelaySeconds=10),
        _td("user_task", 1, 20, 20, timeoutPolicy="RETRY", retryDelaySeconds=10),
        _td("eventX", 0, 10, 10),
        _td("test_task_with_rateLimits", rateLimitFrequencyInSeconds=10, rateLimitPerFrequency=1),
        _td(
            "test_simple_task_with_rateLimits",
            rateLimitFrequencyInSeconds=10,
            rateLimitPerFrequency=1,
        ),
        _td("test_task_with_concurrency_limit", concurrentExecLimit=1),
    ]
    # Conductor's TaskDef defaults that matter: retryDelaySeconds 60 unless set.
    for d in defs:
        d.setdefault("retryDelaySeconds", 60)
        d.setdefault("timeoutPolicy", "TIME_OUT_WF")
    return defs


@dataclass
class Clock:
    """edged's `now_ms` with an offset the test moves forward."""

    offset_ms: int = 0
    base_ms: int = field(default_factory=lambda: time.time_ns() // 1_000_000)

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms


class Conductor:
    """The spec's view: start, poll, complete, fail, admin calls, queries."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.api = EngineService(engine)
        self.clock = clock

    # ---------------------------------------------------------------- setup

    def register(self, *files: str, overrides: Iterable[Json] = ()) -> None:
        for name in files:
            defs = load_file(
                HARNESS / name if "/" not in name else FIXTURES / name, task_types=HARNESS_TYPES
            )
            # load_file validated against HARNESS_TYPES and normalized already;
            # install_definitions would refuse the harness's stub types.
            for doc in defs.workflows:
                self.engine.registry.put_workflow(doc)
            for td in defs.taskdefs:
                self.engine.registry.put_taskdef(DefinitionRegistry.check_taskdef(td))
            self.engine.registry.event_handlers.extend(defs.event_handlers)
        for td in overrides:
            self.engine.registry.put_taskdef(DefinitionRegistry.check_taskdef(td))

    def taskdef(self, name: str, **changes: Any) -> None:
        """Change one registered task def (what a spec does in its setup)."""
        current = dict(self.engine.registry.taskdef(name) or {"name": name})
        current.update(changes)
        self.engine.registry.put_taskdef(DefinitionRegistry.check_taskdef(current))

    # ------------------------------------------------------------ workflows

    async def start(self, name: str, input: Json | None = None, **request: Any) -> str:
        with trio.fail_after(STEP_S):
            wf_id = await self.api.start_workflow({"name": name, "input": input or {}, **request})
            await self.settle()
        return wf_id

    async def settle(self) -> None:
        """Wait until the engine has nothing queued (children started, follow-ups applied)."""
        with trio.fail_after(STEP_S):
            quiet = 0
            while quiet < 3:
                await trio.sleep(0.001)
                quiet = 0 if self.engine.busy() else quiet + 1

    async def workflow(self, wf_id: str) -> Json:
        await self.settle()
        return await self.api.get_workflow(wf_id, include_tasks=True)

    async def tasks(self, wf_id: str) -> list[Json]:
        tasks: list[Json] = (await self.workflow(wf_id))["tasks"]
        return tasks

    async def shape(self, wf_id: str) -> list[tuple[str, str, str]]:
        """(taskType, referenceTaskName, status) of every task, in order."""
        return [
            (t["taskType"], t["referenceTaskName"], t["status"]) for t in await self.tasks(wf_id)
        ]

    async def status(self, wf_id: str) -> str:
        status: str = (await self.workflow(wf_id))["status"]
        return status

    async def wait_status(self, wf_id: str, status: str) -> Json:
        with trio.fail_after(STEP_S):
            while True:
                wf = await self.workflow(wf_id)
                if wf["status"] == status:
                    return wf
                await trio.sleep(0.005)

    # --------------------------------------------------------------- worker

    async def pending_task(self, wf_id: str, ref: str) -> Json:
        for task in reversed(await self.tasks(wf_id)):
            if task["referenceTaskName"] == ref and task["status"] in ("SCHEDULED", "IN_PROGRESS"):
                return task
        raise AssertionError(f"no pending task {ref} in {wf_id}: {await self.shape(wf_id)}")

    async def complete(self, wf_id: str, ref: str, output: Json | None = None) -> Json:
        return await self.update(wf_id, ref, "COMPLETED", output)

    async def fail(
        self, wf_id: str, ref: str, reason: str = "failed", output: Json | None = None
    ) -> Json:
        return await self.update(wf_id, ref, "FAILED", output, reason)

    async def update(
        self,
        wf_id: str,
        ref: str,
        status: str,
        output: Json | None = None,
        reason: str | None = None,
    ) -> Json:
        task = await self.pending_task(wf_id, ref)
        with trio.fail_after(STEP_S):
            await self.api.update_task(
                {
                    "workflowInstanceId": task["workflowInstanceId"],
                    "taskId": task["taskId"],
                    "status": status,
                    "outputData": output or {},
                    "reasonForIncompletion": reason,
                    "workerId": "harness",
                }
            )
        await self.settle()
        return task

    async def poll(self, wf_id: str, ref: str) -> Json:
        """A worker picks the task up (IN_PROGRESS, timeouts start) without answering."""
        from edged.core.events import TaskStarted
        from edged.runtime.engine import Op

        task = await self.pending_task(wf_id, ref)
        event = TaskStarted(at_ms=self.clock.now_ms(), task_id=task["taskId"], worker_id="harness")
        with trio.fail_after(STEP_S):
            await self.engine.submit(Op(wf_id, event))
        await self.settle()
        return task

    async def poll_name(self, task_name: str) -> Json | None:
        """A worker polls `task_name` through the dispatcher's limits (None: nothing given)."""
        from edged.core.events import TaskStarted
        from edged.runtime.engine import Op

        handed = self.engine.dispatcher.poll(task_name, 1)
        if not handed:
            return None
        cmd = handed[0]
        event = TaskStarted(at_ms=self.clock.now_ms(), task_id=cmd.task_id, worker_id="harness")
        with trio.fail_after(STEP_S):
            await self.engine.submit(Op(cmd.workflow_id, event))
        for task in await self.tasks(cmd.workflow_id):
            if task["taskId"] == cmd.task_id:
                return task
        raise AssertionError(f"polled task {cmd.task_id} is not in {cmd.workflow_id}")

    def polled(self, task_name: str) -> list[str]:
        """Task ids waiting for a Conductor poller of `task_name`."""
        return [cmd.task_id for cmd in self.engine.dispatcher.pending.get(task_name, ())]

    # ---------------------------------------------------------------- admin

    async def admin(self, call: str, wf_id: str, *args: Any, **kwargs: Any) -> Any:
        with trio.fail_after(STEP_S):
            result = await getattr(self.api, call)(wf_id, *args, **kwargs)
        await self.settle()
        return result

    async def advance(self, seconds: float) -> None:
        """Move edged's clock forward and let due timers fire."""
        self.clock.offset_ms += int(seconds * 1000)
        self.engine.timers._wakeup.set()
        await self.settle()
        await trio.sleep(0.01)
        await self.settle()


@asynccontextmanager
async def open_conductor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Conductor]:
    clock = Clock()
    for module in (timers, engine, service, dispatch, sinks):
        monkeypatch.setattr(module, "now_ms", clock.now_ms)
    cfg = Config(data_dir=tmp_path)
    registry = DefinitionRegistry()
    for td in harness_taskdefs():
        registry.put_taskdef(DefinitionRegistry.check_taskdef(td))
    async with open_journal(tmp_path / "journal.db") as journal:
        eng = build_engine(journal, registry, cfg)
        async with trio.open_nursery() as nursery:
            with trio.fail_after(STEP_S):
                await nursery.start(eng.run)
            yield Conductor(eng, clock)
            nursery.cancel_scope.cancel()
