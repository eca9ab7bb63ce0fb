"""SIGKILL a real `edged run` at random instants during a mixed workload.

The driver thread starts executions over HTTP while the test kills and
restarts the daemon; a start that fails because the daemon is down is
retried with the same idempotencyKey and RETURN_EXISTING, so it is started
exactly once.  After the last restart every execution must finish COMPLETED
with the output computed from its input; every step must appear exactly once
(a journaled completion applied twice would add a task or change a number);
and the handlers' invocation log must show that work re-run after a crash
kept its task id and attempt.
"""

from __future__ import annotations

import collections
import os
import random
import threading
import time
from typing import Any

import httpx
import pytest
from workloads import CHILD, MIXED, TASKDEFS, expected_output, expected_refs

from tests.integration.daemon_harness import Daemon, read_invocations

WORK_TYPES = {"it_add", "it_square", "it_flaky", "it_slow"}


class Starter(threading.Thread):
    """Starts `plan` executions one by one, retrying each until the daemon answers."""

    def __init__(
        self, daemon: Daemon, plan: list[tuple[str, dict[str, int]]], deadline: float
    ) -> None:
        super().__init__(daemon=True)
        self.d, self.plan, self.deadline = daemon, plan, deadline
        self.ids: dict[str, str] = {}
        self.failed_attempts = 0
        self.error: str | None = None

    def run(self) -> None:
        for key, workflow_input in self.plan:
            while key not in self.ids:
                if time.monotonic() > self.deadline:
                    self.error = f"could not start {key} before the deadline"
                    return
                try:
                    resp = self.d.start_workflow(
                        "it_mixed",
                        workflow_input,
                        correlationId=key,
                        idempotencyKey=key,
                        idempotencyStrategy="RETURN_EXISTING",
                    )
                except httpx.TransportError:
                    resp = None
                if resp is not None and resp.status_code == 200:
                    self.ids[key] = resp.text.strip().strip('"')
                else:
                    self.failed_attempts += 1
                    time.sleep(0.05)
            time.sleep(random.uniform(0.0, 0.08))


def check_execution(d: Daemon, doc: dict[str, Any], n: int, k: int) -> list[dict[str, Any]]:
    """Checks one finished parent (and its child); returns all their work tasks."""
    wid = doc["workflowId"]
    assert doc["status"] == "COMPLETED", (wid, doc.get("reasonForIncompletion"))
    assert doc["output"] == expected_output(n, k), wid
    tasks = doc["tasks"]
    assert len({t["taskId"] for t in tasks}) == len(tasks), f"{wid}: duplicate task ids"
    completed = collections.Counter(
        t["referenceTaskName"] for t in tasks if t["status"] == "COMPLETED"
    )
    assert dict(completed) == expected_refs(k), wid
    for ref in ("flaky1", "flaky2"):
        attempts = sorted(
            (t["retryCount"], t["status"]) for t in tasks if t["referenceTaskName"] == ref
        )
        assert attempts == [(0, "FAILED"), (1, "COMPLETED")], (wid, ref, attempts)
    others = [t for t in tasks if t["referenceTaskName"] not in ("flaky1", "flaky2")]
    assert all(t["retryCount"] == 0 and t["status"] == "COMPLETED" for t in others), wid
    child_task = next(t for t in tasks if t["referenceTaskName"] == "child")
    child = d.workflow(child_task["subWorkflowId"])
    assert child["status"] == "COMPLETED" and child["output"] == {"sq_plus_1": (n + 1) ** 2 + 1}
    assert child["parentWorkflowId"] == wid
    child_refs = collections.Counter(t["referenceTaskName"] for t in child["tasks"])
    assert dict(child_refs) == {"csq": 1, "cwait": 1, "cadd": 1}
    return [t for t in tasks + child["tasks"] if t["taskDefName"] in WORK_TYPES]


