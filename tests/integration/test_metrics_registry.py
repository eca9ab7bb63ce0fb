"""edged.metrics (the registry and its text format), the start-up gate and the api/auth config.

Pure and in-process: the registry's output must pass the strict parser in
promtext, escape hostile label values, stay bounded under a flood of label
values; the gate must answer 503 for everything but the probes while starting.
"""

from __future__ import annotations

import bisect
import math
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import promtext
import pytest
import trio
import yaml
from hypothesis import given
from hypothesis import strategies as st

from edged.api.messages import Request, json_response
from edged.api.metrics_api import gate_while_starting
from edged.config import load_config
from edged.errors import ConfigError
from edged.metrics import Registry, format_value


def test_render_is_strict_text_format_and_histograms_are_cumulative() -> None:
    r = Registry()
    c = r.counter("t_requests_total", "requests", ["code"])
    g = r.gauge("t_depth", "depth")
    h = r.histogram("t_latency_seconds", "latency", ["kind"], buckets=[0.01, 0.1, 1])
    c.labels("200").inc()
    c.labels("200").inc(2)
    c.labels("404").inc()
    g.set(-3.5)
    for v in (0.005, 0.01, 0.05, 0.5, 5.0):
        h.labels("a").observe(v)
    text = r.render()
    doc = promtext.parse(text)
    assert doc.value("t_requests_total", code="200") == 3
    assert doc.value("t_depth") == -3.5
    assert doc.value("t_latency_seconds_bucket", kind="a", le="0.01") == 2  # le is inclusive
    assert doc.value("t_latency_seconds_bucket", kind="a", le="0.1") == 3
    assert doc.value("t_latency_seconds_bucket", kind="a", le="+Inf") == 5
    assert doc.value("t_latency_seconds_count", kind="a") == 5
    assert math.isclose(doc.value("t_latency_seconds_sum", kind="a"), 5.565)
    assert doc.families["t_latency_seconds"].type == "histogram"


def test_hostile_label_values_are_escaped() -> None:
    r = Registry()
    c = r.counter("t_total", "x", ["name"])
    hostile = 'a"b\\c\nd} e{="'
    c.labels(hostile).inc()
    doc = promtext.parse(r.render())
    assert doc.value("t_total", name=hostile) == 1


def test_label_flood_is_bounded_and_counted() -> None:
    r = Registry(max_children=10)
    c = r.counter("t_total", "x", ["name"])
    for i in range(1000):
        c.labels(f"n{i}").inc()
    doc = promtext.parse(r.render())
    assert len(doc.series("t_total")) == 11  # 10 real + "other"
    assert doc.value("t_total", name="other") == 990
    assert doc.value("edged_metrics_overflow_total") == 990


def test_collectors_run_at_render_and_bad_definitions_are_refused() -> None:
    r = Registry()
    g = r.gauge("t_g", "x")
    seen = [0]

    @r.collector
    def collect() -> None:
        seen[0] += 1
        g.set(seen[0])

    assert promtext.parse(r.render()).value("t_g") == 1
    assert promtext.parse(r.render()).value("t_g") == 2
    with pytest.raises(ValueError, match="twice"):
        r.gauge("t_g", "again")
    with pytest.raises(ValueError, match="buckets"):
        r.histogram("t_h", "x", buckets=[1, 0.5])
    with pytest.raises(ValueError, match="labels"):
        r.counter("t_c", "x", ["a", "b"]).labels("only-one")
    assert [format_value(v) for v in (1.0, 0.25, math.inf, -math.inf)] == [
        "1",
        "0.25",
        "+Inf",
        "-Inf",
    ]


def test_the_strict_parser_rejects_what_prometheus_would_misread() -> None:
    bad = [
        "x 1\n",  # no HELP/TYPE
        "# HELP x h\n# TYPE x counter\nx -1\n",  # negative counter
        "# HELP x h\n# TYPE x counter\nx 1\nx 2\n",  # duplicate
        '# HELP x h\n# TYPE x gauge\nx{a="\\q"} 1\n',  # bad escape
        "# HELP x h\n# TYPE x gauge\nx 1",  # no final newline
        '# HELP h h\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\n'
        "h_sum 1\nh_count 1\n",  # not cumulative
    ]
    for text in bad:
        with pytest.raises(ValueError):
            promtext.parse(text)


async def test_gate_answers_503_while_starting_except_probes_and_metrics() -> None:
    async def app(request: Request) -> Any:
        return json_response({"served": request.path})

    state = SimpleNamespace(phase="starting")
    gated = gate_while_starting(app, cast(Any, state))

    def req(path: str) -> Request:
        return Request("GET", path, {}, (), b"")

    with trio.fail_after(5):
        api = await gated(req("/api/workflow/x"))
        assert api.status == 503 and b"starting" in getattr(api, "body", b"")
        health = await gated(req("/health"))
        assert health.status == 503
        for path in ("/health/live", "/health/ready", "/metrics"):
            assert (await gated(req(path))).status == 200
        state.phase = "ready"
        assert (await gated(req("/api/workflow/x"))).status == 200


def _config(tmp_path: Path, **doc: Any) -> Path:
    path = tmp_path / "edged.yaml"
    path.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "data"), **doc}))
    return path


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"listen": "0.0.0.0:8080"}, "not loopback; set auth_token"),
        ({"listen": "192.0.2.1:8080"}, "not loopback; set auth_token"),
        ({"listen": "[::]:8080", "auth_token": ""}, "not loopback; set auth_token"),
        ({"listen": "0.0.0.0:8080", "auth_token": "short"}, "too short"),
        ({"auth_token": "has space in it 0123456789"}, "spaces or control"),
        ({"api": {"max_body_bytes": 10}}, "api.max_body_bytes: 10 is out of range"),
        ({"api": {"max_header_bytes": 10**9}}, "api.max_header_bytes"),
        ({"api": {"max_bodybytes": 1}}, "api.max_bodybytes: unknown key"),
        ({"api": {"max_body_bytes": "1MB"}}, "api.max_body_bytes: expected int"),
    ],
)
def test_access_config_faults(tmp_path: Path, doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(str(_config(tmp_path, **doc)))


def test_access_config_accepted(tmp_path: Path) -> None:
    token = "0123456789abcdef0123"
    cfg = load_config(
        str(
            _config(tmp_path, listen="0.0.0.0:9000", auth_token=token, api={"max_body_bytes": 2048})
        )
    )
    assert (cfg.host, cfg.auth_token, cfg.api_limits) == (
        "0.0.0.0",
        token,
        {"max_body_bytes": 2048},
    )
    # on loopback a short token is the user's business; it is still enforced
    assert load_config(str(_config(tmp_path, auth_token="abc"))).auth_token == "abc"
    # the --listen override is checked like the file's listen
    with pytest.raises(ConfigError, match="not loopback"):
        load_config(str(_config(tmp_path)), listen="0.0.0.0:9000")


@given(st.lists(st.floats(allow_nan=True) | st.sampled_from([0.0, 0.0005, -0.0, 300.0, 1e9])))
def test_observe_counts_each_value_in_its_bisected_bucket(values: list[float]) -> None:
    """The first-bucket shortcut in observe() gives the bucket bisect_left gives."""
    histogram = Registry().histogram("edged_test_seconds", "test").labels()
    expected = [0] * (len(histogram.bounds) + 1)
    for value in values:
        histogram.observe(value)
        expected[bisect.bisect_left(histogram.bounds, value)] += 1
    assert histogram.counts == expected
    assert histogram.count == len(values)
