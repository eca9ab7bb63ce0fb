"""JSON_JQ_TRANSFORM on libjq: output shape, errors, caps, sandboxing."""

from __future__ import annotations

import os
from typing import Any

import pytest

from edged.errors import BadInput
from edged.expr import JqError, jq_transform


@pytest.mark.parametrize(
    ("query", "data", "result", "result_list"),
    [
        (".a", {"a": 1}, 1, [1]),
        (".a[]", {"a": [1, "x", None]}, 1, [1, "x", None]),
        ("empty", {}, None, []),
        (".missing", {}, None, [None]),
        ("{sum: (.a | add)}", {"a": [1, 2.5]}, {"sum": 3.5}, [{"sum": 3.5}]),
        # Conductor applies the query to the whole task input, queryExpression included.
        (".queryExpression", {"queryExpression": ".queryExpression"}, ".queryExpression", None),
        ("def f: . * 2; [.a[] | f]", {"a": [1, 2]}, [2, 4], [[2, 4]]),
        ("[limit(3; repeat(1))]", {}, [1, 1, 1], [[1, 1, 1]]),
    ],
)
def test_result_and_result_list(query: str, data: Any, result: Any, result_list: Any) -> None:
    out = jq_transform(query, data)
    assert set(out) == {"result", "resultList"}
    assert out["result"] == result
    assert out["resultList"] == (result_list if result_list is not None else [result])


def test_compile_error_carries_jq_message() -> None:
    with pytest.raises(JqError, match="syntax error") as caught:
        jq_transform(".a |", {})
    assert isinstance(caught.value, BadInput)
    assert "line 1" in str(caught.value)  # positions refer to the query as written


def test_runtime_errors() -> None:
    with pytest.raises(JqError, match="custom failure"):
        jq_transform('error("custom failure")', {})
    with pytest.raises(JqError, match="Cannot index number"):
        jq_transform(".a.b", {"a": 5})
    with pytest.raises(JqError, match="Missing 'queryExpression'"):
        jq_transform(None, {})  # type: ignore[arg-type]


def test_result_cap_stops_infinite_generators() -> None:
    with pytest.raises(JqError, match="more than 100 results"):
        jq_transform("repeat(1)", {}, max_results=100)
    assert len(jq_transform("range(100)", {}, max_results=100)["resultList"]) == 100


def test_environment_is_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGED_SECRET_FOR_TEST", "s3cret")
    assert os.environ["EDGED_SECRET_FOR_TEST"] == "s3cret"
    out = jq_transform("[env, $ENV]", {})
    assert out["result"] == [{}, {}]


def test_halt_does_not_exit_the_process() -> None:
    assert jq_transform('"bye" | halt_error', {})["resultList"] == []
    assert jq_transform("halt", {})["resultList"] == []


def test_compiled_queries_are_cached() -> None:
    from edged.expr.jq_transform import _compile

    before = _compile.cache_info().hits
    jq_transform(".cached_probe", {})
    jq_transform(".cached_probe", {"cached_probe": 2})
    assert _compile.cache_info().hits >= before + 1
    assert _compile.cache_info().maxsize is not None
