"""Validation of Conductor WorkflowDefs: every fault, each with its path.

Theory of operation: one pass over the task tree (top-level list, SWITCH and
DECISION cases, FORK_JOIN branches, DO_WHILE bodies) checks each task's
fields, its type's required fields (Conductor's WorkflowTaskTypeConstraint,
read from its Java source), and collects every taskReferenceName of the
workflow into one scope.  `${...}` references are checked after the pass, when
the scope is complete, because Conductor lets a task refer to any task of the
definition.  An inline sub-workflow definition is validated as a workflow of
its own, with its own scope.

Bounds: more than MAX_TASKS tasks, or tasks nested deeper than MAX_TASK_DEPTH,
give one fault and stop the walk, so no input can exhaust time or stack.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from edged.defs.faults import Fault, child, suggest, type_name
from edged.defs.fields import FieldChecks
from edged.defs.references import check_references
from edged.defs.taskdefs import check_taskdef
from edged.defs.tasktypes import KNOWN_TASK_TYPES
from edged.defs.triggers import validate_triggers

MAX_TASKS = 10_000
MAX_TASK_DEPTH = 64
WORKFLOW_TIMEOUT_POLICIES = ("TIME_OUT_WF", "ALERT_ONLY")
EVALUATOR_TYPES = ("value-param", "javascript", "graaljs")
TERMINATION_STATUSES = ("COMPLETED", "FAILED", "TERMINATED")
FORK_TYPES = ("FORK_JOIN", "FORK_JOIN_DYNAMIC")


@dataclass
class _Scope:
    """One workflow's reference names and the parameter values to check against them."""

    refs: dict[str, str] = field(default_factory=dict)  # ref -> path of its task
    uses: list[tuple[str, Any]] = field(default_factory=list)


def validate_workflow(doc: Any, *, task_types: Collection[str] = KNOWN_TASK_TYPES) -> list[Fault]:
    """Every fault of one WorkflowDef document (empty when it is valid)."""
    walk = _Walk(task_types)
    walk.workflow(doc, "", 0)
    return walk.checks.faults


def iter_child_lists(task: dict[str, Any], path: str) -> list[tuple[str, Any]]:
    """(path, task list) for each nested list of tasks the task's type uses."""
    kind = task.get("type", "SIMPLE")
    out: list[tuple[str, Any]] = []
    if kind in ("SWITCH", "DECISION"):
        cases = task.get("decisionCases")
        if isinstance(cases, dict):
            for key, tasks in cases.items():
                out.append((child(child(path, "decisionCases"), key), tasks))
        if "defaultCase" in task and task["defaultCase"] is not None:
            out.append((child(path, "defaultCase"), task["defaultCase"]))
    elif kind == "FORK_JOIN":
        branches = task.get("forkTasks")
        if isinstance(branches, list):
            for i, tasks in enumerate(branches):
                out.append((child(child(path, "forkTasks"), i), tasks))
    elif kind == "DO_WHILE" and task.get("loopOver") is not None:
        out.append((child(path, "loopOver"), task["loopOver"]))
    return out


def count_tasks(tasks: Any, limit: int = MAX_TASKS) -> int:
    """Tasks in a tree, counting stops a little past `limit` (iterative)."""
    count = 0
    stack: list[tuple[Any, int]] = [(tasks, 0)]
    while stack and count <= limit:
        items, depth = stack.pop()
        if not isinstance(items, list) or depth > MAX_TASK_DEPTH:
            continue
        for task in items:
            count += 1
            if isinstance(task, dict):
                stack.extend((sub, depth + 1) for _, sub in iter_child_lists(task, ""))
    return count


def _type_of(task: Any) -> Any:
    return task.get("type", "SIMPLE") if isinstance(task, dict) else None


def _refs_below(tasks: Any) -> set[str]:
    refs: set[str] = set()
    stack: list[tuple[Any, int]] = [(tasks, 0)]
    while stack:
        items, depth = stack.pop()
        if not isinstance(items, list) or depth > MAX_TASK_DEPTH:
            continue
        for task in items:
            if isinstance(task, dict):
                if isinstance(task.get("taskReferenceName"), str):
                    refs.add(task["taskReferenceName"])
                stack.extend((sub, depth + 1) for _, sub in iter_child_lists(task, ""))
    return refs


