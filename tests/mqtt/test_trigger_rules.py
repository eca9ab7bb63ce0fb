"""Trigger rules and the ``mqtt:`` config section, without a broker: validation with paths
(also through ``edged validate`` and ``edged run``), decoding, identity, input mapping."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edged.defs.triggers import validate_triggers
from edged.errors import ConfigError
from edged_mqtt.inbox import MqttMessage
from edged_mqtt.options import parse_options
from edged_mqtt.topics import compile_filter, topic_matches
from edged_mqtt.triggers import Rule, TriggerFault, _context, _map_input, _workflow_id


def _faults(rules: Any, standalone: bool = False) -> list[str]:
    return [str(f) for f in validate_triggers(rules, "triggers", standalone=standalone)]


def test_valid_rules_have_no_faults() -> None:
    rules = [
        {"name": "a", "topic": "sensors/+/t", "qos": 1, "decode": "json", "mode": "queued"},
        {"topic": "x/#", "identity": "payload.id", "max": 3, "condition": "$.payload.t > 1"},
        {"name": "c", "topic": "ce", "decode": "cloudevents", "identity": "cloudevents"},
    ]
    assert _faults(rules) == []


@pytest.mark.parametrize(
    ("rule", "fault"),
    [
        ({"topic": "a/#/b"}, "triggers[0].topic: '#' must be a whole level and the last one"),
        ({"topic": "a+/b"}, "triggers[0].topic: '+' must be a whole level"),
        ({}, "triggers[0].topic: missing"),
        ({"topic": "t", "qos": 2}, "triggers[0].qos: expected 0 or 1"),
        ({"topic": "t", "mode": "fast"}, "triggers[0].mode: expected one of"),
        ({"topic": "t", "decode": "xml"}, "triggers[0].decode: expected one of"),
        ({"topic": "t", "max": 0}, "triggers[0].max: expected a positive integer"),
        ({"topic": "t", "identity": "a b"}, "triggers[0].identity: expected 'cloudevents'"),
        ({"topic": "t", "condition": 3}, "triggers[0].condition: expected a string"),
        ({"topic": "t", "colour": 1}, "triggers[0].colour: unknown trigger key"),
        ({"topic": "t", "workflow": "w"}, "triggers[0].workflow: only config rules"),
        ("t", "triggers[0]: a trigger rule must be an object"),
    ],
)
def test_rule_faults_name_their_path(rule: Any, fault: str) -> None:
    found = _faults([rule])
    assert any(f.startswith(fault) for f in found), found


def test_duplicate_names_and_config_rules_need_a_workflow() -> None:
    assert any("duplicate trigger name" in f for f in _faults([{"name": "a", "topic": "t"}] * 2))
    assert any("workflow: missing" in f for f in _faults([{"topic": "t"}], standalone=True))
    assert _faults("nope") == ["triggers: expected an array of trigger rules, got string"]


def test_edged_validate_reports_trigger_faults(tmp_path: Path) -> None:
    doc = {
        "name": "w",
        "version": 1,
        "schemaVersion": 2,
        "triggers": [{"topic": "a/#/b", "mode": "sometimes"}],
        "tasks": [{"name": "n", "taskReferenceName": "n", "type": "NOOP"}],
    }
    path = tmp_path / "w.json"
    path.write_text(json.dumps(doc))
    out = subprocess.run(
        [sys.executable, "-m", "edged.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    text = out.stdout + out.stderr
    assert "triggers[0].topic" in text and "triggers[0].mode" in text


def test_options_parse_url_credentials_and_tls() -> None:
    opts = parse_options(
        {
            "url": "mqtts://broker.example:8884",
            "username": "u",
            "password": "p",
            "client_id": "gw-1",
            "tls": {"ca": "ca.pem", "cert": "c.pem", "key": "k.pem"},
            "outbox": {"max_messages": 5},
        }
    )
    s = opts.settings
    assert (s.host, s.port, s.username, s.client_id) == ("broker.example", 8884, "u", "gw-1")
    assert s.tls is not None and s.tls.ca_file == "ca.pem" and s.manual_ack
    assert not s.clean_start and opts.outbox.max_messages == 5
    assert parse_options({"host": "h", "port": 1884}).settings.port == 1884


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"url": "http://x"}, "scheme must be mqtt:// or mqtts://"),
        ({"colour": 1}, "mqtt.colour: unknown key"),
        ({"port": "1883"}, "mqtt.port: wrong type"),
        ({"port": 70000}, "is not a TCP port"),
        ({"tls": {"cert": "c.pem"}}, "cert_file and key_file go together"),
        ({"url": "mqtt://h", "tls": {"ca": "x"}}, "use mqtts://"),
        ({"outbox": {"max_messages": 0}}, "limits must be >= 1"),
        ({"triggers": "x"}, "mqtt.triggers: wrong type"),
    ],
)
def test_bad_options_are_config_errors(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("+", r"\+")):
        parse_options(section)


def test_edged_run_refuses_a_bad_broker_url(tmp_path: Path) -> None:
    args = ["run", "--data-dir", str(tmp_path / "d"), "--listen", "127.0.0.1:0"]
    out = subprocess.run(
        [sys.executable, "-m", "edged.cli", *args, "--mqtt", "ftp://nowhere"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0
    assert "mqtt:// or mqtts://" in out.stdout + out.stderr
    assert not (tmp_path / "d" / "journal.db").exists()  # refused before the journal


def _message(payload: bytes, topic: str = "s/1/t", props: Any = None) -> MqttMessage:
    return MqttMessage(topic=topic, payload=payload, qos=1, retain=False, mid=1, properties=props)


def _rule(**fields: Any) -> Rule:
    return Rule(name="r", workflow="w", version=None, topic="s/+/t", **fields)


def test_decodings_and_context() -> None:
    ctx, _ = _context(_rule(), _message(b'{"t": 21.5}'))
    assert ctx["payload"] == {"t": 21.5} and ctx["topicLevels"] == ["s", "1", "t"]
    ctx, _ = _context(_rule(decode="text"), _message("grüße".encode()))
    assert ctx["payload"] == "grüße"
    ctx, _ = _context(_rule(decode="bytes"), _message(b"\x00\xff"))
    assert ctx["payload"] == "AP8="
    ctx, _ = _context(_rule(decode="auto"), _message(b"\xff\x00"))
    assert ctx["payload"] == "/wA="
    ce = b'{"specversion":"1.0","id":"1","source":"dev","type":"t","data":{"v":1}}'
    ctx, event = _context(_rule(decode="cloudevents"), _message(ce))
    assert event is not None and ctx["payload"] == {"v": 1}
    assert ctx["cloudevent"]["source"] == "dev" and "data" not in ctx["cloudevent"]
    with pytest.raises(TriggerFault, match="not JSON"):
        _context(_rule(), _message(b"{"))
    with pytest.raises(TriggerFault, match="not UTF-8"):
        _context(_rule(decode="text"), _message(b"\xc3\x28"))


def test_input_mapping_and_identity() -> None:
    rule = _rule(input={"reading": "${payload.t}", "room": "${topicLevels[1]}"})
    ctx, _ = _context(rule, _message(b'{"t": 3, "id": "abc"}'))
    assert _map_input(rule, ctx) == {"reading": 3, "room": "1"}
    assert _map_input(_rule(), _context(_rule(decode="text"), _message(b"hi"))[0]) == {
        "payload": "hi"
    }
    ident = _rule(identity="payload.id")
    first = _workflow_id(ident, ctx, None)
    assert first == _workflow_id(ident, ctx, None)  # the same event -> the same execution
    other, _ = _context(ident, _message(b'{"id": "abd"}'))
    assert _workflow_id(ident, other, None) != first
    missing, _ = _context(ident, _message(b'{"t": 1}'))
    with pytest.raises(TriggerFault, match="identity field"):
        _workflow_id(ident, missing, None)
    assert _workflow_id(_rule(), ctx, None) != _workflow_id(_rule(), ctx, None)  # no identity


@pytest.mark.parametrize("topic_filter", ["a/b", "a/+", "a/#", "#", "+/b", "+", "a/+/c", "$SYS/#"])
def test_compiled_filters_match_like_topic_matches(topic_filter: str) -> None:
    matches = compile_filter(topic_filter)
    for topic in ["a/b", "a", "a/b/c", "$SYS/x", "b/b", "a/x/c", "x", "$SYS", "/", "a/"]:
        assert matches(topic) == topic_matches(topic_filter, topic), topic
