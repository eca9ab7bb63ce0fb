"""Binding kinds and executors by task type: the plug every executor uses.

Theory of operation
-------------------
A *binding* says how a work task runs, separately from the definition.  The
config holds one per task name, each with exactly one *kind* key::

    bindings:
      checknumber: {python: "myhandlers:check"}
      resize:      {command: {argv: [/opt/workers/resize.sh], timeout_s: 30}}
      calibrate:   {keptn: {...}}        # a kind an adapter registers

A kind is a factory registered by name with `register_binding_kind(kind,
factory)`; `factory(task_name, spec, ctx) -> Handler` validates `spec` and
returns a handler (an async or sync callable taking `edged.handlers.
TaskContext`, returning a dict / `InProgress` or raising `TaskFailed`, the
same contract as `@task` handlers).  A factory raises `ctx.error("...")`, a
`ConfigError` whose message starts with the path (`bindings.checknumber.
command.argv: ...`).  `ctx.settings` is the kind's section of the config's
top-level `executors:` mapping (e.g. `executors: {command: {allow: [...]}}`),
`ctx.base_dir` is the directory relative paths resolve against (the config
file's), `ctx.shared` a dict every binding of the kind shares in one build.

`build_bindings(cfg)` builds every binding.  `edged run` calls it BEFORE the
journal opens, so a bad binding (unknown kind, program not allowed, malformed
spec) stops the start with one line and leaves no trace.  Built-in kinds
(`python` here, `command` in `edged.executors.command`) and the built-in
executor modules register at import; `load_executor_modules()` imports the
static list below (PyInstaller sees it) and the adapters that are
installed, before any binding is built.

*Executors by task type*: `register_type_executor(task_type, handler)` makes
`handler` run every work task of that type (`HTTP` from
`edged.executors.http_task`; adapters may add `MQTT_PUBLISH` and others)
that has neither a binding nor a `@task` handler for its name.  The
dispatcher's order is: binding by name, `@task` handler by name, executor by
task type, else the task waits for a Conductor-protocol worker to poll it.

Registration goes into an `ExecutorRegistry`; the module-level functions use
`default_executors`, which the daemon reads.  Tests may build their own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edged.errors import ConfigError
from edged.handlers import Handler

if TYPE_CHECKING:
    from edged.config import Config

BindingFactory = Callable[[str, Any, "BindingContext"], Handler]
SettingsCheck = Callable[[Mapping[str, Any]], None]  # raises ConfigError("executors.KIND...")

# Imported before bindings are built: they register kinds and type executors.
# Static names so a frozen (PyInstaller) build finds them.
BUILTIN_EXECUTOR_MODULES = ("edged.executors.command", "edged.executors.http_task")
# Adapters that register kinds or type executors, imported when installed.
ADAPTER_EXECUTOR_MODULES: tuple[str, ...] = ("edged_mqtt.device_tasks",)


@dataclass(frozen=True, slots=True)
class BindingContext:
    """What a binding factory gets besides the task name and the spec."""

    path: str  # "bindings.NAME.KIND": the prefix of every error about this spec
    base_dir: Path = field(default_factory=Path.cwd)
    settings: Mapping[str, Any] = field(default_factory=dict)  # executors.KIND
    # one dict per kind and build, the same for every binding of the kind:
    # where a factory keeps what its bindings share (a concurrency limiter, ...)
    shared: dict[str, Any] = field(default_factory=dict)

    def error(self, message: str, at: str = "") -> ConfigError:
        """A ConfigError naming the spec's path (`at` adds a sub-key: `.argv`)."""
        return ConfigError(f"{self.path}{at}: {message}")


