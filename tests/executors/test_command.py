"""The `command` executor on real subprocesses: outcomes, limits, process-group kills, config."""

from __future__ import annotations

import itertools
import os
import shutil
import time
from pathlib import Path

import pytest
import trio
from executor_support import (
    EXAMPLES,
    HERE,
    MISBEHAVE,
    WORKERS,
    build,
    context,
    gone_soon,
    kill_if_running,
    read_pid,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from edged.errors import ConfigError
from edged.executors.command import _StderrLog
from edged.handlers import TaskFailed
from edged.runtime.bindings import default_executors


async def run(
    spec: object, task_input: dict[str, object], **kw: object
) -> tuple[object, list[str]]:
    handler = build(spec)
    ctx = context(task_input, **kw)  # type: ignore[arg-type]
    with trio.fail_after(20):
        result = await handler(ctx)
    return result, ctx.logs


async def fails(
    spec: object, task_input: dict[str, object], **kw: object
) -> tuple[TaskFailed, list[str]]:
    handler = build(spec)
    ctx = context(task_input, **kw)  # type: ignore[arg-type]
    with trio.fail_after(20), pytest.raises(TaskFailed) as info:
        await handler(ctx)
    return info.value, ctx.logs


async def test_input_on_stdin_ids_in_env_output_from_stdout_stderr_as_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDGED_TEST_SECRET", "do-not-pass")
    spec = {"argv": [str(MISBEHAVE)], "env": {"EXTRA": "yes"}}
    out, logs = await run(spec, {"mode": "echo", "n": [1, {"a": "é"}]}, attempt=3)
    assert out == {
        "input": {"mode": "echo", "n": [1, {"a": "é"}]},
        "task_id": "task-1",
        "attempt": 3,
        "workflow_id": "wf-1",
        "name": "t",
        "ref": "t_ref",
        "type": "SIMPLE",
        "home": os.environ.get("HOME", ""),
        "secret": "",  # only pass_env variables are inherited
        "extra": "yes",
    }
    assert logs == ["stderr line one", "stderr line two"]


async def test_the_shell_and_node_examples() -> None:
    out, logs = await run([str(EXAMPLES / "checknumber.sh")], {"n": 6})
    assert out == {"n": 6, "even": True, "attempt": 0}
    assert logs and "task task-1 attempt 0" in logs[0]
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the Node.js example is not exercised")
    out, logs = await run([str(EXAMPLES / "fahrenheit.js")], {"celsius": 100})
    assert out["fahrenheit"] == 212 and out["alarm"] is True  # type: ignore[index]


@pytest.mark.parametrize(
    ("code", "terminal_codes", "terminal"),
    [(1, None, False), (2, None, True), (3, None, False), (3, [3, 4], True), (2, [3], False)],
)
async def test_exit_codes(code: int, terminal_codes: list[int] | None, terminal: bool) -> None:
    spec: dict[str, object] = {"argv": [str(MISBEHAVE)]}
    if terminal_codes is not None:
        spec["terminal_exit_codes"] = terminal_codes
    exc, logs = await fails(spec, {"mode": "exit", "code": code})
    assert exc.terminal is terminal
    assert exc.reason == f"exit code {code}: failing with {code}"
    assert exc.output == {"partial": True}  # a failing run's JSON stdout is kept
    assert logs == [f"failing with {code}"]


async def test_killed_by_a_signal_is_a_retryable_failure() -> None:
    exc, _ = await fails([str(MISBEHAVE)], {"mode": "signal"})
    assert exc.reason == "killed by SIGKILL" and not exc.terminal


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("text", "stdout is not JSON"),
        ("list", "stdout is JSON list, not an object"),
        ("nan", "NaN is not JSON"),
        ("empty", "stdout is empty"),
    ],
)
async def test_exit_zero_without_a_json_object_fails(mode: str, expected: str) -> None:
    exc, _ = await fails([str(MISBEHAVE)], {"mode": mode})
    assert expected in exc.reason and "expected one JSON object" in exc.reason
    assert not exc.terminal


async def test_oversized_output_kills_the_process() -> None:
    started = time.monotonic()
    exc, _ = await fails({"argv": [str(MISBEHAVE)], "max_output_bytes": 100_000}, {"mode": "big"})
    assert exc.reason == ("output exceeds max_output_bytes (100000 bytes): process group killed")
    assert time.monotonic() - started < 10


async def test_stderr_is_bounded_lines_and_bytes() -> None:
    spec = {"argv": [str(MISBEHAVE)], "max_log_lines": 20, "max_log_line_bytes": 64}
    out, logs = await run(spec, {"mode": "spam"})
    assert out == {"ok": True}
    assert logs[:20] == [f"noise {i}" for i in range(20)]
    assert logs[20] == "[482 more stderr lines dropped]"  # 480 noise + long + "after"
    assert len(logs) == 21


