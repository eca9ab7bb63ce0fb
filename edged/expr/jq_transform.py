"""JSON_JQ_TRANSFORM, as Conductor's JsonJqTransform runs it, on libjq (`jq` package).

Theory of operation
-------------------
Conductor compiles `queryExpression` (jackson-jq, cached: Caffeine, 1,000
entries), applies it to the whole task input and stores
`{"result": first output or null, "resultList": every output}`; a compile or
runtime error fails the task with the jq message as `reasonForIncompletion`
and the `error` output.  `jq_transform` returns that output dict or raises
`JqError` carrying the message.

libjq compiles slowly (~2 ms a program here), so compiled programs live in a
bounded LRU keyed by the query text; running a cached program costs ~10 µs.

Sandboxing: libjq can read the process environment (`env`, `$ENV`) and load
modules from disk (`import`, `include`).  The query is compiled twice: once
as written, for honest error messages, and once wrapped as
`def env: {}; {} as $ENV | (QUERY)`, which hides the environment and makes
`import`/`include` a syntax error.  `halt` and `halt_error` only end the
output in this binding; they do not exit the process.

Limits: at most `max_results` outputs are taken (default 10,000), so an
infinite generator such as `repeat(1)` ends with an error instead of hanging.
A program that loops forever *without producing output* (`def f: f; f`,
`[range(1e12)]`) cannot be interrupted in-process: libjq has no cancellation
hook and the call holds the thread.  The engine should only run trusted
definitions, or run jq in a worker thread it can abandon.

Deliberate differences from Conductor (jackson-jq)
--------------------------------------------------
* libjq 1.7 semantics; jackson-jq lacks some builtins and differs in a few
  corner cases (e.g. number formatting of large integers).
* Too many outputs is an error here; Conductor would collect them all.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Final

import jq

from edged.expr.javascript import ExpressionError

__all__ = ["DEFAULT_MAX_RESULTS", "JqError", "jq_transform"]

DEFAULT_MAX_RESULTS: Final = 10_000


class JqError(ExpressionError):
    """A jq query failed to compile or to run; the message is jq's."""


@lru_cache(maxsize=512)
def _compile(query_expression: str) -> Any:
    try:
        jq.compile(query_expression)
    except ValueError as exc:
        raise JqError(str(exc)) from None
    try:
        return jq.compile("def env: {}; {} as $ENV | (" + query_expression + "\n)")
    except ValueError as exc:
        raise JqError(f"query cannot run in the sandbox (import/include?): {exc}") from None


def jq_transform(
    query_expression: str, data: Any, *, max_results: int = DEFAULT_MAX_RESULTS
) -> dict[str, Any]:
    """Run `query_expression` over `data` (the task input): {"result", "resultList"}."""
    if not isinstance(query_expression, str):
        raise JqError("Missing 'queryExpression' in input parameters")
    program = _compile(query_expression)
    if isinstance(data, Mapping) and not isinstance(data, dict):
        data = dict(data)
    try:
        outputs = iter(program.input_value(data))
        results = list(itertools.islice(outputs, max_results + 1))
    except ValueError as exc:
        raise JqError(str(exc)) from None
    except TypeError as exc:
        raise JqError(f"task input is not JSON: {exc}") from None
    if len(results) > max_results:
        raise JqError(f"query produced more than {max_results} results")
    return {"result": results[0] if results else None, "resultList": results}
