"""The `command` binding kind: a work task runs as a subprocess, JSON in, JSON out.

Theory of operation
-------------------
Config (checked before the journal opens; a fault stops the start)::

    bindings:
      checknumber:
        command:
          argv: [workers/checknumber.sh]   # or just the list; no shell is involved
          timeout_s: 30                    # optional, see below
          terminal_exit_codes: [2]         # default [2]
          max_output_bytes: 1048576        # stdout cap, default 1 MiB
          max_log_lines: 100               # stderr lines kept as task logs
          kill_grace_s: 2                  # SIGTERM -> SIGKILL
          env: {MODE: fast}                # added to the environment
          cwd: workers                     # default: the daemon's directory
    executors:
      command:
        allow: [workers, /usr/bin/python3]  # files or directories that may run
        pass_env: [PATH, HOME, LANG]        # inherited variables (default shown + LC_ALL, TZ, TMPDIR)
        max_concurrent: 8                   # programs running at once, all bindings (default 8)

`argv[0]` is resolved when the binding is built (relative to the config
file's directory when it holds a `/`, else on `PATH`) and must be an
executable file inside `executors.command.allow`; anything else is a
ConfigError naming `bindings.NAME.command.argv`.  Only argv[0] is checked:
allowing an interpreter (`node`, `python3`) allows every script it is given,
so prefer allowing the scripts' directory and giving them a shebang.

One run: the program starts in a new session (its own process group), gets
the task input as one JSON document on stdin (then EOF) and, in its
environment, `EDGED_TASK_ID`, `EDGED_ATTEMPT`, `EDGED_WORKFLOW_ID`,
`EDGED_TASK_NAME`, `EDGED_TASK_REF` and `EDGED_TASK_TYPE` (task id and attempt
together are the idempotency key: after a crash the same pair may run again).
Three Trio tasks feed stdin, collect stdout (at most `max_output_bytes`) and
turn stderr lines into task logs (at most `max_log_lines` lines of
`max_log_line_bytes` each; the rest are counted and drained, never stored, so
a chatty child neither blocks nor grows memory).  No thread per process.
At most `executors.command.max_concurrent` programs run at once across all
command bindings; further tasks wait for a slot (back-pressure; the time
limit below starts when the program does).

Outcome: exit 0 and stdout one JSON object -> COMPLETED with that output;
exit 0 with anything else on stdout -> FAILED saying what was there; exit in
`terminal_exit_codes` -> FAILED_WITH_TERMINAL_ERROR (never retried); any
other exit or a signal -> FAILED (retried per the TaskDef).  A failing run's
stdout, when it is a JSON object, becomes the task output; the reason names
the exit code and the last stderr line.

Ending: the time limit is the binding's `timeout_s`, else the tighter of
the TaskDef's `timeoutSeconds` / `responseTimeoutSeconds`, else 3600 s.
At the limit, when stdout overflows, or when the dispatcher cancels the task
(workflow terminated, engine-side timeout, shutdown) the whole process
group gets SIGTERM, then SIGKILL after `kill_grace_s`; the cleanup is
shielded and bounded.  When the program exits by itself, whatever it left
running in its group is killed too, so the pipes close and nothing leaks.

A descendant that leaves the group (`setsid`, `setpgid`) escapes these
kills; only a cgroup (systemd's) holds such programs.

Crash: if the daemon itself is killed, its workers are in their own sessions
and would outlive it; under systemd the unit's default KillMode=control-group
ends them with the service.  Run by hand, an orphaned worker may still run
while recovery starts the task again with the same task id and attempt,
which is why workers should treat that pair as an idempotency key.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from edged.errors import ConfigError
from edged.handlers import Handler, TaskContext, TaskFailed
from edged.runtime.bindings import BindingContext, register_binding_kind

log = logging.getLogger("edged.executors.command")

DEFAULT_TIMEOUT_S = 3600.0  # Conductor's default responseTimeoutSeconds
DEFAULT_PASS_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
_SPEC_KEYS = {
    "argv",
    "timeout_s",
    "terminal_exit_codes",
    "max_output_bytes",
    "max_log_lines",
    "max_log_line_bytes",
    "kill_grace_s",
    "env",
    "cwd",
}
_SETTINGS_KEYS = {"allow", "pass_env", "max_concurrent"}
DEFAULT_MAX_CONCURRENT = 8
_READ_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class CommandSpec:
    argv: tuple[str, ...]  # argv[0] resolved to an absolute path
    timeout_s: float | None = None
    terminal_exit_codes: frozenset[int] = frozenset({2})
    max_output_bytes: int = 1024 * 1024
    max_log_lines: int = 100
    max_log_line_bytes: int = 2048
    kill_grace_s: float = 2.0
    env: Mapping[str, str] | None = None  # the complete environment of the child
    cwd: str | None = None


# -- building (config time) ------------------------------------------------


def _number(ctx: BindingContext, key: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ctx.error(f"expected a number in {low:g}..{high:g}, got {value!r}", f".{key}")
    return float(value)


def _resolve_program(ctx: BindingContext, program: str) -> Path:
    if "/" in program:
        path = Path(os.path.expanduser(program))
        if not path.is_absolute():
            path = ctx.base_dir / path
    else:
        found = shutil.which(program)
        if found is None:
            raise ctx.error(f"program {program!r} not found on PATH", ".argv")
        path = Path(found)
    path = Path(os.path.abspath(path))
    if not path.is_file():
        raise ctx.error(f"program {str(path)!r} does not exist or is not a file", ".argv")
    if not os.access(path, os.X_OK):
        raise ctx.error(f"program {str(path)!r} is not executable", ".argv")
    return path


def _allowed(ctx: BindingContext, program: Path) -> bool:
    allow = ctx.settings.get("allow") or []
    candidates = {program, Path(os.path.realpath(program))}
    for entry in allow:
        base = Path(os.path.expanduser(entry))
        if not base.is_absolute():
            base = ctx.base_dir / base
        for root in {Path(os.path.abspath(base)), Path(os.path.realpath(base))}:
            for cand in candidates:
                if cand == root or root in cand.parents:
                    return True
    return False


def _environment(ctx: BindingContext, extra: Any) -> dict[str, str]:
    names = ctx.settings.get("pass_env", DEFAULT_PASS_ENV)
    env = {name: os.environ[name] for name in names if name in os.environ}
    if extra is not None:
        if not isinstance(extra, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int | float) and not isinstance(v, bool)
            for k, v in extra.items()
        ):
            raise ctx.error("expected a mapping of names to strings", ".env")
        env.update({k: str(v) for k, v in extra.items()})
    return env


def parse_spec(spec: Any, ctx: BindingContext) -> CommandSpec:
    """Check a `command` binding and resolve its program; ConfigError with the path."""
    if isinstance(spec, list):
        spec = {"argv": spec}
    if not isinstance(spec, dict):
        raise ctx.error("expected {argv: [program, args...], ...} or a list")
    for key in spec:
        if key not in _SPEC_KEYS:
            raise ctx.error("unknown key", f".{key}")
    argv = spec.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ctx.error("expected a non-empty list of strings (no shell is used)", ".argv")
    if not argv[0]:
        raise ctx.error("the program name is empty", ".argv")
    program = _resolve_program(ctx, argv[0])
    if not _allowed(ctx, program):
        raise ctx.error(
            f"program {str(program)!r} is not allowed: add it or its directory to "
            "executors.command.allow",
            ".argv",
        )
    env = _environment(ctx, spec.get("env"))
    codes = spec.get("terminal_exit_codes", [2])
    if not isinstance(codes, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= 255 for c in codes
    ):
        raise ctx.error("expected a list of exit codes 1..255", ".terminal_exit_codes")
    timeout = spec.get("timeout_s")
    cwd = spec.get("cwd")
    if cwd is not None:
        if not isinstance(cwd, str):
            raise ctx.error("expected a directory", ".cwd")
        cwd_path = Path(os.path.expanduser(cwd))
        cwd_path = cwd_path if cwd_path.is_absolute() else ctx.base_dir / cwd_path
        if not cwd_path.is_dir():
            raise ctx.error(f"{str(cwd_path)!r} is not a directory", ".cwd")
        cwd = str(cwd_path)
    return CommandSpec(
        argv=(str(program), *argv[1:]),
        timeout_s=None if timeout is None else _number(ctx, "timeout_s", timeout, 0.001, 86400),
        terminal_exit_codes=frozenset(codes),
        max_output_bytes=int(
            _number(ctx, "max_output_bytes", spec.get("max_output_bytes", 1 << 20), 2, 64 << 20)
        ),
        max_log_lines=int(_number(ctx, "max_log_lines", spec.get("max_log_lines", 100), 0, 1000)),
        max_log_line_bytes=int(
            _number(ctx, "max_log_line_bytes", spec.get("max_log_line_bytes", 2048), 16, 4096)
        ),
        kill_grace_s=_number(ctx, "kill_grace_s", spec.get("kill_grace_s", 2.0), 0, 60),
        env=env,
        cwd=cwd,
    )


def command_binding(task_name: str, spec: Any, ctx: BindingContext) -> Handler:
    """The `command` kind's factory (registered at import)."""
    parsed = parse_spec(spec, ctx)
    limit = ctx.settings.get("max_concurrent", DEFAULT_MAX_CONCURRENT)
    slots: trio.CapacityLimiter = ctx.shared.setdefault("slots", trio.CapacityLimiter(limit))

    async def run(task: TaskContext) -> dict[str, Any]:
        async with slots:
            return await run_command(parsed, task)

    run.__qualname__ = f"command[{task_name}]"
    return run


