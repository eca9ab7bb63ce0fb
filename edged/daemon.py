"""`edged run`: the daemon's root nursery.

Start-up order, so that a bad start leaves no trace: configuration, handler
modules and definition files are checked first; only then is the data
directory created and the journal opened (integrity-checked and migrated);
then recovery resumes every unfinished execution; then the API listens and
READY=1 goes to systemd.  SIGTERM/SIGINT stop new starts, give in-flight
in-process work a grace period, and cancel the root nursery; every journal
commit is atomic, so whatever was not committed simply runs again on the
next start.
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import trio

from edged import __version__
from edged.api.conductor import conductor_routes
from edged.api.http import App, HttpLimits, serve_http
from edged.api.metrics_api import add_metrics_routes, gate_while_starting
from edged.api.streams import add_stream_routes
from edged.api.tasks_api import add_task_routes, is_poll
from edged.config import Config, check_data_dir
from edged.defs import Definitions, load_paths
from edged.errors import ConfigError
from edged.handlers import Handler, HandlerRegistry, default_registry
from edged.journal import JournalSettings, open_journal
from edged.runtime.bindings import build_bindings
from edged.runtime.dispatch import Dispatcher
from edged.runtime.engine import Engine, EngineSettings
from edged.runtime.registry import DefinitionRegistry
from edged.runtime.service import EngineService
from edged.runtime.sinks import ConductorSink
from edged.runtime.telemetry import Telemetry
from edged.runtime.timers import now_ms
from edged.runtime.worker_service import WorkerService
from edged.sd_notify import run_watchdog, sd_notify

log = logging.getLogger("edged")


_LOGFMT_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _logfmt_value(value: object) -> str:
    """A bare value when safe, else quoted with \\ \" \\n and \\xNN escapes (one line, always)."""
    text = str(value)
    if text and not any(c in text for c in ' "=\\') and text.isprintable():
        return text
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + _LOGFMT_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text) + '"'


class _LogfmtFormatter(logging.Formatter):
    """`ts=... level=... logger=... msg="..." key=value...`; `extra={"fields": {...}}` adds keys."""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"ts={self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} level={record.levelname.lower()}"
            f" logger={record.name} msg={_logfmt_value(record.getMessage())}"
        )
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line += "".join(f" {k}={_logfmt_value(v)}" for k, v in fields.items())
        if record.exc_info:
            line += " exc=" + _logfmt_value(self.formatException(record.exc_info))
        return line