@pytest.mark.slow
def test_sigkill_at_random_instants_loses_and_repeats_nothing(daemon_factory: Any) -> None:
    seed = int(os.environ.get("EDGED_CRASH_SEED", "20240611"))
    rng = random.Random(seed)
    kills_planned, executions = 13, 24
    began = time.monotonic()
    d: Daemon = daemon_factory(MIXED, CHILD, taskdefs=TASKDEFS)
    d.start()
    plan = [
        (f"job-{i}", {"n": rng.randrange(0, 50), "k": rng.randrange(1, 4)})
        for i in range(executions)
    ]
    starter = Starter(d, plan, deadline=time.monotonic() + 120)
    starter.start()
    for _ in range(kills_planned):
        time.sleep(rng.uniform(0.05, 0.7))
        d.kill()
        if rng.random() < 0.3:
            time.sleep(rng.uniform(0.0, 0.5))  # stay down a while: starts fail, timers go overdue
        if rng.random() < 0.2:
            # kill again while it starts up (importing, opening the journal, recovering)
            d.spawn()
            time.sleep(rng.uniform(0.3, 2.0))
            d.kill()
        d.start()
    starter.join(timeout=120)
    assert starter.error is None and not starter.is_alive(), starter.error
    assert len(starter.ids) == executions and len(set(starter.ids.values())) == executions
    done = d.wait_ended(list(starter.ids.values()), timeout_s=60)
    elapsed_s = time.monotonic() - began

    work: list[dict[str, Any]] = []
    with d.client() as http:
        for key, workflow_input in plan:
            doc = done[starter.ids[key]]
            # exactly one execution per idempotency key, even across failed starts
            same = http.get(
                f"/api/workflow/it_mixed/correlated/{key}", params={"includeClosed": "true"}
            ).json()
            assert [w["workflowId"] for w in same] == [starter.ids[key]], key
            work += check_execution(d, doc, workflow_input["n"], workflow_input["k"])

    # Every invocation ran a task that is in the final state with the same
    # attempt: re-runs after a crash reuse (task id, attempt), never a new id.
    final = {t["taskId"]: t["retryCount"] for t in work}
    invocations = read_invocations(d.invocation_log)
    keys = [(i["task_id"], i["attempt"]) for i in invocations]
    assert all(final.get(tid) == attempt for tid, attempt in keys), (
        "invocation of an unknown task/attempt"
    )
    assert set(keys) == set(final.items()), "a work task in the final state never ran"
    reruns = len(keys) - len(set(keys))
    assert reruns >= 1, "no kill landed during in-flight work; the test proves nothing"
    print(
        f"\ncrash test (seed {seed}): {d.kills} SIGKILLs, {executions} executions (+{executions} children), "
        f"{len(final)} work tasks, {len(keys)} invocations ({reruns} re-runs after crashes), "
        f"{starter.failed_attempts} failed start attempts, {elapsed_s:.1f} s"
    )


def test_overdue_wait_timer_fires_at_once_after_restart(daemon_factory: Any) -> None:
    from workloads import simple, wait

    doc = {
        "name": "it_timer",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [wait("w", "2 seconds"), simple("it_add", "after", a=1, b=2)],
        "outputParameters": {"sum": "${after.output.sum}"},
    }
    d: Daemon = daemon_factory(doc, taskdefs=TASKDEFS)
    d.start()
    resp = d.start_workflow("it_timer", {})
    assert resp.status_code == 200
    wid = resp.text.strip().strip('"')
    # the start answered only after the commit: the WAIT and its timer are journaled
    assert [t["status"] for t in d.workflow(wid)["tasks"]] == ["IN_PROGRESS"]
    d.kill()
    time.sleep(2.2)  # the timer is now overdue
    d.start()
    restarted = time.monotonic()
    doc_done = d.wait_ended([wid], timeout_s=10)[wid]
    late_s = time.monotonic() - restarted
    assert doc_done["status"] == "COMPLETED" and doc_done["output"] == {"sum": 3}
    assert late_s < 1.0, f"overdue timer took {late_s:.2f} s after restart"
    w = doc_done["tasks"][0]
    assert w["status"] == "COMPLETED" and w["endTime"] - w["scheduledTime"] >= 2000


def test_concurrent_starts_with_one_idempotency_key_start_one_execution(
    daemon_factory: Any,
) -> None:
    """A client that retries a start while the first request is still in flight."""
    from concurrent.futures import ThreadPoolExecutor

    d: Daemon = daemon_factory(MIXED, CHILD, taskdefs=TASKDEFS)
    d.start()
    limits = httpx.Limits(max_connections=24, max_keepalive_connections=24)
    with (
        httpx.Client(base_url=d.url, timeout=10, limits=limits) as http,
        ThreadPoolExecutor(24) as pool,
    ):
        list(pool.map(lambda _: http.get("/health"), range(48)))  # open the connections first
        for round_no in range(6):
            key = f"same-{round_no}"
            body = {
                "name": "it_mixed",
                "input": {"n": 1, "k": 1},
                "correlationId": key,
                "idempotencyKey": key,
                "idempotencyStrategy": "RETURN_EXISTING",
            }
            answers = list(
                pool.map(lambda _, b=body: http.post("/api/workflow", json=b), range(24))
            )
            assert {r.status_code for r in answers} == {200}
            assert len({r.text for r in answers}) == 1, (
                f"{key}: {len({r.text for r in answers})} executions"
            )
            same = http.get(
                f"/api/workflow/it_mixed/correlated/{key}", params={"includeClosed": "true"}
            )
            assert len(same.json()) == 1
