"""Benchmark: instructions per echoed MQTT message, whole daemon, repeatable on a noisy VM.

Wall-clock CPU per message moved by 15-25% between back-to-back runs on the shared VM,
more than most single changes; instruction counts do not. This runs the workload of
``benchmarks/mqtt_echo.py`` (``edged run --defs examples/mqtt-echo`` through a private
Mosquitto, driven by the peers' load generator) with the daemon under
``valgrind --tool=callgrind``, instrumentation switched on only while ``--n`` timed messages
go through (``callgrind_control -i on/off``), PYTHONHASHSEED=0. valgrind slows the daemon
~50x, so the rate is low and the read window long: at 20 msg/s and ``read_batch_ms`` 250 the
reader takes bursts of ~5 messages, what it takes at 1,000 msg/s with the default 5 ms
(``--read-batch-ms 50`` gives 1-message batches, ``500`` ~10). The same build gives the same
count within ~0.2%.

    .venv/bin/python benchmarks/mqtt_echo_instructions.py [--n 200] [--rate 20]
        [--read-batch-ms 250] [--defs examples/mqtt-echo] [--keep]

Prints one JSON object: instructions per message in all, per thread (the loop thread is the
largest, the journal writer next) and the callgrind files' directory with ``--keep``
(``callgrind_annotate <dir>/cg.out.1-01`` shows where the loop thread's went). Needs valgrind
(Debian package ``valgrind``); ~1 minute.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mqtt_echo import ROOT, free_port, loadgen, start_broker, stop, tree_env


def _wait_health(api: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("edged exited under valgrind")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{api}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("edged did not become healthy under valgrind")


def _control(pid: int, *flags: str) -> None:
    subprocess.run(["callgrind_control", *flags, str(pid)], check=True, stdout=subprocess.DEVNULL)


def _totals(path: Path) -> int:
    for line in path.read_text(errors="replace").splitlines():
        match = re.match(r"(?:totals|summary):\s+(\d+)", line)
        if match and int(match.group(1)):
            return int(match.group(1))
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--rate", type=int, default=20)
    parser.add_argument("--read-batch-ms", type=float, default=250)
    parser.add_argument("--defs", default=str(ROOT / "examples" / "mqtt-echo"))
    parser.add_argument("--keep", action="store_true", help="keep the callgrind files")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    work = Path(tempfile.mkdtemp(prefix="mqtt-echo-instr-"))
    broker, port = start_broker(work)
    api = free_port()
    config = work / "config.json"
    config.write_text(json.dumps({"mqtt": {"read_batch_ms": args.read_batch_ms}}))
    out = work / "cg.out"
    env = tree_env(PYTHONHASHSEED="0")
    cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes", "--instr-atstart=no"]
    cmd += [f"--callgrind-out-file={out}", sys.executable, "-m", "edged.cli", "run"]
    cmd += ["--defs", args.defs, "--mqtt", f"mqtt://127.0.0.1:{port}"]
    cmd += ["--data-dir", str(work / "data"), "--listen", f"127.0.0.1:{api}"]
    cmd += ["--config", str(config)]
    log = open(work / "edged.log", "wb")  # noqa: SIM115 (the child owns it)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    try:
        _wait_health(api, proc, 600)
        # the load generator's last --drain wins: valgrind makes the daemon slow to answer
        slow = ("--drain", "20")
        warm = ("--warmup", "20", *slow)
        loadgen(port, args.rate, 3 * args.rate, None, "warm", warm)  # imports, caches, JS
        _control(proc.pid, "-i", "on")
        result = loadgen(port, args.rate, args.n, None, "instructions", ("--warmup", "0", *slow))
        _control(proc.pid, "-i", "off")
        _control(proc.pid, "-d")
        time.sleep(1)
    finally:
        stop(proc)
        stop(broker)
    received = result.get("received") or 0
    threads = {p.name: _totals(p) for p in sorted(work.glob("cg.out.1-*"))}
    total = sum(threads.values())
    report = {
        "benchmark": "mqtt_echo_instructions",
        "rate": args.rate,
        "read_batch_ms": args.read_batch_ms,
        "messages": received,
        "lost": result.get("lost"),
        "instructions_per_message": round(total / received) if received else None,
        "per_thread": {
            f"thread_{name.rsplit('-', 1)[1]}": round(n / received)
            for name, n in threads.items()
            if n and received
        },
        "callgrind_dir": str(work) if args.keep else None,
    }
    print(json.dumps(report), flush=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