class _JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra={"fields": {...}}` adds keys beside ts/level/logger/msg."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                doc.setdefault(str(key), value)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup_logging(fmt: str = "logfmt", level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def import_handlers(cfg: Config, registry: HandlerRegistry = default_registry) -> None:
    for path in cfg.python_paths:
        if path not in sys.path:
            sys.path.insert(0, path)
    for name in cfg.python_modules:
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise ConfigError(
                f"python.modules: cannot import {name}: {type(exc).__name__}: {exc}"
            ) from exc


def load_definitions(cfg: Config) -> Definitions:
    """Every file under `defs`, validated; raises DefinitionError with every fault."""
    defs = load_paths([str(p) for p in cfg.defs])
    for doc in defs.workflows:
        DefinitionRegistry.check_workflow(doc)
    for doc in defs.taskdefs:
        DefinitionRegistry.check_taskdef(doc)
    return defs


def install_definitions(registry: DefinitionRegistry, defs: Definitions) -> None:
    for doc in defs.workflows:
        registry.put_workflow(DefinitionRegistry.check_workflow(doc))
    for doc in defs.taskdefs:
        registry.put_taskdef(DefinitionRegistry.check_taskdef(doc))
    registry.event_handlers.extend(defs.event_handlers)


def build_engine(
    journal: Any,
    registry: DefinitionRegistry,
    cfg: Config,
    *,
    mocks: dict[str, dict[str, Any]] | None = None,
    strict_bindings: bool = False,
    handler_registry: HandlerRegistry = default_registry,
    bindings: dict[str, Handler] | None = None,
) -> Engine:
    if bindings is None:
        bindings = build_bindings(cfg)

    def make_dispatcher(report: Callable[..., Any]) -> Dispatcher:
        return Dispatcher(
            report,
            registry=handler_registry,
            bindings=bindings,
            max_threads=cfg.max_threads,
            strict_bindings=strict_bindings,
            mocks=mocks,
        )

    env = {name: os.environ[name] for name in cfg.env_allowlist if name in os.environ}
    engine = Engine(journal, registry, make_dispatcher, settings=EngineSettings(env=env))
    engine.sinks["conductor"] = ConductorSink(engine)
    return engine


def configure_adapters(cfg: Config, defs: Definitions) -> list[Any]:
    """The adapters whose config section is present, configured (no I/O yet).

    An adapter module exposes `configure(section, cfg, defs)` returning an object with
    `attach(engine)` (register sinks/task types; called before recovery) and
    `async run(task_status=...)` (started in the daemon's nursery after recovery).
    """
    from edged.adapters_registry import load_adapter

    out = []
    for name, section in cfg.adapters.items():
        try:
            module = load_adapter(name)
        except ImportError as exc:
            raise ConfigError(f"{name}: adapter not available: {exc}") from exc
        out.append(module.configure(section, cfg, defs))
    return out


def tune_gc() -> None:
    """Cheaper garbage collection for a long-running engine; call once, after start-up.

    With CPython's defaults (a young collection every 700 container
    allocations) the collector took ~9% of the engine's CPU at full load
    (measured with gc.callbacks in benchmarks/engine.py), most of it
    re-scanning the ~50,000 long-lived objects of imports and definitions.
    `gc.freeze()` moves those out of the collector's sight and a higher
    young-generation threshold makes collections rarer: ~1.5%.  Only
    garbage with reference cycles waits longer (a few MB at most).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def journal_settings(cfg: Config) -> JournalSettings:
    return JournalSettings(
        retention_max_age_ms=cfg.retention_max_age_s * 1000,
        retention_max_count=cfg.retention_max_count,
        max_history_per_execution=cfg.max_history_per_execution,
        max_size_bytes=cfg.max_size_bytes,
    )


async def _retention(engine: Engine, interval_s: float = 60.0) -> None:
    while True:
        await trio.sleep(interval_s)
        try:
            removed = await engine.journal.prune(now_ms())
        except Exception as exc:  # retention must never take the daemon down
            log.warning("retention: %s", exc)
            continue
        if removed:
            log.info("retention removed %d finished executions", removed)


async def run_daemon(
    cfg: Config,
    *,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    grace_s: float | None = None,
) -> None:
    started = time.perf_counter()
    if grace_s is None:
        grace_s = float(cfg.shutdown_grace_s)
    import_handlers(cfg)
    bindings = build_bindings(cfg)  # kinds checked, programs allowed: before the journal
    file_defs = load_definitions(cfg)
    adapters = configure_adapters(cfg, file_defs)  # config faults stop us before the journal
    check_data_dir(cfg)
    # a port already taken must stop the start before the journal is touched
    probe = socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((cfg.host, cfg.port))
    except OSError as exc:
        raise ConfigError(f"listen {cfg.host}:{cfg.port}: {exc.strerror or exc}") from None
    finally:
        probe.close()
    # the root nursery: the watchdog pings from the start (recovery may be long),
    # and signals are caught from the start so SIGTERM during recovery is clean too
    async with trio.open_nursery() as root:
        await root.start(run_watchdog)
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            sd_notify(f"STATUS=opening journal {cfg.journal_path}")
            async with open_journal(cfg.journal_path, settings=journal_settings(cfg)) as journal:
                registry = DefinitionRegistry()
                for _name, _version, doc in await journal.load_workflow_defs():
                    registry.put_workflow(doc)
                for _name, doc in await journal.load_task_defs():
                    registry.put_taskdef(doc)
                install_definitions(registry, file_defs)
                engine = build_engine(journal, registry, cfg, bindings=bindings)
                service = EngineService(engine)
                router = conductor_routes(service)
                telemetry = Telemetry(engine)  # /metrics, probes, execution-end logs
                add_metrics_routes(router, telemetry)
                add_stream_routes(router, engine, **cfg.streams)  # SSE: /api/events...
                add_task_routes(router, service, WorkerService(engine))  # worker protocol
                app = App(gate_while_starting(router, telemetry), auth_token=cfg.auth_token)
                app.watch_peer = is_poll  # a long poll ends with its client
                telemetry.http_stats = app.statistics
                engine.listeners.append(telemetry.on_commit)
                for adapter in adapters:
                    adapter.attach(engine)  # sinks and task types, before recovery replays
                async with trio.open_nursery() as nursery:
                    # listening before recovery: probes see "live, not ready" (503) meanwhile
                    serve = partial(serve_http, limits=HttpLimits(**cfg.api_limits))
                    host, port = await nursery.start(serve, app, cfg.host, cfg.port)
                    sd_notify("STATUS=recovering unfinished executions")
                    await nursery.start(engine.run)
                    for adapter in adapters:
                        await nursery.start(adapter.run)
                    sd_notify(f"STATUS=recovered {len(engine.live)} unfinished executions")
                    tune_gc()
                    telemetry.phase = "ready"
                    nursery.start_soon(_retention, engine)
                    log.info(
                        "edged %s ready on http://%s:%d (data %s, %d definitions, %d unfinished executions, %.0f ms)",
                        __version__,
                        host,
                        port,
                        cfg.data_dir,
                        len(registry.all_workflows()),
                        len(engine.live),
                        (time.perf_counter() - started) * 1000,
                        extra={
                            "fields": {
                                "event": "ready",
                                "version": __version__,
                                "listen": f"{host}:{port}",
                                "unfinished": len(engine.live),
                                "startup_ms": round((time.perf_counter() - started) * 1000),
                            }
                        },
                    )
                    sd_notify(f"READY=1\nSTATUS=serving on {host}:{port}")
                    task_status.started((host, port))
                    async for signum in signals:
                        name = signal.Signals(signum).name
                        log.info(
                            "received %s; stopping",
                            name,
                            extra={"fields": {"event": "stopping", "signal": name}},
                        )
                        break
                    sd_notify(
                        f"STOPPING=1\nSTATUS=stopping: up to {grace_s:g} s for work in flight"
                    )
                    engine.accepting = False
                    telemetry.phase = "stopping"
                    with trio.move_on_after(grace_s):
                        # let running handlers finish and their results reach the journal
                        while engine.dispatcher.in_flight() or engine.busy():  # noqa: ASYNC110 - polls two sources
                            await trio.sleep(0.02)
                    nursery.cancel_scope.cancel()
        root.cancel_scope.cancel()
    log.info("edged stopped")
