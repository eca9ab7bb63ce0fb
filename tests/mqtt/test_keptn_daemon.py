"""The keptn binding in a real ``edged run`` with a real Mosquitto: Python workers (the
worker helper), the example shell worker, two workers on one task (Keptn's rule), nobody
starting, malformed answers, a daemon SIGKILLed while a worker runs (the worker answers
again instead of redoing the work) and a broker restart while a worker runs."""

from __future__ import annotations

import os
import signal
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import trio
import yaml

from edged_mqtt.cloudevents import CloudEvent, encode_structured
from edged_mqtt.keptn import KeptnTask
from edged_mqtt.worker import KeptnWorker, WorkerResult, run_worker
from tests.integration.daemon_harness import Daemon
from tests.mqtt.conftest import Broker
from tests.mqtt.mqtt_daemon import mqtt_daemon, needs_clients, pub

pytestmark = needs_clients
ROOT = Path(__file__).resolve().parents[2]
TASKDEFS = [
    {"name": name, "retryCount": 0, "timeoutSeconds": 60, "responseTimeoutSeconds": 60}
    for name in ("backup", "diskcheck", "nobody")
]


def flow(name: str, task: str, task_input: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {
                "name": task,
                "taskReferenceName": task,
                "type": "SIMPLE",
                "inputParameters": task_input,
            }
        ],
    }


BINDINGS = {
    "backup": {"keptn": {"start_timeout_s": 20}},
    "diskcheck": {"keptn": {"start_timeout_s": 20}},
    "nobody": {"keptn": {"task": "nobody", "start_timeout_s": 0.5}},
}


def keptn_daemon(tmp_path: Path, broker: Broker) -> Daemon:
    return mqtt_daemon(
        tmp_path,
        broker,
        flow("backup_flow", "backup", {"path": "/srv"}),
        flow("disk_flow", "diskcheck", {"path": "/"}),
        flow("orphan_flow", "nobody", {}),
        taskdefs=TASKDEFS,
        bindings=BINDINGS,
    )


async def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    return await trio.to_thread.run_sync(partial(fn, *args, **kwargs))


async def start(daemon: Daemon, name: str) -> str:
    resp = await in_thread(daemon.start_workflow, name, {})
    assert resp.status_code == 200, resp.text
    return str(resp.text.strip().strip('"'))


def task_logs(daemon: Daemon, task_id: str) -> list[str]:
    with daemon.client() as http:
        resp = http.get(f"/api/tasks/{task_id}/log")
        resp.raise_for_status()
        return [str(entry.get("log")) for entry in resp.json()]


async def ended(daemon: Daemon, wid: str, timeout_s: float = 20.0) -> dict[str, Any]:
    done: dict[str, dict[str, Any]] = await in_thread(daemon.wait_ended, [wid], timeout_s)
    return done[wid]


async def test_python_workers_keptn_rule_timeout_and_malformed(
    tmp_path: Path, broker: Broker
) -> None:
    calls: list[str] = []
    release = trio.Event()

    async def slow_pass(data: dict[str, Any], event: CloudEvent, progress: Any) -> Any:
        calls.append(f"w1 {data['path']}")
        await progress("copying")
        await release.wait()  # until the test saw the progress and w2 started
        return {"bytes": 42}

    def quick_warning(data: dict[str, Any], event: CloudEvent, progress: Any) -> Any:
        calls.append("w2")
        raise WorkerResult("warning", "disk almost full")

    daemon = keptn_daemon(tmp_path, broker)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            settings = broker.settings()
            await nursery.start(partial(run_worker, settings, "backup", slow_pass, name="w1"))
            await nursery.start(partial(run_worker, settings, "backup", quick_warning, name="w2"))
            await in_thread(daemon.start)
            try:
                # hostile answers first: dead-lettered and acked, never block the rest
                await in_thread(pub, broker, "keptn/backup/finished", b"\xff garbage")
                await in_thread(pub, broker, "keptn/backup/started", b'{"specversion":"1.0"}')
                await in_thread(
                    pub,
                    broker,
                    "keptn/backup/finished",
                    b'{"specversion":"1.0","id":"x","source":"s","type":"sh.keptn.event.backup.finished"}',
                )
                wid = await start(daemon, "backup_flow")
                # progress is journaled while the task runs, and w2 (finished, warning) does
                # not complete the task while w1 (started) has not finished: Keptn's rule
                while True:
                    tasks = (await in_thread(daemon.workflow, wid)).get("tasks", [])
                    logs = await in_thread(task_logs, daemon, tasks[0]["taskId"]) if tasks else []
                    if any("w1: copying" in line for line in logs) and any(
                        "w2: finished warning" in line for line in logs
                    ):
                        break
                    await trio.sleep(0.05)
                assert (await in_thread(daemon.workflow, wid))["status"] == "RUNNING"
                release.set()
                done = await ended(daemon, wid)
                assert done["status"] == "COMPLETED", done
                (task,) = done["tasks"]
                out = task["outputData"]
                assert out["result"] == "warning" and out["status"] == "succeeded"
                assert set(out["workers"]) == {"keptn-worker/w1", "keptn-worker/w2"}
                assert out["backup"] == {"bytes": 42}
                assert "disk almost full" in out["message"]
                assert sorted(calls) == ["w1 /srv", "w2"]

                orphan = await ended(daemon, await start(daemon, "orphan_flow"))
                assert orphan["status"] == "FAILED"
                assert "no worker started" in orphan["tasks"][0]["reasonForIncompletion"]
            finally:
                await in_thread(daemon.kill)
                nursery.cancel_scope.cancel()


