"""`edged start|get|list|logs|signal` as real subprocesses against a real `edged run`.

Exit codes checked for every outcome scripts depend on: 0 done, 1 execution
not COMPLETED (or --wait gave up), 2 bad input, 3 unreachable, 4 not found,
5 refused by the server (wrong token).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from watch_daemon import SHAPES, it, make_daemon

from edged.client.graph import STATUS_COLOURS

CLI_TIMEOUT_S = 30


def edged(
    *args: str, server: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = [sys.executable, "-m", "edged.cli", *args]
    if server is not None:
        full += ["--server", server]
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EDGED_")}
    environ.update(env or {})
    return subprocess.run(
        full, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=environ, check=False
    )


def started(daemon: Any, name: str, workflow_input: dict[str, Any]) -> str:
    result = edged("start", name, "--input", json.dumps(workflow_input), server=daemon.url)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_start_wait_completed_prints_result_and_progress(daemon: Any) -> None:
    result = edged(
        "start", "talker", "--input", '{"word": "hi", "ms": 200}', "--wait", server=daemon.url
    )
    assert result.returncode == 0, result.stderr
    assert "COMPLETED" in result.stdout.splitlines()[0]
    assert '{"said":1}' in result.stdout
    progress = result.stderr.splitlines()
    assert len(progress) >= 3, result.stderr  # a line per change (stderr is not a tty)
    assert "tasks 2/2 done" in progress[-1] and "second COMPLETED" in progress[-1]


def test_start_wait_failed_exits_1_with_json(daemon: Any) -> None:
    result = edged(
        "start", "failer", "--input", '{"reason": "broken sensor"}', "--wait", "--json",
        server=daemon.url,
    )  # fmt: skip
    assert result.returncode == 1
    doc = json.loads(result.stdout)
    assert doc["status"] == "FAILED"
    assert doc["tasks"][-1]["reasonForIncompletion"] == "broken sensor"


def test_start_wait_timeout_exits_1(daemon: Any) -> None:
    result = edged("start", "waiter", "--wait", "--timeout", "0.5", server=daemon.url)
    assert result.returncode == 1
    assert "gave up after 0.5 s" in result.stderr and "RUNNING" in result.stderr


def test_start_json_and_get(daemon: Any) -> None:
    result = edged("start", "talker", "--input", '{"word": "x"}', "--json", server=daemon.url)
    assert result.returncode == 0
    wid = json.loads(result.stdout)["workflowId"]
    daemon.wait_ended([wid])
    shown = edged("get", wid, server=daemon.url)
    assert shown.returncode == 0
    assert wid in shown.stdout and "COMPLETED" in shown.stdout
    lines = shown.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("TASK"))
    assert [line.split()[0] for line in lines[header + 1 :]] == ["first", "second"]
    as_json = json.loads(edged("get", wid, "--json", server=daemon.url).stdout)
    assert as_json["workflowId"] == wid and len(as_json["tasks"]) == 2


def test_logs_follow_until_signalled(daemon: Any) -> None:
    wid = started(daemon, "waiter", {})
    follow = subprocess.Popen(
        [sys.executable, "-m", "edged.cli", "logs", "-f", wid, "--server", daemon.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.5)
        assert follow.poll() is None, "logs -f must wait for the end"
        signalled = edged(
            "signal", wid, "gate", "--output", '{"note": "door open"}', server=daemon.url
        )
        assert signalled.returncode == 0, signalled.stderr
        out, err = follow.communicate(timeout=CLI_TIMEOUT_S)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, err
    assert "[gate] COMPLETED" in out
    assert "[after] | door open" in out
    assert out.splitlines()[-1].endswith("workflow COMPLETED")
    # without -f: what happened so far, then exit; --json gives one document per line
    docs = [
        json.loads(line)
        for line in edged("logs", wid, "--json", server=daemon.url).stdout.splitlines()
    ]
    assert docs[0]["kind"] == "WorkflowStarted" and docs[-1]["kind"] == "WorkflowStatusChanged"
    assert [d["id"] for d in docs] == sorted({d["id"] for d in docs})


def test_logs_follow_failed_exits_1(daemon: Any) -> None:
    wid = started(daemon, "failer", {"reason": "nope"})
    result = edged("logs", "-f", wid, server=daemon.url)
    assert result.returncode == 1
    assert "[boom] FAILED_WITH_TERMINAL_ERROR" in result.stdout
    assert "[before] | about to fail" in result.stdout


def test_list_filters_by_name_and_status(daemon: Any) -> None:
    wid = started(daemon, "failer", {"reason": "for the list"})
    daemon.wait_ended([wid])
    result = edged("list", "--name", "failer", "--status", "failed", "--json", server=daemon.url)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert wid in {r["workflowId"] for r in found["results"]}
    assert {(r["workflowType"], r["status"]) for r in found["results"]} == {("failer", "FAILED")}
    human = edged("list", "--name", "failer", "--name", "talker", server=daemon.url)
    assert human.returncode == 0
    rows = human.stdout.splitlines()
    assert rows[0].split() == ["ID", "NAME", "VER", "STATUS", "STARTED", "DURATION"]
    assert {row.split()[1] for row in rows[1:] if not row.startswith("(")} <= {"failer", "talker"}
    assert any(row.startswith(wid) for row in rows)


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["get", "no-such-execution"], 4, "No such workflow"),
        (["logs", "-f", "no-such-execution"], 4, "No such workflow"),
        (["start", "no_such_workflow"], 4, "no_such_workflow"),
        (["start", "talker", "--input", "{not json"], 2, "not valid JSON"),
        (["start", "talker", "--input", "[1, 2]"], 2, "must be a JSON object"),
        (["signal", "no-such-execution", "gate"], 4, ""),
        (["signal", "x", "gate", "--output", "@/nonexistent/out.json"], 2, "cannot read"),
        (["list", "--status", "RUNNING)"], 2, "not a plain name"),
        (["list", "--status", "SLEEPING"], 2, ""),
        (["list", "--limit", "0"], 2, "--limit"),
        (["start"], 2, "usage"),
        (["graph", "/nonexistent/flow.json"], 2, ""),
    ],
)
def test_failures_have_documented_exit_codes(
    daemon: Any, args: list[str], code: int, message: str
) -> None:
    result = edged(*args, server=daemon.url)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_server_exits_3() -> None:
    port = it.free_port()  # nothing listens there
    result = edged("get", "x", server=f"http://127.0.0.1:{port}")
    assert result.returncode == 3
    assert "cannot reach" in result.stderr
    env_url = edged("list", env={"EDGED_URL": f"http://127.0.0.1:{port}"})
    assert env_url.returncode == 3 and str(port) in env_url.stderr
    assert edged("get", "x", server="ftp://example").returncode == 2


TOKEN = "cli-test-token-0123456789"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A daemon that wants a token and serves one stream at a time."""
    d = make_daemon(
        tmp_path_factory.mktemp("guarded"), auth_token=TOKEN, streams={"max_clients": 1}
    )
    yield d
    d.kill()


