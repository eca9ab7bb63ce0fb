"""Field-level checks shared by every kind of definition.

Theory of operation: a `FieldChecks` collects faults while the validators ask
it about one field at a time ("is `retryCount` of this object an integer
>= 0?").  Each method returns the value when it is usable and None otherwise,
so a validator can go on with what is well-formed and still report every
fault.  Absent optional fields are fine; JSON null counts as absent, as it
does for Conductor's Jackson mapping.  Integers may be written as integral
floats (`60.0`), which Jackson also accepts; booleans are never numbers.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from edged.defs.faults import Fault, child, suggest, type_name

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\Z")
# JSON's safe integer range: larger versions or timeouts could not be stored in
# SQLite's 64-bit columns (nor turned into epoch milliseconds without overflow).
MAX_INTEGER = 2**53


class FieldChecks:
    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def fault(self, path: str, message: str) -> None:
        self.faults.append(Fault(path, message))

    def _typed(self, obj: dict[str, Any], key: str, path: str, kind: type, label: str) -> Any:
        value = obj.get(key)
        if value is None:
            return None
        if isinstance(value, kind) and not (kind is not bool and isinstance(value, bool)):
            return value
        self.fault(child(path, key), f"expected {label}, got {type_name(value)}")
        return None

    def string(
        self, obj: dict[str, Any], key: str, path: str, *, required: str | None = None
    ) -> str | None:
        """A string field; `required` is the message when it is absent or blank."""
        value: str | None = self._typed(obj, key, path, str, "a string")
        if required is not None and (value is None or not value.strip()):
            if key in obj and obj[key] is not None and value is None:
                return None  # wrong type, already reported
            self.fault(child(path, key), required)
            return None
        return value

    def integer(
        self,
        obj: dict[str, Any],
        key: str,
        path: str,
        *,
        minimum: int = 0,
        maximum: int = MAX_INTEGER,
    ) -> int | None:
        value = obj.get(key)
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            self.fault(child(path, key), f"expected an integer, got {type_name(value)}")
            return None
        if value < minimum:
            self.fault(child(path, key), f"must be >= {minimum}, got {value}")
            return None
        if value > maximum:
            self.fault(child(path, key), f"must be <= {maximum}, got {value}")
            return None
        return value

    def boolean(self, obj: dict[str, Any], key: str, path: str) -> bool | None:
        value: bool | None = self._typed(obj, key, path, bool, "true or false")
        return value

    def mapping(self, obj: dict[str, Any], key: str, path: str) -> dict[str, Any] | None:
        value: dict[str, Any] | None = self._typed(obj, key, path, dict, "an object")
        return value

    def array(self, obj: dict[str, Any], key: str, path: str) -> list[Any] | None:
        value: list[Any] | None = self._typed(obj, key, path, list, "an array")
        return value

    def strings(self, obj: dict[str, Any], key: str, path: str) -> list[str] | None:
        """An array of strings."""
        value = self.array(obj, key, path)
        if value is None:
            return None
        ok = True
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.fault(child(child(path, key), i), f"expected a string, got {type_name(item)}")
                ok = False
        return value if ok else None

    def choice(
        self, obj: dict[str, Any], key: str, path: str, allowed: Collection[str]
    ) -> str | None:
        value = self.string(obj, key, path)
        if value is None:
            return None
        if value not in allowed:
            options = ", ".join(sorted(allowed))
            hint = suggest(value, allowed)
            self.fault(child(path, key), f'"{value}" is not one of {options}{hint}')
            return None
        return value

    def email(self, obj: dict[str, Any], key: str, path: str) -> None:
        value = self.string(obj, key, path)
        if value and not _EMAIL.match(value):
            self.fault(child(path, key), f'"{value}" is not an email address')

    def name(self, obj: dict[str, Any], path: str, what: str) -> str | None:
        """A definition's `name`: required, non-blank, and free of ':' (Conductor's rule)."""
        value = self.string(obj, "name", path, required=f"missing {what} name")
        if value is not None and ":" in value:
            self.fault(child(path, "name"), f"{what} name must not contain ':'")
        elif value is not None and not _encodable(value):
            # a lone surrogate cannot be stored in the journal's name column
            self.fault(
                child(path, "name"), f"{what} name must be valid Unicode (no lone surrogates)"
            )
        return value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