class ExecutorRegistry:
    def __init__(self) -> None:
        self._kinds: dict[str, BindingFactory] = {}
        self._checks: dict[str, SettingsCheck] = {}
        self._types: dict[str, Handler] = {}

    def register_kind(
        self, kind: str, factory: BindingFactory, check_settings: SettingsCheck | None = None
    ) -> None:
        old = self._kinds.get(kind)
        if old is not None and old is not factory:
            raise ConfigError(f"binding kind {kind!r} is registered twice")
        self._kinds[kind] = factory
        if check_settings is not None:
            self._checks[kind] = check_settings

    def register_type(self, task_type: str, handler: Handler) -> None:
        old = self._types.get(task_type)
        if old is not None and old is not handler:
            raise ConfigError(f"task type {task_type!r} has two executors")
        self._types[task_type] = handler

    def kinds(self) -> list[str]:
        return sorted(self._kinds)

    @property
    def types(self) -> Mapping[str, Handler]:
        return self._types

    def build(
        self,
        bindings: Mapping[str, Any],
        *,
        base_dir: Path | None = None,
        executors: Mapping[str, Any] | None = None,
    ) -> dict[str, Handler]:
        """Task name -> handler for every binding; ConfigError at the first fault."""
        executors = executors or {}
        for kind, section in executors.items():
            if kind not in self._kinds:
                raise ConfigError(
                    f"executors.{kind}: unknown executor kind (known: {', '.join(self.kinds())})"
                )
            if section is not None and not isinstance(section, dict):
                raise ConfigError(f"executors.{kind}: expected a mapping")
            check = self._checks.get(kind)
            if check is not None:
                check(section or {})  # checked even when no binding uses the kind
        handlers: dict[str, Handler] = {}
        shared: dict[str, dict[str, Any]] = {}
        for name, binding in bindings.items():
            if not isinstance(binding, dict) or len(binding) != 1:
                raise ConfigError(
                    f"bindings.{name}: expected one kind and its spec, e.g. "
                    f"{{python: 'module:function'}} (kinds: {', '.join(self.kinds())})"
                )
            ((kind, spec),) = binding.items()
            factory = self._kinds.get(str(kind))
            if factory is None:
                raise ConfigError(
                    f"bindings.{name}.{kind}: unknown binding kind (known: {', '.join(self.kinds())})"
                )
            ctx = BindingContext(
                path=f"bindings.{name}.{kind}",
                base_dir=base_dir or Path.cwd(),
                settings=executors.get(kind) or {},
                shared=shared.setdefault(str(kind), {}),
            )
            handlers[str(name)] = factory(str(name), spec, ctx)
        return handlers


default_executors = ExecutorRegistry()


def register_binding_kind(
    kind: str, factory: BindingFactory, check_settings: SettingsCheck | None = None
) -> None:
    """Register a binding kind (`bindings: NAME: {kind: spec}`) in the default registry.

    `check_settings(section)` validates the kind's `executors.KIND` config section.
    """
    default_executors.register_kind(kind, factory, check_settings)


def register_type_executor(task_type: str, handler: Handler) -> None:
    """Run unbound work tasks of `task_type` with `handler` (default registry)."""
    default_executors.register_type(task_type, handler)


def load_executor_modules(
    builtin: Iterable[str] = BUILTIN_EXECUTOR_MODULES,
    adapters: Iterable[str] = ADAPTER_EXECUTOR_MODULES,
) -> None:
    for name in builtin:
        importlib.import_module(name)
    for name in adapters:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not name.startswith(exc.name):
                raise  # the adapter is there but one of its imports is not


def build_bindings(
    cfg: Config, registry: ExecutorRegistry = default_executors
) -> dict[str, Handler]:
    """Every binding of the config, built and checked (call before the journal opens)."""
    if registry is default_executors:
        load_executor_modules()
    return registry.build(cfg.bindings, base_dir=cfg.base_dir, executors=cfg.executors)


def load_handler(target: str) -> Handler:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"binding handler {target!r}: expected 'module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"binding handler {target!r}: cannot import {module_name}: {exc}"
        ) from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"binding handler {target!r}: {attr} is not a function of {module_name}")
    return fn  # type: ignore[no-any-return]


def _python_kind(name: str, spec: Any, ctx: BindingContext) -> Handler:
    if not isinstance(spec, str):
        raise ctx.error("expected 'module:function'")
    try:
        return load_handler(spec)
    except ConfigError as exc:
        raise ctx.error(str(exc)) from exc


register_binding_kind("python", _python_kind)
