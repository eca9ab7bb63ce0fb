"""systemd's notify protocol and watchdog, for `Type=notify` units.

Theory of operation: systemd passes the path of a unix datagram socket in
$NOTIFY_SOCKET (an `@` prefix means the abstract namespace); each message is
one datagram of newline-separated `KEY=VALUE` lines (READY=1, STATUS=...,
STOPPING=1, WATCHDOG=1).  Without $NOTIFY_SOCKET every call is a no-op, so the
daemon runs the same under a shell, a test or another supervisor.  Sending
never raises: a supervisor that went away must not take the daemon down.

The watchdog: with `WatchdogSec=` systemd sets $WATCHDOG_USEC (and
$WATCHDOG_PID, the process it expects pings from).  `run_watchdog` is a task in
the root nursery that sends WATCHDOG=1 every half interval (systemd's own
advice), from the Trio loop itself: if the loop stalls, pings stop and systemd
kills and restarts the daemon.  When $WATCHDOG_PID names another process (a
PyInstaller one-file build runs Python as a child of the bootloader, whose pid
systemd knows) the watchdog is off, as in sd_watchdog_enabled(3).
"""

from __future__ import annotations

import logging
import os
import socket

import trio

log = logging.getLogger("edged.sd_notify")


def sd_notify(message: str) -> bool:
    """Send one notify datagram; True if sent, False without $NOTIFY_SOCKET or on error."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(address)
            sock.sendall(message.encode())
        except OSError as exc:
            log.warning("sd_notify failed: %s", exc)
            return False
    return True


def watchdog_interval_s() -> float | None:
    """Half of $WATCHDOG_USEC in seconds, or None when the watchdog is not asked for."""
    text = os.environ.get("WATCHDOG_USEC")
    if not text:
        return None
    pid_text = os.environ.get("WATCHDOG_PID")
    if pid_text and pid_text.isdigit() and int(pid_text) != os.getpid():
        log.warning("WATCHDOG_PID=%s is not this process: watchdog pings off", pid_text)
        return None
    try:
        usec = int(text)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not an integer: watchdog pings off", text)
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


async def run_watchdog(
    interval_s: float | None = None,
    *,
    task_status: trio.TaskStatus[float | None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Ping WATCHDOG=1 every `interval_s` (default: from the environment) until cancelled."""
    if interval_s is None:
        interval_s = watchdog_interval_s()
    task_status.started(interval_s)
    if interval_s is None:
        return
    while True:
        sd_notify("WATCHDOG=1")
        await trio.sleep(interval_s)
