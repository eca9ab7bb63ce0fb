"""Workflow and task definitions: load, validate, normalize.

Definitions stay plain JSON data (dicts with Conductor's field names) all
through edged.  This package turns JSON or YAML text into validated,
normalized dicts, or into a `DefinitionError` whose `faults` say exactly
what is wrong and where (`file:line: tasks[3].type: unknown task type ...`).
"""

from edged.defs.faults import DefinitionError, Fault
from edged.defs.lint import lint_warnings
from edged.defs.load import Definitions, load_file, load_paths, load_text
from edged.defs.normalize import normalize_taskdef, normalize_workflow
from edged.defs.report import check_paths
from edged.defs.taskdefs import validate_event_handler, validate_taskdef
from edged.defs.tasktypes import KNOWN_TASK_TYPES, register_task_type
from edged.defs.validate import validate_workflow

__all__ = [
    "KNOWN_TASK_TYPES",
    "DefinitionError",
    "Definitions",
    "Fault",
    "check_paths",
    "lint_warnings",
    "load_file",
    "load_paths",
    "load_text",
    "normalize_taskdef",
    "normalize_workflow",
    "register_task_type",
    "validate_event_handler",
    "validate_taskdef",
    "validate_workflow",
]
