"""Bad configuration stops `edged run` with one clear line, exit 2, no journal.

Each case must be refused before the data directory's journal is created or
touched: a daemon that half-starts on a bad config leaves state behind that
the next (fixed) start would have to make sense of.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from workloads import TASKDEFS, simple

from tests.integration.daemon_harness import HERE, edged_cmd, free_port, write_defs

GOOD_WF = {
    "name": "ok_wf",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [simple("it_add", "a", a=1, b=2)],
}


def run_edged(
    tmp_path: Path,
    config: Path,
    *,
    data_dir: Path | None = None,
    port: int | None = None,
    defs: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    data_dir = data_dir or tmp_path / "data"
    args = ["run", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{port or free_port()}"]
    args += ["--defs", str(defs or write_defs(tmp_path / "defs", GOOD_WF, taskdefs=TASKDEFS))]
    args += ["--config", str(config)]
    return subprocess.run(edged_cmd(*args), capture_output=True, text=True, timeout=30, cwd=HERE)


def config_file(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "edged.yaml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


BASE = {"python": {"paths": [str(HERE)], "modules": ["it_handlers"]}}

CASES: dict[str, tuple[object, str]] = {
    "unknown key": ({**BASE, "jurnal": {}}, "jurnal: unknown key (did you mean 'journal'?)"),
    "unknown nested key": ({**BASE, "journal": {"max_size": 5}}, "journal.max_size: unknown key"),
    "wrong type": (
        {**BASE, "python": {"max_threads": "eight"}},
        "python.max_threads: expected int, got str",
    ),
    "not yaml": ("python: [unclosed\n", "not valid YAML/JSON"),
    "not a mapping": ("- a\n- b\n", "expected a mapping at the top level"),
    "bad log format": ({**BASE, "log_format": "xml"}, "log_format: expected 'logfmt' or 'json'"),
    "missing handler module": (
        {"python": {"modules": ["no_such_module_xyz"]}},
        "cannot import no_such_module_xyz",
    ),
    "bad binding": ({**BASE, "bindings": {"it_add": "it_handlers:add"}}, "bindings.it_add"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_file_is_refused_before_the_journal(tmp_path: Path, case: str) -> None:
    doc, expected = CASES[case]
    proc = run_edged(tmp_path, config_file(tmp_path, doc))
    line = one_line(proc)
    assert line.startswith("edged: config error: ") and expected in line, line
    assert not (tmp_path / "data" / "journal.db").exists()


def test_unreadable_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    line = one_line(run_edged(tmp_path, missing))
    assert str(missing) in line and "cannot read" in line, line
    directory = tmp_path / "adir.yaml"
    directory.mkdir()
    line = one_line(run_edged(tmp_path, directory))
    assert str(directory) in line and "cannot read" in line, line
    assert not (tmp_path / "data").exists()


def test_port_already_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_line(run_edged(tmp_path, config_file(tmp_path, BASE), port=port))
    assert f"127.0.0.1:{port}" in line and "in use" in line, line
    assert not (tmp_path / "data" / "journal.db").exists()


def test_data_dir_not_creatable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    data_dir = blocker / "data"
    line = one_line(run_edged(tmp_path, config_file(tmp_path, BASE), data_dir=data_dir))
    assert str(data_dir) in line, line
    assert blocker.read_text() == "not a directory"


BAD_DEFS: dict[str, Callable[[Path], str]] = {}


def _bad_task_type(defs: Path) -> str:
    doc = {
        "name": "bad_wf",
        "version": 1,
        "tasks": [{"name": "x", "taskReferenceName": "x", "type": "HTTTP"}],
    }
    (defs / "bad_wf.json").write_text(json.dumps(doc))
    return "HTTTP"


def _not_json(defs: Path) -> str:
    (defs / "broken.json").write_text('{"name": "broken", "tasks": [')
    return "broken.json"


@pytest.mark.parametrize(
    "make_bad", [_bad_task_type, _not_json], ids=["unknown task type", "not json"]
)
def test_bad_definition_in_defs(tmp_path: Path, make_bad: Callable[[Path], str]) -> None:
    defs = write_defs(tmp_path / "defs", GOOD_WF, taskdefs=TASKDEFS)
    needle = make_bad(defs)
    proc = run_edged(tmp_path, config_file(tmp_path, BASE), defs=defs)
    line = one_line(proc)
    assert needle in line, line
    assert not (tmp_path / "data" / "journal.db").exists()
