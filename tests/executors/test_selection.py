"""The executor plug: which handler a work task gets, and how kinds are registered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from edged.config import load_config
from edged.core.commands import DispatchTask
from edged.core.events import TaskResultReceived
from edged.errors import ConfigError
from edged.handlers import HandlerRegistry, TaskContext
from edged.runtime.bindings import BindingContext, ExecutorRegistry, build_bindings
from edged.runtime.dispatch import Dispatcher


def tagged(tag: str) -> Any:
    async def handler(ctx: TaskContext) -> dict[str, Any]:
        return {"by": tag, "type": ctx.task_type, "timeout_s": ctx.timeout_s()}

    return handler


def order(task_type: str, name: str, taskdef: dict[str, Any] | None = None) -> DispatchTask:
    return DispatchTask("wf", f"id-{name}-{task_type}", task_type, name, "ref", {}, 0, 0, taskdef)


async def run_dispatcher(disp: Dispatcher, orders: list[DispatchTask], done: trio.Event) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(disp.run)
        for cmd in orders:
            disp.submit(cmd)
        with trio.fail_after(5):
            await done.wait()
        nursery.cancel_scope.cancel()


async def test_binding_then_task_handler_then_task_type_then_pollers() -> None:
    reports: dict[str, Any] = {}
    done = trio.Event()

    async def report(workflow_id: str, event: TaskResultReceived) -> None:
        reports[event.task_id] = event
        if len(reports) == 5:  # every order but the one left for pollers
            done.set()

    registry = HandlerRegistry()
    registry.register("decorated", tagged("@task"))
    registry.register("both", tagged("@task"))
    disp = Dispatcher(
        report,
        registry=registry,
        bindings={"bound": tagged("binding"), "both": tagged("binding")},
        type_executors={"HTTP": tagged("type"), "MQTT_PUBLISH": tagged("mqtt")},
    )
    orders = [
        order("HTTP", "bound"),
        order("HTTP", "decorated"),
        order("HTTP", "both"),
        order("HTTP", "anything", {"timeoutSeconds": 9, "responseTimeoutSeconds": 4}),
        order("MQTT_PUBLISH", "pub"),
        order("SIMPLE", "polled"),
    ]
    await run_dispatcher(disp, orders, done)
    by = {tid: (ev.status, ev.output.get("by")) for tid, ev in reports.items()}
    assert by == {
        "id-bound-HTTP": ("COMPLETED", "binding"),
        "id-decorated-HTTP": ("COMPLETED", "@task"),
        "id-both-HTTP": ("COMPLETED", "binding"),
        "id-anything-HTTP": ("COMPLETED", "type"),
        "id-pub-MQTT_PUBLISH": ("COMPLETED", "mqtt"),
    }
    assert reports["id-anything-HTTP"].output == {"by": "type", "type": "HTTP", "timeout_s": 4.0}
    assert [cmd.task_id for cmd in disp.pending["polled"]] == ["id-polled-SIMPLE"]


def test_a_kind_from_an_adapter() -> None:
    seen: list[tuple[str, Any, str, dict[str, Any]]] = []
    reg = ExecutorRegistry()

    def keptn(name: str, spec: Any, ctx: BindingContext) -> Any:
        if not isinstance(spec, dict) or "topic" not in spec:
            raise ctx.error("expected {topic: ...}", ".topic")
        seen.append((name, spec, ctx.path, dict(ctx.settings)))
        return tagged("keptn")

    checked: list[dict[str, Any]] = []
    reg.register_kind("keptn", keptn, lambda section: checked.append(dict(section)))
    handlers = reg.build(
        {"calibrate": {"keptn": {"topic": "t"}}},
        executors={"keptn": {"qos": 1}},
    )
    assert list(handlers) == ["calibrate"]
    assert seen == [("calibrate", {"topic": "t"}, "bindings.calibrate.keptn", {"qos": 1})]
    assert checked == [{"qos": 1}]
    with pytest.raises(ConfigError, match=r"^bindings\.x\.keptn\.topic: expected \{topic"):
        reg.build({"x": {"keptn": {}}})
    with pytest.raises(ConfigError, match="registered twice"):
        reg.register_kind("keptn", lambda *a: tagged("other"))
    with pytest.raises(ConfigError, match="two executors"):
        reg.register_type("HTTP", tagged("a"))
        reg.register_type("HTTP", tagged("b"))


def test_python_kind_and_config_shape(tmp_path: Path) -> None:
    path = tmp_path / "edged.yaml"
    path.write_text(
        "bindings:\n"
        "  a: {python: 'json:dumps'}\n"
        "  b: {command: [./w.sh]}\n"
        "executors: {command: {allow: [.]}}\n"
    )
    worker = tmp_path / "w.sh"
    worker.write_text("#!/bin/sh\necho '{}'\n")
    worker.chmod(0o755)
    cfg = load_config(str(path))
    assert cfg.bindings == {"a": {"python": "json:dumps"}, "b": {"command": ["./w.sh"]}}
    assert cfg.base_dir == tmp_path
    handlers = build_bindings(cfg)
    import json

    assert handlers["a"] is json.dumps
    path.write_text("bindings:\n  a: {python: 'json'}\n")
    with pytest.raises(ConfigError, match=r"^bindings\.a\.python: .*expected 'module:function'"):
        build_bindings(load_config(str(path)))
    path.write_text("bindings:\n  a: {python: 'no_such_module_q:f'}\n")
    with pytest.raises(ConfigError, match=r"^bindings\.a\.python: .*cannot import"):
        build_bindings(load_config(str(path)))
    path.write_text("bindings:\n  a: 'json:dumps'\n")
    with pytest.raises(ConfigError, match=r"^bindings\.a: expected one kind and its spec"):
        load_config(str(path))
