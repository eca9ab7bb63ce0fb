"""Loading text, files and directories: kinds, lines, limits, YAML safety, CLI body."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from edged.defs import DefinitionError, Fault, check_paths, load_file, load_paths, load_text

WORKFLOW = {"name": "wf", "tasks": [{"name": "a", "taskReferenceName": "a", "type": "SIMPLE"}]}


def only_fault(text: str, source: str = "<string>") -> Fault:
    with pytest.raises(DefinitionError) as info:
        load_text(text, source)
    assert len(info.value.faults) == 1, info.value.faults
    return info.value.faults[0]


def test_fault_rendering() -> None:
    assert str(Fault("tasks[1].type", 'unknown task type "HTTTP"', "quickstart.json", 12)) == (
        'quickstart.json:12: tasks[1].type: unknown task type "HTTTP"'
    )
    assert str(Fault("", "empty", "f.yaml")) == "f.yaml: empty"
    assert str(DefinitionError([Fault("a", "x"), Fault("b", "y")])) == "a: x\nb: y"


def test_kinds_in_one_list() -> None:
    docs = [
        WORKFLOW,
        {"name": "td", "retryCount": 1},
        {"name": "eh", "event": "mqtt:x", "actions": [{"action": "complete_task"}]},
    ]
    defs = load_text(json.dumps(docs))
    assert [w["name"] for w in defs.workflows] == ["wf"]
    assert defs.taskdefs[0]["retryLogic"] == "FIXED"  # normalized
    assert [h["name"] for h in defs.event_handlers] == ["eh"]
    assert only_fault('[{"x": 1}]').path == "[0]"


def test_semantic_faults_carry_lines_json() -> None:
    text = '{\n  "name": "wf",\n  "tasks": [\n    {"name": "a",\n     "taskReferenceName": "a",\n     "type": "HTTTP"}\n  ]\n}\n'
    fault = only_fault(text, "quickstart.json")
    assert (
        str(fault)
        == 'quickstart.json:6: tasks[0].type: unknown task type "HTTTP" (did you mean "HTTP"?)'
    )
    # A missing key points at the object that lacks it.
    fault = only_fault('{"name": "wf",\n "tasks": [\n\n  {"name": "a"}]}')
    assert (fault.path, fault.line) == ("tasks[0].taskReferenceName", 4)


def test_semantic_faults_carry_lines_yaml() -> None:
    text = "name: wf\ntasks:\n  - name: a\n    taskReferenceName: a\n  - name: b\n    taskReferenceName: a\n"
    fault = only_fault(text, "wf.yaml")
    assert (
        str(fault)
        == 'wf.yaml:6: tasks[1].taskReferenceName: duplicate taskReferenceName "a" (first used at tasks[0])'
    )


@pytest.mark.parametrize(
    ("text", "line", "start"),
    [
        (
            '{\n  "name": "wf",\n  "tasks": [\n    {"name": "a",}\n  ]\n}',
            4,
            "invalid JSON: Expecting property name",
        ),
        ('{"name": "wf",\n "tasks": }', 2, "invalid JSON: Expecting value"),
        ("name: wf\ntasks:\n  - name: a\n   bad: indent\n", 4, "invalid YAML: "),
        ("name: wf\ntasks: [a, b\nother: 1\n", 3, "invalid YAML: "),
        ("", 1, "empty document"),
    ],
)
def test_syntax_errors_report_the_line(text: str, line: int, start: str) -> None:
    fault = only_fault(text)
    assert fault.line == line and fault.message.startswith(start), fault
    if "JSON" in start:
        assert "(column " in fault.message


def test_yaml_is_safe() -> None:
    assert (
        "constructor"
        in only_fault("name: !!python/object/apply:os.system [echo hi]\ntasks: []").message
    )
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    fault = only_fault(laughs)
    assert fault.line == 2 and "aliases" in fault.message
    fault = only_fault("name: wf\ntasks:\n  - !!binary aGVsbG8=\n")
    assert (fault.path, fault.message) == ("tasks[0]", "bytes is not JSON data")


def test_yaml_keeps_dates_and_json_keys() -> None:
    text = "name: wf\ntasks:\n  - name: a\n    taskReferenceName: a\n    inputParameters: {when: 2030-01-01, 1: one, false: no}\n"
    params = load_text(text).workflows[0]["tasks"][0]["inputParameters"]
    assert params == {"when": "2030-01-01", "1": "one", "false": False}


def test_yaml_stream_of_documents() -> None:
    text = "name: a\nretryCount: 1\n---\nname: b\nretryCount: 2\n"
    assert [t["name"] for t in load_text(text).taskdefs] == ["a", "b"]


def test_limits_give_faults() -> None:
    deep = "[" * 5000 + "]" * 5000
    assert "nesting deeper than 64" in only_fault(deep).message
    assert "nesting deeper than 64" in only_fault("a: " + "[" * 500 + "]" * 500).message
    assert "larger than" in only_fault(" " * (4 * 1024 * 1024 + 1)).message
    many = {
        "name": "wf",
        "tasks": [{"name": "t", "taskReferenceName": f"t{i}"} for i in range(10_001)],
    }
    fault = only_fault(json.dumps(many))
    assert (fault.path, fault.message) == ("tasks", "more than 10000 tasks in one definition")
    assert "NaN" in only_fault('{"name": "x", "n": NaN}').message
    assert "out of range" in only_fault('{"name": "x", "n": 1e999}').message


def test_json_file_errors_are_not_read_as_yaml(tmp_path: Path) -> None:
    path = tmp_path / "wf.json"
    path.write_text("{name: wf,\n tasks: []}")
    with pytest.raises(DefinitionError) as info:
        load_file(path)
    assert info.value.faults[0].message.startswith("invalid JSON")
    assert info.value.faults[0].source == str(path)


def test_unreadable_and_undecodable_files_are_faults(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError) as info:
        load_file(tmp_path / "missing.json")
    assert info.value.faults[0].message == "cannot read file: No such file or directory"
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"name: \xff\xfe")
    with pytest.raises(DefinitionError) as info:
        load_file(binary)
    assert info.value.faults[0].message == "not UTF-8 text (byte 6)"


def test_load_paths_merges_directories_sorted(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("name: tb\nretryCount: 1\n")
    (tmp_path / "a.json").write_text(json.dumps(WORKFLOW))
    (tmp_path / "c.yml").write_text("name: tc\n")
    (tmp_path / "notes.txt").write_text("not a definition")
    extra = tmp_path / "sub"
    extra.mkdir()
    (extra / "x.json").write_text(json.dumps({"name": "tx"}))
    defs = load_paths([tmp_path, extra / "x.json"])
    assert [w["name"] for w in defs.workflows] == ["wf"]
    assert [t["name"] for t in defs.taskdefs] == ["tb", "tc", "tx"]


def test_load_paths_reports_every_file(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text('{"name": "wf", "tasks": []}')
    (tmp_path / "b.yaml").write_text("name: [unclosed\n")
    with pytest.raises(DefinitionError) as info:
        load_paths([tmp_path])
    assert [(Path(f.source or "").name, f.line) for f in info.value.faults] == [
        ("a.json", 1),
        ("b.yaml", 2),
    ]


def test_check_paths(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("name: wf\ntasks:\n  - name: a\n    taskReferenceName: a\n    optionl: true\n")
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"name": "wf",\n "tasks": [{"name": "a", "taskReferenceName": "a", "type": "HTTTP"}]}'
    )
    out = io.StringIO()
    assert check_paths([str(good)], out) == 0
    assert out.getvalue().splitlines() == [
        f"OK {good} (1 workflow, 0 task defs)",
        f'warning: {good}:5: tasks[0].optionl: unknown key (did you mean "optional"?)',
    ]
    out = io.StringIO()
    assert check_paths([str(good), str(bad)], out, quiet=True) == 2
    assert out.getvalue().splitlines() == [
        f'{bad}:2: tasks[0].type: unknown task type "HTTTP" (did you mean "HTTP"?)'
    ]
    assert check_paths([], io.StringIO()) == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of mode")
def test_permission_denied_is_a_fault(tmp_path: Path) -> None:
    path = tmp_path / "secret.json"
    path.write_text("{}")
    path.chmod(0)
    with pytest.raises(DefinitionError) as info:
        load_file(path)
    assert info.value.faults[0].message == "cannot read file: Permission denied"
