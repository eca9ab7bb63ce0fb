"""Handlers for the observability tests: one that raises an unexpected exception."""

from __future__ import annotations

from typing import Any

from edged.handlers import TaskContext, task


@task("obs_boom")
def boom(ctx: TaskContext) -> dict[str, Any]:
    """A handler bug: the executor must count it and fail the task, not the daemon."""
    raise RuntimeError(f"boom {ctx.input.get('n')}")
