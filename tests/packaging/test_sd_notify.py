"""systemd's notify protocol, spoken by a real `edged run` to a real unix datagram socket.

The daemon here runs from the source tree (the frozen binary gets the same
checks in test_binary.py): STATUS lines at each start-up phase, READY=1 only
once /health answers, WATCHDOG=1 at half of $WATCHDOG_USEC from the event
loop, STOPPING=1 on SIGTERM and exit code 0; after a restart the STATUS line
counts the unfinished executions recovered.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio
import trio.testing
from notify_listener import NotifyListener

from edged.sd_notify import run_watchdog, sd_notify, watchdog_interval_s


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    lst = NotifyListener(tmp_path / "n.sock")
    yield lst
    lst.close()


def start_daemon(
    data: Path, port: int, env: dict[str, str], *extra: str
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "edged.cli", "run", "--data-dir", str(data)]
    cmd += ["--listen", f"127.0.0.1:{port}", *extra]
    with open(data.parent / "stderr.log", "ab") as log:  # the child keeps its own copy
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=log)


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_status_ready_watchdog_stopping(tmp_path: Path, listener: NotifyListener) -> None:
    port = free_port()
    proc = start_daemon(tmp_path / "data", port, listener.env(WATCHDOG_USEC="200000"))
    try:
        listener.wait_for("READY", "1")
        # READY=1 means the API listens: /health answers at once, no retry
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
        statuses = listener.statuses()
        assert statuses[0].startswith("opening journal ")
        assert statuses[1:] == [
            "recovering unfinished executions",
            "recovered 0 unfinished executions",
            f"serving on 127.0.0.1:{port}",
        ]
        pings = [n for n in listener.collect(1.5) if n.fields.get("WATCHDOG") == "1"]
        intervals = [b.at_s - a.at_s for a, b in itertools.pairwise(pings)]
        # half of 200 ms; a loaded CI machine may stretch single intervals
        assert 8 <= len(pings) <= 20, len(pings)
        assert 0.07 <= statistics.median(intervals) <= 0.15, intervals
    finally:
        code = stop(proc)
    listener.wait_for("STOPPING", "1", timeout_s=5)
    assert code == 0, (tmp_path / "stderr.log").read_text()


STALLING_HANDLER = """
import time
from edged.handlers import task

@task("stall_loop")
async def stall_loop(ctx):
    time.sleep(1.0)  # blocks the event loop on purpose
    return {"stalled_s": 1.0}
"""


def test_a_stalled_event_loop_stops_the_watchdog_pings(
    tmp_path: Path, listener: NotifyListener
) -> None:
    # the pings come from the Trio loop itself: while it is blocked, none are sent,
    # which is what lets systemd's WatchdogSec catch a hung daemon
    (tmp_path / "stall_handlers.py").write_text(STALLING_HANDLER)
    config = tmp_path / "edged.yaml"
    config.write_text(
        json.dumps({"python": {"paths": [str(tmp_path)], "modules": ["stall_handlers"]}})
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    flow = {
        "name": "stall",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [{"name": "stall_loop", "taskReferenceName": "s", "type": "SIMPLE"}],
    }
    proc = start_daemon(
        tmp_path / "data", port, listener.env(WATCHDOG_USEC="100000"), "--config", str(config)
    )
    try:
        listener.wait_for("READY", "1")
        assert httpx.put(f"{base}/api/metadata/workflow", json=[flow], timeout=5).is_success
        # read in a thread while the stall happens, so arrival times are send times
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            collected = pool.submit(listener.collect, 2.5)
            assert httpx.post(f"{base}/api/workflow/stall", json={}, timeout=5).is_success
            pings = [n for n in collected.result() if n.fields.get("WATCHDOG") == "1"]
        gaps = [b.at_s - a.at_s for a, b in itertools.pairwise(pings)]
        assert max(gaps) >= 0.9, gaps  # the 1 s stall
        assert sorted(gaps)[len(gaps) // 2] < 0.2, gaps  # otherwise every 50 ms
    finally:
        assert stop(proc) == 0


def test_restart_reports_recovered_executions(tmp_path: Path, listener: NotifyListener) -> None:
    port = free_port()
    data = tmp_path / "data"
    base = f"http://127.0.0.1:{port}"
    waiting = {
        "name": "waits_for_signal",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [{"name": "hold", "taskReferenceName": "hold", "type": "WAIT"}],
    }
    proc = start_daemon(data, port, listener.env())
    try:
        listener.wait_for("READY", "1")
        put = httpx.put(f"{base}/api/metadata/workflow", json=[waiting], timeout=5)
        assert put.status_code < 300, put.text
        for _ in range(2):
            started = httpx.post(f"{base}/api/workflow/waits_for_signal", json={}, timeout=5)
            assert started.status_code == 200, started.text
    finally:
        assert stop(proc) == 0
    listener.received.clear()
    proc = start_daemon(data, port, listener.env())
    try:
        listener.wait_for("READY", "1")
        assert "recovered 2 unfinished executions" in listener.statuses()
    finally:
        assert stop(proc) == 0


def test_watchdog_is_off_when_watchdog_pid_names_another_process(
    tmp_path: Path, listener: NotifyListener
) -> None:
    # a one-file build's child Python is not the pid systemd watches
    env = listener.env(WATCHDOG_USEC="100000", WATCHDOG_PID=str(os.getpid()))
    proc = start_daemon(tmp_path / "data", free_port(), env)
    try:
        listener.wait_for("READY", "1")
        assert not [n for n in listener.collect(0.5) if "WATCHDOG" in n.fields]
    finally:
        assert stop(proc) == 0


def test_watchdog_interval_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert watchdog_interval_s() is None
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert watchdog_interval_s() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval_s() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert watchdog_interval_s() is None
    monkeypatch.delenv("WATCHDOG_PID")
    for bad in ("0", "-5", "soon"):
        monkeypatch.setenv("WATCHDOG_USEC", bad)
        assert watchdog_interval_s() is None


def test_sd_notify_without_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sd_notify("READY=1") is False


def test_sd_notify_to_a_vanished_socket_does_not_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    assert sd_notify("READY=1") is False


def test_sd_notify_abstract_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"edged-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sd_notify("STATUS=hello\nREADY=1") is True
        assert sock.recv(100) == b"STATUS=hello\nREADY=1"


async def test_run_watchdog_pings_once_at_start(
    listener: NotifyListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(listener.path))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            interval = await nursery.start(run_watchdog, 0.25)
            assert interval == 0.25
            await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    got = listener.collect(0.2)
    assert [n.fields for n in got] == [{"WATCHDOG": "1"}]


def test_run_watchdog_counts_with_mock_clock(
    listener: NotifyListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(listener.path))

    async def main() -> None:
        with trio.fail_after(10):  # virtual seconds
            async with trio.open_nursery() as nursery:
                await nursery.start(run_watchdog, 0.5)
                await trio.sleep(4.9)
                nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    pings = listener.collect(0.2)
    assert len(pings) == 10  # at 0, 0.5, ..., 4.5 virtual seconds
    assert all(n.fields == {"WATCHDOG": "1"} for n in pings)


async def test_run_watchdog_without_environment_returns_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:
            assert await nursery.start(run_watchdog) is None


def test_config_shutdown_grace(tmp_path: Path) -> None:
    from edged.config import load_config
    from edged.errors import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"shutdown_grace_s": 3}))
    assert load_config(str(path)).shutdown_grace_s == 3
    path.write_text(json.dumps({"shutdown_grace_s": -1}))
    with pytest.raises(ConfigError, match="shutdown_grace_s"):
        load_config(str(path))
    assert load_config(None).shutdown_grace_s == 10


SLOW_HANDLER = """
import json, os, time
from edged.handlers import task

