"""Benchmark: MQTT message in -> workflow (one INLINE step) -> MQTT publish out, durable.

The workload is examples/mqtt-echo driven by the peers' load generator
(../shared/peers/mqtt/loadgen.py, the same one Node-RED is measured with): JSON messages
{"seq", "ts", "pad"} to ``bench/in`` at QoS 1 at a fixed rate; latency = arrival of the same
``seq`` on ``bench/out`` - ``ts`` (CLOCK_MONOTONIC, same machine).

For each system, in the same run, through a fresh private Mosquitto (loopback, free port,
``set_tcp_nodelay true``, ``max_queued_messages 100000``, no persistence):

- ``edged``: ``edged run --defs examples/mqtt-echo --mqtt mqtt://127.0.0.1:PORT`` with a
  fresh data directory (journal synchronous=FULL: the start is committed before the PUBACK,
  the reply is an outbox row deleted after its PUBACK);
- ``edged_confirmed``: the same with the publish task waiting for the PUBACK (no
  ``confirm: false``): one more journal commit per message;
- ``edged@rbN`` (any of the two above): the same with ``mqtt.read_batch_ms: N`` (read pacing;
  the default is 5 ms, ``@rb0`` turns it off);
- ``floor``: a plain paho echo client (not durable: republishes in on_message), the
  non-durable floor through the same broker.

Per rate: p50/p90/p99/max latency, loss, throughput, the system's CPU seconds during the
run and CPU per message. Then the highest sustained rate with no loss (rates stepped up
until a run loses messages or falls behind by more than 5%). Finally the daemon's RSS.
``--nodered`` also runs ../shared/peers/nodered/run.sh at the same rates (installs Node-RED
under $EDGED_PEERS on first use). Prints one JSON object per run, then a summary.

    .venv/bin/python benchmarks/mqtt_echo.py [--n 10000] [--rates 200,1000]
        [--max-rates 1500,2000,2500] [--systems edged,edged@rb0,edged_confirmed,floor]
        [--nodered]

The machine is shared (2 cores, other engineers' work): the load generator competes with
the system under test; compare the systems side by side, not with figures from elsewhere.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT.parent / "shared" / "peers"
LOADGEN = PEERS / "mqtt" / "loadgen.py"

FLOOR_ECHO = r"""
import sys, paho.mqtt.client as mqtt
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="floor-echo", protocol=mqtt.MQTTv5)
def on_connect(c, u, f, rc, p): c.subscribe("bench/in", qos=1)
def on_message(c, u, m): c.publish("bench/out", m.payload, qos=1)
c.on_connect, c.on_message = on_connect, on_message
c.max_inflight_messages_set(1000)
c.connect("127.0.0.1", int(sys.argv[1]))
c.loop_forever()
"""


def tree_env(**extra: str) -> dict[str, str]:
    """The environment for a daemon of THIS checkout: the venv's path file names the checkout
    it was made in, so a benchmark run from a git worktree would measure that one instead."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "adapters")])
    return dict(os.environ, PYTHONPATH=path, **extra)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def start_broker(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = work / f"mosquitto-{port}.conf"
    base = (PEERS / "mqtt" / "broker.conf").read_text() if (PEERS / "mqtt").exists() else ""
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "set_tcp_nodelay true"]
    lines += ["max_queued_messages 100000", "persistence false"]
    extra = [ln for ln in base.splitlines() if ln.startswith("sys_interval")]
    conf.write_text("\n".join(lines + extra) + "\n")
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_port(port)
    return proc, port


def loadgen(
    port: int, rate: int, n: int, pid: int | None, label: str, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One run of the peers' load generator; `pid`: the process whose CPU it reports."""
    cmd = [sys.executable, str(LOADGEN), "--port", str(port), "--rate", str(rate), "--n", str(n)]
    cmd += ["--label", label, *(["--watch-pid", str(pid)] if pid is not None else [])]
    out = subprocess.run(
        [*cmd, "--drain", "5", *extra],
        capture_output=True,
        text=True,
        timeout=n / max(rate, 1) + 120,
        check=False,
    )
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"loadgen failed: {out.stderr[-2000:]}")
    res: dict[str, Any] = json.loads(lines[-1])
    cpu = res.get("watched_cpu_s", {}).get(str(pid))
    received = res.get("received") or 0
    res["system"] = label.split("-")[0]
    res["cpu_us_per_msg"] = round(cpu / received * 1e6, 1) if cpu and received else None
    return res


def run_edged(
    work: Path, port: int, confirmed: bool, read_batch_ms: float | None = None
) -> subprocess.Popen[bytes]:
    data = work / "edged-data"
    shutil.rmtree(data, ignore_errors=True)
    defs = ROOT / "examples" / "mqtt-echo"
    if confirmed:  # the publish task waits for the PUBACK: a second commit per message
        doc = json.loads((defs / "echo.json").read_text())
        for task in doc["tasks"]:
            task["inputParameters"].pop("confirm", None)
        defs = work / "defs-confirmed"
        defs.mkdir(exist_ok=True)
        (defs / "echo.json").write_text(json.dumps(doc))
    api = free_port()
    args = [sys.executable, "-m", "edged.cli", "run", "--defs", str(defs)]
    args += ["--mqtt", f"mqtt://127.0.0.1:{port}", "--data-dir", str(data)]
    args += ["--listen", f"127.0.0.1:{api}"]
    if read_batch_ms is not None:
        config = work / f"read-batch-{read_batch_ms:g}.json"
        config.write_text(json.dumps({"mqtt": {"read_batch_ms": read_batch_ms}}))
        args += ["--config", str(config)]
    log = open(work / "edged.log", "wb")  # noqa: SIM115 (the child owns it)
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=tree_env())
    log.close()
    deadline = time.monotonic() + 30
    import urllib.request

    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{api}/health", timeout=1) as resp:
                if resp.status == 200:
                    proc.api_port = api  # type: ignore[attr-defined]  # for pruned_so_far()
                    return proc
        except OSError:
            time.sleep(0.05)
    stop(proc)
    raise RuntimeError((work / "edged.log").read_text()[-2000:])


