"""Pure parts of the MQTT adapter: topic filters, reconnect backoff, the inbox bound."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edged_mqtt.backoff import backoff_ceiling_s, backoff_s
from edged_mqtt.inbox import CATCH_ALL, Inbox, MqttMessage
from edged_mqtt.topics import InvalidTopic, topic_matches, validate_filter, validate_topic

# ----------------------------------------------------------------- topic_matches

CASES = [
    ("sport/tennis/player1/#", "sport/tennis/player1", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
    ("sport/#", "sport", True),
    ("#", "sport/tennis", True),
    ("#", "/", True),
    ("sport/tennis/+", "sport/tennis/player1", True),
    ("sport/tennis/+", "sport/tennis/player1/ranking", False),
    ("sport/+", "sport", False),
    ("sport/+", "sport/", True),
    ("+/+", "/finance", True),
    ("/+", "/finance", True),
    ("+", "/finance", False),
    ("+", "finance", True),
    ("a/b", "a/b", True),
    ("a/b", "a/B", False),
    ("a/b", "a/b/c", False),
    ("a/b/c", "a/b", False),
    ("+/b/#", "x/b", True),
    ("+/b/#", "x/c", False),
    # $-topics are hidden from filters that start with a wildcard.
    ("#", "$SYS/broker/load", False),
    ("+/monitor/Clients", "$SYS/monitor/Clients", False),
    ("$SYS/#", "$SYS/broker/load", True),
    ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
    ("a/#", "a/$x", True),
]


@pytest.mark.parametrize(("topic_filter", "topic", "expected"), CASES)
def test_topic_matches_spec_examples(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


@pytest.mark.parametrize("bad", ["", "a/#/b", "a#", "#a", "a/b#", "a+", "+a/b", "a/++", "a\x00b"])
def test_invalid_filters_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidTopic):
        validate_filter(bad)


@pytest.mark.parametrize("bad", ["", "a/+", "a/#", "x\x00", "\ud800"])
def test_invalid_topics_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidTopic):
        validate_topic(bad)


def reference_match(topic_filter: str, topic: str) -> bool:
    """An independent oracle: translate the filter to a regular expression."""
    if topic.startswith("$") and topic_filter[0] in "+#":
        return False
    parts = []
    for level in topic_filter.split("/"):
        parts.append({"+": "[^/]*", "#": "\x00"}.get(level, re.escape(level)))
    pattern = "/".join(parts)
    pattern = pattern.replace("/\x00", "(/.*)?").replace("\x00", ".*")
    return re.fullmatch(pattern, topic, flags=re.DOTALL) is not None


LEVELS = ["a", "b", "", "$x"]


def all_topics(max_levels: int) -> list[str]:
    out = []
    for n in range(1, max_levels + 1):
        for combo in itertools.product(LEVELS, repeat=n):
            topic = "/".join(combo)
            if topic:
                out.append(topic)
    return out


def all_filters(max_levels: int) -> list[str]:
    out = []
    for n in range(1, max_levels + 1):
        for combo in itertools.product([*LEVELS, "+", "#"], repeat=n):
            if "#" in combo[:-1]:
                continue
            f = "/".join(combo)
            if f:
                out.append(f)
    return out


def test_topic_matches_agrees_with_a_regex_oracle_exhaustively() -> None:
    topics = all_topics(3)
    filters = all_filters(3)
    checked = 0
    for f in filters:
        for t in topics:
            assert topic_matches(f, t) is reference_match(f, t), (f, t)
            checked += 1
    assert checked > 10_000


@given(st.lists(st.sampled_from(["a", "b", "", "c"]), min_size=1, max_size=6))
def test_a_topic_matches_itself_and_hash(levels: list[str]) -> None:
    topic = "/".join(levels)
    if not topic:
        return
    assert topic_matches(topic, topic)
    assert topic_matches("#", topic)
    assert topic_matches("/".join("+" for _ in levels), topic)


# ----------------------------------------------------------------- backoff


def test_backoff_grows_exponentially_then_caps() -> None:
    ceilings = [backoff_ceiling_s(n, 0.5, 10.0) for n in range(8)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert backoff_ceiling_s(10_000, 0.5, 10.0) == 10.0


def test_backoff_is_full_jitter_over_the_ceiling() -> None:
    assert backoff_s(3, 0.5, 10.0, lambda: 0.0) == 0.0
    assert backoff_s(3, 0.5, 10.0, lambda: 0.5) == 2.0
    assert backoff_s(3, 0.5, 10.0, lambda: 0.999) == pytest.approx(3.996)


@given(
    st.integers(min_value=0, max_value=10**6),
    st.floats(min_value=0, max_value=100),
    st.floats(min_value=0, max_value=3600),
    st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_backoff_stays_within_zero_and_cap(attempt: int, base: float, cap: float, r: float) -> None:
    delay = backoff_s(attempt, base, cap, lambda: r)
    assert 0.0 <= delay <= cap
    assert delay <= base * 2 ** min(attempt, 64)


def test_backoff_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        backoff_s(-1, 1, 1, lambda: 0.5)
    with pytest.raises(ValueError):
        backoff_s(0, 1, 1, lambda: 1.0)


# ----------------------------------------------------------------- inbox


def msg(topic: str, n: int, inbox: Inbox) -> MqttMessage:
    return MqttMessage(topic, str(n).encode(), 1, False, n, subscription=inbox.route(topic))


def test_inbox_routes_to_the_first_matching_subscription() -> None:
    inbox = Inbox(10)
    inbox.add_route("a/#")
    inbox.add_route("a/b")
    assert inbox.route("a/b") == "a/#"
    assert inbox.route("z") == CATCH_ALL
    assert list(inbox.routes()) == ["a/#", "a/b"]


@given(
    st.lists(st.sampled_from(["flood/x", "calm/y", "other"]), max_size=200),
    st.integers(min_value=1, max_value=20),
)
def test_inbox_bounds_each_queue_and_drops_oldest(topics: list[str], bound: int) -> None:
    inbox = Inbox(bound)
    inbox.add_route("flood/#")
    inbox.add_route("calm/#")
    for n, topic in enumerate(topics):
        inbox.put(msg(topic, n, inbox))
    per_route: dict[str, list[int]] = {}
    for n, topic in enumerate(topics):
        per_route.setdefault(inbox.route(topic), []).append(n)
    expected_kept = {k: v[-bound:] for k, v in per_route.items()}
    assert inbox.dropped == sum(len(v) - len(expected_kept[k]) for k, v in per_route.items())
    got: dict[str, list[int]] = {}
    while (m := inbox.get_nowait()) is not None:
        got.setdefault(m.subscription, []).append(m.mid)
    assert got == {k: v for k, v in expected_kept.items() if v}
    assert len(inbox) == 0


def test_inbox_reads_round_robin_so_a_flood_cannot_starve_others() -> None:
    inbox = Inbox(1000)
    inbox.add_route("flood/#")
    inbox.add_route("calm/#")
    for n in range(500):
        inbox.put(msg("flood/x", n, inbox))
    inbox.put(msg("calm/y", 999, inbox))
    first_two = [inbox.get_nowait(), inbox.get_nowait()]
    assert any(m is not None and m.topic == "calm/y" for m in first_two)
