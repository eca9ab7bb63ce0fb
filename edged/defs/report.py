"""`edged validate FILE...`: check definition files and print what is wrong.

Theory of operation: each file (directories expand to their *.json, *.yaml
and *.yml files by name) is loaded on its own, so one broken file does not
hide the verdict on the others.  A valid file prints one `OK` line with its
counts and its lint warnings; an invalid one prints every fault as
`file:line: path: message`.  The exit status is 0 only when every file is
valid; warnings do not change it.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TextIO

from edged.defs.faults import DefinitionError, Fault
from edged.defs.load import expand_paths, load_file
from edged.defs.tasktypes import KNOWN_TASK_TYPES

EXIT_OK = 0
EXIT_INVALID = 2


def check_paths(
    paths: list[str],
    out: TextIO,
    *,
    quiet: bool = False,
    task_types: Collection[str] = KNOWN_TASK_TYPES,
) -> int:
    """Validate files and directories, print the verdicts, return the exit status."""
    faults: list[Fault] = []
    files = expand_paths(paths, faults)
    for fault in faults:
        print(fault, file=out)
    if not paths or (not files and not faults):
        print("no definition files given", file=out)
        return EXIT_INVALID
    ok = not faults
    for file in files:
        ok = _check_file(file, out, quiet=quiet, task_types=task_types) and ok
    return EXIT_OK if ok else EXIT_INVALID


def _check_file(file: Path, out: TextIO, *, quiet: bool, task_types: Collection[str]) -> bool:
    try:
        defs = load_file(file, task_types=task_types)
    except DefinitionError as e:
        for fault in e.faults:
            print(fault, file=out)
        return False
    if not quiet:
        counts = [
            _count(len(defs.workflows), "workflow"),
            _count(len(defs.taskdefs), "task def"),
        ]
        if defs.event_handlers:
            counts.append(_count(len(defs.event_handlers), "event handler"))
        print(f"OK {file} ({', '.join(counts)})", file=out)
        for warning in defs.warnings:
            print(f"warning: {warning}", file=out)
    return True


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
