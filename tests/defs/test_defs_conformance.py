"""Conductor's own definitions (conformance fixtures) load and validate.

Every file under ../shared/conformance/conductor/ must load with no fault,
except the documented ones below, each with the reason.  The expectations are
exact, so a rule that starts rejecting a valid fixture, or stops catching a
documented mistake, fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edged.defs import KNOWN_TASK_TYPES, DefinitionError, load_file

CONFORMANCE = Path(__file__).resolve().parents[2].parent / "shared/conformance/conductor"
# The test harness defines these two stub types for its own specs.
HARNESS_TYPES = frozenset(KNOWN_TASK_TYPES) | {"USER_TASK", "BLOCKING_SYSTEM_TASK"}

if not CONFORMANCE.is_dir():
    pytest.skip(f"conformance fixtures not found at {CONFORMANCE}", allow_module_level=True)

FIXTURES = sorted(p for p in CONFORMANCE.glob("*/*.json") if p.parent.name != "schemas")

# file (relative) -> exact rendered faults (without the source prefix).
DOCUMENTED: dict[str, list[str]] = {
    # Not definitions: inputs and outputs of the harness's specs.
    "test-harness/input.json": ["1: empty document: no definition found"],
    "test-harness/output.json": [
        "1: not a definition: a workflow needs tasks, a task definition a name,"
        " an event handler event and actions"
    ],
    "test-harness/start_workflow_input.json": [
        "1: not a definition: a workflow needs tasks, a task definition a name,"
        " an event handler event and actions"
    ],
    # Conductor's WorkflowDef has @Min(2) @Max(2) on schemaVersion: the server refuses it too.
    "kitchensink/wf1.json": ["371: schemaVersion: only schemaVersion 2 is supported, got 1"],
    # Dangling references: Conductor does not check them and silently resolves them to
    # null at run time.  They are real mistakes in the fixtures (no task "get_data" or
    # "get_random_fact" exists; the reference name is "x_test_worker_1_ref").
    "e2e/workflows.json": [
        '191: [0].tasks[8].forkTasks[0][0].loopOver[0].inputParameters.number: "${get_data.output.number}" refers to unknown task reference "get_data"',
        '282: [0].tasks[8].forkTasks[0][1].subWorkflowParam.workflowDefinition.tasks[1].inputParameters.number: "${get_data.output.number}" refers to unknown task reference "get_data"',
        '546: [1].outputParameters.data: "${get_random_fact.output.response.body.fact}" refers to unknown task reference "get_random_fact"',
        '584: [2].outputParameters.data: "${get_random_fact.output.response.body.fact}" refers to unknown task reference "get_random_fact"',
    ],
    "e2e/sync_workflows.json": [
        '404: [2].tasks[10].forkTasks[0][0].loopOver[0].inputParameters.number: "${get_data.output.number}" refers to unknown task reference "get_data"',
        '500: [2].tasks[10].forkTasks[0][1].subWorkflowParam.workflowDefinition.tasks[1].inputParameters.number: "${get_data.output.number}" refers to unknown task reference "get_data"',
        '733: [2].outputParameters.inner_task: "${x_test_worker_1.output}" refers to unknown task reference "x_test_worker_1"',
    ],
    "e2e/re_run_test_workflow.json": [
        '312: tasks[10].forkTasks[0][0].loopOver[0].inputParameters.number: "${get_data.output.number}" refers to unknown task reference "get_data"',
        '408: tasks[10].forkTasks[0][1].subWorkflowParam.workflowDefinition.tasks[1].inputParameters.number: "${get_data.output.number}" refers to unknown task reference "get_data"',
        '638: outputParameters.inner_task: "${x_test_worker_1.output}" refers to unknown task reference "x_test_worker_1" (did you mean "x_test_worker_1_ref"?)',
    ],
}


def test_fixtures_found() -> None:
    assert len(FIXTURES) > 100
    missing = [name for name in DOCUMENTED if not (CONFORMANCE / name).exists()]
    assert missing == []


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixture_validates(path: Path) -> None:
    name = f"{path.parent.name}/{path.name}"
    try:
        defs = load_file(path, task_types=HARNESS_TYPES)
    except DefinitionError as e:
        rendered = [str(f).removeprefix(f"{path}:") for f in e.faults]
        assert rendered == DOCUMENTED.get(name), name
        return
    assert name not in DOCUMENTED, f"{name} is documented as invalid but loaded"
    assert defs.workflows or defs.taskdefs or defs.event_handlers


def test_fixture_kinds() -> None:
    handler = load_file(CONFORMANCE / "test-harness/sqs-complete-wait-event-handler.json")
    assert [h["name"] for h in handler.event_handlers] == ["sqs_complete_wait_task_handler"]
    taskdefs = load_file(CONFORMANCE / "e2e/tasks_data.json")
    assert len(taskdefs.taskdefs) == 3 and not taskdefs.workflows
    # A StartWorkflowRequest: the inline workflowDef is the workflow.
    request = load_file(
        CONFORMANCE / "kitchensink/kitchenSink-ephemeralWorkflowWithStoredTasks.json"
    )
    assert [w["name"] for w in request.workflows] == ["ephemeralKitchenSinkStoredTasks"]


def test_fire_and_forget_fork_is_a_warning() -> None:
    # Conductor's e2e suite joins on nothing on purpose; edged warns instead of refusing.
    defs = load_file(CONFORMANCE / "e2e/workflow_rate_limit_in_progress_cleanup.json")
    assert any(
        w.path == "[1].tasks[2].joinOn" and "waits for none" in w.message and w.line == 158
        for w in defs.warnings
    )
