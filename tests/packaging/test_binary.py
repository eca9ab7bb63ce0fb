"""Smoke test of the frozen binary: the quickstart end to end, a SIGKILL, a restart.

Uses the binary that packaging/build.sh builds (once per session, cached by
source hash), never the source tree: the daemon runs from a folder outside
the repository with a scrubbed environment, and a user handler module loaded
from `python.paths` reports which `edged` it imported.  The handler also
imports standard library modules that edged itself does not use (tomllib,
difflib, fractions, csv, statistics), which a frozen binary only has because
the spec names the standard library.

Scenario: register examples/quickstart/greenhouse.json (and a variant whose
WAIT lasts a few seconds, and one with a work task run by the user handler)
over HTTP, start executions of each, SIGKILL the daemon while the long WAITs
are pending, start it again on the same data directory, and check that every
execution completes with the output the input implies, exactly once.
"""

from __future__ import annotations

import copy
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from binary_build import REPO, build_binary
from notify_listener import NotifyListener

QUICKSTART = REPO / "examples" / "quickstart" / "greenhouse.json"

HANDLER = '''
"""A user handler module, imported by the frozen binary from python.paths."""
import csv
import difflib
import fractions
import io
import statistics
import tomllib

import edged
from edged.handlers import TaskContext, task


@task("median_reading")
def median_reading(ctx: TaskContext) -> dict:
    rows = list(csv.reader(io.StringIO(ctx.input["csv"])))
    values = [float(v) for v in rows[0]]
    assert tomllib.loads("x = 1") == {"x": 1} and difflib.SequenceMatcher is not None
    return {
        "median": statistics.median(values),
        "mean": str(fractions.Fraction(sum(values) / len(values)).limit_denominator(100)),
        "edged_file": edged.__file__,
    }
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def binary() -> Path:
    return build_binary("onedir")


def definitions() -> list[dict[str, Any]]:
    quick = json.loads(QUICKSTART.read_text())
    slow = copy.deepcopy(quick)
    slow["name"] = "greenhouse_slow"
    settle = slow["tasks"][1]["decisionCases"]["hot"][1]
    assert settle["type"] == "WAIT"
    settle["inputParameters"]["duration"] = "4 seconds"
    median = {
        "name": "greenhouse_median",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {
                "name": "median_reading",
                "taskReferenceName": "median",
                "type": "SIMPLE",
                "inputParameters": {"csv": "${workflow.input.csv}"},
            }
        ],
        "outputParameters": {
            "median": "${median.output.median}",
            "edged_file": "${median.output.edged_file}",
        },
    }
    return [quick, slow, median]


def expected(readings: list[float], threshold: float) -> dict[str, Any]:
    avg = round(sum(readings) / len(readings) * 10) / 10
    action = "open vents" if avg > threshold else "keep closed"
    return {
        "average": avg,
        "action": action,
        "summary": {"count": len(readings), "max": max(readings), "action": action},
    }


class BinaryDaemon:
    """`<binary> run` from a folder outside the repo, with a scrubbed environment."""

    def __init__(self, binary: Path, root: Path, listener: NotifyListener) -> None:
        self.binary, self.root, self.listener = binary, root, listener
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        handlers = root / "handlers"
        handlers.mkdir()
        (handlers / "gh_handlers.py").write_text(HANDLER)
        self.config = root / "edged.yaml"
        self.config.write_text(
            json.dumps(
                {
                    "python": {"paths": [str(handlers)], "modules": ["gh_handlers"]},
                    "log_level": "WARNING",
                }
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start and wait for READY=1; returns seconds from exec to READY."""
        env = {k: v for k, v in self.listener.env().items() if not k.startswith("PYTHON")}
        env.pop("VIRTUAL_ENV", None)
        env["PATH"] = "/usr/bin:/bin"
        cmd = [str(self.binary), "run", "--config", str(self.config)]
        cmd += ["--data-dir", str(self.root / "data"), "--listen", f"127.0.0.1:{self.port}"]
        self.listener.received.clear()
        with open(self.root / "stderr.log", "ab") as log:
            began = time.monotonic()
            self.proc = subprocess.Popen(
                cmd, cwd=self.root, env=env, stdout=subprocess.DEVNULL, stderr=log
            )
        ready = self.listener.wait_for("READY", "1", timeout_s=30)
        return ready.at_s - began

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = httpx.request(method, self.base + path, json=body, timeout=10)
        assert response.status_code < 300, f"{method} {path}: {response.text}"
        try:
            return response.json()
        except ValueError:
            return response.text


@pytest.fixture
def daemon(binary: Path, tmp_path: Path) -> Iterator[BinaryDaemon]:
    listener = NotifyListener(tmp_path / "n.sock")
    d = BinaryDaemon(binary, tmp_path, listener)
    yield d
    if d.proc is not None and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()
    listener.close()


def test_version_reports_a_frozen_build(binary: Path) -> None:
    for args in (["version"], ["--version"]):
        out = subprocess.run(
            [str(binary), *args], capture_output=True, text=True, timeout=30, check=True
        ).stdout
        assert out.startswith("edged ") and "frozen onedir" in out and "built " in out, out


def test_quickstart_survives_sigkill_with_the_binary(daemon: BinaryDaemon) -> None:
    ready_s = daemon.start()
    print(f"binary exec -> READY=1: {ready_s * 1000:.0f} ms")
    assert ready_s < 10.0
    assert daemon.call("GET", "/health") is not None
    daemon.call("PUT", "/api/metadata/workflow", definitions())

    hot: dict[str, Any] = {"readings": [24.5, 31.2, 33.8, 35.1], "threshold": 30}
    cool: dict[str, Any] = {"readings": [18.0, 19.5, 21.0], "threshold": 30}
    started: dict[str, tuple[str, dict[str, Any]]] = {}
    for i in range(3):
        for name, given in (("greenhouse_check", hot), ("greenhouse_check", cool)):
            started[daemon.call("POST", f"/api/workflow/{name}", given)] = (name, given)
        slow: dict[str, Any] = {"readings": [30.0 + i, 32.0, 40.0], "threshold": 30}
        started[daemon.call("POST", "/api/workflow/greenhouse_slow", slow)] = ("slow", slow)
        csv_in: dict[str, Any] = {"csv": f"{i},7,{20 + i},3,9"}
        started[daemon.call("POST", "/api/workflow/greenhouse_median", csv_in)] = ("med", csv_in)

    # the 4 s WAITs are still pending when the daemon is killed
    time.sleep(1.5)
    pending = [
        wf_id
        for wf_id, (name, _) in started.items()
        if name == "slow" and daemon.call("GET", f"/api/workflow/{wf_id}")["status"] == "RUNNING"
    ]
    assert len(pending) == 3, "the slow executions should still be waiting"
    daemon.kill()

    daemon.start()
    recovered = [s for s in daemon.listener.statuses() if s.startswith("recovered ")]
    # the slow ones at least; on a loaded machine a 1 s WAIT may still be pending too
    assert len(recovered) == 1 and int(recovered[0].split()[1]) >= len(pending), recovered
    deadline = time.monotonic() + 30
    results: dict[str, dict[str, Any]] = {}
    while len(results) < len(started) and time.monotonic() < deadline:
        for wf_id in started:
            if wf_id not in results:
                wf = daemon.call("GET", f"/api/workflow/{wf_id}?includeTasks=true")
                if wf["status"] not in ("RUNNING", "PAUSED"):
                    results[wf_id] = wf
        time.sleep(0.2)
    assert len(results) == len(started), "not every execution finished after the restart"
    for wf_id, (name, given) in started.items():
        wf = results[wf_id]
        assert wf["status"] == "COMPLETED", (name, wf.get("reasonForIncompletion"))
        if name == "med":
            values = sorted(float(v) for v in given["csv"].split(","))
            assert wf["output"]["median"] == values[2]
            # the handler ran inside the frozen binary, not against the source tree
            assert wf["output"]["edged_file"].startswith(f"{daemon.binary.parent}/"), wf["output"]
        else:
            assert wf["output"] == expected(given["readings"], given["threshold"])
        # exactly once: no task reference appears twice in a finished execution
        refs = [t["referenceTaskName"] for t in wf["tasks"]]
        assert len(refs) == len(set(refs)), refs
    assert daemon.stop() == 0
    daemon.listener.wait_for("STOPPING", "1", timeout_s=5)


def run_binary(binary: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
    )


def test_bad_configuration_stops_the_binary_with_one_line(binary: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "edged.yaml"
    config.write_text("listen: 127.0.0.1:0\njournall: {}\n")
    result = run_binary(binary, tmp_path, "run", "--config", str(config), "--data-dir", str(data))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "journall" in lines[0] and "journal" in lines[0], result.stderr
    assert not data.exists()


def test_port_taken_stops_the_binary_before_the_journal(binary: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_binary(
            binary, tmp_path, "run", "--data-dir", str(data), "--listen", f"127.0.0.1:{port}"
        )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0], result.stderr
    assert not (data / "journal.db").exists()
