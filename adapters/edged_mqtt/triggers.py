"""MQTT triggers: a message on a topic starts a workflow, acked only once the start is durable.

Theory of operation
-------------------
Rules come from definitions' ``triggers`` blocks (the latest version of each workflow) and
from the config's ``mqtt.triggers`` (which name their ``workflow``); the block's shape and
its checks are in edged/defs/triggers.py. Registering or deleting a version of a workflow
through the API applies its latest version's rules at once: new rules subscribe, removed
ones stop taking messages (their filter is unsubscribed), changed ones are updated in place
(counters, running executions and queued starts carry over). Each rule subscribes its filter
through the service (``MqttService.subscribe``); the broker session is persistent, so QoS 1
messages sent while the daemon was down arrive when it is back.

Per message and rule, in arrival order, synchronously: decode (json, text, bytes as base64,
CloudEvents structured or MQTT 5 binary, or auto), build the context ``{payload, topic,
topicLevels, qos, retain, userProperties, contentType, receivedAtMs, cloudevent}``, evaluate
the condition (JavaScript, ``$`` is the context), resolve the input template (``${...}`` over
the context; default: the payload when it is an object, else ``{"payload": ...}``), take the
identity, apply the concurrency mode. A decode, condition, mapping or identity fault is
counted, logged and dead-lettered, and the message is acked: it can never succeed, and it
must not block the messages behind it.

Then asynchronously: the start goes to the engine and only once the journal commit is
durable does the service PUBACK the message. A rule without identity queues the start at
once and returns a ``Pending`` that the engine's reply settles (no task per message); a rule
with identity, or a full engine queue, takes a task that awaits ``engine.submit``. A commit
refused by the journal means ``Redeliver``: no ack, the broker sends it again.

Identity: CloudEvents ``source`` + ``id`` (``identity: cloudevents``, the default for
``decode: cloudevents``) or a field path (``payload.deviceId``). The workflow id is
``uuid5(namespace, workflow \\0 rule \\0 source \\0 id)``; before starting, the engine is
asked whether that execution exists (cache, then journal), so a redelivery after a crash
between commit and PUBACK starts nothing. Without identity a redelivery starts again
(at least once).

Modes (per rule, like automation modes): ``parallel`` (default; at most ``max`` running,
beyond that messages are skipped), ``single`` (skipped while one runs), ``restart`` (the
running one is terminated in the same batch as the new start), ``queued`` (waits, unacked,
until the running one ends; at most ``max`` waiting, default 10: keep it below the broker's
in-flight window, which also serves the other topics). Skips are counted and acked.
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any

import trio

from edged.core import events as ev
from edged.defs.faults import DefinitionError
from edged.defs.triggers import validate_triggers
from edged.errors import ConfigError, EdgedError, JournalError, NotFound
from edged.expr import eval_condition, resolve
from edged.ids import new_execution_id
from edged.runtime.engine import Op, Reply, new_workflow
from edged_mqtt.cloudevents import CloudEvent, decode_message, to_json_doc
from edged_mqtt.inbox import MqttMessage
from edged_mqtt.service import Pending, Redeliver

log = logging.getLogger("edged.mqtt.triggers")

NAMESPACE = uuid.UUID("6f1c1f4e-56a4-4c6e-9a43-1d1c0e0a7e11")


class TriggerFault(EdgedError):
    """The message cannot start anything (decode, condition, mapping, identity)."""


@dataclass(slots=True)
class RuleStats:
    received: int = 0
    started: int = 0
    duplicates: int = 0
    filtered: int = 0
    skipped: int = 0
    faults: int = 0


@dataclass(slots=True)
class Rule:
    name: str
    workflow: str
    version: int | None
    topic: str
    qos: int = 1
    decode: str = "json"
    condition: str | None = None
    input: Any = None
    identity: str | None = None
    mode: str = "parallel"
    max: int = 1000
    correlation: str | None = None
    stats: RuleStats = field(default_factory=RuleStats)
    running: set[str] = field(default_factory=set)
    reserved: int = 0
    tickets: list[object] = field(default_factory=list)
    changed: trio.Event = field(default_factory=trio.Event)
    waiting: int = 0  # tasks waiting on `changed`
    doc: dict[str, Any] = field(default_factory=dict)  # the rule as written
    from_definition: bool = False  # else from the config file
    subscription: Any = None  # the service's handle, to unsubscribe

    @property
    def plain(self) -> bool:
        """Nothing reads the message context but the payload (no condition, mapping,
        identity or correlation)."""
        return not (self.condition or self.input is not None or self.identity or self.correlation)

    def signal(self) -> None:
        if self.waiting:  # a fresh Event per message costs when nobody waits (most rules)
            self.changed.set()
            self.changed = trio.Event()


# What a rule's document decides (the rest is its state).
_RULE_SPEC = (
    "topic", "qos", "decode", "condition", "input", "identity", "mode", "max", "correlation", "doc"
)  # fmt: skip


def _rule(doc: dict[str, Any], workflow: str, version: int | None, index: int) -> Rule:
    decode = doc.get("decode") or "json"
    mode = doc.get("mode") or "parallel"
    identity = doc.get("identity")
    if identity is None and decode == "cloudevents":
        identity = "cloudevents"
    return Rule(
        name=doc.get("name") or f"trigger{index}",
        workflow=workflow,
        version=version,
        topic=doc["topic"],
        qos=doc.get("qos", 1),
        decode=decode,
        condition=doc.get("condition") or None,
        input=doc.get("input"),
        identity=identity,
        mode=mode,
        max=doc.get("max") or (10 if mode == "queued" else 1000),
        correlation=doc.get("correlationId"),
        doc=doc,
    )


class TriggerSet:
    def __init__(self, service: Any) -> None:
        self.service = service
        self.engine: Any = None
        self.rules: list[Rule] = []
        self._config_rules: list[dict[str, Any]] = []
        self._owner: dict[str, Rule] = {}  # running workflow id -> its rule
        self._starting: set[str] = set()

    # ------------------------------------------------------------------ set-up

    def load_config_rules(self, docs: list[dict[str, Any]]) -> None:
        faults = validate_triggers(docs, "mqtt.triggers", standalone=True)
        if faults:
            raise ConfigError("; ".join(str(f) for f in faults))
        self._config_rules = docs

    def check_definition(self, doc: Any) -> None:
        """Definitions were validated (triggers included) by edged.defs; nothing to add."""

    def attach(self, engine: Any) -> None:
        self.engine = engine
        for i, doc in enumerate(self._config_rules):
            if doc.get("enabled", True):
                version = doc.get("version")
                self.rules.append(_rule(doc, doc["workflow"], version, i))
        for name in sorted(engine.registry.workflows):
            self.rules += self._definition_rules(name)
        for rule in self.rules:
            self._subscribe(rule)
        engine.listeners.append(self._on_commit)
        engine.registry.workflow_listeners.append(self._definitions_changed)
        self.service.on_run(self._adopt_running)
        if self.rules:
            log.info("mqtt triggers: %d rules", len(self.rules))

    def _definition_rules(self, name: str) -> list[Rule]:
        """The rules of the latest version of workflow `name` (none when it has none)."""
        versions = self.engine.registry.workflows.get(name) or {}
        if not versions:
            return []
        definition = versions[max(versions)]
        rules = []
        for i, doc in enumerate(definition.get("triggers") or []):
            if isinstance(doc, dict) and doc.get("enabled", True):
                rule = _rule(doc, name, None, i)
                rule.from_definition = True
                rules.append(rule)
        return rules

    def _subscribe(self, rule: Rule) -> None:
        rule.subscription = self.service.subscribe(
            rule.topic, rule.qos, self._callback(rule), f"trigger {rule.name}"
        )

    def _definitions_changed(self, name: str) -> None:
        """A version of workflow `name` was registered or deleted: its latest version's
        `triggers` replace the running rules of that workflow at once. An unchanged rule
        keeps running as it was; a changed one keeps its counters and its running
        executions (for its mode); a removed one stops taking messages."""
        old = {r.name: r for r in self.rules if r.from_definition and r.workflow == name}
        kept: list[Rule] = []
        for rule in self._definition_rules(name):
            previous = old.pop(rule.name, None)
            if previous is None:
                self._subscribe(rule)
                kept.append(rule)
                continue
            if previous.doc != rule.doc:
                # updated in place: its callback, queued starts and running set stay valid
                moved = (previous.topic, previous.qos) != (rule.topic, rule.qos)
                for spec in _RULE_SPEC:
                    setattr(previous, spec, getattr(rule, spec))
                if moved:
                    self.service.unsubscribe(previous.subscription)
                    self._subscribe(previous)
                previous.signal()
            kept.append(previous)
        for gone in old.values():
            self.service.unsubscribe(gone.subscription)
            gone.signal()
        others = [r for r in self.rules if not (r.from_definition and r.workflow == name)]
        if kept or old:
            log.info(
                "mqtt triggers of %s now: %s",
                name,
                ", ".join(f"{r.name} on {r.topic}" for r in kept) or "none",
            )
        self.rules = others + kept

    async def _adopt_running(self, service: Any) -> None:
        """After recovery: executions a rule started before the restart count as running
        (by workflow name; with two rules starting one workflow, the first rule owns them)."""
        by_name: dict[str, Rule] = {}
        for rule in self.rules:
            by_name.setdefault(rule.workflow, rule)
        for wf in list(self.engine.live.values()):
            owner = by_name.get(wf.name)
            if owner is not None and not wf.status.terminal:
                owner.running.add(wf.workflow_id)
                self._owner[wf.workflow_id] = owner

    def _on_commit(self, wf: Any, history: list[tuple[str, dict[str, Any]]]) -> None:
        if not self._owner or not wf.status.terminal:
            return
        rule = self._owner.pop(wf.workflow_id, None)
        if rule is not None:
            rule.running.discard(wf.workflow_id)
            rule.signal()

    def statistics(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for rule in self.rules:
            s = rule.stats
            out[f"{rule.workflow}/{rule.name}"] = {
                "received": s.received,
                "started": s.started,
                "duplicates": s.duplicates,
                "filtered": s.filtered,
                "skipped": s.skipped,
                "faults": s.faults,
                "running": len(rule.running),
            }
        return out

    # ------------------------------------------------------------------ per message

    def _callback(self, rule: Rule) -> Any:
        def on_message(message: MqttMessage) -> Awaitable[None] | Pending | None:
            if not self.engine.accepting:
                # shutting down: start nothing new; unacked, the broker keeps it for later
                raise Redeliver("the daemon is stopping")
            rule.stats.received += 1
            try:
                if rule.plain:  # nothing reads the context: decode the payload only
                    ctx, event = {"payload": _decode(rule, message)[0]}, None
                else:
                    ctx, event = _context(rule, message)
                if rule.condition and not eval_condition(rule.condition, ctx):
                    rule.stats.filtered += 1
                    return None
                wf_input = _map_input(rule, ctx)
                workflow_id = _workflow_id(rule, ctx, event)
                corr = resolve(rule.correlation, ctx) if rule.correlation else None
            except EdgedError as exc:
                rule.stats.faults += 1
                self.service.dead_letter(message, str(exc), rule.name)
                return None
            except Exception as exc:  # a decoder or expression bug: contain it to this message
                rule.stats.faults += 1
                log.exception("trigger %s failed on %s", rule.name, message.topic)
                self.service.dead_letter(message, f"{type(exc).__name__}: {exc}", rule.name)
                return None
            if rule.mode == "queued":
                if len(rule.tickets) >= rule.max:
                    return self._skip(rule, message, "queue full")
                ticket = object()
                rule.tickets.append(ticket)
                return self._start_queued(rule, ticket, workflow_id, wf_input, corr)
            busy = len(rule.running) + rule.reserved
            if rule.mode == "single" and busy:
                return self._skip(rule, message, "one is running")
            if rule.mode == "parallel" and busy >= rule.max:
                return self._skip(rule, message, f"{rule.max} running")
            if rule.mode == "restart":
                for running_id in list(rule.running):
                    self.engine.post(
                        Op(
                            running_id,
                            ev.TerminateRequested(
                                at_ms=message.received_at_ms,
                                reason=f"restarted by trigger {rule.name}",
                            ),
                            admin=True,
                        )
                    )
            rule.reserved += 1
            if rule.identity:
                return self._start(rule, workflow_id, wf_input, corr)
            try:
                return self._start_now(rule, workflow_id, wf_input, corr)
            except BaseException:
                rule.reserved -= 1
                raise

        return on_message

    def _skip(self, rule: Rule, message: MqttMessage, why: str) -> Awaitable[None] | None:
        rule.stats.skipped += 1
        if rule.stats.skipped & (rule.stats.skipped - 1) == 0:  # 1, 2, 4, 8...: no log flood
            log.warning(
                "trigger %s (%s): message on %s skipped: %s (skipped %d so far)",
                rule.name,
                rule.mode,
                message.topic,
                why,
                rule.stats.skipped,
            )
        return None

    async def _start_queued(
        self, rule: Rule, ticket: object, workflow_id: str, wf_input: dict[str, Any], corr: Any
    ) -> None:
        try:
            while rule.tickets[0] is not ticket or rule.running or rule.reserved:
                rule.waiting += 1
                try:
                    await rule.changed.wait()
                finally:
                    rule.waiting -= 1
            rule.reserved += 1
        finally:
            rule.tickets.remove(ticket)
            rule.signal()
        await self._start(rule, workflow_id, wf_input, corr)

    async def _start(
        self, rule: Rule, workflow_id: str, wf_input: dict[str, Any], corr: Any
    ) -> None:
        engine = self.engine
        try:
            if workflow_id in self._starting:
                rule.stats.duplicates += 1
                return
            self._starting.add(workflow_id)
            try:
                if rule.identity and await self._exists(workflow_id):
                    rule.stats.duplicates += 1
                    return
                definition = engine.registry.workflow(rule.workflow, rule.version)
                wf = new_workflow(
                    definition,
                    workflow_id=workflow_id,
                    input=wf_input,
                    correlation_id=corr if isinstance(corr, str) else None,
                )
                try:
                    await engine.submit(Op(workflow_id, create=wf))
                except JournalError as exc:
                    log.warning("trigger %s: start not committed (%s); redelivery", rule.name, exc)
                    raise Redeliver(str(exc)) from exc
                rule.stats.started += 1
                if not wf.status.terminal:
                    rule.running.add(workflow_id)
                    self._owner[workflow_id] = rule
            finally:
                self._starting.discard(workflow_id)
        finally:
            if rule.reserved:
                rule.reserved -= 1
            rule.signal()

    def _start_now(
        self, rule: Rule, workflow_id: str, wf_input: dict[str, Any], corr: Any
    ) -> Awaitable[None] | Pending:
        """`_start` without a task, for rules without identity (nothing to look up first).

        The start is queued at once; the engine's reply, set when the start is durable (or
        refused), settles the message. When the engine's queue is full this falls back to
        `_start`, whose task waits for room.
        """
        definition = self.engine.registry.workflow(rule.workflow, rule.version)
        wf = new_workflow(
            definition,
            workflow_id=workflow_id,
            input=wf_input,
            correlation_id=corr if isinstance(corr, str) else None,
        )
        pending = Pending()

        def done(value: Any, error: BaseException | None) -> None:
            if error is None:
                rule.stats.started += 1
                if not wf.status.terminal:
                    rule.running.add(workflow_id)
                    self._owner[workflow_id] = rule
            if rule.reserved:
                rule.reserved -= 1
            rule.signal()
            if isinstance(error, JournalError):
                log.warning("trigger %s: start not committed (%s); redelivery", rule.name, error)
                pending.settle(Redeliver(str(error)))
            else:
                pending.settle(error)

        if not self.engine.try_submit(Op(workflow_id, create=wf, reply=Reply(done))):
            return self._start(rule, workflow_id, wf_input, corr)
        return pending

    async def _exists(self, workflow_id: str) -> bool:
        try:
            await self.engine.workflow(workflow_id)
        except NotFound:
            return False
        except EdgedError as exc:  # the journal could not be read: try again later
            raise Redeliver(str(exc)) from exc
        return True


# ---------------------------------------------------------------------- pure helpers


def _user_properties(message: MqttMessage) -> tuple[list[tuple[str, str]], str | None]:
    props = message.properties
    if props is None:
        return [], None
    pairs = list(getattr(props, "UserProperty", None) or [])
    content_type = getattr(props, "ContentType", None)
    return [(str(k), str(v)) for k, v in pairs], content_type


def _decode(rule: Rule, message: MqttMessage) -> tuple[Any, CloudEvent | None, str | None]:
    payload = message.payload
    pairs, content_type = _user_properties(message)
    mode = rule.decode
    if mode in ("cloudevents", "auto"):
        event = decode_message(payload, content_type, pairs)  # CloudEventError is a BadInput
        if event is not None:
            data = event.data
            if isinstance(data, bytes):
                data = base64.b64encode(data).decode("ascii")
            return data, event, content_type
        if mode == "cloudevents":
            raise TriggerFault("not a CloudEvent (no specversion, structured or binary)")
        try:
            return json.loads(payload), None, content_type
        except (ValueError, UnicodeDecodeError, RecursionError):
            pass
        try:
            return payload.decode("utf-8"), None, content_type
        except UnicodeDecodeError:
            return base64.b64encode(payload).decode("ascii"), None, content_type
    if mode == "json":
        try:
            return json.loads(payload), None, content_type
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise TriggerFault(f"payload is not JSON: {str(exc)[:200]}") from None
    if mode == "text":
        try:
            return payload.decode("utf-8"), None, content_type
        except UnicodeDecodeError as exc:
            raise TriggerFault(f"payload is not UTF-8 text: {exc}") from None
    return base64.b64encode(payload).decode("ascii"), None, content_type


def _context(rule: Rule, message: MqttMessage) -> tuple[dict[str, Any], CloudEvent | None]:
    data, event, content_type = _decode(rule, message)
    pairs, _ = _user_properties(message)
    ctx: dict[str, Any] = {
        "payload": data,
        "topic": message.topic,
        "topicLevels": message.topic.split("/"),
        "qos": message.qos,
        "retain": message.retain,
        "userProperties": dict(pairs),
        "contentType": content_type,
        "receivedAtMs": message.received_at_ms,
        "trigger": rule.name,
    }
    if event is not None:
        doc = to_json_doc(event)
        doc.pop("data", None)
        doc.pop("data_base64", None)
        ctx["cloudevent"] = doc
    return ctx, event


def _map_input(rule: Rule, ctx: dict[str, Any]) -> dict[str, Any]:
    if rule.input is None:
        payload = ctx["payload"]
        return payload if isinstance(payload, dict) else {"payload": payload}
    mapped = resolve(rule.input, ctx)
    if not isinstance(mapped, dict):
        raise TriggerFault(f"input mapping gave {type(mapped).__name__}, not an object")
    return mapped


def _lookup(ctx: dict[str, Any], path: str) -> Any:
    value: Any = ctx
    for part in path.replace("[", ".").replace("]", "").split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _workflow_id(rule: Rule, ctx: dict[str, Any], event: CloudEvent | None) -> str:
    if not rule.identity:
        return new_execution_id()
    if rule.identity == "cloudevents":
        if event is None:
            raise TriggerFault("identity 'cloudevents' but the message is not a CloudEvent")
        source, ident = event.source, event.id
    else:
        value = _lookup(ctx, rule.identity)
        if value is None or isinstance(value, dict | list) or value == "":
            raise TriggerFault(f"identity field {rule.identity} missing or not a scalar")
        source, ident = "", json.dumps(value) if not isinstance(value, str) else value
    key = "\0".join((rule.workflow, rule.name, source, ident))
    return str(uuid.uuid5(NAMESPACE, key))


def check_rules(docs: Any, where: str) -> None:
    """Raise DefinitionError for faulty rules (used by tests and tools)."""
    faults = validate_triggers(docs, where)
    if faults:
        raise DefinitionError(faults)