async def test_daemon_killed_or_broker_restarted_while_worker_runs(
    tmp_path: Path, broker: Broker
) -> None:
    release = [trio.Event(), trio.Event()]
    running = [trio.Event(), trio.Event()]
    calls: list[int] = []

    async def blocking(data: dict[str, Any], event: CloudEvent, progress: Any) -> Any:
        n = len(calls)
        calls.append(n)
        running[n].set()
        await release[n].wait()
        return {"run": n}

    daemon = keptn_daemon(tmp_path, broker)
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            worker: KeptnWorker = await nursery.start(
                partial(run_worker, broker.settings(), "backup", blocking, name="w1")
            )
            await in_thread(daemon.start)
            try:
                wid = await start(daemon, "backup_flow")
                await running[0].wait()
                await in_thread(daemon.kill)  # SIGKILL while the worker holds the task
                release[0].set()  # it finishes while edged is down: answers wait in the broker
                await trio.sleep(0.3)
                await in_thread(daemon.start)  # re-dispatch: the same triggered id again
                done = await ended(daemon, wid)
                assert done["status"] == "COMPLETED", done
                assert done["tasks"][0]["outputData"]["backup"] == {"run": 0}
                assert calls == [0]  # the work ran once; the second triggered was answered
                assert worker.stats.replayed >= 1 and worker.stats.handled == 1

                wid = await start(daemon, "backup_flow")
                await running[1].wait()
                await in_thread(broker.restart)  # sessions persist; everyone reconnects
                release[1].set()  # .finished goes out once the worker is back
                done = await ended(daemon, wid, timeout_s=30)
                assert done["status"] == "COMPLETED", done
                assert done["tasks"][0]["outputData"]["backup"] == {"run": 1}
            finally:
                await in_thread(daemon.kill)
                nursery.cancel_scope.cancel()


def test_shell_worker(tmp_path: Path, broker: Broker) -> None:
    """The example as shipped: examples/keptn-worker/{edged.yaml,flows/,worker.sh}."""
    example = ROOT / "examples" / "keptn-worker"
    config = yaml.safe_load((example / "edged.yaml").read_text())
    config.pop("defs")  # the test daemon passes --defs
    config["mqtt"]["url"] = f"mqtt://127.0.0.1:{broker.port}"
    (tmp_path / "edged.yaml").write_text(yaml.safe_dump(config))
    daemon = Daemon(
        data_dir=tmp_path / "data", defs_dir=example / "flows", config=tmp_path / "edged.yaml"
    )
    env = dict(
        os.environ,
        BROKER_PORT=str(broker.port),
        WORKER_NAME="sh1",
        STATE_DIR=str(tmp_path / "sh-state"),
    )
    proc = subprocess.Popen(
        ["sh", str(ROOT / "examples/keptn-worker/worker.sh")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so the pipeline stops with it
    )
    daemon.start()
    try:
        resp = daemon.start_workflow("disk_report", {"path": "/"})
        wid = resp.text.strip().strip('"')
        done = daemon.wait_ended([wid], timeout_s=20)[wid]
        assert done["status"] == "COMPLETED", done
        out = done["output"]
        assert out["result"] == "pass" and out["workers"].keys() == {"keptn-worker/sh1"}
        assert out["free_kb"] > 0
        (stored,) = (tmp_path / "sh-state").glob("*.finished")
        # a redelivered triggered event (same id) is answered again from the stored answers,
        # byte for byte, without running df again
        task = done["tasks"][0]
        trig = KeptnTask("diskcheck", task["taskId"], 0, wid, "edged/x", 0).triggered_event({})
        listener = subprocess.Popen(
            [
                "mosquitto_sub",
                "-p",
                str(broker.port),
                "-V",
                "mqttv5",
                "-t",
                "keptn/diskcheck/finished",
                "-C",
                "1",
                "-W",
                "10",
            ],
            stdout=subprocess.PIPE,
        )
        replayed = b""
        for _ in range(30):  # until the listener has subscribed: every replay is the same
            pub(broker, "keptn/diskcheck/triggered", encode_structured(trig))
            try:
                replayed, _ = listener.communicate(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                continue
        assert replayed.strip() == stored.read_bytes()
    finally:
        daemon.kill()
        os.killpg(proc.pid, signal.SIGTERM)  # sh and its mosquitto_sub/pub children
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()