async def test_a_long_line_is_cut_not_buffered() -> None:
    spec = {"argv": [str(MISBEHAVE)], "max_log_lines": 600, "max_log_line_bytes": 64}
    _, logs = await run(spec, {"mode": "spam"})
    assert logs[500] == "y" * 64 + " [truncated]"
    assert logs[501] == "after the long line"


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    spec = {"argv": [str(MISBEHAVE)], "timeout_s": 0.5}
    started = time.monotonic()
    try:
        exc, logs = await fails(spec, {"mode": "hang", "pidfile": str(pidfile)})
        assert exc.reason == "timed out after 0.5 s: process group killed"
        assert time.monotonic() - started < 5
        assert logs and logs[0].startswith("started grandchild")
        assert gone_soon(read_pid(pidfile))
    finally:
        if pidfile.exists():
            kill_if_running(read_pid(pidfile))


async def test_sigterm_ignored_gets_sigkill_after_the_grace(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    spec = {"argv": [str(MISBEHAVE)], "timeout_s": 0.3, "kill_grace_s": 0.3}
    started = time.monotonic()
    try:
        exc, _ = await fails(spec, {"mode": "stubborn", "pidfile": str(pidfile)})
        assert "timed out" in exc.reason
        assert 0.5 < time.monotonic() - started < 5
        assert gone_soon(read_pid(pidfile))
    finally:
        if pidfile.exists():
            kill_if_running(read_pid(pidfile))


async def test_taskdef_timeout_applies_when_the_binding_has_none(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    try:
        exc, _ = await fails(
            [str(MISBEHAVE)],
            {"mode": "hang", "pidfile": str(pidfile)},
            taskdef={"timeoutSeconds": 5, "responseTimeoutSeconds": 1},
        )
        assert exc.reason == "timed out after 1 s: process group killed"
    finally:
        if pidfile.exists():
            kill_if_running(read_pid(pidfile))


async def test_cancel_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    handler = build([str(MISBEHAVE)])
    try:
        with trio.fail_after(10):
            with trio.move_on_after(0.5) as scope:
                await handler(context({"mode": "hang", "pidfile": str(pidfile)}))
            assert scope.cancelled_caught
        assert gone_soon(read_pid(pidfile))
    finally:
        if pidfile.exists():
            kill_if_running(read_pid(pidfile))


async def test_what_a_finished_program_leaves_behind_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    try:
        out, _ = await run([str(MISBEHAVE)], {"mode": "leave", "pidfile": str(pidfile)})
        assert out == {"left": "a child"}
        assert gone_soon(read_pid(pidfile))
    finally:
        if pidfile.exists():
            kill_if_running(read_pid(pidfile))


async def test_a_program_that_does_not_read_a_big_input_does_not_hang() -> None:
    out, _ = await run([str(EXAMPLES / "checknumber.sh")], {"n": 3, "pad": "z" * 1_000_000})
    assert out["n"] == 3  # type: ignore[index]
    exc, _ = await fails([str(MISBEHAVE)], {"mode": "text", "pad": "z" * 1_000_000})
    assert "stdout is not JSON" in exc.reason


async def test_many_at_once() -> None:
    handler = build([str(EXAMPLES / "checknumber.sh")])
    results: dict[int, object] = {}

    async def one(n: int) -> None:
        results[n] = await handler(context({"n": n}))

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for n in range(40):
                nursery.start_soon(one, n)
    assert results == {n: {"n": n, "even": n % 2 == 0, "attempt": 0} for n in range(40)}


async def test_a_program_gone_since_the_start_fails_its_task(tmp_path: Path) -> None:
    script = tmp_path / "w.sh"
    script.write_text("#!/bin/sh\necho '{}'\n")
    script.chmod(0o755)
    handler = build([str(script)], allow=[str(tmp_path)])
    script.unlink()
    with trio.fail_after(10), pytest.raises(TaskFailed) as info:
        await handler(context({}))
    assert info.value.reason == f"cannot start {script}: No such file or directory"
    assert not info.value.terminal


async def test_max_concurrent_holds_programs_back() -> None:
    handlers = default_executors.build(
        {"a": {"command": [str(MISBEHAVE)]}, "b": {"command": [str(MISBEHAVE)]}},
        base_dir=HERE,
        executors={"command": {"allow": [str(WORKERS)], "max_concurrent": 2}},
    )
    started = time.monotonic()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for i in range(6):  # three rounds of two, across both bindings
                nursery.start_soon(handlers["ab"[i % 2]], context({"mode": "nap"}))
    assert time.monotonic() - started >= 0.9


@given(
    data=st.binary(max_size=3000).map(lambda b: b.replace(b"\r", b"")),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=20),
    max_lines=st.integers(min_value=0, max_value=8),
    max_bytes=st.integers(min_value=16, max_value=64),
)
@settings(max_examples=200, deadline=None)
def test_stderr_lines_do_not_depend_on_how_the_bytes_arrive(
    data: bytes, cuts: list[int], max_lines: int, max_bytes: int
) -> None:
    def logs_for(chunks: list[bytes]) -> list[str]:
        ctx = context({})
        log = _StderrLog(ctx, max_lines, max_bytes)
        for chunk in chunks:
            log.feed(chunk)
        log.close()
        return ctx.logs

    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    chunked = [data[a:b] for a, b in itertools.pairwise(bounds)]
    whole = logs_for([data])
    assert logs_for(chunked) == whole
    assert logs_for([data[i : i + 1] for i in range(len(data))]) == whole
    kept = [line for line in whole if not line.endswith("stderr lines dropped]")]
    assert len(kept) <= max_lines
    assert all(len(line.removesuffix(" [truncated]").encode()) <= 3 * max_bytes for line in kept)


# -- configuration ------------------------------------------------------------


def config_error(bindings: dict[str, object], executors: dict[str, object] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        default_executors.build(
            bindings,
            base_dir=HERE,
            executors={"command": {"allow": [str(WORKERS)]}} if executors is None else executors,
        )
    return str(info.value)


def test_program_outside_the_allow_list_is_refused() -> None:
    msg = config_error({"x": {"command": [str(EXAMPLES / "checknumber.sh")]}})
    assert msg.startswith("bindings.x.command.argv: program ")
    assert "is not allowed: add it or its directory to executors.command.allow" in msg
    msg = config_error({"x": {"command": [str(MISBEHAVE)]}}, {})
    assert "is not allowed" in msg  # nothing is allowed by default


def test_allow_names_files_or_directories_relative_to_the_config() -> None:
    build(["workers/misbehave.sh"], allow=["workers/misbehave.sh"])
    build(["./workers/misbehave.sh"], allow=["workers"])
    # a bare name is looked up on PATH; symlinks (sh -> dash) match either way
    sh = shutil.which("sh")
    assert sh is not None
    build(["sh", "-c", "true"], allow=[os.path.dirname(sh)])
    build(["sh", "-c", "true"], allow=[os.path.realpath(sh)])
    with pytest.raises(ConfigError, match="is not allowed"):
        build(["sh", "-c", "true"], allow=[str(WORKERS)])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("misbehave.sh", "bindings.x.command: expected {argv: [program, args...], ...}"),
        ({"argv": []}, "bindings.x.command.argv: expected a non-empty list of strings"),
        ({"argv": "misbehave.sh"}, "bindings.x.command.argv: expected a non-empty list"),
        ({"argv": [""]}, "bindings.x.command.argv: the program name is empty"),
        (["workers/nope.sh"], "bindings.x.command.argv: program "),
        (
            ["no-such-program-xyz"],
            "bindings.x.command.argv: program 'no-such-program-xyz' not found",
        ),
        (["./workers"], "does not exist or is not a file"),
        (
            {"argv": ["workers/misbehave.sh"], "shell": True},
            "bindings.x.command.shell: unknown key",
        ),
        (
            {"argv": ["workers/misbehave.sh"], "timeout_s": -1},
            "bindings.x.command.timeout_s: expected a number",
        ),
        ({"argv": ["workers/misbehave.sh"], "timeout_s": True}, "timeout_s: expected a number"),
        (
            {"argv": ["workers/misbehave.sh"], "max_output_bytes": 1 << 40},
            "max_output_bytes: expected",
        ),
        (
            {"argv": ["workers/misbehave.sh"], "terminal_exit_codes": [0]},
            "terminal_exit_codes: expected",
        ),
        (
            {"argv": ["workers/misbehave.sh"], "env": ["A"]},
            "bindings.x.command.env: expected a mapping",
        ),
        ({"argv": ["workers/misbehave.sh"], "cwd": "nowhere"}, "bindings.x.command.cwd: "),
    ],
)
def test_malformed_specs_name_their_path(spec: object, expected: str) -> None:
    assert expected in config_error({"x": {"command": spec}})


def test_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "plain.sh"
    script.write_text("#!/bin/sh\necho '{}'\n")
    msg = config_error({"x": {"command": [str(script)]}}, {"command": {"allow": [str(tmp_path)]}})
    assert msg == f"bindings.x.command.argv: program {str(script)!r} is not executable"


def test_settings_and_kinds_are_checked() -> None:
    msg = config_error({"x": {"shell": "echo"}})
    assert msg.startswith("bindings.x.shell: unknown binding kind (known: ")
    assert "command" in msg and "python" in msg
    msg = config_error({"x": {"command": ["a"], "python": "m:f"}})
    assert msg.startswith("bindings.x: expected one kind and its spec")
    msg = config_error({}, {"command": {"allow": [], "deny": []}})
    assert msg == "executors.command.deny: unknown key"
    msg = config_error({"x": {"command": [str(MISBEHAVE)]}}, {"command": {"allow": "workers"}})
    assert msg == "executors.command.allow: expected a list of paths"
    msg = config_error({}, {"command": {"max_concurrent": 0}})
    assert msg == "executors.command.max_concurrent: expected 1..1024, got 0"
    assert config_error({}, {"subprocess": {}}).startswith(
        "executors.subprocess: unknown executor kind (known: "
    )