@task("slow_step")
def slow_step(ctx):
    log = os.path.join(os.path.dirname(__file__), "invocations.log")
    first = not os.path.exists(log)
    with open(log, "a") as f:
        f.write(json.dumps([ctx.task_id, ctx.attempt]) + "\\n")
    if first:
        time.sleep(60)  # outlives the grace period: SIGTERM must not wait for it
    return {"done": True}
"""


def test_sigterm_with_stuck_work_exits_0_after_the_grace_and_the_work_resumes(
    tmp_path: Path, listener: NotifyListener
) -> None:
    handlers = tmp_path / "h"
    handlers.mkdir()
    (handlers / "slow_handlers.py").write_text(SLOW_HANDLER)
    config = tmp_path / "edged.yaml"
    config.write_text(
        json.dumps(
            {
                "python": {"paths": [str(handlers)], "modules": ["slow_handlers"]},
                "shutdown_grace_s": 1,
            }
        )
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    flow = {
        "name": "slow",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [{"name": "slow_step", "taskReferenceName": "s", "type": "SIMPLE"}],
    }
    data = tmp_path / "data"
    proc = start_daemon(data, port, listener.env(), "--config", str(config))
    listener.wait_for("READY", "1")
    assert httpx.put(f"{base}/api/metadata/workflow", json=[flow], timeout=5).is_success
    wf_id = httpx.post(f"{base}/api/workflow/slow", json={}, timeout=5).text.strip('"')
    log = handlers / "invocations.log"
    deadline = time.monotonic() + 10
    while not log.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log.exists(), "the handler never started"
    began = time.monotonic()
    code = stop(proc)
    took_s = time.monotonic() - began
    listener.wait_for("STOPPING", "1", timeout_s=5)
    assert code == 0
    # 1 s grace + commit + exit: far inside the unit's TimeoutStopSec=30s
    assert 0.9 <= took_s < 10, took_s

    proc = start_daemon(data, port, listener.env(), "--config", str(config))
    try:
        listener.wait_for("READY", "1")
        assert "recovered 1 unfinished executions" in listener.statuses()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            wf = httpx.get(f"{base}/api/workflow/{wf_id}", timeout=5).json()
            if wf["status"] != "RUNNING":
                break
            time.sleep(0.1)
        assert wf["status"] == "COMPLETED", wf
    finally:
        assert stop(proc) == 0
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    # run again after the restart, with the same idempotency key (task id, attempt)
    assert len(runs) == 2 and runs[0] == runs[1], runs
