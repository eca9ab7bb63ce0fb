"""The client subcommands of `edged`: start, get, list, logs, graph, signal.

They talk to a running daemon over its HTTP API (stdlib only, see
`edged.client.transport`).  Every command takes ``--server URL`` (default
$EDGED_URL, else http://127.0.0.1:8080), ``--token`` (default $EDGED_TOKEN)
and ``--json`` (machine output on stdout; human text otherwise).

Exit codes (`EXIT_*`), the same for every command:

- 0: done (for ``start --wait`` and ``logs -f``: the execution COMPLETED);
- 1: the execution ended other than COMPLETED (``--wait``, ``logs -f``), or
  ``--wait`` gave up after ``--timeout``;
- 2: usage or bad input (bad arguments, malformed JSON, the server said 400);
- 3: the server is unreachable (refused, reset, or no answer in time);
- 4: not found (no such execution or workflow definition);
- 5: the server refused or failed otherwise (401 wrong token, 409, 5xx).

Following a stream (``logs -f``, ``start --wait``) survives a cut-off, a
dropped connection and a daemon restart of up to `_OUTAGE_S`: the command
reconnects with the last event id it saw (``Last-Event-ID``), so no event is
printed twice or lost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from edged.client import graph as graphs
from edged.client.render import Progress, event_lines, execution_text, summary_table
from edged.client.transport import ApiError, Client, SseEvent, Unreachable, path_quote

EXIT_OK, EXIT_NOT_COMPLETED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_UNREACHABLE, EXIT_NOT_FOUND, EXIT_SERVER = 3, 4, 5
DEFAULT_SERVER = "http://127.0.0.1:8080"
COMMANDS = ("start", "get", "list", "logs", "graph", "signal")
_OUTAGE_S = 30.0
_TERMINAL = ("COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED")
_TASK_STATUSES = ("COMPLETED", "FAILED", "FAILED_WITH_TERMINAL_ERROR", "IN_PROGRESS")


class UsageError(Exception):
    """Bad arguments or input files (exit 2)."""


EXIT_CODES_HELP = """exit codes: 0 done (--wait, logs -f: COMPLETED), 1 ended otherwise or --wait
gave up, 2 bad input, 3 daemon unreachable, 4 not found, 5 refused (401, 409, 5xx)"""


def add_client_commands(sub: Any) -> None:
    """Add the client subcommands to `edged`'s subparsers."""
    raw = argparse.RawDescriptionHelpFormatter
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--server",
        default=os.environ.get("EDGED_URL") or DEFAULT_SERVER,
        help="the daemon's URL (default $EDGED_URL or %(default)s)",
    )
    common.add_argument(
        "--token", default=os.environ.get("EDGED_TOKEN"), help="bearer token ($EDGED_TOKEN)"
    )
    common.add_argument("--json", action="store_true", help="JSON on stdout, for scripts")
    common.add_argument(
        "--http-timeout", type=float, default=10.0, help="seconds per request (default 10)"
    )

    start = sub.add_parser(
        "start",
        parents=[common],
        epilog=EXIT_CODES_HELP,
        formatter_class=raw,
        help="start an execution; prints its id",
    )
    start.add_argument("name")
    start.add_argument("--input", default="{}", help="input as a JSON object (or @file.json)")
    start.add_argument("--version", type=int, default=None)
    start.add_argument("--correlation-id", default=None)
    start.add_argument(
        "--wait",
        action="store_true",
        help="wait for the end (progress on stderr); exit 1 unless COMPLETED",
    )
    start.add_argument("--timeout", type=float, default=None, help="with --wait: give up after S s")

    get = sub.add_parser(
        "get",
        parents=[common],
        epilog=EXIT_CODES_HELP,
        formatter_class=raw,
        help="show one execution and its tasks",
    )
    get.add_argument("id")

    lst = sub.add_parser(
        "list",
        parents=[common],
        epilog=EXIT_CODES_HELP,
        formatter_class=raw,
        help="list executions, newest first",
    )
    lst.add_argument(
        "--status", action="append", default=[], help="RUNNING, FAILED... (repeatable)"
    )
    lst.add_argument("--name", action="append", default=[], help="workflow name (repeatable)")
    lst.add_argument("--limit", type=int, default=50)

    logs = sub.add_parser(
        "logs",
        parents=[common],
        epilog=EXIT_CODES_HELP,
        formatter_class=raw,
        help="print an execution's events and task logs",
    )
    logs.add_argument("id")
    logs.add_argument(
        "-f", "--follow", action="store_true", help="follow until it ends; exit 1 unless COMPLETED"
    )

    graph = sub.add_parser(
        "graph",
        parents=[common],
        epilog=EXIT_CODES_HELP,
        formatter_class=raw,
        help="render a definition as dot or mermaid",
    )
    graph.add_argument(
        "file", nargs="?", help="definition file (default: the --execution's own definition)"
    )
    graph.add_argument("--format", choices=("dot", "mermaid"), default="dot")
    graph.add_argument("--name", default=None, help="which workflow of FILE (default: the first)")
    graph.add_argument(
        "--execution", default=None, help="colour tasks by this execution's statuses"
    )

    signal = sub.add_parser(
        "signal",
        parents=[common],
        epilog=EXIT_CODES_HELP,
        formatter_class=raw,
        help="complete a waiting task (WAIT, HUMAN...)",
    )
    signal.add_argument("id")
    signal.add_argument("ref", help="the task's reference name")
    signal.add_argument(
        "--output", default="{}", help="task output as a JSON object (or @file.json)"
    )
    signal.add_argument("--status", default="COMPLETED", choices=_TASK_STATUSES)


