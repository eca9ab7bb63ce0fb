"""Helpers shared by the executor tests (a uniquely named module: `conftest` is taken)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import edged.executors.command
import edged.executors.http_task  # noqa: F401 - registers the HTTP type executor
from edged.handlers import Handler, TaskContext
from edged.runtime.bindings import default_executors

HERE = Path(__file__).resolve().parent
WORKERS = HERE / "workers"
EXAMPLES = HERE.parent.parent / "examples" / "workers"
MISBEHAVE = WORKERS / "misbehave.sh"


def build(spec: Any, *, allow: list[str] | None = None, name: str = "t") -> Handler:
    """One `command` binding built like the daemon builds it."""
    executors = {"command": {"allow": [str(WORKERS), str(EXAMPLES)] if allow is None else allow}}
    handlers = default_executors.build(
        {name: {"command": spec}}, base_dir=HERE, executors=executors
    )
    return handlers[name]


def context(
    task_input: dict[str, Any], *, attempt: int = 0, taskdef: dict[str, Any] | None = None
) -> TaskContext:
    return TaskContext(
        task_id="task-1",
        workflow_id="wf-1",
        task_name="t",
        ref="t_ref",
        attempt=attempt,
        input=task_input,
        task_type="SIMPLE",
        taskdef=taskdef,
    )


def process_gone(pid: int) -> bool:
    """True when `pid` no longer runs (gone, or a zombie waiting for init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def gone_soon(pid: int, within_s: float = 3.0) -> bool:
    """process_gone, allowing for the instant between a killed process closing
    its files (what the executor waits for) and its becoming a zombie."""
    deadline = time.monotonic() + within_s
    while not process_gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def read_pid(path: Path) -> int:
    return int(path.read_text().strip())


def kill_if_running(pid: int) -> None:
    """Test hygiene: never leave a stray `sleep 300` behind, even when a test fails."""
    if not process_gone(pid):
        os.kill(pid, 9)
