"""The `edged` command line.

    edged run [--config FILE] [--data-dir DIR] [--listen HOST:PORT] [--defs DIR]...
    edged validate FILE...
    edged exec FILE [--input JSON] [--defs DIR] [--mock TASK=JSON]... [--config FILE]
    edged version
    edged start|get|list|logs|graph|signal ...   (a running daemon; see edged.client)

Exit codes scripts can rely on: 0 success; 1 the workflow (exec) ended other
than COMPLETED, or the daemon failed at run time; 2 bad input (invalid
definition, bad configuration, bad arguments).  The client commands add 3
server unreachable, 4 not found, 5 refused by the server (edged.client.commands).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from edged.errors import BadInput, ConfigError, EdgedError
from edged.ids import new_execution_id

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
CLIENT_COMMANDS = ("start", "get", "list", "logs", "graph", "signal")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edged", description="Durable Conductor workflows for edge gateways."
    )
    parser.add_argument("--version", action="version", version=version_text())
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument(
        "--config", help="configuration file (YAML or JSON); embedded defaults without it"
    )
    run.add_argument("--data-dir", help="where the journal lives (overrides the config)")
    run.add_argument("--listen", help="HOST:PORT of the HTTP API (overrides the config)")
    run.add_argument(
        "--defs",
        action="append",
        help="definition file or directory (repeatable; overrides the config)",
    )
    run.add_argument(
        "--mqtt",
        metavar="URL",
        help="MQTT broker mqtt://HOST:PORT or mqtts://... (overrides the config's mqtt broker)",
    )

    validate = sub.add_parser(
        "validate", help="check definition files; exit 0 if all are valid, 2 otherwise"
    )
    validate.add_argument("files", nargs="+")
    validate.add_argument("-q", "--quiet", action="store_true", help="print faults only")

    exe = sub.add_parser(
        "exec", help="run the first workflow of FILE once, locally, and print the result"
    )
    exe.add_argument("file")
    exe.add_argument("--input", default="{}", help="workflow input as JSON (or @file.json)")
    exe.add_argument(
        "--defs",
        action="append",
        default=[],
        help="more definitions: sub-workflows, failure workflows, task defs",
    )
    exe.add_argument(
        "--mock",
        action="append",
        default=[],
        metavar="TASK=JSON",
        help="complete work task TASK with this output",
    )
    exe.add_argument("--config", help="configuration file naming handler modules and bindings")
    exe.add_argument(
        "--timeout", type=float, default=None, help="give up after this many seconds (exit 1)"
    )

    sub.add_parser("version", help="print the version and build information")
    from edged.client.commands import add_client_commands

    add_client_commands(sub)  # start, get, list, logs, graph, signal (a running daemon)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            from edged.defs import check_paths

            return check_paths(args.files, sys.stdout, quiet=args.quiet)
        if args.command == "run":
            return _run(args)
        if args.command == "exec":
            return _exec(args)
        if args.command in CLIENT_COMMANDS:
            from edged.client.commands import run_client

            return run_client(args)
        if args.command == "version":
            print(version_text())
            return EXIT_OK
    except ConfigError as exc:
        print(f"edged: config error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BadInput as exc:
        print(f"edged: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except EdgedError as exc:
        print(f"edged: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    return EXIT_BAD_INPUT


def version_text() -> str:
    from edged.build_info import version_text as text

    return text()


def _run(args: argparse.Namespace) -> int:
    import trio

    from edged.config import load_config
    from edged.daemon import run_daemon, setup_logging

    cfg = load_config(args.config, data_dir=args.data_dir, listen=args.listen, defs=args.defs)
    if args.mqtt:
        cfg.adapters.setdefault("mqtt", {})["url"] = args.mqtt
    setup_logging(cfg.log_format, cfg.log_level)
    try:
        trio.run(run_daemon, cfg)
    except BaseExceptionGroup as group:
        # a start-up fault (corrupt journal, ...) raised inside the root nursery arrives
        # wrapped: report it as its one line, not as a traceback
        raise _first_edged_error(group) from None
    return EXIT_OK


def _first_edged_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            found = _first_edged_error(exc)
            if found is not exc:
                return found
        elif isinstance(exc, EdgedError):
            return exc
    return group


def _json_arg(text: str, what: str) -> Any:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise BadInput(f"{what}: cannot read {text[1:]}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadInput(f"{what}: not valid JSON: {exc}") from None


def _exec(args: argparse.Namespace) -> int:
    import trio

    from edged.config import Config, load_config
    from edged.defs import DefinitionError, load_paths

    workflow_input = _json_arg(args.input, "--input")
    if not isinstance(workflow_input, dict):
        raise BadInput("--input must be a JSON object")
    mocks: dict[str, dict[str, Any]] = {}
    for item in args.mock:
        name, sep, text = item.partition("=")
        if not sep or not name:
            raise BadInput(f"--mock {item!r}: expected TASK=JSON")
        output = _json_arg(text, f"--mock {name}")
        mocks[name] = output if isinstance(output, dict) else {"result": output}
    main_defs = load_paths([args.file])
    if not main_defs.workflows:
        raise BadInput(f"{args.file}: no workflow definition in it")
    extra = load_paths(args.defs) if args.defs else None
    with tempfile.TemporaryDirectory(prefix="edged-exec-") as tmp:
        cfg = load_config(args.config, data_dir=tmp) if args.config else Config(data_dir=Path(tmp))
        cfg.data_dir = Path(tmp)
        try:
            result = trio.run(
                _exec_async, cfg, main_defs, extra, workflow_input, mocks, args.timeout
            )
        except DefinitionError:
            raise
    print(json.dumps(result, indent=2, sort_keys=False))
    return EXIT_OK if result.get("status") == "COMPLETED" else EXIT_FAILED


async def _exec_async(
    cfg: Any,
    main_defs: Any,
    extra: Any,
    workflow_input: dict[str, Any],
    mocks: dict[str, Any],
    give_up_s: float | None,
) -> dict[str, Any]:
    import trio

    from edged.core.views import workflow_json
    from edged.daemon import build_engine, import_handlers, install_definitions, journal_settings
    from edged.journal import open_journal
    from edged.runtime.engine import Op, new_workflow
    from edged.runtime.registry import DefinitionRegistry

    import_handlers(cfg)
    registry = DefinitionRegistry()
    if extra is not None:
        install_definitions(registry, extra)
    install_definitions(registry, main_defs)
    first = DefinitionRegistry.check_workflow(main_defs.workflows[0])
    async with open_journal(cfg.journal_path, settings=journal_settings(cfg)) as journal:
        engine = build_engine(journal, registry, cfg, mocks=mocks, strict_bindings=True)
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            wf = new_workflow(first, workflow_id=new_execution_id(), input=workflow_input)
            await engine.submit(Op(wf.workflow_id, create=wf))
            with trio.move_on_after(give_up_s if give_up_s is not None else float("inf")) as scope:
                done = await engine.wait_for_end(wf.workflow_id)
            if scope.cancelled_caught:
                done = await engine.workflow(wf.workflow_id)
                print(
                    f"edged: gave up after {give_up_s} s; the workflow is still {done.status.value}",
                    file=sys.stderr,
                )
            nursery.cancel_scope.cancel()
    return workflow_json(done)


if __name__ == "__main__":
    sys.exit(main())
