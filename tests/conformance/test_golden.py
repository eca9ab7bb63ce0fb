"""Golden-journal replay: today's decider must answer the recorded events exactly
as it did when the golden files were made (regenerate with make_golden.py)."""

from __future__ import annotations

import json

import pytest
from golden_scenarios import GOLDEN, SCENARIOS, record, replay


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_replay_matches_golden(name: str) -> None:
    golden = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    replayed = replay(golden, name)
    assert len(replayed) == len(golden["steps"])
    for i, (now, then) in enumerate(zip(replayed, golden["steps"], strict=True)):
        assert now["commands"] == then["commands"], f"{name} step {i}: commands changed"
        assert now["state"] == then["state"], f"{name} step {i}: task statuses changed"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_recording_is_deterministic(name: str) -> None:
    assert json.loads(json.dumps(record(name))) == json.loads(json.dumps(record(name)))


def test_a_changed_decision_is_caught() -> None:
    name = "fork_join"
    golden = json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))
    golden["steps"][0]["commands"] = golden["steps"][0]["commands"][:-1]
    replayed = replay(golden, name)
    assert replayed[0]["commands"] != golden["steps"][0]["commands"]
