"""DecisionTaskSpec and SwitchTaskSpec, ported.

DECISION (caseValueParam) and SWITCH (value-param) pick a case; nested ones
run one after another in the same decide; a missing case value selects the
default case and is reported as the string "null"; a SWITCH with no default
case and no match simply moves on.  A decision inside a fork branch joins.
"""

from __future__ import annotations

import pytest
import trio
from harness import Conductor

INPUT = {"param1": "p1", "param2": "p2", "case": "c"}


DECISION_FILES = (
    "simple_decision_task_integration_test.json",
    "decision_and_fork_join_integration_test.json",
    "conditional_task_workflow_integration_test.json",
)
# The SWITCH fixtures reuse the DECISION fixtures' workflow names, as SwitchTaskSpec
# registers them on their own.
SWITCH_FILES = (
    "simple_switch_task_integration_test.json",
    "conditional_switch_task_workflow_integration_test.json",
    "switch_and_fork_join_integration_test.json",
    "switch_with_no_default_case_integration_test.json",
)


@pytest.fixture
def decisions(conductor: Conductor) -> Conductor:
    conductor.register(*DECISION_FILES)
    return conductor


@pytest.fixture
def switches(conductor: Conductor) -> Conductor:
    conductor.register(*SWITCH_FILES)
    return conductor


@pytest.fixture(params=["DECISION", "SWITCH"])
def either(request: pytest.FixtureRequest, conductor: Conductor) -> tuple[Conductor, str]:
    kind = str(request.param)
    conductor.register(*(DECISION_FILES if kind == "DECISION" else SWITCH_FILES))
    return conductor, kind


def case_output(kind: str, case: str) -> dict[str, object]:
    return (
        {"caseOutput": [case]}
        if kind == "DECISION"
        else {"evaluationResult": [case], "selectedCase": case}
    )


async def test_case_c_runs_its_tasks_then_the_rest(either: tuple[Conductor, str]) -> None:
    c, kind = either
    with trio.fail_after(20):
        wf_id = await c.start("DecisionWorkflow" if kind == "DECISION" else "SwitchWorkflow", INPUT)
        shape = await c.shape(wf_id)
        assert [(t, s) for t, _, s in shape] == [
            (kind, "COMPLETED"),
            ("integration_task_1", "SCHEDULED"),
        ]
        await c.complete(wf_id, "t1")
        assert [(t, s) for t, _, s in (await c.shape(wf_id))[1:]] == [
            ("integration_task_1", "COMPLETED"),
            ("integration_task_2", "SCHEDULED"),
        ]
        await c.complete(wf_id, "t2")
        assert (await c.shape(wf_id))[3] == ("integration_task_20", "t20", "SCHEDULED")
        await c.complete(wf_id, "t20")
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert len(wf["tasks"]) == 4
        assert wf["tasks"][0]["outputData"] == case_output(kind, "c")


async def test_decision_inside_a_fork_joins(either: tuple[Conductor, str]) -> None:
    c, kind = either
    with trio.fail_after(20):
        wf_id = await c.start("ForkConditionalTest", INPUT)
        assert [(t, s) for t, _, s in await c.shape(wf_id)] == [
            ("FORK", "COMPLETED"),
            (kind, "COMPLETED"),
            ("integration_task_1", "SCHEDULED"),
            ("integration_task_10", "SCHEDULED"),
            ("JOIN", "IN_PROGRESS"),
        ]
        await c.complete(wf_id, "t1")
        await c.complete(wf_id, "t10")
        tasks = await c.tasks(wf_id)
        assert tasks[4]["inputData"]["joinOn"] == ["t20", "t10"]
        assert [(t["taskType"], t["status"]) for t in tasks[2:]] == [
            ("integration_task_1", "COMPLETED"),
            ("integration_task_10", "COMPLETED"),
            ("JOIN", "IN_PROGRESS"),
            ("integration_task_2", "SCHEDULED"),
        ]
        await c.complete(wf_id, "t2")
        assert (await c.shape(wf_id))[6] == ("integration_task_20", "t20", "SCHEDULED")
        await c.complete(wf_id, "t20", {"x": 20})
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert len(wf["tasks"]) == 7
        assert wf["tasks"][4]["status"] == "COMPLETED"
        assert wf["tasks"][4]["outputData"]["t20"] == {"x": 20}


