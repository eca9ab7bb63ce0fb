"""A real `edged run` subprocess for integration tests.

`Daemon` starts `python -m edged.cli run` on a free loopback port with its
data directory, definitions and config in tmp_path, waits for /health, and
can SIGKILL it, SIGTERM it (expecting exit 0) and start it again on the same
data directory.  The config loads `it_handlers` (beside this file), whose
handlers append one line per invocation to `<data>/invocations.log`.

Every wait is bounded: a daemon that does not come up within START_TIMEOUT_S
fails the test with its stderr.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

HERE = Path(__file__).resolve().parent
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def edged_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "edged.cli", *args]


def write_defs(
    directory: Path, *docs: dict[str, Any], taskdefs: list[dict[str, Any]] | None = None
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for doc in docs:
        (directory / f"{doc['name']}.json").write_text(json.dumps(doc, indent=1))
    if taskdefs:
        (directory / "taskdefs.json").write_text(json.dumps(taskdefs, indent=1))
    return directory


def handler_config(path: Path, **extra: Any) -> Path:
    doc: dict[str, Any] = {
        "python": {"paths": [str(HERE)], "modules": ["it_handlers"]},
        "log_level": "WARNING",
    }
    doc.update(extra)
    path.write_text(yaml.safe_dump(doc))
    return path


def read_invocations(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass
class Daemon:
    data_dir: Path
    defs_dir: Path
    config: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def invocation_log(self) -> Path:
        return self.data_dir / "invocations.log"

    def spawn(self) -> subprocess.Popen[bytes]:
        assert self.proc is None or self.proc.poll() is not None, "daemon still running"
        env = dict(os.environ, EDGED_IT_LOG=str(self.invocation_log), PYTHONUNBUFFERED="1")
        args = ["run", "--data-dir", str(self.data_dir), "--listen", f"127.0.0.1:{self.port}"]
        args += ["--defs", str(self.defs_dir), "--config", str(self.config)]
        self.starts += 1
        log = open(self.data_dir.parent / f"daemon-{self.starts}.log", "wb")  # noqa: SIM115 (child owns it)
        self.proc = subprocess.Popen(
            edged_cmd(*args), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=HERE
        )
        log.close()
        return self.proc

    def start(self, timeout_s: float = START_TIMEOUT_S) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        proc = self.spawn()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"edged exited {proc.returncode} at start:\n{self.output()}")
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        self.kill()
        raise AssertionError(f"edged not healthy within {timeout_s} s:\n{self.output()}")

    def output(self) -> str:
        path = self.data_dir.parent / f"daemon-{self.starts}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL by PID: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)
            self.kills += 1

    def terminate(self) -> int:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"edged did not stop on SIGTERM:\n{self.output()}") from None

    def restart(self) -> None:
        self.kill()
        self.start()

    # -- HTTP -------------------------------------------------------------

    def client(self, timeout_s: float = 5.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout_s)

    def start_workflow(
        self, name: str, workflow_input: dict[str, Any], **extra: Any
    ) -> httpx.Response:
        body = {"name": name, "input": workflow_input, **extra}
        with self.client() as http:
            return http.post("/api/workflow", json=body)

    def workflow(self, workflow_id: str) -> dict[str, Any]:
        with self.client() as http:
            resp = http.get(f"/api/workflow/{workflow_id}", params={"includeTasks": "true"})
            resp.raise_for_status()
            doc: dict[str, Any] = resp.json()
            return doc

    def wait_ended(self, ids: list[str], timeout_s: float = 30.0) -> dict[str, dict[str, Any]]:
        """Poll until every id is in a terminal state; returns their Workflow JSON."""
        done: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout_s
        with self.client() as http:
            while time.monotonic() < deadline:
                for wid in ids:
                    if wid in done:
                        continue
                    doc = http.get(f"/api/workflow/{wid}", params={"includeTasks": "true"}).json()
                    if doc.get("status") not in ("RUNNING", "PAUSED"):
                        done[wid] = doc
                if len(done) == len(ids):
                    return done
                time.sleep(0.05)
        pending = [wid for wid in ids if wid not in done]
        raise AssertionError(
            f"{len(pending)} executions not finished within {timeout_s} s: {pending[:5]}"
        )


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[Daemon] = []

    def make(
        *docs: dict[str, Any], taskdefs: list[dict[str, Any]] | None = None, **config: Any
    ) -> Daemon:
        n = len(made)
        d = Daemon(
            data_dir=tmp_path / f"data{n}",
            defs_dir=write_defs(tmp_path / f"defs{n}", *docs, taskdefs=taskdefs),
            config=handler_config(tmp_path / f"edged{n}.yaml", **config),
        )
        made.append(d)
        return d

    yield make
    for d in made:
        d.kill()
