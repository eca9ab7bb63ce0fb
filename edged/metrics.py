"""A tiny metrics registry rendered in Prometheus' text exposition format (0.0.4).

Theory of operation.  A ``Registry`` holds metric *families* (``Counter``,
``Gauge``, ``Histogram``), each with a fixed tuple of label names and one
child per distinct label-value tuple.  Two ways to feed them:

- **push**: a hot path calls ``inc()`` / ``observe()`` on a child it looked up
  once (``family.labels(...)`` caches the child; the lookup is one dict get).
  ``Histogram.observe`` is a ``bisect`` into fixed bucket bounds and two
  additions: no allocation per observation.
- **pull**: a *collector* (``registry.collector(fn)``) runs at scrape time and
  sets values from counters the components already keep (engine, dispatcher,
  journal writer, HTTP server).  That is how most figures get here: the
  performance-critical paths pay nothing for being observed.

Bounded: a family holds at most ``max_children`` label sets; past it new label
values fold into one child labelled ``"other"`` (counted in
``edged_metrics_overflow_total``), so a flood of task names cannot grow memory.

``render()`` writes every family, sorted by name, with ``# HELP`` and
``# TYPE``; histograms as cumulative ``_bucket{le=...}``, ``_sum``, ``_count``.
Label values are escaped as the format asks (backslash, quote, newline).
No I/O, no clock: callers own both.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "CONTENT_TYPE",
    "LATENCY_BUCKETS_S",
    "Counter",
    "Gauge",
    "Histogram",
    "Registry",
    "format_value",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds, for anything from a journal commit to a slow handler.
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)

_OVERFLOW = "other"


def format_value(value: float) -> str:
    if value != value:  # NaN
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _label_text(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Family:
    kind = "untyped"

    def __init__(
        self, registry: Registry, name: str, help_text: str, labelnames: Sequence[str]
    ) -> None:
        self.name = name
        self.help = help_text
        self.labelnames = tuple(labelnames)
        self._registry = registry
        self._children: dict[tuple[str, ...], object] = {}

    def _child(self, values: tuple[str, ...], make: Callable[[], object]) -> object:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {values}")
            if len(self._children) >= self._registry.max_children:
                self._registry.overflows += 1
                values = (_OVERFLOW,) * len(self.labelnames)
                child = self._children.get(values)
                if child is not None:
                    return child
            child = self._children[values] = make()
        return child

    def clear(self) -> None:
        """Forget every child (a collector that re-sets a gauge's whole set calls this)."""
        self._children.clear()

    def lines(self) -> Iterable[str]:  # pragma: no cover - overridden
        return ()


class _Value:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def set(self, value: float) -> None:
        self.value = value


class Counter(_Family):
    kind = "counter"

    def labels(self, *values: str) -> _Value:
        child = self._child(values, _Value)
        assert isinstance(child, _Value)
        return child

    def inc(self, amount: float = 1.0) -> None:
        self.labels().inc(amount)

    def set(self, value: float) -> None:
        """For collectors mirroring a counter some component keeps itself."""
        self.labels().set(value)

    def lines(self) -> Iterable[str]:
        for values, child in sorted(self._children.items()):
            assert isinstance(child, _Value)
            yield f"{self.name}{_label_text(self.labelnames, values)} {format_value(child.value)}"


class Gauge(Counter):
    kind = "gauge"


class _Buckets:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        bounds = self.bounds
        # The first bucket without the bisect (the same index): task latencies are whole
        # milliseconds, mostly 0 for quick tasks, and the bisect was ~1.2k of ~1.8k
        # instructions per observation.
        self.counts[0 if value <= bounds[0] else bisect.bisect_left(bounds, value)] += 1
        self.sum += value
        self.count += 1

    def load(self, counts: Sequence[int], total: float) -> None:
        """Set from per-bucket (not cumulative) counts a component kept itself."""
        if len(counts) != len(self.counts):
            raise ValueError("bucket counts do not match the bounds")
        self.counts = list(counts)
        self.count = sum(counts)
        self.sum = total


class Histogram(_Family):
    kind = "histogram"

    def __init__(
        self,
        registry: Registry,
        name: str,
        help_text: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
    ) -> None:
        super().__init__(registry, name, help_text, labelnames)
        bounds = tuple(float(b) for b in buckets)
        if not bounds or list(bounds) != sorted(set(bounds)) or math.isinf(bounds[-1]):
            raise ValueError(f"{name}: buckets must be finite, increasing and distinct")
        self.bounds = bounds

    def labels(self, *values: str) -> _Buckets:
        child = self._child(values, lambda: _Buckets(self.bounds))
        assert isinstance(child, _Buckets)
        return child

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def lines(self) -> Iterable[str]:
        for values, child in sorted(self._children.items()):
            assert isinstance(child, _Buckets)
            running = 0
            for bound, n in zip((*self.bounds, math.inf), child.counts, strict=True):
                running += n
                le = f'le="{format_value(bound)}"'
                yield f"{self.name}_bucket{_label_text(self.labelnames, values, le)} {running}"
            labels = _label_text(self.labelnames, values)
            yield f"{self.name}_sum{labels} {format_value(child.sum)}"
            yield f"{self.name}_count{labels} {child.count}"


class Registry:
    def __init__(self, *, max_children: int = 512) -> None:
        self.max_children = max_children
        self.overflows = 0
        self._families: dict[str, _Family] = {}
        self._collectors: list[Callable[[], None]] = []

    def _add(self, family: _Family) -> None:
        if family.name in self._families:
            raise ValueError(f"metric {family.name} registered twice")
        self._families[family.name] = family

    def counter(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> Counter:
        family = Counter(self, name, help_text, labelnames)
        self._add(family)
        return family

    def gauge(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> Gauge:
        family = Gauge(self, name, help_text, labelnames)
        self._add(family)
        return family

    def histogram(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS_S,
    ) -> Histogram:
        family = Histogram(self, name, help_text, labelnames, buckets)
        self._add(family)
        return family

    def collector(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Run ``fn`` before every render (usable as a decorator)."""
        self._collectors.append(fn)
        return fn

    def render(self) -> str:
        for collect in self._collectors:
            collect()
        out: list[str] = []
        for name in sorted(self._families):
            family = self._families[name]
            out.append(f"# HELP {name} {family.help.replace(chr(92), chr(92) * 2)}")
            out.append(f"# TYPE {name} {family.kind}")
            out.extend(family.lines())
        out.append("# HELP edged_metrics_overflow_total label sets folded into 'other'")
        out.append("# TYPE edged_metrics_overflow_total counter")
        out.append(f"edged_metrics_overflow_total {self.overflows}")
        return "\n".join(out) + "\n"
