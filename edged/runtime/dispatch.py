"""Dispatch: hand committed work tasks to the executor their binding names.

Theory of operation
-------------------
The engine calls `submit()` only for `DispatchTask` commands that are already
in the journal.  The dispatcher applies the TaskDef's limits first
(`concurrentExecLimit`: tasks of that name in flight; `rateLimitPerFrequency`
per `rateLimitFrequencyInSeconds`: starts per window); a task over a limit
waits in a FIFO per task name and is released when a slot frees or the
window turns.  Then it picks the executor:

- a binding in the config names it explicitly (built by its kind's factory,
  see `edged.runtime.bindings`: `python` is a handler by `module:function`,
  `command` a subprocess; adapters register more kinds);
- else a handler registered for the task name with `@edged.handlers.task`;
- else an executor registered for the task's *type* (`register_type_executor`:
  `HTTP` is built in, adapters may add device task types);
- else the task waits in the `pending` queue for a Conductor-protocol worker
  to poll it (or, for `edged exec`, fails at once: `strict_bindings`).  Such
  a task skips the limits above: as in Conductor they apply when it is
  polled (`poll()`), and a polled task holds its concurrency slot until the
  engine reports it over (`ended()`).

In-process handlers report through `report(workflow_id, event)`.  A cancel
(the workflow ended, a timeout fired) cancels the handler's scope; a sync
handler's thread is abandoned, its late result is dropped.  Results are
checked to be JSON before they go anywhere near the journal, so a handler
that returns a `set` fails its task instead of poisoning a commit.
"""

from __future__ import annotations

import collections
import copy
import inspect
import json
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import trio

from edged.core.commands import DispatchTask
from edged.core.events import TaskResultReceived
from edged.handlers import Handler, HandlerRegistry, InProgress, TaskContext, TaskFailed
from edged.runtime.bindings import (
    default_executors,
    load_handler,
    register_binding_kind,
    register_type_executor,
)
from edged.runtime.task_queues import TaskQueues, queue_name
from edged.runtime.timers import now_ms

log = logging.getLogger("edged.dispatch")

Report = Callable[[str, TaskResultReceived], Awaitable[None]]


__all__ = ["Dispatcher", "load_handler", "register_binding_kind", "register_type_executor"]


def _copy_json(value: Any) -> Any:
    """`copy.deepcopy` for JSON values (dicts, lists, scalars), ~5x cheaper.

    The handler gets its own copy of the task input so that mutating it cannot
    change the journaled task.  Task inputs are JSON; anything else is
    deep-copied the slow way.
    """
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    if value is None or isinstance(value, str | int | float):
        return value
    return copy.deepcopy(value)


_JSON_SCALARS = frozenset({str, int, bool, type(None)})


def _plainly_json(value: Any, depth: int = 0) -> bool:
    """True if `json.dumps(value, allow_nan=False)` certainly succeeds.

    Exact types only (str keys; str, int, bool, None, finite float values;
    dicts and lists of those, at most 32 deep, so a cycle ends here too).
    Anything else answers False and `json.dumps` decides.  ~5x cheaper than
    serializing a small result just to throw the text away.
    """
    if depth > 32:
        return False
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                return False
            if type(item) in _JSON_SCALARS:
                continue
            if not _plainly_json(item, depth + 1):
                return False
        return True
    if type(value) is list:
        return all(type(v) in _JSON_SCALARS or _plainly_json(v, depth + 1) for v in value)
    if type(value) is float:
        return math.isfinite(value)
    return type(value) in _JSON_SCALARS


