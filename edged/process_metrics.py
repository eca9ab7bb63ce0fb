"""Prometheus' standard process metrics and edged's build info, read from /proc at scrape time.

Theory of operation.  ``add_process_metrics(registry)`` registers the
families Prometheus' client libraries export under the same names
(``process_cpu_seconds_total``, ``process_resident_memory_bytes``,
``process_virtual_memory_bytes``, ``process_open_fds``, ``process_max_fds``,
``process_start_time_seconds``), so dashboards made for other exporters work
unchanged, plus ``edged_build_info{version, python, mode}`` = 1.  Everything is
read by a collector when ``/metrics`` is scraped: nothing runs in between.
On a system without /proc (not Linux) the process families stay at zero.
"""

from __future__ import annotations

import contextlib
import os
import platform
import resource
from pathlib import Path

from edged.build_info import build_info
from edged.metrics import Registry

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _boot_time_s() -> float:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def add_process_metrics(registry: Registry) -> None:
    cpu = registry.counter("process_cpu_seconds_total", "user + system CPU time of the process")
    rss = registry.gauge("process_resident_memory_bytes", "resident memory")
    vms = registry.gauge("process_virtual_memory_bytes", "virtual memory")
    fds = registry.gauge("process_open_fds", "open file descriptors")
    max_fds = registry.gauge("process_max_fds", "file descriptor limit (soft)")
    start = registry.gauge("process_start_time_seconds", "process start, seconds since the epoch")
    info = registry.gauge(
        "edged_build_info", "edged's version and build (always 1)", ["version", "python", "mode"]
    )
    facts = build_info()
    info.labels(facts.version, platform.python_version(), facts.mode).set(1)
    boot_s = _boot_time_s()
    proc = Path("/proc/self")

    @registry.collector
    def collect() -> None:
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # no /proc: leave the process families as they are
            return
        cpu.set((int(stat[11]) + int(stat[12])) / _TICKS_PER_S)
        vms.set(int(stat[20]))
        rss.set(int(stat[21]) * _PAGE_BYTES)
        if boot_s:
            start.set(round(boot_s + int(stat[19]) / _TICKS_PER_S, 2))
        with contextlib.suppress(OSError):
            fds.set(len(os.listdir(proc / "fd")))
        max_fds.set(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


__all__ = ["add_process_metrics"]
