"""Loading definitions from text, files and directories.

Theory of operation: `load_text` reads JSON or YAML (parse.py), splits the
documents, sorts each into a workflow, a task definition or an event handler
by its shape, validates each, and attaches source and line to every fault.
If any document has a fault, nothing is returned: a `DefinitionError` lists
every fault of the text, so one edit-validate cycle fixes them all.  Valid
documents come back normalized (defaults filled, see normalize.py), together
with lint warnings (unknown keys), which never block loading.

Classification follows Conductor's shapes: a WorkflowDef has `tasks`; an
EventHandler has `event` and `actions`; a StartWorkflowRequest wraps a
WorkflowDef in `workflowDef` (the inline definition is taken); anything else
with a `name` is a TaskDef.  Loading several paths merges their documents;
an unreadable file is a fault like any other.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edged.defs.faults import DefinitionError, Fault, child, join, split_path, type_name
from edged.defs.lint import lint_warnings
from edged.defs.normalize import normalize_taskdef, normalize_workflow
from edged.defs.parse import Parsed, parse_text
from edged.defs.taskdefs import validate_event_handler, validate_taskdef
from edged.defs.tasktypes import KNOWN_TASK_TYPES
from edged.defs.validate import validate_workflow

MAX_TEXT_BYTES = 4 * 1024 * 1024
DEFINITION_SUFFIXES = (".json", ".yaml", ".yml")


@dataclass
class Definitions:
    """Validated, normalized definitions, plus warnings that did not block them."""

    workflows: list[dict[str, Any]] = field(default_factory=list)
    taskdefs: list[dict[str, Any]] = field(default_factory=list)
    event_handlers: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[Fault] = field(default_factory=list)

    def extend(self, other: Definitions) -> None:
        self.workflows.extend(other.workflows)
        self.taskdefs.extend(other.taskdefs)
        self.event_handlers.extend(other.event_handlers)
        self.warnings.extend(other.warnings)


def load_text(
    text: str,
    source: str = "<string>",
    *,
    task_types: Collection[str] = KNOWN_TASK_TYPES,
) -> Definitions:
    """Definitions in one JSON/YAML text; raises DefinitionError listing every fault."""
    faults: list[Fault] = []
    result = _load(text, source, task_types, faults)
    if faults:
        raise DefinitionError(faults)
    return result


def load_file(path: str | Path, *, task_types: Collection[str] = KNOWN_TASK_TYPES) -> Definitions:
    """Definitions in one file; an unreadable file is a fault, not an OSError."""
    faults: list[Fault] = []
    result = _load_file(Path(path), task_types, faults)
    if faults:
        raise DefinitionError(faults)
    return result


def load_paths(
    paths: Iterable[str | Path], *, task_types: Collection[str] = KNOWN_TASK_TYPES
) -> Definitions:
    """Definitions in files and directories (*.json, *.yaml, *.yml by name), merged."""
    faults: list[Fault] = []
    merged = Definitions()
    for file in expand_paths(paths, faults):
        merged.extend(_load_file(file, task_types, faults))
    if faults:
        raise DefinitionError(faults)
    return merged


def expand_paths(paths: Iterable[str | Path], faults: list[Fault]) -> list[Path]:
    """Files named directly, then each directory's definition files sorted by name."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            try:
                entries = sorted(path.iterdir(), key=lambda p: p.name)
            except OSError as e:
                faults.append(Fault("", f"cannot list directory: {e.strerror}", source=str(path)))
                continue
            files.extend(p for p in entries if p.suffix in DEFINITION_SUFFIXES and p.is_file())
        else:
            files.append(path)
    return files


def _load_file(path: Path, task_types: Collection[str], faults: list[Fault]) -> Definitions:
    source = str(path)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_TEXT_BYTES + 1)
    except OSError as e:
        faults.append(Fault("", f"cannot read file: {e.strerror or e}", source=source))
        return Definitions()
    if len(data) > MAX_TEXT_BYTES:
        faults.append(Fault("", f"file is larger than {MAX_TEXT_BYTES} bytes", source=source))
        return Definitions()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        faults.append(Fault("", f"not UTF-8 text (byte {e.start})", source=source))
        return Definitions()
    return _load(text, source, task_types, faults, json_only=path.suffix == ".json")


def _load(
    text: str,
    source: str,
    task_types: Collection[str],
    faults: list[Fault],
    *,
    json_only: bool = False,
) -> Definitions:
    out = Definitions()
    # Cheap first: a str holds at least one byte per character.
    if len(text) > MAX_TEXT_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
        faults.append(Fault("", f"text is larger than {MAX_TEXT_BYTES} bytes", source=source))
        return out
    parsed = parse_text(text, json_only=json_only)
    located = _Locator(source, parsed)
    if parsed.faults:
        faults.extend(located.fault(f) for f in parsed.faults)
        return out
    if not parsed.docs:
        faults.append(Fault("", "no definitions found", source=source, line=1))
    for i, doc in enumerate(parsed.docs):
        prefix = child("", i) if parsed.multi else ""
        kind, body, body_prefix = _classify(doc, prefix)
        if kind == "workflow":
            found = validate_workflow(body, task_types=task_types)
        elif kind == "taskdef":
            found = validate_taskdef(body)
        elif kind == "event_handler":
            found = validate_event_handler(body)
        else:
            found = [Fault("", kind)]
        # Reading order: by line, discovery order within a line.
        faults.extend(sorted((located.fault(f, body_prefix) for f in found), key=_line_key))
        if found:
            continue
        out.warnings.extend(located.fault(w, body_prefix) for w in lint_warnings(body))
        if kind == "workflow":
            out.workflows.append(normalize_workflow(body))
        elif kind == "taskdef":
            out.taskdefs.append(normalize_taskdef(body))
        else:
            out.event_handlers.append(body)
    return out


def _classify(doc: Any, prefix: str) -> tuple[str, Any, str]:
    """(kind, the definition itself, its path prefix); kind is a message when unknown."""
    if not isinstance(doc, dict):
        return f"expected a definition object, got {type_name(doc)}", doc, prefix
    if "tasks" in doc:
        return "workflow", doc, prefix
    if isinstance(doc.get("workflowDef"), dict):
        # A StartWorkflowRequest: its inline definition is the workflow.
        return "workflow", doc["workflowDef"], join(prefix, "workflowDef")
    if "event" in doc and "actions" in doc:
        return "event_handler", doc, prefix
    if "name" in doc:
        return "taskdef", doc, prefix
    return (
        "not a definition: a workflow needs tasks, a task definition a name,"
        " an event handler event and actions",
        doc,
        prefix,
    )


def _line_key(fault: Fault) -> int:
    return fault.line or 0


class _Locator:
    """Adds source and line (the nearest known node's) to document-relative faults."""

    def __init__(self, source: str, parsed: Parsed) -> None:
        self.source = source
        self.parsed = parsed  # its line map is built only if a fault needs it

    def fault(self, fault: Fault, prefix: str = "") -> Fault:
        path = join(prefix, fault.path)
        line = fault.line
        if line is None:
            lines = self.parsed.lines
            for ancestor in reversed(split_path(path)):
                if ancestor in lines:
                    line = lines[ancestor]
                    break
        return Fault(path, fault.message, source=self.source, line=line)
