"""The replay-to-live splice of a stream, with the race forced both ways.

A real engine on a real journal file (in this process), the real feed and the
real stream handler; only the moment of one commit is chosen: the first
journal replay page of a stream is read either just *after* a task completes
(so the completion's events are both in the replay and in the live buffer:
they must not be sent twice) or just *before* it (so only the live buffer has
them: they must not be lost).  Either way the stream must equal the
execution's journal history, in order, each event once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio

from edged.api.messages import Request, StreamingResponse
from edged.api.router import Router
from edged.api.streams import add_stream_routes
from edged.config import Config
from edged.daemon import build_engine, journal_settings
from edged.journal import open_journal
from edged.runtime.registry import DefinitionRegistry
from edged.runtime.service import EngineService

GATED = {
    "name": "gated",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [
        {"name": "gate", "taskReferenceName": "gate", "type": "WAIT"},
        {"name": "gate2", "taskReferenceName": "gate2", "type": "WAIT"},
    ],
}


def parse(body: bytes) -> list[dict[str, Any]]:
    events = []
    for block in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append({**fields, "doc": json.loads(fields["data"])})
    return events


@pytest.mark.parametrize("commit", ["before_first_read", "after_first_read"])
async def test_the_splice_sends_every_event_once(tmp_path: Path, commit: str) -> None:
    cfg = Config(data_dir=tmp_path)
    registry = DefinitionRegistry()
    registry.put_workflow(DefinitionRegistry.check_workflow(GATED))
    with trio.fail_after(30):
        async with open_journal(cfg.journal_path, settings=journal_settings(cfg)) as journal:
            engine = build_engine(journal, registry, cfg)
            service = EngineService(engine)
            router = Router()
            feed = add_stream_routes(router, engine, keepalive_s=60)
            async with trio.open_nursery() as nursery:
                await nursery.start(engine.run)
                wid = await service.start_workflow(
                    {"name": "gated", "version": None, "correlationId": None, "input": {},
                     "taskToDomain": {}, "workflowDef": None, "priority": 0,
                     "idempotencyKey": None, "idempotencyStrategy": None}
                )  # fmt: skip

                async def open_gate(ref: str) -> None:
                    await service.complete_task_by_ref(wid, ref, "COMPLETED", {}, None)

                original = journal.history_named
                calls = []

                async def first_read_races(*args: Any, **kwargs: Any) -> Any:
                    calls.append(kwargs.get("after_id"))
                    if len(calls) > 1:
                        return await original(*args, **kwargs)
                    assert feed.statistics().subscribers == 1, "subscribed before replaying"
                    if commit == "before_first_read":
                        await open_gate("gate")
                        return await original(*args, **kwargs)
                    page = await original(*args, **kwargs)
                    await open_gate("gate")  # committed after the page was read
                    return page

                journal.history_named = first_read_races  # type: ignore[method-assign]
                request = Request("GET", f"/api/workflow/{wid}/events", {}, (), b"")
                response = await router(request)
                assert isinstance(response, StreamingResponse)
                body = b""
                sent_second = False
                async for chunk in response.chunks:
                    body += chunk
                    if not sent_second and b'"ref":"gate2"' in body:
                        sent_second = True
                        nursery.start_soon(open_gate, "gate2")  # live from here on
                await response.chunks.aclose()  # type: ignore[attr-defined]
                assert feed.statistics().subscribers == 0
                journal.history_named = original  # type: ignore[method-assign]
                expected = await journal.history_named(wid)
                nursery.cancel_scope.cancel()
    events = parse(body)
    assert events[-1]["event"] == "end" and events[-1]["doc"]["status"] == "COMPLETED"
    streamed = [(int(e["id"]), e["event"]) for e in events if "id" in e]
    assert streamed == [(hid, h.kind) for hid, _, h in expected]
    statuses = [e["doc"]["data"].get("status") for e in events if e["event"] == "TaskStatusChanged"]
    assert statuses.count("COMPLETED") == 2
