"""Counting a Trio task's steps: on an idle daemon every step that is not sharing a pass
with another task is a scheduler pass of its own (an epoll_wait and Trio's bookkeeping)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio


class TaskSteps(trio.abc.Instrument):
    """How many steps the tasks whose name ends with `suffix` took (reset `steps` freely);
    with `owner`, only those of its methods (two clients' writer tasks share a name)."""

    def __init__(self, suffix: str, owner: object = None) -> None:
        self.suffix = suffix
        self.owner = owner
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task.name.endswith(self.suffix) and (self.owner is None or _self_of(task) is self.owner):
            self.steps += 1


def _self_of(task: trio.lowlevel.Task) -> object:
    frame = getattr(task.coro, "cr_frame", None)
    return None if frame is None else frame.f_locals.get("self")


@contextmanager
def counting_steps(suffix: str, owner: object = None) -> Iterator[TaskSteps]:
    """A `TaskSteps` installed in the running Trio loop for the block."""
    counter = TaskSteps(suffix, owner)
    trio.lowlevel.add_instrument(counter)
    try:
        yield counter
    finally:
        trio.lowlevel.remove_instrument(counter)
