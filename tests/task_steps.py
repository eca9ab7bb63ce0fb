"""Counting a Trio task's steps: on an idle daemon every step that is not sharing a pass
with another task is a scheduler pass of its own (an epoll_wait and Trio's bookkeeping)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio


class TaskSteps(trio.abc.Instrument):
    """How many steps the tasks whose name ends with `suffix` took (reset `steps` freely)."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith(self.suffix):
            self.steps += 1


@contextmanager
def counting_steps(suffix: str) -> Iterator[TaskSteps]:
    """A `TaskSteps` installed in the running Trio loop for the block."""
    counter = TaskSteps(suffix)
    trio.lowlevel.add_instrument(counter)
    try:
        yield counter
    finally:
        trio.lowlevel.remove_instrument(counter)
