"""The daemon's log formatters: logfmt and JSON lines, with structured fields.

Hostile values (quotes, spaces, '=', newlines, non-printables) must not break
a line into two or forge a field; a logfmt line must split back into exactly
the fields that were logged.
"""

from __future__ import annotations

import json
import logging
import re

from edged.daemon import _JsonFormatter, _LogfmtFormatter

_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^ "]*)')


def _record(msg: str, fields: dict[str, object] | None = None) -> logging.LogRecord:
    record = logging.LogRecord("edged.test", logging.INFO, __file__, 1, msg, (), None)
    if fields is not None:
        record.fields = fields
    return record


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), value[1:-1])
    return value


def test_logfmt_fields_round_trip_hostile_values() -> None:
    hostile = 'a "quoted" value=x\nlevel=error \\ end'
    line = _LogfmtFormatter().format(
        _record("execution ended FAILED", {"workflow_id": "w-1", "reason": hostile, "n": 3})
    )
    assert "\n" not in line
    pairs = {k: _unquote(v) for k, v in _PAIR.findall(line)}
    assert pairs["level"] == "info" and pairs["logger"] == "edged.test"
    assert pairs["msg"] == "execution ended FAILED"
    assert pairs["workflow_id"] == "w-1" and pairs["n"] == "3"
    assert pairs["reason"] == hostile
    # rebuilt from the pairs, the line is exactly what was written: nothing forged
    rebuilt = " ".join(f"{k}={v}" for k, v in _PAIR.findall(line))
    assert rebuilt == line


def test_logfmt_escapes_control_characters() -> None:
    line = _LogfmtFormatter().format(_record("x", {"v": "a\rb\x1bc\td"}))
    assert line.endswith('v="a\\x0db\\x1bc\\x09d"')
    assert all(c.isprintable() for c in line)


def test_logfmt_without_fields_and_empty_values() -> None:
    line = _LogfmtFormatter().format(_record("plain", {"empty": ""}))
    assert line.endswith('msg=plain empty=""')


def test_json_lines_carry_fields_beside_the_fixed_keys() -> None:
    line = _JsonFormatter().format(
        _record("request", {"method": "GET", "status": 200, "msg": "cannot overwrite"})
    )
    doc = json.loads(line)
    assert doc["msg"] == "request" and doc["level"] == "info"
    assert doc["method"] == "GET" and doc["status"] == 200
    assert json.loads(_JsonFormatter().format(_record("x", {"obj": object()})))["obj"].startswith(
        "<object"
    )
