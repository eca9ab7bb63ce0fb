"""Expressions: Conductor parameter wiring, sandboxed JavaScript, jq."""

from edged.expr.params import find_references, resolve

__all__ = ["find_references", "resolve"]