class _Limits:
    """concurrentExecLimit and rateLimitPerFrequency for one task name."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.window_start_ms = 0
        self.window_count = 0
        self.waiting: collections.deque[DispatchTask] = collections.deque()

    def admits(self, taskdef: dict[str, Any] | None, at_ms: int) -> bool:
        td = taskdef or {}
        limit = td.get("concurrentExecLimit") or 0
        if isinstance(limit, int) and limit > 0 and self.in_flight >= limit:
            return False
        per = td.get("rateLimitPerFrequency") or 0
        if isinstance(per, int) and per > 0:
            window_ms = max(1, int(td.get("rateLimitFrequencyInSeconds") or 1)) * 1000
            if at_ms - self.window_start_ms >= window_ms:
                self.window_start_ms = at_ms
                self.window_count = 0
            if self.window_count >= per:
                return False
            self.window_count += 1
        return True


class Dispatcher:
    def __init__(
        self,
        report: Report,
        *,
        registry: HandlerRegistry,
        bindings: Mapping[str, Handler] | None = None,
        max_threads: int = 8,
        strict_bindings: bool = False,
        mocks: dict[str, dict[str, Any]] | None = None,
        type_executors: Mapping[str, Handler] | None = None,
    ) -> None:
        self._report = report
        self._registry = registry
        # bindings arrive built (`edged.runtime.bindings.build_bindings`, before
        # the journal opens): task name -> handler
        self._handlers: dict[str, Handler] = dict(bindings or {})
        self._type_executors = default_executors.types if type_executors is None else type_executors
        self._mocks = mocks or {}
        self._strict = strict_bindings
        self._limiter = trio.CapacityLimiter(max(1, max_threads))
        self._limits: dict[str, _Limits] = collections.defaultdict(_Limits)
        self._scopes: dict[str, trio.CancelScope] = {}
        self._nursery: trio.Nursery | None = None
        self._is_async: dict[Handler, bool] = {}
        self._limited = trio.Event()  # set when a task starts waiting for a limit
        self._polled: dict[str, str] = {}  # task id -> task name, handed to a poller
        # tasks waiting for Conductor-protocol pollers, by queue name ("type" or "domain:type")
        self.queues = TaskQueues()
        self.pending = self.queues.pending
        self.stats = {
            "dispatched": 0,
            "completed": 0,
            "failed": 0,
            "errors": 0,
            "waiting_for_limit": 0,
        }

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._tick_rate_windows)
            task_status.started()
            await trio.sleep_forever()

    def in_flight(self) -> int:
        return len(self._scopes)

    def polled_count(self) -> int:
        return len(self._polled)

    def polled_by_name(self) -> dict[str, int]:
        """Tasks handed to pollers and not over yet, by task name."""
        return dict(collections.Counter(self._polled.values()))

    def handler_for(self, name: str, task_type: str | None = None) -> Handler | None:
        """Binding by name, else `@task` handler by name, else executor by task type."""
        handler = self._handlers.get(name) or self._registry.get(name)
        if handler is None and task_type is not None:
            handler = self._type_executors.get(task_type)
        return handler

    def submit(self, cmd: DispatchTask) -> None:
        if cmd.task_id in self._scopes:
            return  # already running (a duplicate dispatch after recovery)
        name = cmd.def_name
        if (
            not self._strict
            and name not in self._mocks
            and self.handler_for(name, cmd.task_type) is None
        ):
            # Waits for a poller: Conductor applies the limits when workers
            # poll, so `poll()` does too (a queued task holds no slot).
            self.ended((cmd.task_id,))
            self.queues.push(cmd, now_ms())
            return
        limits = self._limits[cmd.def_name]
        if limits.waiting or not limits.admits(cmd.taskdef, now_ms()):
            limits.waiting.append(cmd)
            self._limited.set()
            self.stats["waiting_for_limit"] += 1
            return
        self._start(cmd)

    def _start(self, cmd: DispatchTask) -> None:
        assert self._nursery is not None, "dispatcher is not running"
        mock = self._mocks.get(cmd.def_name)
        handler = self.handler_for(cmd.def_name, cmd.task_type)
        if mock is None and handler is None:
            if self._strict:
                self._nursery.start_soon(
                    self._report,
                    cmd.workflow_id,
                    TaskResultReceived(
                        at_ms=now_ms(),
                        task_id=cmd.task_id,
                        status="FAILED_WITH_TERMINAL_ERROR",
                        reason=f"no executor is bound to task {cmd.def_name!r} (bind it, register a handler, or use --mock {cmd.def_name}=JSON)",
                        generation=cmd.generation,
                    ),
                )
            else:
                self.queues.push(cmd, now_ms())
            return
        self._limits[cmd.def_name].in_flight += 1
        scope = trio.CancelScope()
        self._scopes[cmd.task_id] = scope
        self.stats["dispatched"] += 1
        self._nursery.start_soon(self._run_one, cmd, handler, mock, scope)

    def poll(self, task_name: str, count: int = 1, domain: str | None = None) -> list[DispatchTask]:
        """Hand out up to `count` pending tasks of `task_name` queued in `domain`, within
        its limits.

        A polled task counts against `concurrentExecLimit` until `ended()` hears
        of it; every task handed out counts against `rateLimitPerFrequency`.
        """
        name = queue_name(task_name, domain)
        queue = self.pending.get(name)
        handed: list[DispatchTask] = []
        if not queue:
            return handed
        limits = self._limits[task_name]
        at_ms = now_ms()
        while queue and len(handed) < count and limits.admits(queue[0].taskdef, at_ms):
            cmd = self.queues.pop(name)
            limits.in_flight += 1
            self._polled[cmd.task_id] = task_name
            handed.append(cmd)
        return handed

    def ended(self, task_ids: Iterable[str]) -> None:
        """Tasks that are over (or back in a queue): free their polled slots."""
        if not self._polled:
            return
        for task_id in task_ids:
            name = self._polled.pop(task_id, None)
            if name is not None:
                self._limits[name].in_flight -= 1
                if self.queues.waiting():
                    self.queues.wake(name)  # a slot under concurrentExecLimit freed

    def cancel(self, task_id: str) -> None:
        scope = self._scopes.get(task_id)
        if scope is not None:
            scope.cancel()
        self.ended((task_id,))
        self.queues.remove((task_id,))

    async def _run_one(
        self,
        cmd: DispatchTask,
        handler: Handler | None,
        mock: dict[str, Any] | None,
        scope: trio.CancelScope,
    ) -> None:
        started = now_ms()
        event: TaskResultReceived | None = None
        ctx = TaskContext(
            task_id=cmd.task_id,
            workflow_id=cmd.workflow_id,
            task_name=cmd.def_name,
            ref=cmd.ref,
            attempt=cmd.attempt,
            input=_copy_json(cmd.input),
            task_type=cmd.task_type,
            taskdef=cmd.taskdef,
        )
        try:
            with scope:
                if mock is not None:
                    result: Any = copy.deepcopy(mock)
                else:
                    assert handler is not None
                    result = await self._call(handler, ctx)
                event = self._result_event(cmd, ctx, result, started)
        except TaskFailed as exc:
            event = self._event(
                cmd,
                ctx,
                "FAILED_WITH_TERMINAL_ERROR" if exc.terminal else "FAILED",
                exc.output,
                exc.reason,
                started,
            )
        except Exception as exc:  # a handler's bug fails its task, never the daemon
            self.stats["errors"] += 1
            log.warning("handler for %s raised %s: %s", cmd.def_name, type(exc).__name__, exc)
            event = self._event(cmd, ctx, "FAILED", {}, f"{type(exc).__name__}: {exc}", started)
        finally:
            self._scopes.pop(cmd.task_id, None)
            self._release(cmd.def_name)
        if event is None:
            return  # cancelled: the journal already says why
        if event.status == "COMPLETED":
            self.stats["completed"] += 1
        elif event.status != "IN_PROGRESS":
            self.stats["failed"] += 1
        await self._report(cmd.workflow_id, event)

    async def _call(self, handler: Handler, ctx: TaskContext) -> Any:
        is_async = self._is_async.get(handler)
        if is_async is None:
            is_async = self._is_async[handler] = inspect.iscoroutinefunction(handler)
        if is_async:
            return await handler(ctx)
        result = await trio.to_thread.run_sync(
            handler, ctx, limiter=self._limiter, abandon_on_cancel=True
        )
        if inspect.isawaitable(result):
            return await result
        return result

    def _result_event(
        self, cmd: DispatchTask, ctx: TaskContext, result: Any, started: int
    ) -> TaskResultReceived:
        if isinstance(result, InProgress):
            return self._event(
                cmd, ctx, "IN_PROGRESS", result.output, None, started, result.callback_after_s
            )
        if result is None:
            output: dict[str, Any] = {}
        elif isinstance(result, dict):
            output = result
        else:
            output = {"result": result}
        try:
            if not _plainly_json(output):
                json.dumps(output, allow_nan=False)  # the authority; raises on non-JSON
        except (TypeError, ValueError) as exc:
            return self._event(
                cmd, ctx, "FAILED", {}, f"handler output is not JSON: {exc}", started
            )
        return self._event(cmd, ctx, "COMPLETED", output, None, started)

    @staticmethod
    def _event(
        cmd: DispatchTask,
        ctx: TaskContext,
        status: str,
        output: dict[str, Any],
        reason: str | None,
        started: int,
        callback_after_s: int = 0,
    ) -> TaskResultReceived:
        return TaskResultReceived(
            at_ms=now_ms(),
            task_id=cmd.task_id,
            status=status,
            output=output,
            reason=reason,
            callback_after_s=callback_after_s,
            logs=tuple(ctx.logs),
            generation=cmd.generation,
            started_ms=started,
        )

    def _release(self, name: str) -> None:
        limits = self._limits[name]
        limits.in_flight -= 1
        self._drain_waiting(name)

    def _drain_waiting(self, name: str) -> None:
        limits = self._limits[name]
        while limits.waiting:
            cmd = limits.waiting[0]
            if not limits.admits(cmd.taskdef, now_ms()):
                return
            limits.waiting.popleft()
            self._start(cmd)

    async def _tick_rate_windows(self) -> None:
        # Ticks only while some task waits for a limit: an idle gateway (or one
        # whose tasks have no limits) does not wake up 20 times a second.
        while True:
            if not any(limits.waiting for limits in self._limits.values()):
                self._limited = trio.Event()
                await self._limited.wait()
            await trio.sleep(0.05)
            for name, limits in list(self._limits.items()):
                if limits.waiting:
                    self._drain_waiting(name)