def test_token_from_flag_or_environment(guarded: Any) -> None:
    refused = edged("list", server=guarded.url)
    assert refused.returncode == 5 and "bearer token" in refused.stderr
    wrong = edged("list", "--token", "nope", server=guarded.url)
    assert wrong.returncode == 5
    flag = edged("list", "--token", TOKEN, server=guarded.url)
    assert flag.returncode == 0, flag.stderr
    env = edged("start", "talker", "--wait", server=guarded.url, env={"EDGED_TOKEN": TOKEN})
    assert env.returncode == 0, env.stderr  # the stream is authorized too


def test_graph_colours_an_execution(daemon: Any, tmp_path: Path) -> None:
    from test_graph import parse_dot

    wid = started(daemon, "shapes", {"path": "left"})
    assert daemon.wait_ended([wid])[wid]["status"] == "COMPLETED"
    definition = tmp_path / "shapes.json"
    definition.write_text(json.dumps(SHAPES))
    result = edged("graph", str(definition), "--execution", wid, server=daemon.url)
    assert result.returncode == 0, result.stderr
    nodes, _ = parse_dot(result.stdout)
    ran = {"route", "left_talk", "fan", "a1", "a2", "b1", "fan_join", "loop", "step", "child"}
    for label, attrs in nodes.items():
        expected = STATUS_COLOURS["COMPLETED"] if label in ran else None
        assert attrs.get("fillcolor") == expected, label
    mermaid = edged(
        "graph", str(definition), "--format", "mermaid", "--execution", wid, server=daemon.url
    )
    assert "  classDef COMPLETED fill:#b7e1b0,stroke:#555" in mermaid.stdout.splitlines()
    gone = edged("graph", str(definition), "--execution", "no-such-execution", server=daemon.url)
    assert gone.returncode == 4
    # without FILE: the definition the execution runs, the same picture
    pinned = edged("graph", "--execution", wid, server=daemon.url)
    assert pinned.returncode == 0 and pinned.stdout == result.stdout
    assert edged("graph", server=daemon.url).returncode == 2


