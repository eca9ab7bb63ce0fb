"""Daemon configuration: a YAML/JSON file, command-line overrides, embedded defaults.

Every key is checked before the daemon touches its journal: an unknown key,
a wrong type or an unusable value stops the start with one line naming the
problem (`ConfigError`).  With no file at all the embedded defaults apply:
data under the user's state directory (systemd's $STATE_DIRECTORY when set),
the API on 127.0.0.1 only.

Example (every key optional)::

    data_dir: /var/lib/edged
    listen: 127.0.0.1:8080
    auth_token: "..."             # required when listen is not loopback
    defs: [/etc/edged/workflows]  # definitions loaded (and validated) at start
    python:
      paths: [/opt/edged/handlers]    # added to sys.path
      modules: [myhandlers]           # imported; their @task handlers register
      max_threads: 8
    bindings:                         # task name -> {KIND: SPEC}, one kind each
      checknumber: {python: "myhandlers:check"}
      resize:
        command:                      # a subprocess: JSON in on stdin, JSON out on stdout
          argv: [workers/resize.sh, --fast]   # no shell; argv[0] must be allowed below
          timeout_s: 30               # else the TaskDef's timeoutSeconds/responseTimeoutSeconds
          terminal_exit_codes: [2]    # FAILED_WITH_TERMINAL_ERROR; other non-zero: FAILED
          max_output_bytes: 1048576   # stdout beyond this fails the task, kills the process
          env: {MODE: fast}
    executors:
      command:
        allow: [/opt/edged/workers, /usr/bin/node]  # programs (files or directories) that may run
        max_concurrent: 8             # programs running at once; more tasks wait for a slot
    journal:
      retention_max_age_s: 604800
      retention_max_count: 10000
      max_size_bytes: 268435456      # refuse new work beyond this (SD cards fill up)
    expressions:
      env_allowlist: [HOSTNAME]       # ${NAME} may read these environment variables
    log_format: logfmt                # or json
    shutdown_grace_s: 10              # SIGTERM: time for work in flight (< TimeoutStopSec)
    streams:                          # live event streams (SSE)
      buffer_events: 1024             # per client; a client further behind is cut off
      max_clients: 64                 # 503 beyond
      keepalive_s: 15
    api:                              # HTTP limits: 413 / 431 / 503 beyond them
      max_body_bytes: 1048576
      max_header_bytes: 16384
      max_connections: 128
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edged.adapters_registry import BUILTIN_ADAPTERS
from edged.errors import ConfigError

DEFAULT_PORT = 8080
# A bearer token guarding a non-loopback listener is the only thing between the
# LAN and the API: refuse ones short enough to guess.
MIN_REMOTE_TOKEN_CHARS = 16

_KEYS = {
    "data_dir": str,
    "listen": str,
    "auth_token": str,
    "defs": list,
    "python": dict,
    "bindings": dict,
    "executors": dict,
    "journal": dict,
    "expressions": dict,
    "log_format": str,
    "log_level": str,
    "shutdown_grace_s": int,
    "api": dict,
    "streams": dict,
}
# one top-level section per built-in adapter (`mqtt:`...): kept raw, the adapter checks it
_KEYS.update({name: dict for name in BUILTIN_ADAPTERS})
_PYTHON_KEYS = {"paths": list, "modules": list, "max_threads": int}
_JOURNAL_KEYS = {
    "retention_max_age_s": int,
    "retention_max_count": int,
    "max_history_per_execution": int,
    "max_size_bytes": int,
}
_EXPR_KEYS = {"env_allowlist": list}
# live event streams (edged.api.streams): per-client buffer, clients, keep-alive
_STREAM_RANGES = {
    "buffer_events": (1, 1_000_000),
    "max_clients": (1, 10_000),
    "keepalive_s": (1, 3600),
}
_API_KEYS = {"max_body_bytes": int, "max_header_bytes": int, "max_connections": int}
# bounds of the api section: below the minimum not even Conductor's own requests fit
_API_RANGES = {
    "max_body_bytes": (1024, 256 * 1024 * 1024),
    "max_header_bytes": (1024, 1024 * 1024),
    "max_connections": (1, 65_536),
}


@dataclass(slots=True)
class Config:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    auth_token: str | None = None
    defs: list[Path] = field(default_factory=list)
    python_paths: list[str] = field(default_factory=list)
    python_modules: list[str] = field(default_factory=list)
    max_threads: int = 8
    # task name -> {kind: spec}; built and checked by edged.runtime.bindings
    bindings: dict[str, dict[str, Any]] = field(default_factory=dict)
    executors: dict[str, Any] = field(default_factory=dict)  # kind -> settings
    base_dir: Path = field(default_factory=Path.cwd)  # relative paths in bindings resolve here
    retention_max_age_s: int = 7 * 24 * 3600
    retention_max_count: int = 10_000
    max_history_per_execution: int = 10_000
    max_size_bytes: int | None = None  # journal file cap; beyond it new work is refused
    env_allowlist: list[str] = field(default_factory=list)
    log_format: str = "logfmt"
    log_level: str = "INFO"
    shutdown_grace_s: int = 10  # systemd/edged.service gives TimeoutStopSec=30
    # HTTP limits (api: section); None keeps edged.api.wire.HttpLimits' default
    api_limits: dict[str, int] = field(default_factory=dict)
    # live streams (streams: section): buffer_events, max_clients, keepalive_s
    streams: dict[str, int] = field(default_factory=dict)
    source: str = "embedded defaults"
    # adapter name -> its raw config section; present = the daemon starts that adapter
    adapters: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def journal_path(self) -> Path:
        return self.data_dir / "journal.db"


def default_data_dir() -> Path:
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return Path(state.split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "state"
    return base / "edged"


def _check(section: str, raw: dict[str, Any], spec: Mapping[str, type]) -> None:
    for key, value in raw.items():
        if key not in spec:
            import difflib

            near = difflib.get_close_matches(str(key), list(spec), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ConfigError(f"{section}{key}: unknown key{hint}")
        want = spec[key]
        if value is not None and (
            not isinstance(value, want) or (want is int and isinstance(value, bool))
        ):
            raise ConfigError(
                f"{section}{key}: expected {want.__name__}, got {type(value).__name__}"
            )


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, str(DEFAULT_PORT)
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"listen: {text!r} is not HOST:PORT") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"listen: port {port} is out of range")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(
    path: str | None = None,
    *,
    data_dir: str | None = None,
    listen: str | None = None,
    defs: list[str] | None = None,
) -> Config:
    raw: dict[str, Any] = {}
    source = "embedded defaults"
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"config {path}: cannot read: {exc.strerror or exc}") from None
        try:
            loaded = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise ConfigError(
                f"config {path}: not valid YAML/JSON: {str(exc).splitlines()[0]}"
            ) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {path}: expected a mapping at the top level")
        raw = loaded
        source = path
    _check("", raw, _KEYS)
    python = raw.get("python") or {}
    _check("python.", python, _PYTHON_KEYS)
    journal = raw.get("journal") or {}
    _check("journal.", journal, _JOURNAL_KEYS)
    expressions = raw.get("expressions") or {}
    _check("expressions.", expressions, _EXPR_KEYS)
    streams = raw.get("streams") or {}
    _check("streams.", streams, dict.fromkeys(_STREAM_RANGES, int))
    for key, value in streams.items():
        low, high = _STREAM_RANGES[key]
        if value is not None and not low <= value <= high:
            raise ConfigError(f"streams.{key}: {value} is out of range {low}..{high}")
    api = raw.get("api") or {}
    _check("api.", api, _API_KEYS)
    for key, value in api.items():
        low, high = _API_RANGES[key]
        if value is not None and not low <= value <= high:
            raise ConfigError(f"api.{key}: {value} is out of range {low}..{high}")
    base = Path(path).parent if path else Path.cwd()

    def rel(p: str) -> Path:
        q = Path(os.path.expanduser(p))
        return q if q.is_absolute() else base / q

    cfg = Config(
        data_dir=rel(raw["data_dir"]) if raw.get("data_dir") else default_data_dir(), source=source
    )
    host, port = parse_listen(listen or raw.get("listen") or f"127.0.0.1:{DEFAULT_PORT}")
    cfg.host, cfg.port = host, port
    cfg.auth_token = raw.get("auth_token")
    if data_dir:
        cfg.data_dir = Path(data_dir)
    cfg.defs = [Path(d) for d in defs] if defs else [rel(str(d)) for d in raw.get("defs") or []]
    cfg.python_paths = [str(rel(str(p))) for p in python.get("paths") or []]
    cfg.python_modules = [str(m) for m in python.get("modules") or []]
    cfg.max_threads = python.get("max_threads") or 8
    cfg.base_dir = base
    for name, binding in (raw.get("bindings") or {}).items():
        # the kind's factory checks the spec (edged.runtime.bindings.build_bindings)
        if not isinstance(binding, dict) or len(binding) != 1:
            raise ConfigError(
                f"bindings.{name}: expected one kind and its spec, e.g. {{python: 'module:function'}}"
            )
        cfg.bindings[str(name)] = binding
    cfg.executors = dict(raw.get("executors") or {})
    cfg.retention_max_age_s = journal.get("retention_max_age_s", cfg.retention_max_age_s)
    cfg.retention_max_count = journal.get("retention_max_count", cfg.retention_max_count)
    cfg.max_history_per_execution = journal.get(
        "max_history_per_execution", cfg.max_history_per_execution
    )
    cfg.max_size_bytes = journal.get("max_size_bytes")
    cfg.env_allowlist = [str(n) for n in expressions.get("env_allowlist") or []]
    for name in BUILTIN_ADAPTERS:
        if name in raw:
            cfg.adapters[name] = dict(raw[name] or {})
    cfg.log_format = raw.get("log_format") or "logfmt"
    if cfg.log_format not in ("logfmt", "json"):
        raise ConfigError(f"log_format: expected 'logfmt' or 'json', got {cfg.log_format!r}")
    cfg.log_level = str(raw.get("log_level") or "INFO").upper()
    cfg.shutdown_grace_s = raw.get("shutdown_grace_s", cfg.shutdown_grace_s)
    cfg.api_limits = {k: v for k, v in api.items() if v is not None}
    cfg.streams = {k: v for k, v in streams.items() if v is not None}
    if not 0 <= cfg.shutdown_grace_s <= 3600:
        raise ConfigError(f"shutdown_grace_s: {cfg.shutdown_grace_s} is out of range 0..3600")
    if not is_loopback(cfg.host) and not cfg.auth_token:
        raise ConfigError(
            f"listen: {cfg.host} is not loopback; set auth_token to serve beyond this machine"
        )
    if cfg.auth_token is not None:
        token = cfg.auth_token
        if token != token.strip() or any(c.isspace() or not c.isprintable() for c in token):
            raise ConfigError("auth_token: must not contain spaces or control characters")
        if not is_loopback(cfg.host) and len(token) < MIN_REMOTE_TOKEN_CHARS:
            raise ConfigError(
                f"auth_token: {len(token)} characters is too short to serve beyond this machine"
                f" (at least {MIN_REMOTE_TOKEN_CHARS}; e.g. `openssl rand -hex 24`)"
            )
    return cfg


def check_data_dir(cfg: Config) -> None:
    """Make sure the data directory exists and is writable, before the journal opens."""
    try:
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"data_dir {cfg.data_dir}: cannot create: {exc.strerror or exc}"
        ) from None
    if not os.access(cfg.data_dir, os.W_OK | os.X_OK):
        raise ConfigError(f"data_dir {cfg.data_dir}: not writable by this user")