def run_client(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    """Run one client subcommand; returns the exit code."""
    try:
        client = Client(args.server, token=args.token, timeout_s=args.http_timeout)
        command: Callable[[Client, argparse.Namespace, TextIO, TextIO], int] = _COMMANDS[
            args.command
        ]
        return command(client, args, out, err)
    except (UsageError, ValueError) as exc:
        print(f"edged: {exc}", file=err)
        return EXIT_BAD_INPUT
    except Unreachable as exc:
        print(f"edged: {exc}", file=err)
        return EXIT_UNREACHABLE
    except ApiError as exc:
        print(f"edged: {exc}", file=err)
        if exc.status == 404:
            return EXIT_NOT_FOUND
        return EXIT_BAD_INPUT if exc.status == 400 else EXIT_SERVER


def _json_object(text: str, what: str) -> dict[str, Any]:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{what}: cannot read {text[1:]}: {exc.strerror}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{what}: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be a JSON object")
    return value


def _print_json(value: Any, out: TextIO) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False), file=out)


# -- start / get / list / signal -------------------------------------------------


def _start(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    request: dict[str, Any] = {"name": args.name, "input": _json_object(args.input, "--input")}
    if args.version is not None:
        request["version"] = args.version
    if args.correlation_id is not None:
        request["correlationId"] = args.correlation_id
    workflow_id = str(client.call("POST", "/api/workflow", body=request)).strip()
    if not args.wait:
        print(json.dumps({"workflowId": workflow_id}) if args.json else workflow_id, file=out)
        return EXIT_OK
    progress = Progress(workflow_id)
    show = _progress_printer(err)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    try:
        try:
            for doc in _follow(client, workflow_id, deadline):
                progress.update(doc)
                show(progress.line())
        except ApiError as exc:
            if exc.status != 503:
                raise
            _poll_until_end(client, workflow_id, deadline, progress, show)  # streams are full
    except TimeoutError:
        show(None)
        wf = client.call("GET", f"/api/workflow/{path_quote(workflow_id)}")
        print(
            f"edged: gave up after {args.timeout:g} s; {workflow_id} is still {wf.get('status')}",
            file=err,
        )
        if args.json:
            _print_json(wf, out)
        return EXIT_NOT_COMPLETED
    show(None)
    wf = client.call(
        "GET", f"/api/workflow/{path_quote(workflow_id)}", query={"includeTasks": "true"}
    )
    if args.json:
        _print_json(wf, out)
    else:
        print(execution_text(wf), file=out)
    return EXIT_OK if wf.get("status") == "COMPLETED" else EXIT_NOT_COMPLETED


def _poll_until_end(
    client: Client,
    workflow_id: str,
    deadline: float | None,
    progress: Progress,
    show: Callable[[str | None], None],
) -> None:
    """Fallback of --wait when the daemon refuses another stream: poll every 0.5 s."""
    path = f"/api/workflow/{path_quote(workflow_id)}"
    while True:
        wf = client.call("GET", path, query={"includeTasks": "true"})
        tasks = [t for t in wf.get("tasks") or [] if isinstance(t, dict)]
        progress.status = str(wf.get("status"))
        progress.scheduled = {str(t.get("taskId")) for t in tasks}
        progress.done = {
            str(t.get("taskId"))
            for t in tasks
            if t.get("status") not in ("SCHEDULED", "IN_PROGRESS")
        }
        show(progress.line())
        if progress.status in _TERMINAL:
            return
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError
        time.sleep(0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic())))


