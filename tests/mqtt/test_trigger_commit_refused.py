"""A trigger start the journal refuses is not acknowledged (Redeliver), on the task-free
path too; once the journal takes writes again the next delivery starts the execution.
A real engine on a real journal file with an injected commit failure; the MQTT service is
a recording stand-in (the broker side of Redeliver is tested in test_pending.py and the
daemon tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from edged.config import Config
from edged.daemon import build_engine
from edged.handlers import HandlerRegistry
from edged.journal import open_journal
from edged.runtime.registry import DefinitionRegistry
from edged_mqtt.inbox import MqttMessage
from edged_mqtt.service import Pending, Redeliver
from edged_mqtt.triggers import TriggerSet


class RecordingService:
    def __init__(self) -> None:
        self.callbacks: dict[str, Any] = {}
        self.dead: list[str] = []

    def subscribe(self, topic_filter: str, qos: int, callback: Any, name: str = "") -> Any:
        self.callbacks[topic_filter] = callback
        return topic_filter

    def unsubscribe(self, handle: Any) -> None:
        self.callbacks.pop(handle, None)

    def on_run(self, hook: Any) -> None:
        pass

    def dead_letter(self, message: MqttMessage, reason: str, rule: str = "") -> None:
        self.dead.append(reason)


async def settled(pending: Pending) -> BaseException | None:
    outcome: list[BaseException | None] = []
    done = trio.Event()

    def then(error: BaseException | None) -> None:
        outcome.append(error)
        done.set()

    pending.then(then)
    await done.wait()
    return outcome[0]


async def test_refused_start_is_redelivered_then_started(tmp_path: Path) -> None:
    refuse = True

    def before_commit() -> None:
        if refuse:
            raise OSError("injected: disk full")

    registry = DefinitionRegistry()
    registry.put_workflow(
        DefinitionRegistry.check_workflow(
            {
                "name": "w",
                "version": 1,
                "tasks": [{"name": "n", "taskReferenceName": "n", "type": "NOOP"}],
                "triggers": [{"name": "r", "topic": "in/#"}],
            }
        )
    )
    async with open_journal(
        tmp_path / "journal.db", fault_points={"before_commit": before_commit}
    ) as journal:
        engine = build_engine(
            journal, registry, Config(data_dir=tmp_path), handler_registry=HandlerRegistry()
        )
        engine.settings.retry_pause_s = 0.01
        service = RecordingService()
        triggers = TriggerSet(service)
        triggers.attach(engine)
        callback = service.callbacks["in/#"]
        message = MqttMessage(topic="in/a", payload=b'{"x": 1}', qos=1, retain=False, mid=1)
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            with trio.fail_after(10):
                result = callback(message)
                assert isinstance(result, Pending)  # no identity: the task-free path
                assert isinstance(await settled(result), Redeliver)
                assert triggers.rules[0].stats.started == 0
                assert triggers.rules[0].reserved == 0
                refuse = False
                again = callback(message)
                assert isinstance(again, Pending)
                assert await settled(again) is None
                assert triggers.rules[0].stats.started == 1
                assert service.dead == []
            nursery.cancel_scope.cancel()
