"""``/metrics`` and the liveness / readiness probes, and the start-up gate.

Theory of operation.  Three routes, added to the daemon's router:

- ``GET /metrics``: ``Telemetry.registry.render()`` in Prometheus' text
  format.  Requires the bearer token like the rest of the API (metrics name
  workflows and task types).
- ``GET /health/live``: 200 ``{"live": true}`` whenever the event loop answers
  at all.  It checks nothing else on purpose: a liveness failure makes a
  supervisor restart the process, which must not happen for a full disk or a
  long recovery (a restart fixes neither).  It stays open without a token:
  it reveals only that something answers on the port, which a TCP connect
  reveals anyway, and local supervisors (systemd, a container runtime) probe
  it without secrets.
- ``GET /health/ready``: 200 when the daemon accepts work: recovery is done,
  it is not stopping, and the journal accepts writes; otherwise 503 with the
  reason (``starting``, ``stopping``, ``journal: ...``).  Load balancers and
  the sync agent stop sending work on a 503.

``/health`` keeps its old meaning and shape (``{"healthy": ...}``, 503 when
the journal refuses writes) and also answers 503 while the daemon starts.

``gate_while_starting(handler, telemetry)`` wraps the whole API: while the
daemon recovers, everything except the probes and ``/metrics`` answers 503
(retryable) without touching the engine, so the listener can open before
recovery and probes see the truth ("alive, not ready") instead of a refused
connection.
"""

from __future__ import annotations

from collections.abc import Mapping

from edged.api.http import LATENCY_BOUNDS_S, Handler
from edged.api.messages import AnyResponse, Request, Response, error_response, json_response
from edged.api.router import Router
from edged.metrics import CONTENT_TYPE
from edged.runtime.telemetry import Telemetry

Params = Mapping[str, str]

# Served during start-up as well (the probes exist for exactly that moment).
_ALWAYS_SERVED = frozenset({"/health/live", "/health/ready", "/metrics"})


def add_metrics_routes(router: Router, telemetry: Telemetry) -> None:
    request_seconds = telemetry.registry.histogram(
        "edged_http_request_seconds",
        "complete request -> response ready (a stream's body and the send not included)",
        buckets=LATENCY_BOUNDS_S,
    )

    @telemetry.registry.collector
    def collect_http() -> None:
        if telemetry.http_stats is not None:
            stats = telemetry.http_stats()
            request_seconds.labels().load(stats.latency_counts, stats.latency_sum_s)

    async def metrics(request: Request, params: Params) -> AnyResponse:
        body = telemetry.registry.render().encode()
        return Response(200, (("content-type", CONTENT_TYPE),), body)

    async def live(request: Request, params: Params) -> AnyResponse:
        return json_response({"live": True})

    async def ready(request: Request, params: Params) -> AnyResponse:
        if telemetry.phase != "ready":
            return json_response({"ready": False, "reason": telemetry.phase}, 503)
        problem = telemetry.journal_problem()
        if problem is not None:
            return json_response({"ready": False, "reason": f"journal: {problem}"}, 503)
        return json_response({"ready": True})

    router.add("GET", "/metrics", metrics)
    router.add("GET", "/health/live", live)
    router.add("GET", "/health/ready", ready)


def gate_while_starting(handler: Handler, telemetry: Telemetry) -> Handler:
    async def gated(request: Request) -> AnyResponse:
        if telemetry.phase == "starting" and request.path not in _ALWAYS_SERVED:
            if request.path == "/health":
                return json_response({"healthy": False, "phase": "starting"}, 503)
            return error_response(
                503, "edged is starting (recovering unfinished executions)", retryable=True
            )
        return await handler(request)

    return gated