class _Walk:
    def __init__(self, task_types: Collection[str]) -> None:
        self.checks = FieldChecks()
        self.task_types = task_types

    def workflow(self, doc: Any, path: str, depth: int) -> None:
        c = self.checks
        if not isinstance(doc, dict):
            c.fault(path, f"a workflow definition must be an object, got {type_name(doc)}")
            return
        c.name(doc, path, "workflow")
        c.string(doc, "description", path)
        c.integer(doc, "version", path)
        schema_version = c.integer(doc, "schemaVersion", path)
        if schema_version is not None and schema_version != 2:
            c.fault(
                child(path, "schemaVersion"),
                f"only schemaVersion 2 is supported, got {schema_version}",
            )
        for key in ("restartable", "workflowStatusListenerEnabled", "enforceSchema"):
            c.boolean(doc, key, path)
        for key in ("failureWorkflow", "workflowStatusListenerSink", "ownerApp"):
            c.string(doc, key, path)
        c.email(doc, "ownerEmail", path)
        c.choice(doc, "timeoutPolicy", path, WORKFLOW_TIMEOUT_POLICIES)
        c.integer(doc, "timeoutSeconds", path)
        c.strings(doc, "inputParameters", path)
        c.strings(doc, "maskedFields", path)
        for key in ("variables", "inputTemplate", "metadata", "rateLimitConfig"):
            c.mapping(doc, key, path)
        outputs = c.mapping(doc, "outputParameters", path)
        c.faults.extend(validate_triggers(doc.get("triggers"), child(path, "triggers")))

        tasks_path = child(path, "tasks")
        tasks = doc.get("tasks")
        if tasks is None:
            c.fault(tasks_path, "missing: a workflow needs a list of tasks")
            return
        if not isinstance(tasks, list):
            c.fault(tasks_path, f"expected an array of tasks, got {type_name(tasks)}")
            return
        if not tasks:
            c.fault(tasks_path, "must hold at least one task")
            return
        if count_tasks(tasks) > MAX_TASKS:
            c.fault(tasks_path, f"more than {MAX_TASKS} tasks in one definition")
            return
        scope = _Scope()
        self.task_list(scope, tasks, tasks_path, depth)
        if outputs is not None:
            scope.uses.append((child(path, "outputParameters"), outputs))
        for where, value in scope.uses:
            c.faults.extend(check_references(value, where, scope.refs.keys()))

    def task_list(self, scope: _Scope, tasks: Any, path: str, depth: int) -> None:
        c = self.checks
        if not isinstance(tasks, list):
            c.fault(path, f"expected an array of tasks, got {type_name(tasks)}")
            return
        if depth >= MAX_TASK_DEPTH:
            c.fault(path, f"tasks nested deeper than {MAX_TASK_DEPTH} levels")
            return
        for i, task in enumerate(tasks):
            here = child(path, i)
            kind = self.task(scope, task, here, depth)
            if kind not in FORK_TYPES:
                continue
            following = tasks[i + 1] if i + 1 < len(tasks) else None
            if _type_of(following) != "JOIN":
                c.fault(
                    here, f"{kind} must be followed immediately by a JOIN task in the same list"
                )
            elif kind == "FORK_JOIN":
                assert isinstance(following, dict)
                self.static_join(task, following, here, child(path, i + 1))

    def static_join(
        self, fork: dict[str, Any], join: dict[str, Any], fork_path: str, join_path: str
    ) -> None:
        join_on = join.get("joinOn")
        where = child(join_path, "joinOn")
        if not isinstance(join_on, list):
            return  # a wrong type is reported with the JOIN's own fields
        branch_refs = _refs_below_all(fork.get("forkTasks"))
        for i, ref in enumerate(join_on):
            if isinstance(ref, str) and ref not in branch_refs:
                hint = suggest(ref, sorted(branch_refs))
                self.checks.fault(
                    child(where, i), f'"{ref}" is not a task of the FORK_JOIN at {fork_path}{hint}'
                )

    def task(self, scope: _Scope, task: Any, path: str, depth: int) -> Any:
        """Check one task and its nested lists; return its type when usable."""
        c = self.checks
        if not isinstance(task, dict):
            c.fault(path, f"a task must be an object, got {type_name(task)}")
            return None
        c.string(task, "name", path, required="missing task name")
        ref = c.string(task, "taskReferenceName", path, required="missing taskReferenceName")
        if ref is not None:
            first = scope.refs.setdefault(ref, path)
            if first != path:
                c.fault(
                    child(path, "taskReferenceName"),
                    f'duplicate taskReferenceName "{ref}" (first used at {first})',
                )
        kind = task.get("type", "SIMPLE")
        if not isinstance(kind, str):
            c.fault(child(path, "type"), f"expected a string, got {type_name(kind)}")
            kind = None
        elif kind not in self.task_types:
            hint = suggest(kind, sorted(self.task_types))
            c.fault(child(path, "type"), f'unknown task type "{kind}"{hint}')
        params = c.mapping(task, "inputParameters", path)
        if params is not None:
            scope.uses.append((child(path, "inputParameters"), params))
        for key in ("optional", "asyncComplete", "permissive", "rateLimited"):
            c.boolean(task, key, path)
        c.integer(task, "startDelay", path)
        c.integer(task, "retryCount", path)
        for key in ("description", "sink", "loopCondition", "caseValueParam", "caseExpression"):
            c.string(task, key, path)
        c.strings(task, "joinOn", path)
        c.strings(task, "defaultExclusiveJoinTask", path)
        if task.get("taskDefinition") is not None:
            check_taskdef(c, task["taskDefinition"], child(path, "taskDefinition"), inline=True)
        if kind is not None:
            self.by_type(kind, task, params or {}, path, depth)
        for sub_path, sub_tasks in iter_child_lists(task, path):
            self.task_list(scope, sub_tasks, sub_path, depth + 1)
        return kind

    def by_type(
        self, kind: str, task: dict[str, Any], params: dict[str, Any], path: str, depth: int
    ) -> None:
        """The fields each type cannot work without (Conductor's WorkflowTaskTypeConstraint)."""
        c = self.checks
        in_params = child(path, "inputParameters")
        if kind in ("SWITCH", "DECISION"):
            if kind == "SWITCH":
                if task.get("evaluatorType") is None:
                    c.fault(
                        child(path, "evaluatorType"),
                        "SWITCH needs evaluatorType (value-param, javascript or graaljs)",
                    )
                c.choice(task, "evaluatorType", path, EVALUATOR_TYPES)
                c.string(task, "expression", path, required="SWITCH needs an expression")
            elif task.get("caseValueParam") is None and task.get("caseExpression") is None:
                c.fault(
                    child(path, "caseValueParam"), "DECISION needs caseValueParam or caseExpression"
                )
            cases = c.mapping(task, "decisionCases", path)
            if cases is not None and not cases:
                c.fault(child(path, "decisionCases"), f"{kind} needs at least one case")
            elif task.get("decisionCases") is None:  # absent or null: normalize makes it {}
                c.fault(child(path, "decisionCases"), f"{kind} needs decisionCases")
            c.array(task, "defaultCase", path)
        elif kind == "FORK_JOIN":
            branches = c.array(task, "forkTasks", path)
            if not branches and (branches is not None or "forkTasks" not in task):
                c.fault(
                    child(path, "forkTasks"), "FORK_JOIN needs at least one branch in forkTasks"
                )
        elif kind == "FORK_JOIN_DYNAMIC":
            self.dynamic_fork(task, params, path)
        elif kind == "DO_WHILE":
            body = c.array(task, "loopOver", path)
            if not body:  # absent, null or empty: a loop needs a body
                c.fault(child(path, "loopOver"), "DO_WHILE needs tasks in loopOver")
            # Conductor's newer list iteration (`items`) needs no loopCondition.
            if (
                task.get("loopCondition") is None
                and task.get("items") is None
                and params.get("items") is None
            ):
                c.fault(
                    child(path, "loopCondition"),
                    "DO_WHILE needs a loopCondition (or items to iterate over)",
                )
        elif kind == "DYNAMIC":
            c.string(
                task, "dynamicTaskNameParam", path, required="DYNAMIC needs dynamicTaskNameParam"
            )
        elif kind == "EVENT":
            if task.get("sink") is None:
                c.fault(child(path, "sink"), "EVENT needs a sink")
        elif kind == "SUB_WORKFLOW":
            self.sub_workflow(task, path, depth)
        elif kind == "WAIT":
            if _filled(params.get("duration")) and _filled(params.get("until")):
                c.fault(child(in_params, "until"), "WAIT takes duration or until, not both")
        elif kind == "TERMINATE":
            if task.get("optional") is True:
                c.fault(child(path, "optional"), "a TERMINATE task cannot be optional")
            status = params.get("terminationStatus")
            if status not in TERMINATION_STATUSES:
                shown = "missing" if status is None else f'"{status}" is not allowed'
                c.fault(
                    child(in_params, "terminationStatus"),
                    f"{shown}: TERMINATE needs COMPLETED, FAILED or TERMINATED",
                )
        elif kind == "INLINE":
            c.string(
                params,
                "expression",
                in_params,
                required="INLINE needs the script in inputParameters.expression",
            )
            c.choice(params, "evaluatorType", in_params, EVALUATOR_TYPES)
        elif kind == "LAMBDA":
            c.string(
                params,
                "scriptExpression",
                in_params,
                required="LAMBDA needs the script in inputParameters.scriptExpression",
            )
        elif kind == "JSON_JQ_TRANSFORM":
            template = task.get("taskDefinition", {}) or {}
            in_template = isinstance(template, dict) and "queryExpression" in (
                template.get("inputTemplate") or {}
            )
            if not in_template:
                c.string(
                    params,
                    "queryExpression",
                    in_params,
                    required="JSON_JQ_TRANSFORM needs inputParameters.queryExpression",
                )

    def dynamic_fork(self, task: dict[str, Any], params: dict[str, Any], path: str) -> None:
        c = self.checks
        legacy = task.get("dynamicForkJoinTasksParam")
        pair = (task.get("dynamicForkTasksParam"), task.get("dynamicForkTasksInputParamName"))
        if legacy is not None and any(v is not None for v in pair):
            c.fault(
                path,
                "use dynamicForkJoinTasksParam or dynamicForkTasksParam with dynamicForkTasksInputParamName, not both",
            )
            return
        # Conductor's newer form names one task to fan out in inputParameters.
        if legacy is not None or "forkTaskName" in params or "forkTaskWorkflow" in params:
            return
        for key, value in zip(
            ("dynamicForkTasksParam", "dynamicForkTasksInputParamName"), pair, strict=True
        ):
            if value is None:
                c.fault(child(path, key), f"FORK_JOIN_DYNAMIC needs {key}")

    def sub_workflow(self, task: dict[str, Any], path: str, depth: int) -> None:
        c = self.checks
        where = child(path, "subWorkflowParam")
        param = c.mapping(task, "subWorkflowParam", path)
        if param is None:
            if task.get("subWorkflowParam") is None:
                c.fault(where, "SUB_WORKFLOW needs subWorkflowParam with a name")
            return
        c.integer(param, "version", where)
        inline = param.get("workflowDefinition")
        if isinstance(inline, dict):
            self.workflow(inline, child(where, "workflowDefinition"), depth + 1)
        elif isinstance(inline, str) and inline.startswith("${"):
            pass  # resolved at run time
        elif inline is not None:
            c.fault(
                child(where, "workflowDefinition"),
                "expected a workflow definition object or a ${...} expression",
            )
        else:
            c.string(
                param,
                "name",
                where,
                required="SUB_WORKFLOW needs subWorkflowParam.name or an inline workflowDefinition",
            )


def _refs_below_all(branches: Any) -> set[str]:
    refs: set[str] = set()
    if isinstance(branches, list):
        for branch in branches:
            refs |= _refs_below(branch)
    return refs


def _filled(value: Any) -> bool:
    return value is not None and str(value).strip() != ""
