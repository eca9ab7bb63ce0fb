"""Expressions: Conductor parameter wiring, sandboxed JavaScript (QuickJS), jq.

`resolve` wires task inputs from `${...}` templates (ParametersUtils);
`JsSandbox` and the `eval_*` helpers run INLINE / LAMBDA / SWITCH / DECISION /
DO_WHILE scripts; `jq_transform` runs JSON_JQ_TRANSFORM.
"""

from edged.expr.javascript import (
    ExpressionError,
    JsError,
    JsSandbox,
    eval_case,
    eval_condition,
    eval_inline,
    eval_lambda,
    switch_case,
)
from edged.expr.jq_transform import JqError, jq_transform
from edged.expr.params import find_references, resolve

__all__ = [
    "ExpressionError",
    "JqError",
    "JsError",
    "JsSandbox",
    "eval_case",
    "eval_condition",
    "eval_inline",
    "eval_lambda",
    "find_references",
    "jq_transform",
    "resolve",
    "switch_case",
]