async def test_default_case_and_null_case_value(decisions: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await decisions.start("ConditionalTaskWF", {"param1": "xxx", "param2": "two"})
        tasks = await decisions.tasks(wf_id)
        assert [(t["taskType"], t["status"]) for t in tasks] == [
            ("DECISION", "COMPLETED"),
            ("integration_task_10", "SCHEDULED"),
        ]
        assert tasks[0]["outputData"]["caseOutput"] == ["xxx"]
        await decisions.complete(wf_id, "t10")
        wf = await decisions.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert [(t["taskType"], t["status"]) for t in wf["tasks"]] == [
            ("DECISION", "COMPLETED"),
            ("integration_task_10", "COMPLETED"),
            ("DECISION", "COMPLETED"),
        ]
        assert wf["tasks"][2]["outputData"]["caseOutput"] == ["null"]


@pytest.mark.parametrize(
    ("case", "task_name"), [("two", "integration_task_2"), ("one", "integration_task_1")]
)
async def test_nested_decisions(decisions: Conductor, case: str, task_name: str) -> None:
    with trio.fail_after(20):
        wf_id = await decisions.start("ConditionalTaskWF", {"param1": "nested", "param2": case})
        tasks = await decisions.tasks(wf_id)
        assert [(t["taskType"], t["status"]) for t in tasks] == [
            ("DECISION", "COMPLETED"),
            ("DECISION", "COMPLETED"),
            (task_name, "SCHEDULED"),
        ]
        assert tasks[0]["outputData"]["caseOutput"] == ["nested"]
        assert tasks[1]["outputData"]["caseOutput"] == [case]
        await decisions.complete(wf_id, tasks[2]["referenceTaskName"])
        wf = await decisions.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert len(wf["tasks"]) == 4
        assert wf["tasks"][3]["outputData"]["caseOutput"] == ["null"]


async def test_three_then_notify(decisions: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await decisions.start(
            "ConditionalTaskWF", {"param1": "three", "param2": "two", "finalCase": "notify"}
        )
        assert [t for t, _, _ in await decisions.shape(wf_id)] == ["DECISION", "integration_task_3"]
        await decisions.complete(wf_id, "t3")
        tasks = await decisions.tasks(wf_id)
        assert [(t["taskType"], t["status"]) for t in tasks] == [
            ("DECISION", "COMPLETED"),
            ("integration_task_3", "COMPLETED"),
            ("DECISION", "COMPLETED"),
            ("integration_task_4", "SCHEDULED"),
        ]
        assert tasks[2]["outputData"]["caseOutput"] == ["notify"]
        await decisions.complete(wf_id, "integration_task_4")
        assert await decisions.status(wf_id) == "COMPLETED"


async def test_switch_without_default_case_moves_on(switches: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await switches.start(
            "SwitchWithNoDefaultCaseWF", {"param1": "p1", "param2": "p2", "case": "d"}
        )
        shape = await switches.shape(wf_id)
        assert shape == [
            ("SWITCH", "switchTask", "COMPLETED"),
            ("integration_task_2", "t2", "SCHEDULED"),
        ]
        await switches.complete(wf_id, "t2")
        assert await switches.status(wf_id) == "COMPLETED"


async def test_nested_switches(switches: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await switches.start("ConditionalTaskWF", {"param1": "nested", "param2": "one"})
        tasks = await switches.tasks(wf_id)
        assert [(t["taskType"], t["status"]) for t in tasks] == [
            ("SWITCH", "COMPLETED"),
            ("SWITCH", "COMPLETED"),
            ("integration_task_1", "SCHEDULED"),
        ]
        assert tasks[1]["outputData"] == case_output("SWITCH", "one")
        await switches.complete(wf_id, "t1")
        wf = await switches.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert wf["tasks"][3]["outputData"] == case_output("SWITCH", "null")