def check_settings(settings: Mapping[str, Any]) -> None:
    """`executors.command`: known keys, lists of strings."""
    for key, value in settings.items():
        if key not in _SETTINGS_KEYS:
            raise ConfigError(f"executors.command.{key}: unknown key")
        if key == "max_concurrent":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
                raise ConfigError(
                    f"executors.command.max_concurrent: expected 1..1024, got {value!r}"
                )
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            what = "paths" if key == "allow" else "variable names"
            raise ConfigError(f"executors.command.{key}: expected a list of {what}")


register_binding_kind("command", command_binding, check_settings)


# -- running ----------------------------------------------------------------


class _StderrLog:
    """stderr bytes -> at most `max_lines` task log lines; the rest counted, not kept."""

    def __init__(self, ctx: TaskContext, max_lines: int, max_line_bytes: int) -> None:
        self.ctx = ctx
        self.max_lines = max_lines
        self.max_line_bytes = max_line_bytes
        self.partial = bytearray()
        self.skipping = False  # inside an over-long line, after its kept head
        self.kept = 0
        self.dropped = 0
        self.last = ""

    def feed(self, data: bytes | bytearray) -> None:
        while data:
            nl = data.find(b"\n")
            piece, data = (data, b"") if nl < 0 else (data[:nl], data[nl + 1 :])
            if not self.skipping:
                room = self.max_line_bytes - len(self.partial)
                self.partial += piece[:room]
                if len(piece) > room:
                    self._emit(truncated=True)
                    self.skipping = True
            if nl >= 0:
                if not self.skipping:
                    self._emit(truncated=False)
                self.skipping = False

    def close(self) -> None:
        if self.partial:
            self._emit(truncated=False)
        if self.dropped:
            self.ctx.log(f"[{self.dropped} more stderr lines dropped]")

    def _emit(self, *, truncated: bool) -> None:
        line = self.partial.decode("utf-8", errors="replace").rstrip("\r")
        self.partial.clear()
        if truncated:
            line += " [truncated]"
        self.last = line
        if self.kept < self.max_lines:
            self.kept += 1
            self.ctx.log(line)
        else:
            self.dropped += 1


