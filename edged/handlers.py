"""In-process task handlers: the Python side of a binding.

Users write ordinary functions and register them by task name::

    from edged.handlers import task, TaskFailed

    @task("checknumber")
    def check(ctx):
        if ctx.input["n"] < 0:
            raise TaskFailed("negative", terminal=True)
        return {"ok": True}

A handler gets a `TaskContext` and returns the task's output (a dict; any
other JSON value is wrapped as {"result": value}).  Raising `TaskFailed` fails
the task (terminal=True: FAILED_WITH_TERMINAL_ERROR, never retried); any other
exception fails it with the exception as reason; returning `InProgress` keeps
it running and calls the handler again after `callback_after_s`.  Sync
handlers run in worker threads, async ones on the event loop: neither blocks
the engine.  After a crash a handler may run again for the same `task_id` and
`attempt`; use them as an idempotency key for side effects.

Handlers register into a `HandlerRegistry`; the module-level decorator uses
the default registry that the daemon reads when it imports the modules its
config names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from edged.errors import ConfigError, EdgedError

Handler = Callable[["TaskContext"], Any] | Callable[["TaskContext"], Awaitable[Any]]


class TaskFailed(EdgedError):
    """Raised by a handler to fail its task with a reason (and optional output)."""

    def __init__(
        self, reason: str, *, terminal: bool = False, output: dict[str, Any] | None = None
    ):
        super().__init__(reason)
        self.reason = reason
        self.terminal = terminal
        self.output = output or {}


@dataclass(frozen=True, slots=True)
class InProgress:
    """Returned by a handler: not done yet; call again after `callback_after_s`."""

    callback_after_s: int = 1
    output: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class TaskContext:
    task_id: str
    workflow_id: str
    task_name: str
    ref: str
    attempt: int
    input: dict[str, Any]
    logs: list[str] = field(default_factory=list)
    task_type: str = "SIMPLE"  # the definition's `type` (HTTP, SIMPLE, a device type, ...)
    taskdef: dict[str, Any] | None = None  # the TaskDef (timeoutSeconds, ...), if any

    def timeout_s(self) -> float | None:
        """The tighter of the TaskDef's timeoutSeconds and responseTimeoutSeconds, if set."""
        limits = []
        for key in ("timeoutSeconds", "responseTimeoutSeconds"):
            value = (self.taskdef or {}).get(key)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                limits.append(float(value))
        return min(limits) if limits else None

    def log(self, line: str) -> None:
        """Attach a log line to the task (kept with it, shown by the API)."""
        self.logs.append(str(line)[:4096])


class HandlerRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, fn: Handler) -> None:
        if name in self._handlers and self._handlers[name] is not fn:
            raise ConfigError(
                f"two handlers for task {name!r}: {self._handlers[name]!r} and {fn!r}"
            )
        self._handlers[name] = fn

    def get(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def names(self) -> list[str]:
        return sorted(self._handlers)

    def task(self, name: str) -> Callable[[Handler], Handler]:
        def decorate(fn: Handler) -> Handler:
            self.register(name, fn)
            return fn

        return decorate


default_registry = HandlerRegistry()


def task(name: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of task `name`."""
    return default_registry.task(name)
