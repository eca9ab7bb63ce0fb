"""Client micro-benchmark: QoS 1 round trip and publish throughput; prints JSON.

``python -m edged_mqtt.benchmark --broker mqtt://127.0.0.1:1883`` against a broker with
``set_tcp_nodelay true`` (without it Mosquitto adds milliseconds). Round trip: one client
publishes at QoS 1, another (same process) receives; time from the publish call to the
receive, one message at a time. Throughput: one client keeps ``window`` QoS 1 publishes in
flight (``window`` concurrent publishers under the in-flight bound) and counts PUBACKs/s.
Both clients share one Trio thread, so the figures include the receiver's CPU too.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import trio

from edged_mqtt.client import open_mqtt_client
from edged_mqtt.settings import MqttSettings, settings_from_url


async def round_trip_ms(settings: MqttSettings, count: int) -> list[float]:
    out: list[float] = []
    async with (
        open_mqtt_client(settings.replace(client_id="bench-rt-sub")) as sub,
        open_mqtt_client(settings.replace(client_id="bench-rt-pub")) as pub,
    ):
        await sub.subscribe("bench/rt", 1)
        for i in range(count):
            start = time.perf_counter()
            await pub.publish("bench/rt", str(i).encode(), qos=1)
            await sub.receive()
            out.append((time.perf_counter() - start) * 1000)
    return out


async def throughput(settings: MqttSettings, window: int, count: int) -> dict[str, float]:
    s = settings.replace(client_id=f"bench-tp-{window}", max_inflight=window)
    async with open_mqtt_client(s) as pub:
        await pub.wait_connected()
        per_task = count // window
        cpu0, t0 = time.process_time(), time.perf_counter()

        async def worker() -> None:
            for i in range(per_task):
                await pub.publish("bench/tp", str(i).encode(), qos=1)

        async with trio.open_nursery() as nursery:
            for _ in range(window):
                nursery.start_soon(worker)
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        sent = per_task * window
        return {
            "window": window,
            "messages": sent,
            "messages_per_s": round(sent / elapsed),
            "cpu_us_per_message": round(cpu / sent * 1e6, 1),
        }


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


async def run(settings: MqttSettings, count: int) -> dict[str, object]:
    rt = await round_trip_ms(settings, count)
    result: dict[str, object] = {
        "round_trip_qos1_ms": {
            "p50": pct(rt, 0.5),
            "p99": pct(rt, 0.99),
            "mean": round(statistics.fmean(rt), 3),
            "n": len(rt),
        },
        "publish_qos1": [await throughput(settings, w, count) for w in (1, 8, 20, 64)],
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edged_mqtt.benchmark")
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args(argv)
    print(json.dumps(trio.run(run, settings_from_url(args.broker), args.count), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
