"""MQTT_REQUEST, the keptn binding spec, mqtt: event payloads and the Python Keptn worker,
in-process: the correlator (early/late/overflow), input checks with clear reasons, answer
routing of hostile messages, and the worker against a real Mosquitto (replay, malformed)."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest
import trio
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edged.errors import BadInput, ConfigError
from edged.handlers import TaskContext, TaskFailed
from edged.runtime.bindings import ExecutorRegistry
from edged_mqtt.client import open_mqtt_client
from edged_mqtt.cloudevents import (
    STRUCTURED_CONTENT_TYPE,
    CloudEvent,
    CloudEventError,
    decode_structured,
    encode_binary,
    encode_structured,
)
from edged_mqtt.device_tasks import keptn_kind
from edged_mqtt.event_waits import handler_filters, message_payload
from edged_mqtt.inbox import MqttMessage
from edged_mqtt.keptn import KeptnTask, Kind, answer
from edged_mqtt.keptn_binding import KeptnSpec, route_answer, run_keptn_task
from edged_mqtt.requests import Correlator, parse_request, reply_output, route_reply, run_request
from edged_mqtt.worker import WorkerResult, run_worker
from tests.mqtt.conftest import Broker


def message(payload: bytes, **props: Any) -> MqttMessage:
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for name, value in props.items():
        setattr(properties, name, value)
    return MqttMessage("t/x", payload, 1, False, 1, properties=properties)


# ----------------------------------------------------------------------------- correlator


async def test_correlator_delivers_keeps_early_and_bounds() -> None:
    c = Correlator(max_early=2, per_key=2)
    assert not c.deliver("a", 1, keep=False) and c.stats.unmatched == 1
    c.deliver("early", "x")  # nobody waits yet: kept for a waiter that comes later
    with c.open("early") as rx:
        assert rx.receive_nowait() == "x"
        assert c.deliver("early", "y") and rx.receive_nowait() == "y"
        c.deliver("early", 1)
        c.deliver("early", 2)
        c.deliver("early", 3)  # the waiter's buffer (2) is full: counted, not blocking
        assert c.stats.overflow == 1
    assert not c.waiting("early")
    for key in ("k1", "k2", "k3"):
        c.deliver(key, key)
    # the oldest kept key was dropped at the bound
    with c.open("k1") as rx, pytest.raises(trio.WouldBlock):
        rx.receive_nowait()
    with c.open("k3") as rx:
        assert rx.receive_nowait() == "k3"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({}, "topic"),
        ({"topic": "a/+/b"}, "topic"),
        ({"topic": ""}, "topic"),
        ({"topic": "a", "qos": 2}, "qos"),
        ({"topic": "a", "qos": True}, "qos"),
        ({"topic": "a", "timeout_s": 0}, "timeout_s"),
        ({"topic": "a", "timeout_s": "5"}, "timeout_s"),
        ({"topic": "a", "timeout_s": float("inf")}, "timeout_s"),
        ({"topic": "a", "userProperties": {"k": {"x": 1}}}, "userProperties"),
        ({"topic": "a", "payload": {"x": float("nan")}}, "not JSON"),
    ],
)
def test_request_input_faults_are_terminal_with_reason(raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(TaskFailed, match=reason) as info:
        parse_request(raw)
    assert info.value.terminal


def test_request_payload_encodings() -> None:
    spec = parse_request({"topic": "a/b", "payload": "on", "userProperties": {"n": 1}})
    assert spec.payload == b"on" and spec.content_type == "text/plain"
    assert spec.user_properties == (("n", "1"),) and spec.qos == 1 and spec.timeout_s == 10
    assert parse_request({"topic": "a", "payload": {"x": [1]}}).payload == b'{"x":[1]}'


def test_reply_output_never_fails() -> None:
    ok = reply_output(message(b'{"ok": true}', ContentType="application/json"), "k")
    assert ok["response"] == {"ok": True} and ok["encoding"] == "json"
    assert reply_output(message(b"done"), "k")["response"] == "done"
    raw = reply_output(message(b"\xff\x00"), "k")
    assert raw["encoding"] == "base64" and raw["response"] == "/wA="
    deep = reply_output(message(b"[" * 100_000), "k")
    assert deep["encoding"] == "text"


async def test_request_times_out_and_late_reply_is_ignored() -> None:
    c = Correlator()
    sent: list[tuple[str, bytes, Any]] = []

    async def publish(topic: str, payload: bytes, qos: int, retain: bool, props: Any) -> None:
        sent.append((topic, payload, props))

    ctx = TaskContext("task-1", "wf-1", "ask", "ask", 2, {"topic": "dev/cmd", "timeout_s": 0.05})
    with pytest.raises(TaskFailed, match="no reply") as info:
        await run_request(ctx, publish=publish, correlator=c, reply_root="edged/n/replies")
    assert not info.value.terminal
    ((topic, payload, props),) = sent
    assert topic == "dev/cmd" and payload == b"{}"
    assert props.ResponseTopic == "edged/n/replies/task-1"
    assert props.CorrelationData == b"task-1:2"
    route_reply(c, message(b"{}", CorrelationData=b"task-1:2"))  # late: nobody waits
    assert c.stats.kept == 1 and c.stats.delivered == 0
    route_reply(c, message(b"{}"))  # no correlation
    route_reply(c, message(b"{}", CorrelationData=b"\xff\xfe"))
    assert c.stats.unmatched == 2


async def test_request_gets_its_reply() -> None:
    c = Correlator()

    async def publish(topic: str, payload: bytes, qos: int, retain: bool, props: Any) -> None:
        route_reply(c, message(b"{}", CorrelationData=b"task-9:0"))  # someone else's
        route_reply(c, message(b'{"v": 1}', CorrelationData=props.CorrelationData))

    ctx = TaskContext("task-1", "wf", "ask", "ask", 0, {"topic": "dev/cmd"})
    with trio.fail_after(5):
        out = await run_request(ctx, publish=publish, correlator=c, reply_root="r")
    assert out["response"] == {"v": 1} and out["correlation"] == "task-1:0"


# ----------------------------------------------------------------------------- keptn


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("x", "expected a mapping"),
        ({"tsk": "a"}, "bindings.backup.keptn.tsk: unknown key"),
        ({"task": "a/b"}, "bindings.backup.keptn.task"),
        ({"topic_prefix": "k/#"}, "bindings.backup.keptn.topic_prefix"),
        ({"start_timeout_s": -1}, "bindings.backup.keptn.start_timeout_s"),
        ({"timeout_s": True}, "bindings.backup.keptn.timeout_s"),
    ],
)
def test_keptn_binding_spec_faults_name_their_path(spec: Any, fault: str) -> None:
    registry = ExecutorRegistry()
    registry.register_kind("keptn", keptn_kind)
    with pytest.raises(ConfigError, match=fault.replace(".", r"\.")):
        registry.build({"backup": {"keptn": spec}})
    assert callable(registry.build({"backup": {"keptn": None}})["backup"])


def test_answers_are_routed_by_triggered_id_in_both_modes() -> None:
    task = KeptnTask("backup", "t1", 0, "wf", "edged/n", created_ms=0)
    trig = task.triggered_event({})
    c = Correlator()
    started = answer(trig, Kind.STARTED, source="w", event_id="e1")
    route_answer(c, message(encode_structured(started), ContentType=STRUCTURED_CONTENT_TYPE))
    binary = encode_binary(
        answer(
            trig,
            Kind.FINISHED,
            source="w",
            event_id="e2",
            data={"result": "pass", "status": "succeeded"},
        )
    )
    route_answer(
        c,
        message(
            binary.payload,
            ContentType=binary.content_type,
            UserProperty=list(binary.user_properties),
        ),
    )
    with c.open(task.triggered_id) as rx:
        first, second = rx.receive_nowait(), rx.receive_nowait()
    assert task.on_event(first, 1).log and task.on_event(second, 2).status == "COMPLETED"


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff",
        b'{"a": 1}',
        b'{"specversion":"1.0","id":"1","source":"s","type":"com.example.finished"}',
        b'{"specversion":"1.0","id":"1","source":"s","type":"sh.keptn.event.b.triggered"}',
        b'{"specversion":"1.0","id":"1","source":"s","type":"sh.keptn.event.b.finished"}',
        b'{"specversion":"1.0","id":"1","id":"2","source":"s","type":"x"}',
    ],
)
def test_hostile_answers_raise_bad_input(payload: bytes) -> None:
    with pytest.raises(BadInput):
        route_answer(Correlator(), message(payload))


# ----------------------------------------------------------------------------- mqtt: events


def test_event_handler_filters_and_payloads() -> None:
    handlers = [
        {"name": "a", "event": "mqtt:devices/+/ack", "actions": []},
        {"name": "b", "event": "mqtt:bad/#/x", "actions": []},
        {"name": "c", "event": "conductor:x", "actions": []},
        {"name": "d", "event": "mqtt:off", "active": False, "actions": []},
    ]
    assert handler_filters(handlers) == {"devices/+/ack": "mqtt:devices/+/ack"}
    assert message_payload(message(b'{"workflowId": "w"}')) == {"workflowId": "w"}
    ce = CloudEvent(id="1", source="s", type="t", data={"x": 1})
    doc = message_payload(message(encode_structured(ce)))
    assert doc["data"] == {"x": 1} and doc["id"] == "1"
    for bad in (b"[1]", b"\xff", b"3", b"nope"):
        with pytest.raises(BadInput):
            message_payload(message(bad))
    with pytest.raises(CloudEventError):
        message_payload(message(b"{", ContentType=STRUCTURED_CONTENT_TYPE))


# ----------------------------------------------------------------------------- the worker


async def test_worker_answers_replays_and_survives_garbage(broker: Broker) -> None:
    calls: list[dict[str, Any]] = []

    def handler(data: dict[str, Any], event: CloudEvent, progress: Any) -> Any:
        calls.append(data)
        progress("half way")
        if data.get("fail"):
            raise WorkerResult("fail", "no", status="aborted")
        if data.get("crash"):
            raise RuntimeError("boom")
        return {"twice": data["n"] * 2}

    settings = broker.settings()
    task = KeptnTask("calc", "t1", 0, "wf", "edged/test", created_ms=0)
    trig = encode_structured(task.triggered_event({"calc": {"n": 21}}))
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            worker = await nursery.start(partial(run_worker, settings, "calc", handler, name="w"))
            async with open_mqtt_client(settings.replace(client_id="observer")) as obs:
                await obs.subscribe("keptn/calc/+", 1)
                await obs.publish("keptn/calc/triggered", b"\xff garbage")
                await obs.publish("keptn/calc/triggered", trig)
                await obs.publish("keptn/calc/triggered", trig)  # redelivered: replay
                got: list[CloudEvent] = []
                while len(got) < 5:  # started, status.changed, finished, then 2 replayed
                    m = await obs.receive()
                    if m.topic != "keptn/calc/triggered":
                        got.append(decode_structured(m.payload))
                kinds = [e.type.rsplit(".", 1)[-1] for e in got]
                assert kinds == ["started", "changed", "finished", "started", "finished"]
                assert got[3].id == got[0].id and got[4].id == got[2].id  # same ids: dedupe
                finished = got[2]
                assert isinstance(finished.data, dict)
                assert finished.data["result"] == "pass" and finished.data["calc"] == {"twice": 42}
                assert finished.extensions["triggeredid"] == task.triggered_id
                assert calls == [{"n": 21}]
                assert worker.stats.malformed == 1 and worker.stats.replayed == 1
                outcome = None
                for e in got:
                    outcome = task.on_event(e, 1)
                assert outcome is not None and task.outcome is not None
                assert task.outcome.status == "COMPLETED"
            for data, result, status in (
                ({"fail": True}, "fail", "aborted"),
                ({"crash": True}, "fail", "errored"),
            ):
                t = KeptnTask("calc", f"t-{status}", 0, "wf", "edged/test", created_ms=0)
                async with open_mqtt_client(settings.replace(client_id=f"o-{status}")) as obs:
                    await obs.subscribe("keptn/calc/finished", 1)
                    await obs.publish(
                        "keptn/calc/triggered", encode_structured(t.triggered_event({"calc": data}))
                    )
                    fin = decode_structured((await obs.receive()).payload)
                    assert isinstance(fin.data, dict)
                    assert (fin.data["result"], fin.data["status"]) == (result, status)
                    assert json.dumps(fin.data)
            nursery.cancel_scope.cancel()


async def test_keptn_task_start_timeout_and_overall_timeout() -> None:
    c = Correlator()
    published: list[CloudEvent] = []
    lines: list[str] = []

    async def publish(topic: str, payload: bytes, qos: int, retain: bool, props: Any) -> None:
        assert topic == "keptn/backup/triggered" and props.ContentType == STRUCTURED_CONTENT_TYPE
        published.append(decode_structured(payload))

    ctx = TaskContext("t1", "wf", "backup", "backup", 0, {"path": "/srv"})
    spec = KeptnSpec("backup", start_timeout_s=0.05)
    with trio.fail_after(5), pytest.raises(TaskFailed, match="no worker started") as info:
        await run_keptn_task(ctx, spec, publish=publish, correlator=c, source="edged/n")
    assert not info.value.terminal
    (trig,) = published
    assert isinstance(trig.data, dict) and trig.data["backup"] == {"path": "/srv"}
    assert trig.data["edged"] == {"workflowId": "wf", "taskId": "t1", "attempt": 0}

    async def publish_and_start(
        topic: str, payload: bytes, qos: int, retain: bool, props: Any
    ) -> None:
        event = decode_structured(payload)
        c.deliver(event.id, answer(event, Kind.STARTED, source="w", event_id="s1"))

    spec = KeptnSpec("backup", start_timeout_s=0.05, timeout_s=0.2)
    with trio.fail_after(5), pytest.raises(TaskFailed, match="did not finish") as info:
        await run_keptn_task(
            ctx, spec, publish=publish_and_start, correlator=c, source="e", log=lines.append
        )
    assert "started: w" in info.value.reason
    assert lines[-1] == "w: started"


async def test_client_sockets_send_without_nagle(broker: Broker) -> None:
    # With Nagle on, a reply PUBLISH written right after a PUBACK waited for the broker's
    # delayed ACK: ~40 ms per MQTT_REQUEST round trip (benchmarks/mqtt_tasks.py).
    import socket

    with trio.fail_after(10):
        async with open_mqtt_client(broker.settings(client_id="nodelay")) as client:
            await client.wait_connected()
            sock = client._paho.socket()
            assert isinstance(sock, socket.socket)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_oversized_requests_and_triggered_events_fail_terminally() -> None:
    from edged_mqtt.session import PayloadTooLarge

    async def refuse(topic: str, payload: bytes, qos: int, retain: bool, props: Any) -> None:
        raise PayloadTooLarge(f"payload of {len(payload)} bytes exceeds 10")

    ctx = TaskContext("t1", "wf", "ask", "ask", 0, {"topic": "a", "payload": {"x": "y" * 50}})
    with pytest.raises(TaskFailed, match="exceeds") as info:
        await run_request(ctx, publish=refuse, correlator=Correlator(), reply_root="r")
    assert info.value.terminal
    with pytest.raises(TaskFailed, match="exceeds") as info:
        await run_keptn_task(
            ctx, KeptnSpec("backup"), publish=refuse, correlator=Correlator(), source="e"
        )
    assert info.value.terminal


async def test_worker_state_dir_replays_after_a_worker_restart(
    broker: Broker, tmp_path: Any
) -> None:
    calls: list[int] = []

    async def handler(data: dict[str, Any], event: CloudEvent, progress: Any) -> Any:
        calls.append(1)
        return {"ok": True}

    settings = broker.settings()
    trig = KeptnTask("st", "t1", 0, "wf", "edged/test", created_ms=0).triggered_event({})
    finished: list[CloudEvent] = []
    with trio.fail_after(20):
        async with open_mqtt_client(settings.replace(client_id="st-observer")) as obs:
            await obs.subscribe("keptn/st/finished", 1)
            for _ in range(2):  # the second worker is a fresh process as far as memory goes
                async with trio.open_nursery() as nursery:
                    await nursery.start(
                        partial(run_worker, settings, "st", handler, name="w", state_dir=tmp_path)
                    )
                    await obs.publish("keptn/st/triggered", encode_structured(trig))
                    finished.append(decode_structured((await obs.receive()).payload))
                    nursery.cancel_scope.cancel()
    assert calls == [1]
    assert finished[0] == finished[1]
