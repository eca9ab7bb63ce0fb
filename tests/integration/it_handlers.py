"""In-process handlers the integration daemons load (config python.modules).

Every handler appends one JSON line per invocation to $EDGED_IT_LOG with
O_APPEND (a single write below PIPE_BUF is atomic, so lines from threads and
from processes killed mid-run never interleave).  The line records the task
id and attempt: the tests count invocations across SIGKILLs and check that a
re-run after a crash reuses the same (task id, attempt) idempotency key.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import trio

from edged.handlers import TaskContext, TaskFailed, task


def record(ctx: TaskContext, phase: str) -> None:
    path = os.environ.get("EDGED_IT_LOG")
    if not path:
        return
    line = json.dumps(
        {
            "name": ctx.task_name,
            "task_id": ctx.task_id,
            "attempt": ctx.attempt,
            "workflow_id": ctx.workflow_id,
            "ref": ctx.ref,
            "phase": phase,
        }
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


@task("it_add")
def add(ctx: TaskContext) -> dict[str, Any]:
    """Sync handler (runs in a worker thread)."""
    record(ctx, "start")
    time.sleep(0.02)
    return {"sum": int(ctx.input["a"]) + int(ctx.input["b"])}


@task("it_square")
async def square(ctx: TaskContext) -> dict[str, Any]:
    """Async handler (runs on the event loop)."""
    record(ctx, "start")
    await trio.sleep(0.05)
    return {"sq": int(ctx.input["x"]) ** 2}


@task("it_flaky")
def flaky(ctx: TaskContext) -> dict[str, Any]:
    """Fails its first attempt, succeeds on the retry."""
    record(ctx, "start")
    if ctx.attempt == 0:
        raise TaskFailed("first attempt always fails")
    return {"v": int(ctx.input["x"]) * 10}


@task("it_slow")
async def slow(ctx: TaskContext) -> dict[str, Any]:
    """Takes input.ms milliseconds; records when it finishes too."""
    record(ctx, "start")
    await trio.sleep(int(ctx.input.get("ms", 500)) / 1000)
    record(ctx, "end")
    return {"slept_ms": int(ctx.input.get("ms", 500))}
