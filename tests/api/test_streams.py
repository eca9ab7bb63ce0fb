"""Live SSE streams against a real `edged run` over loopback HTTP.

One daemon for the module (streams.keepalive_s 1, buffer_events 16,
max_clients 6, so keep-alives, cut-offs and the client bound show quickly).
Every read is bounded by httpx timeouts and a deadline per test.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest


def _load_watch_daemon() -> Any:
    name = "edged_cli_watch_daemon"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "cli" / "watch_daemon.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


watch = _load_watch_daemon()
BUFFER_EVENTS = 16
MAX_CLIENTS = 6
Event = dict[str, Any]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    d = watch.make_daemon(
        tmp_path_factory.mktemp("streams"),
        streams={"buffer_events": BUFFER_EVENTS, "max_clients": MAX_CLIENTS, "keepalive_s": 1},
    )
    yield d
    d.kill()


def sse_events(
    resp: httpx.Response | Iterator[str],
    stop: Callable[[list[Event]], bool] | None = None,
    limit_s: float = 20,
) -> list[Event]:
    """Parse the SSE body (independently of edged's own client parser)."""
    events: list[Event] = []
    current: Event = {}
    deadline = time.monotonic() + limit_s
    lines = resp.iter_lines() if isinstance(resp, httpx.Response) else resp
    for line in lines:
        assert time.monotonic() < deadline, f"stream did not finish in {limit_s} s: {events[-3:]}"
        if line == "":
            if current:
                if "data" in current:
                    current["doc"] = json.loads(current["data"])
                events.append(current)
                current = {}
                if stop is not None and stop(events):
                    break
            continue
        if line.startswith(":"):
            current.setdefault("comment", []).append(line[1:].strip())
            continue
        key, _, value = line.partition(":")
        current[key] = value.removeprefix(" ")
    return events


def start(d: Any, name: str, workflow_input: dict[str, Any]) -> str:
    resp = d.start_workflow(name, workflow_input)
    assert resp.status_code == 200, resp.text
    return str(resp.text)


def history(events: list[Event]) -> list[Event]:
    return [e for e in events if "id" in e]


def test_one_execution_streams_to_its_end(daemon: Any) -> None:
    wid = start(daemon, "talker", {"word": "live!", "ms": 300})
    with httpx.stream("GET", f"{daemon.url}/api/workflow/{wid}/events", timeout=10) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = sse_events(resp)
    rows = history(events)
    ids = [int(e["id"]) for e in rows]
    assert ids == sorted(set(ids)), "ids strictly increase"
    kinds = [e["event"] for e in rows]
    assert kinds[0] == "WorkflowStarted"
    assert kinds[-1] == "WorkflowStatusChanged" and rows[-1]["doc"]["data"]["status"] == "COMPLETED"
    assert kinds.count("TaskScheduled") == 2
    logged = [line for e in rows if e["event"] == "TaskLogged" for line in e["doc"]["data"]["logs"]]
    assert logged == ["hello from first", "second line", "live!"]
    assert all(e["doc"]["workflowId"] == wid and e["doc"]["workflowName"] == "talker" for e in rows)
    assert events[-1]["event"] == "end" and json.loads(events[-1]["data"])["status"] == "COMPLETED"


def test_last_event_id_resumes_without_gaps_or_duplicates(daemon: Any) -> None:
    wid = start(daemon, "talker", {"word": "again", "ms": 400})
    url = f"{daemon.url}/api/workflow/{wid}/events"
    with httpx.stream("GET", url, timeout=10) as resp:
        first = history(sse_events(resp, stop=lambda ev: len(history(ev)) >= 3))
    assert len(first) == 3
    resume = first[-1]["id"]
    with httpx.stream("GET", url, headers={"Last-Event-ID": resume}, timeout=10) as resp:
        rest = history(sse_events(resp))
    with httpx.stream("GET", url, params={"follow": "false"}, timeout=10) as resp:
        everything = history(sse_events(resp))
    assert [e["id"] for e in first + rest] == [e["id"] for e in everything]
    assert rest[-1]["doc"]["data"]["status"] == "COMPLETED"
    # ?after=N is the same as the header (for clients that cannot set headers)
    with httpx.stream("GET", url, params={"after": resume}, timeout=10) as resp:
        assert [e["id"] for e in history(sse_events(resp))] == [e["id"] for e in rest]


def test_replay_then_live_race_loses_nothing(daemon: Any) -> None:
    """Executions run while the all-executions stream replays from id 0 and goes
    live: every event of every execution arrives exactly once, in id order."""
    names = ["talker"] * 12
    ids: list[str] = []
    starter = threading.Thread(
        target=lambda: ids.extend(start(daemon, n, {"word": "r", "ms": 20}) for n in names)
    )
    mine: set[str] = set()

    def all_ended(events: list[Event]) -> bool:
        ended = {
            e["doc"]["workflowId"]
            for e in history(events)
            if e["event"] == "WorkflowStatusChanged" and e["doc"]["data"]["status"] == "COMPLETED"
        }
        mine.update(ids)
        return len(mine) == len(names) and mine <= ended

    starter.start()
    try:
        time.sleep(0.05)  # some executions start before the stream, some during and after
        with httpx.stream(
            "GET", f"{daemon.url}/api/events", params={"after": "0"}, timeout=10
        ) as resp:
            events = history(sse_events(resp, stop=all_ended, limit_s=30))
    finally:
        starter.join(timeout=30)
    seen = [int(e["id"]) for e in events]
    assert seen == sorted(set(seen)), "no duplicate, in order"
    for wid in ids:
        url = f"{daemon.url}/api/workflow/{wid}/events"
        with httpx.stream("GET", url, params={"follow": "false"}, timeout=10) as resp:
            journal = [e["id"] for e in history(sse_events(resp))]
        streamed = [e["id"] for e in events if e["doc"]["workflowId"] == wid]
        assert streamed == journal, f"{wid}: stream differs from the journal"


def test_name_filter_and_keepalive(daemon: Any) -> None:
    with httpx.stream(
        "GET", f"{daemon.url}/api/events", params={"name": "failer"}, timeout=10
    ) as resp:
        start(daemon, "talker", {"word": "not me"})
        fid = start(daemon, "failer", {"reason": "filtered"})

        def failer_ended(events: list[Event]) -> bool:
            return any(e.get("event") == "WorkflowStatusChanged" for e in events)

        lines = resp.iter_lines()
        events = sse_events(lines, stop=failer_ended)
        assert {e["doc"]["workflowName"] for e in history(events)} == {"failer"}
        assert {e["doc"]["workflowId"] for e in history(events)} == {fid}
        assert history(events)[-1]["doc"]["data"]["status"] == "FAILED"
        # nothing more happens: keep-alive comments keep the connection (keepalive_s 1)
        quiet = sse_events(lines, stop=lambda ev: len(ev) >= 2, limit_s=5)
        assert all(e.get("comment") == ["keep-alive"] for e in quiet)


def test_slow_client_is_cut_off_and_the_engine_keeps_going(daemon: Any) -> None:
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # small window: fills fast
    slow.connect(("127.0.0.1", daemon.port))
    slow.sendall(b"GET /api/events HTTP/1.1\r\nhost: edged\r\n\r\n")
    try:
        time.sleep(0.2)
        with daemon.client() as http:
            wids = [
                http.post(
                    "/api/workflow", json={"name": "talker", "input": {"word": "x" * 300}}
                ).text
                for _ in range(60)
            ]
        done = daemon.wait_ended(wids, timeout_s=30)  # the engine is not held back
        assert {doc["status"] for doc in done.values()} == {"COMPLETED"}
        slow.settimeout(5)
        data = b""
        while not data.endswith(b"\r\n0\r\n\r\n"):  # the chunked body's end
            chunk = slow.recv(65536)
            assert chunk, "connection closed before the stream ended"
            data += chunk
    finally:
        slow.close()
    cutoff = data[data.rindex(b"event: cutoff") :]
    doc = json.loads(cutoff.split(b"data: ", 1)[1].split(b"\n", 1)[0])
    assert "too slow" in doc["reason"]
    sent = [int(line[4:]) for line in data.split(b"\n") if line.startswith(b"id: ")]
    assert sent and doc["lastEventId"] == sent[-1]
    # the client resumes from the journal where it was cut off
    with httpx.stream(
        "GET", f"{daemon.url}/api/events", params={"after": str(sent[-1])}, timeout=10
    ) as resp:
        resumed = history(sse_events(resp, stop=lambda ev: len(history(ev)) >= 5))
    assert int(resumed[0]["id"]) > sent[-1]


def test_clients_are_bounded(daemon: Any) -> None:
    def open_streams(http: httpx.Client, count: int) -> list[Any] | None:
        """`count` open streams, or None (all closed again) if one was refused."""
        opened: list[Any] = []
        for _ in range(count):
            ctx = http.stream("GET", "/api/events")
            resp = ctx.__enter__()
            opened.append(ctx)
            if resp.status_code != 200:
                for each in opened:
                    each.__exit__(None, None, None)
                return None
        return opened

    with httpx.Client(base_url=daemon.url, timeout=10) as http:
        # A closed stream frees its slot as soon as the server reads the EOF;
        # the retries only cover earlier tests' clients still closing.
        deadline = time.monotonic() + 15
        while (streams := open_streams(http, MAX_CLIENTS)) is None:
            assert time.monotonic() < deadline, "stream slots were not released"
            time.sleep(2.5)
        try:
            refused = http.get("/api/events")
            assert refused.status_code == 503
            assert refused.json()["retryable"] is True
            assert http.get("/health").status_code == 200  # other requests still served
        finally:
            for ctx in streams:
                ctx.__exit__(None, None, None)
        deadline = time.monotonic() + 10
        while open_streams(http, 1) is None:
            assert time.monotonic() < deadline, "closed streams were not released"
            time.sleep(0.3)


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/api/workflow/no-such-id/events", {}, 404),
        ("/api/events", {"Last-Event-ID": "abc"}, 400),
        ("/api/events", {"Last-Event-ID": "-1"}, 400),
        ("/api/events", {"Last-Event-ID": "9" * 40}, 400),
        ("/api/events?after=1e3", {}, 400),
        ("/api/events?name=", {}, 400),
        ("/api/events", {"Last-Event-ID": "١٢"}, 400),  # non-ASCII digits
    ],
)
def test_bad_requests_get_clear_errors(
    daemon: Any, path: str, headers: dict[str, str], status: int
) -> None:
    with httpx.Client(base_url=daemon.url, timeout=10) as http:
        raw = {k.encode(): v.encode() for k, v in headers.items()}
        resp = http.get(path, headers=raw)
        assert resp.status_code == status, resp.text
        assert resp.json()["message"]
        assert http.get("/health").status_code == 200


