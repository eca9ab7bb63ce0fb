"""Measure a frozen edged binary: size, exec -> READY=1, idle RSS, temp-dir unpack.

    python3 packaging/measure.py BINARY [--runs 5]

Starts `BINARY run` on an empty data directory with $NOTIFY_SOCKET bound to a
real unix datagram socket, times exec -> READY=1 (wall clock, and the CPU time
the processes used until then, which a busy machine does not inflate), waits 3 s idle, then reads
VmRSS of every process of the service (the PyInstaller one-file bootloader
and its Python child, or the single one-folder process), and for one-file
builds the size of what it unpacked under $TMPDIR.  Prints one JSON line.
Plain Python 3 (stdlib only), so it runs on a Pi without the dev venv.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (load-independent, unlike wall time)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def tree_size_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def one_run(binary: Path, work: Path, idle_s: float) -> dict[str, float]:
    sock_path = work / "n.sock"
    tmpdir = work / "tmp"
    tmpdir.mkdir()
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(sock_path))
        sock.settimeout(30)
        env = dict(os.environ, NOTIFY_SOCKET=str(sock_path), TMPDIR=str(tmpdir))
        cmd = [str(binary), "run", "--data-dir", str(work / "data")]
        cmd += ["--listen", f"127.0.0.1:{free_port()}"]
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while b"READY=1" not in sock.recv(4096):
                pass
            ready_s = time.perf_counter() - began
            ready_cpu_s = sum(cpu_s(p) for p in [proc.pid, *children(proc.pid)])
            time.sleep(idle_s)
            pids = [proc.pid, *children(proc.pid)]
            result = {
                "ready_ms": ready_s * 1000,
                "ready_cpu_ms": ready_cpu_s * 1000,
                "rss_main_mb": rss_kb(proc.pid) / 1024,
                "rss_total_mb": sum(rss_kb(p) for p in pids) / 1024,
                "processes": len(pids),
                "tmp_unpacked_mb": tree_size_bytes(tmpdir) / 1e6,
            }
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    result["exit_code"] = proc.returncode
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("binary", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle-s", type=float, default=3.0)
    args = parser.parse_args()
    binary: Path = args.binary.resolve()
    onefile = binary.parent.name == "dist"
    size_path = binary if onefile else binary.parent
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="edged-measure-") as work:
            runs.append(one_run(binary, Path(work), args.idle_s))
    summary: dict[str, object] = {
        "binary": str(binary),
        "mode": "onefile" if onefile else "onedir",
        "size_mb": round(
            (binary.stat().st_size if onefile else tree_size_bytes(size_path)) / 1e6, 1
        ),
        "runs": args.runs,
    }
    summary["load_avg_1m"] = round(os.getloadavg()[0], 1)
    for key in ("ready_ms", "ready_cpu_ms", "rss_main_mb", "rss_total_mb", "tmp_unpacked_mb"):
        values = [r[key] for r in runs]
        summary[f"{key}_median"] = round(statistics.median(values), 1)
        summary[f"{key}_max"] = round(max(values), 1)
    summary["processes"] = runs[0]["processes"]
    summary["exit_codes"] = sorted({int(r["exit_code"]) for r in runs})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
