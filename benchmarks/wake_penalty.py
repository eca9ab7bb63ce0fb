"""How much more CPU the same Python work costs right after the thread slept.

At low message rates every message wakes the daemon from idle (the event loop, then
the journal writer), and on a virtual machine, or a board whose CPU clocks down when
idle, the first few hundred microseconds after a wake-up run slower: caches, TLB and
branch predictors are cold, and the core may still be ramping its clock. This script
times a fixed piece of pure-Python work (thread CPU time, so waiting is not counted)
hot, and after sleeping 0.5, 2 and 5 ms (one message every 5 ms is 200 messages/s).

    .venv/bin/python benchmarks/wake_penalty.py [--rounds 400]

Prints one JSON object: microseconds of CPU per run of the work for each gap, and the
ratio to the hot figure. It explains why CPU per message at 200 msg/s is several times
the figure at 1,000 msg/s for every system measured here (edged, Node-RED, the paho
floor): the work per message is the same, the machine runs it slower.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time


def work() -> int:
    """About 30 us of interpreter work on a hot core: calls, ints, strings, a dict."""
    seen: dict[int, str] = {}
    total = 0
    for i in range(300):
        text = str(i)
        seen[i] = text
        total += len(text) + abs(-i)
    return total + len(seen)


def measure(gap_s: float, rounds: int) -> float:
    spent = 0
    for _ in range(rounds):
        if gap_s:
            time.sleep(gap_s)
        started = time.thread_time_ns()
        work()
        spent += time.thread_time_ns() - started
    return spent / rounds / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=400)
    args = parser.parse_args()
    rounds = max(10, min(args.rounds, 10_000))
    measure(0, 50)  # warm up
    gaps_ms = [0.0, 0.5, 2.0, 5.0]
    # interleave the gaps three times so a change of the machine's speed hits all alike
    results: dict[float, list[float]] = {g: [] for g in gaps_ms}
    for _ in range(3):
        for gap in gaps_ms:
            results[gap].append(measure(gap / 1000, rounds // 3))
    hot = sorted(results[0.0])[1]
    print(
        json.dumps(
            {
                "benchmark": "wake_penalty",
                "machine": f"{platform.machine()} {os.cpu_count()} cores",
                "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
                "cpu_us_per_run": {
                    f"gap_{gap:g}ms": round(sorted(v)[1], 1) for gap, v in results.items()
                },
                "ratio_to_hot": {
                    f"gap_{gap:g}ms": round(sorted(v)[1] / hot, 2) for gap, v in results.items()
                },
            }
        )
    )


if __name__ == "__main__":
    main()