def _open_raw_stream(port: int) -> socket.socket | None:
    """A raw-socket ``GET /api/events`` once its head arrived: the socket if it is
    a 200 (a stream slot is held), else None (refused, already closed)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /api/events HTTP/1.1\r\nhost: edged\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "connection closed before the response head"
        head += chunk
    if head.startswith(b"HTTP/1.1 200"):
        return sock
    sock.close()
    return None


def _open_within(port: int, limit_s: float) -> socket.socket:
    deadline = time.monotonic() + limit_s
    while (sock := _open_raw_stream(port)) is None:
        assert time.monotonic() < deadline, f"no stream slot within {limit_s} s"
        time.sleep(0.02)
    return sock


def _http_connections(d: Any) -> float:
    text = httpx.get(f"{d.url}/metrics", timeout=5).text
    line = next(x for x in text.splitlines() if x.startswith("edged_http_connections "))
    return float(line.split()[1])


@pytest.fixture
def quiet_daemon(tmp_path: Path) -> Iterator[Any]:
    """A daemon whose keep-alives are too rare (30 s) to notice a vanished client."""
    d = watch.make_daemon(tmp_path, streams={"max_clients": 3, "keepalive_s": 30})
    yield d
    d.kill()


def test_a_closed_client_frees_its_slot_at_once(quiet_daemon: Any) -> None:
    """Streams up to the cap; a client that closes its socket (reset, then a plain
    FIN) frees its slot within a second, long before a keep-alive write would fail."""
    daemon, cap = quiet_daemon, 3
    socks: list[socket.socket] = []
    try:
        socks = [_open_within(daemon.port, 1.0) for _ in range(cap)]
        assert _open_raw_stream(daemon.port) is None, "the cap holds"
        for how in ("reset", "fin"):
            before = _http_connections(daemon)
            victim = socks.pop(0)
            if how == "reset":
                victim.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            closed_at = time.monotonic()
            victim.close()
            while _http_connections(daemon) != before - 1:
                assert time.monotonic() < closed_at + 1.0, f"{how}: the connection stays open"
                time.sleep(0.02)
            socks.append(_open_within(daemon.port, 1.0))
            took_s = time.monotonic() - closed_at
            assert took_s < 1.0, f"{how}: slot freed after {took_s:.2f} s"
            # the replacement holds the freed slot: the count is back where it was
            assert _http_connections(daemon) == before
            assert _open_raw_stream(daemon.port) is None, "the cap still holds"
        for sock in socks:
            sock.close()
        deadline = time.monotonic() + 1.0
        while _http_connections(daemon) > 1:  # only the /metrics request itself
            assert time.monotonic() < deadline, "closed streams' connections stay open"
            time.sleep(0.02)
        socks = []
    finally:
        for sock in socks:
            sock.close()