# The group id is the leader's pid.  After the leader is reaped, Linux keeps
# that id reserved while any member of the group lives, so signalling the group
# reaches only its members; once the group is empty a new process could in
# principle get the id, but only a session or group leader would match it.
def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _group_running(pgid: int) -> bool:
    """Like `_group_alive`, but a group of zombies only counts as ended.

    Orphaned members are reaped by init, which may take its time (a container's
    PID 1 often does): waiting for that would turn every kill into a full grace
    period.  Linux: scans /proc (a few ms; only on the kill path).
    """
    if not _group_alive(pgid):
        return False
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def _end_group(proc: trio.Process, grace_s: float, *, term_first: bool) -> None:
    """SIGTERM the process group, wait up to grace_s for it to empty, then SIGKILL it.

    Shielded and bounded: runs from `finally` blocks while a cancel is pending.
    """
    pgid = proc.pid
    with trio.CancelScope(shield=True), trio.move_on_after(grace_s + 5.0):
        if term_first and _group_alive(pgid):
            _signal_group(pgid, signal.SIGTERM)
            with trio.move_on_after(grace_s):
                await proc.wait()
                while _group_running(pgid):  # noqa: ASYNC110 - children may outlive the leader; no event tells
                    await trio.sleep(0.02)
        if _group_running(pgid):
            _signal_group(pgid, signal.SIGKILL)
        await proc.wait()