def pruned_so_far(proc: subprocess.Popen[bytes]) -> int | None:
    """Executions the daemon's retention has removed so far (/metrics), None if unknown.

    With the default retention (10,000 finished executions) the once-a-minute prune can
    fall inside a phase and remove thousands, which shows in that phase's p99.
    """
    api = getattr(proc, "api_port", None)
    if api is None:
        return None
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{api}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("edged_journal_executions_pruned_total "):
            return int(float(line.split()[1]))
    return None


def python_work_us() -> float:
    """CPU µs for a fixed piece of Python work on a hot core (benchmarks/wake_penalty.py's):
    how fast this machine runs Python today, to compare runs across machines (~30 on the
    VM of 2026-11-27, 80-120 on the one of 2026-11-28, the same code's CPU per message
    1.9-2.2x higher there)."""
    from wake_penalty import measure as measure_work

    measure_work(0, 50)  # warm up
    return round(sorted(measure_work(0, 100) for _ in range(3))[1], 1)


def cpu_ratios(results: list[dict[str, Any]]) -> dict[str, float]:
    """Each system's CPU per message over the paho floor's at the same rate, same run."""
    by_label = {r["label"]: r for r in results if "label" in r and r.get("cpu_us_per_msg")}
    ratios: dict[str, float] = {}
    for label, res in by_label.items():
        system, _, phase = label.partition("-")
        floor = by_label.get(f"floor-{phase}")
        if system != "floor" and floor is not None:
            ratios[label] = round(res["cpu_us_per_msg"] / floor["cpu_us_per_msg"], 2)
    return ratios


def phase(
    proc: subprocess.Popen[bytes], port: int, rate: int, n: int, label: str
) -> dict[str, Any]:
    """One load generator run against `proc`; for edged, with the executions its retention
    pruned meanwhile (`executions_pruned`)."""
    before = pruned_so_far(proc)
    res = loadgen(port, rate, n, proc.pid, label)
    after = pruned_so_far(proc)
    if before is not None and after is not None:
        res["executions_pruned"] = after - before
    return res


def measure(system: str, work: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    broker, port = start_broker(work)
    results: list[dict[str, Any]] = []
    try:
        base, _, variant = system.partition("@")
        if base.startswith("edged"):
            read_batch_ms = float(variant[2:]) if variant.startswith("rb") else None
            proc = run_edged(work, port, base == "edged_confirmed", read_batch_ms)
        else:
            proc = subprocess.Popen([sys.executable, "-c", FLOOR_ECHO, str(port)])
            time.sleep(1.0)
        try:
            idle = rss_kib(proc.pid)
            for rate in args.rates:
                res = phase(proc, port, rate, args.n, f"{system}-rate{rate}")
                print(json.dumps(res), flush=True)
                results.append(res)
            best = None
            for rate in args.max_rates:
                res = phase(proc, port, rate, args.n, f"{system}-max{rate}")
                print(json.dumps(res), flush=True)
                results.append(res)
                ok = res["lost"] == 0 and res["throughput_msgs_s"] >= 0.95 * rate
                if not ok:
                    break
                best = rate
            summary = {
                "system": system,
                "max_sustained_rate_no_loss": best,
                "rss_idle_kib": idle,
                "rss_after_kib": rss_kib(proc.pid),
            }
            print(json.dumps(summary), flush=True)
            results.append(summary)
        finally:
            stop(proc)
    finally:
        stop(broker)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--rates", default="200,1000")
    parser.add_argument("--max-rates", default="1500,2000,2500")
    parser.add_argument("--systems", default="edged,edged_confirmed,floor")
    parser.add_argument("--nodered", action="store_true")
    args = parser.parse_args()
    args.rates = [int(r) for r in args.rates.split(",") if r]
    args.max_rates = [int(r) for r in args.max_rates.split(",") if r]
    print(
        json.dumps(
            {
                "benchmark": "mqtt_echo",
                "machine": f"{platform.machine()} {os.cpu_count()} cores (shared)",
                "loadavg_at_start": os.getloadavg(),
                "broker": "mosquitto, loopback, set_tcp_nodelay true, no persistence",
                "python_work_us": python_work_us(),
            }
        ),
        flush=True,
    )
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mqtt-echo-") as tmp:
        for system in args.systems.split(","):
            results += measure(system, Path(tmp), args)
    ratios = cpu_ratios(results)
    if ratios:
        print(json.dumps({"cpu_per_msg_ratio_to_floor": ratios}), flush=True)
    if args.nodered:
        rates = [str(r) for r in args.rates]
        subprocess.run(["bash", str(PEERS / "nodered" / "run.sh"), *rates], check=False)
    print(json.dumps({"loadavg_at_end": os.getloadavg()}), flush=True)


if __name__ == "__main__":
    main()
