"""Benchmark: MQTT echo latency at a steady rate while retention prunes, second by second.

``benchmarks/mqtt_echo.py`` runs 10,000 messages per phase, too short to say what the
once-a-minute retention prune does to a daemon that streams for good. This runs one steady
stream (default 1,000 msg/s for 80,000 messages: the default retention of 10,000 finished
executions makes the first prune, ~60 s in, remove ~50,000) through the same daemon,
broker and load generator, and times every reply with a second subscriber of its own
(QoS 0, so it adds a fan-out to the broker's work and a little latency to both), polling
the daemon's ``edged_journal_executions_pruned_total`` twice a second.

    .venv/bin/python benchmarks/mqtt_retention.py [--n 80000] [--rate 1000] [--per-second]

Prints JSON lines: the load generator's summary of the whole run, with ``--per-second``
one line per second (replies, p50, p99, executions pruned so far), and the latency of
the seconds in which the pruned count moved against the others (``prune`` / ``quiet``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from bench_http import percentile
from mqtt_echo import loadgen, pruned_so_far, run_edged, start_broker, stop


def quantile(values: list[float], q: float) -> float | None:
    return round(percentile(values, q), 2) if values else None


class ReplyClock:
    """Subscribes to the echo's replies and files each one's latency under its second."""

    def __init__(self, port: int) -> None:
        self.t0 = time.monotonic_ns()
        self.by_second: dict[int, list[float]] = defaultdict(list)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("bench/out", 0)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        now = time.monotonic_ns()
        try:
            sent = json.loads(message.payload)["ts"]
        except (ValueError, KeyError, TypeError):
            return  # the load generator's warm-up carries no send time
        self.by_second[(now - self.t0) // 1_000_000_000].append((now - sent) / 1e6)

    def second(self) -> int:
        return (time.monotonic_ns() - self.t0) // 1_000_000_000

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=80_000)
    parser.add_argument("--rate", type=int, default=1_000)
    parser.add_argument("--per-second", action="store_true")
    args = parser.parse_args()
    head = {
        "benchmark": "mqtt_retention",
        "machine": f"{platform.machine()} {os.cpu_count()} cores",
    }
    print(json.dumps(head | {"rate": args.rate, "n": args.n}), flush=True)
    work = Path(tempfile.mkdtemp(prefix="edged-retention-"))
    broker, port = start_broker(work)
    pruned: dict[int, int] = {}
    try:
        proc = run_edged(work, port, confirmed=False)
        clock = ReplyClock(port)
        done = threading.Event()

        def poll() -> None:
            while not done.is_set():
                count = pruned_so_far(proc)
                if count is not None:
                    pruned[clock.second()] = count
                done.wait(0.5)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            res = loadgen(port, args.rate, args.n, proc.pid, "edged-steady")
        finally:
            done.set()
            poller.join()
            clock.close()
            stop(proc)
    finally:
        stop(broker)
    print(json.dumps(res), flush=True)
    last, during, around = 0, [], []
    for second in sorted(clock.by_second):
        latencies = clock.by_second[second]
        count = pruned.get(second, last)
        (during if count != last else around).extend(latencies)
        if args.per_second:
            row = {"second": second, "replies": len(latencies), "pruned": count}
            row |= {"p50": quantile(latencies, 0.5), "p99": quantile(latencies, 0.99)}
            print(json.dumps(row), flush=True)
        last = count
    summary = {"executions_pruned": last}
    for name, values in (("prune", during), ("quiet", around)):
        summary[name] = {
            "replies": len(values),
            "p50": quantile(values, 0.5),
            "p99": quantile(values, 0.99),
        }
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