def test_wait_falls_back_to_polling_when_streams_are_full(guarded: Any) -> None:
    import httpx

    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.stream("GET", f"{guarded.url}/api/events", headers=auth, timeout=10) as held:
        assert held.status_code == 200  # the only stream slot is taken
        result = edged(
            "start", "talker", "--input", '{"word": "polled", "ms": 600}', "--wait",
            server=guarded.url, env={"EDGED_TOKEN": TOKEN},
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "COMPLETED" in result.stdout.splitlines()[0]
        assert "RUNNING" in result.stderr  # progress while polling
        wid = result.stdout.split()[2]
        follow = edged("logs", "-f", wid, server=guarded.url, env={"EDGED_TOKEN": TOKEN})
        assert follow.returncode == 5 and "too many live streams" in follow.stderr


def test_logs_follow_survives_a_daemon_restart(daemon: Any) -> None:
    """SIGTERM + start again on the same journal and port: `logs -f` reconnects with
    the last id it printed and shows the rest, nothing twice."""
    wid = started(daemon, "waiter", {})
    follow = subprocess.Popen(
        [sys.executable, "-m", "edged.cli", "logs", "-f", wid, "--json", "--server", daemon.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,  # what select() saw is what os.read() gets: nothing hides in a buffer
    )
    try:
        assert follow.stdout is not None
        ready, _, _ = select.select([follow.stdout], [], [], 15)
        assert ready, "logs -f printed nothing"
        first = os.read(follow.stdout.fileno(), 65536)  # connected: the stream has begun
        assert daemon.terminate() == 0
        daemon.start()
        signalled = edged(
            "signal", wid, "gate", "--output", '{"note": "after restart"}', server=daemon.url
        )
        assert signalled.returncode == 0, signalled.stderr
        out, err = follow.communicate(timeout=CLI_TIMEOUT_S + 30)
        out = first + out
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, err
    docs = [json.loads(line) for line in out.decode().splitlines()]
    ids = [d["id"] for d in docs]
    assert ids == sorted(set(ids)), "no event twice"
    assert [d["kind"] for d in docs][:3] == [
        "WorkflowStarted",
        "TaskScheduled",
        "TaskStatusChanged",
    ]
    assert docs[-1]["kind"] == "WorkflowStatusChanged" and docs[-1]["data"]["status"] == "COMPLETED"
    logged = [line for d in docs if d["kind"] == "TaskLogged" for line in d["data"]["logs"]]
    assert logged == ["after restart"]


def test_wait_progress_rewrites_one_line_on_a_terminal(daemon: Any) -> None:
    import pty

    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "edged.cli", "start", "talker", "--input",
             '{"word": "tty", "ms": 300}', "--wait", "--server", daemon.url],
            stdout=subprocess.PIPE, stderr=terminal, timeout=CLI_TIMEOUT_S, check=False,
        )  # fmt: skip
        os.close(terminal)
        terminal = -1
        seen = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal side is closed and drained
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(controller)
        if terminal != -1:
            os.close(terminal)
    assert proc.returncode == 0
    assert seen.count(b"\r\x1b[K") >= 3, seen  # each update rewrites the same line
    assert b"\n" not in seen  # no new line (the pty would show one as CR LF): one line
    assert seen.endswith(b"\r\x1b[K")  # and is cleared before the result is printed


def test_slots_of_vanished_clients_come_back_long_before_a_keepalive(guarded: Any) -> None:
    """keepalive_s is 15 here and the only slot is held by a client that left:
    a refused request makes idle streams write at once, so a retry gets in."""
    import httpx

    auth = {"Authorization": f"Bearer {TOKEN}"}

    def attempt() -> int:
        with httpx.stream("GET", f"{guarded.url}/api/events", headers=auth, timeout=10) as resp:
            return resp.status_code

    deadline = time.monotonic() + 20
    while attempt() != 200:  # the slot may still be held by an earlier test's stream
        assert time.monotonic() < deadline
        time.sleep(0.3)
    # that stream's client is gone now (closed on leaving `attempt`); retry as a browser would
    started_at = time.monotonic()
    codes = []
    while (code := attempt()) != 200:
        codes.append(code)
        assert time.monotonic() - started_at < 10, codes
        time.sleep(0.3)
    assert set(codes) <= {503}
    assert time.monotonic() - started_at < 10  # < keepalive_s (15): the poke freed the slot
