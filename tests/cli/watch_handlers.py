"""In-process handlers for the stream and CLI tests (config python.modules).

`cli_talk` logs the lines of ``input.lines`` (task logs, so streams show
them), sleeps ``input.ms`` and returns ``{"said": n}``; `cli_fail` fails with
``input.reason``.
"""

from __future__ import annotations

from typing import Any

import trio

from edged.handlers import TaskContext, TaskFailed, task


@task("cli_talk")
async def talk(ctx: TaskContext) -> dict[str, Any]:
    lines = [str(line) for line in ctx.input.get("lines") or []]
    for line in lines:
        ctx.log(line)
    await trio.sleep(int(ctx.input.get("ms") or 0) / 1000)
    return {"said": len(lines)}


@task("cli_fail")
def fail(ctx: TaskContext) -> dict[str, Any]:
    raise TaskFailed(str(ctx.input.get("reason") or "asked to fail"), terminal=True)