def _progress_printer(err: TextIO) -> Callable[[str | None], None]:
    """On a terminal one line rewritten in place; otherwise a line per change."""
    tty = err.isatty()
    shown = [""]

    def show(line: str | None) -> None:
        if line is None:
            if tty and shown[0]:
                print("\r\033[K", end="", file=err, flush=True)
            return
        if tty:
            print(f"\r\033[K{line}", end="", file=err, flush=True)
        elif line.split("  tasks")[-1] != shown[0].split("  tasks")[-1]:
            print(line, file=err, flush=True)
        shown[0] = line

    return show


def _get(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    wf = client.call("GET", f"/api/workflow/{path_quote(args.id)}", query={"includeTasks": "true"})
    if args.json:
        _print_json(wf, out)
    else:
        print(execution_text(wf), file=out)
    return EXIT_OK


def search_query(names: list[str], statuses: list[str]) -> str:
    """Conductor's query language: ``workflowType IN (a,b) AND status IN (S)``."""
    parts = []
    for field, values in (("workflowType", names), ("status", statuses)):
        for value in values:
            if not value or any(c in value for c in "(),'\" "):
                raise UsageError(
                    f"--{'name' if field == 'workflowType' else 'status'} {value!r}: not a plain name"
                )
        if values:
            parts.append(f"{field} IN ({','.join(values)})")
    return " AND ".join(parts)


def _list(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if not 1 <= args.limit <= 1000:
        raise UsageError("--limit must be between 1 and 1000")
    statuses = [s.upper() for s in args.status]
    query = {"query": search_query(args.name, statuses) or None, "size": args.limit, "start": 0}
    query["sort"] = "startTime:DESC"
    found = client.call("GET", "/api/workflow/search", query=query)
    if not isinstance(found, dict):
        raise ApiError(502, "the server's search reply is not a SearchResult")
    results = [r for r in found.get("results") or [] if isinstance(r, dict)]
    if args.json:
        _print_json(found, out)
    else:
        print(summary_table(results, found.get("totalHits")), file=out)
    return EXIT_OK


def _signal(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    output = _json_object(args.output, "--output")
    path = f"/api/tasks/{path_quote(args.id)}/{path_quote(args.ref)}/{args.status}"
    task_id = client.call("POST", path, body=output)
    task_id = str(task_id).strip() if task_id else None
    if args.json:
        print(json.dumps({"workflowId": args.id, "ref": args.ref, "taskId": task_id}), file=out)
    else:
        print(task_id or f"{args.ref}: updated", file=out)
    return EXIT_OK


# -- logs ----------------------------------------------------------------------


def _follow(
    client: Client, workflow_id: str, deadline: float | None = None, *, follow: bool = True
) -> Iterator[dict[str, Any]]:
    """Event documents of one execution until its stream ends.

    Reconnects with the last id after a cut-off at once, and after a lost
    connection (or a 503 while the daemon restarts) with backoff for up to
    `_OUTAGE_S`; then raises Unreachable.  Raises TimeoutError at `deadline`
    (monotonic).  A first connection that fails raises at once.
    """
    path = f"/api/workflow/{path_quote(workflow_id)}/events"
    last_id: str | None = None
    connected = False
    outage_since: float | None = None
    attempt = 0
    while True:
        read_timeout = 60.0
        if deadline is not None:
            read_timeout = max(0.05, min(read_timeout, deadline - time.monotonic()))
        try:
            for event in client.events(
                path,
                last_id=last_id,
                query=None if follow else {"follow": "false"},
                read_timeout_s=read_timeout,
            ):
                connected, outage_since, attempt = True, None, 0
                if event.event == "end":
                    return
                if event.event == "cutoff":
                    break  # too slow: resume from the journal after last_id
                doc = _event_doc(event)
                if doc is not None:
                    last_id = event.id or last_id
                    yield doc
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError
            else:
                raise Unreachable(f"{client.server}: the event stream ended early")
            continue
        except (Unreachable, ApiError) as exc:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError from None
            retryable = isinstance(exc, Unreachable) or exc.status == 503
            if not connected or not retryable:
                raise
            now = time.monotonic()
            outage_since = outage_since or now
            if now - outage_since > _OUTAGE_S:
                raise Unreachable(f"{exc} (retried for {_OUTAGE_S:g} s)") from None
        attempt += 1
        time.sleep(min(2.0, 0.05 * 2**attempt))


def _event_doc(event: SseEvent) -> dict[str, Any] | None:
    try:
        doc = json.loads(event.data)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _logs(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    status = None
    for doc in _follow(client, args.id, follow=args.follow):
        if doc.get("kind") == "WorkflowStatusChanged":
            status = (doc.get("data") or {}).get("status")
        if args.json:
            print(json.dumps(doc, ensure_ascii=False), file=out, flush=True)
        else:
            for line in event_lines(doc):
                print(line, file=out, flush=True)
    if not args.follow:
        return EXIT_OK
    if status not in _TERMINAL:  # the end came from an earlier replay: ask
        wf = client.call(
            "GET", f"/api/workflow/{path_quote(args.id)}", query={"includeTasks": "false"}
        )
        status = wf.get("status")
    return EXIT_OK if status == "COMPLETED" else EXIT_NOT_COMPLETED


# -- graph ---------------------------------------------------------------------


def _graph(client: Client, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    execution = None
    if args.execution:
        execution = client.call(
            "GET", f"/api/workflow/{path_quote(args.execution)}", query={"includeTasks": "true"}
        )
    if args.file is not None:
        definition = _definition_from_file(args.file, args.name)
    elif isinstance(execution, dict) and isinstance(execution.get("workflowDefinition"), dict):
        definition = execution["workflowDefinition"]  # the version the execution runs
    else:
        raise UsageError("graph needs FILE, or --execution ID of an execution with its definition")
    statuses = graphs.statuses_of(execution) if isinstance(execution, dict) else None
    built = graphs.build_graph(definition, statuses)
    text = graphs.render_dot(built) if args.format == "dot" else graphs.render_mermaid(built)
    if args.json:
        print(json.dumps({"format": args.format, "text": text}), file=out)
    else:
        out.write(text)
    return EXIT_OK


def _definition_from_file(path: str, name: str | None) -> dict[str, Any]:
    from edged.defs import DefinitionError, load_paths

    try:
        defs = load_paths([path])
    except DefinitionError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from None
    workflows = [w for w in defs.workflows if name is None or w.get("name") == name]
    if not workflows:
        which = f"workflow {name!r}" if name else "workflow definition"
        raise UsageError(f"{path}: no {which} in it")
    found: dict[str, Any] = workflows[0]
    return found


_COMMANDS: dict[str, Callable[[Client, argparse.Namespace, TextIO, TextIO], int]] = {
    "start": _start,
    "get": _get,
    "list": _list,
    "logs": _logs,
    "graph": _graph,
    "signal": _signal,
}