async def _feed(stream: trio.abc.SendStream, data: bytes) -> None:
    try:
        async with stream:
            await stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the program exited or closed stdin without reading it all: its business


async def run_command(spec: CommandSpec, ctx: TaskContext) -> dict[str, Any]:
    timeout_s = spec.timeout_s or ctx.timeout_s() or DEFAULT_TIMEOUT_S
    env = dict(spec.env or {})
    env.update(
        EDGED_TASK_ID=ctx.task_id,
        EDGED_ATTEMPT=str(ctx.attempt),
        EDGED_WORKFLOW_ID=ctx.workflow_id,
        EDGED_TASK_NAME=ctx.task_name,
        EDGED_TASK_REF=ctx.ref,
        EDGED_TASK_TYPE=ctx.task_type,
    )
    stdin_data = json.dumps(ctx.input, separators=(",", ":")).encode()
    try:
        proc = await trio.lowlevel.open_process(
            list(spec.argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            env=env,
            cwd=spec.cwd,
        )
    except OSError as exc:
        raise TaskFailed(f"cannot start {spec.argv[0]}: {exc.strerror or exc}") from None
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdout = bytearray()
    overflow = False
    stderr = _StderrLog(ctx, spec.max_log_lines, spec.max_log_line_bytes)

    async def read_stdout(stream: trio.abc.ReceiveStream, cancel: trio.CancelScope) -> None:
        nonlocal overflow
        while chunk := await stream.receive_some(_READ_CHUNK):
            stdout.extend(chunk)
            if len(stdout) > spec.max_output_bytes:
                overflow = True
                del stdout[spec.max_output_bytes :]
                cancel.cancel()
                return

    async def read_stderr(stream: trio.abc.ReceiveStream) -> None:
        while chunk := await stream.receive_some(_READ_CHUNK):
            stderr.feed(chunk)

    exited = False
    try:
        with trio.move_on_after(timeout_s) as timer:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_feed, proc.stdin, stdin_data)
                nursery.start_soon(read_stdout, proc.stdout, nursery.cancel_scope)
                nursery.start_soon(read_stderr, proc.stderr)
                await proc.wait()
                exited = True
                # whatever the program left running in its group would hold
                # the pipes open: it goes now, and the readers see EOF (one that
                # left the group with setsid gets a bounded wait, then is ignored)
                if _group_alive(proc.pid):
                    _signal_group(proc.pid, signal.SIGKILL)
                nursery.cancel_scope.deadline = trio.current_time() + 1.0 + spec.kill_grace_s
    finally:
        if not exited or proc.returncode is None:
            await _end_group(proc, spec.kill_grace_s, term_first=True)
        with trio.CancelScope(shield=True):
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                await stream.aclose()
        stderr.close()
    if timer.cancelled_caught:
        raise TaskFailed(f"timed out after {timeout_s:g} s: process group killed")
    if overflow:
        raise TaskFailed(
            f"output exceeds max_output_bytes ({spec.max_output_bytes} bytes): process group killed"
        )
    assert proc.returncode is not None  # reaped: either exited or _end_group waited
    return _outcome(spec, proc.returncode, bytes(stdout), stderr.last)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _outcome(spec: CommandSpec, code: int, out: bytes, last_err: str) -> dict[str, Any]:
    parsed: Any = None
    problem = ""
    text = out.decode("utf-8", errors="replace").strip()
    if not text:
        problem = "stdout is empty"
    else:
        try:
            parsed = json.loads(text, parse_constant=_reject_constant)
        except ValueError as exc:
            problem = f"stdout is not JSON ({exc}): {text[:200]!r}"
        else:
            if not isinstance(parsed, dict):
                problem = f"stdout is JSON {type(parsed).__name__}, not an object: {text[:200]!r}"
                parsed = None
    if code == 0:
        if problem:
            raise TaskFailed(f"{problem}; expected one JSON object")
        assert isinstance(parsed, dict)
        return parsed
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        why = f"killed by {name}"
    else:
        why = f"exit code {code}"
    if last_err:
        why += f": {last_err[:500]}"
    raise TaskFailed(why, terminal=code in spec.terminal_exit_codes, output=parsed or {})
