"""Quickstart: run `edged run` on its embedded defaults, register the example
workflow over Conductor's REST API, start it, watch it complete, stop the daemon.

    python examples/quickstart/demo.py [--input JSON]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def free_port(preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise SystemExit("no free port")


def call(base: str, method: str, path: str, body: object | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        base + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    try:
        return json.loads(text)
    except ValueError:
        return text


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--input", default='{"readings": [24.5, 31.2, 33.8, 35.1], "threshold": 30}'
    )
    args = parser.parse_args()
    port = free_port(8080)
    edged = shutil.which("edged", path=str(Path(sys.executable).parent)) or "edged"
    command = [edged, "run"] if port == 8080 else [edged, "run", "--listen", f"127.0.0.1:{port}"]
    print(
        "$",
        " ".join(command),
        "   # embedded defaults: data under ~/.local/state/edged, API on loopback",
    )
    daemon = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                call(base, "GET", "/health")
                break
            except (urllib.error.URLError, ConnectionError):
                if daemon.poll() is not None or time.monotonic() > deadline:
                    print(daemon.stdout.read() if daemon.stdout else "", file=sys.stderr)
                    raise SystemExit("edged did not start") from None
                time.sleep(0.1)
        definition = json.loads((HERE / "greenhouse.json").read_text())
        call(base, "PUT", "/api/metadata/workflow", [definition])
        print(f"registered workflow {definition['name']} v{definition['version']}")
        workflow_id = call(
            base, "POST", f"/api/workflow/{definition['name']}", json.loads(args.input)
        )
        print(f"started {workflow_id} with input {args.input}")
        seen: set[str] = set()
        while True:
            wf = call(base, "GET", f"/api/workflow/{workflow_id}?includeTasks=true")
            assert isinstance(wf, dict)
            for task in wf["tasks"]:
                key = f"{task['referenceTaskName']}:{task['status']}"
                if key not in seen:
                    seen.add(key)
                    print(
                        f"  {task['taskType']:<18} {task['referenceTaskName']:<12} {task['status']}"
                    )
            if wf["status"] not in ("RUNNING", "PAUSED"):
                break
            time.sleep(0.2)
        print(f"workflow {wf['status']}; output:")
        print(json.dumps(wf["output"], indent=2))
        return 0 if wf["status"] == "COMPLETED" else 1
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            daemon.kill()
        print(f"edged stopped (exit {daemon.returncode})")
        if os.environ.get("EDGED_DEMO_LOG") and daemon.stdout:
            print(daemon.stdout.read())


if __name__ == "__main__":
    sys.exit(main())
