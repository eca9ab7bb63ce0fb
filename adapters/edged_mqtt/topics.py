"""MQTT topic names and topic filters (MQTT 5 section 4.7, same rules in 3.1.1).

Theory of operation: a topic name is a non-empty UTF-8 string of levels split by ``/``; it
never holds a wildcard. A topic filter may hold ``+`` (exactly one level, possibly empty) and
``#`` (the parent level and any number of levels below it; only as the whole last level).
Topic names that start with ``$`` (``$SYS/...``) are reserved for the broker: a filter whose
first level is a wildcard does not match them, so ``#`` never sees broker statistics.

Pure functions, no I/O: the client uses them to route received messages to the subscription
that asked for them, and triggers (a later part of this adapter) will use them to pick rules.
"""

from __future__ import annotations

from collections.abc import Callable

from edged.errors import BadInput

MAX_TOPIC_BYTES = 65535  # the length field of a UTF-8 string in an MQTT packet


class InvalidTopic(BadInput):
    """A topic name or topic filter that the MQTT specification forbids."""


def _check_common(text: str, kind: str) -> None:
    if not text:
        raise InvalidTopic(f"{kind} is empty")
    if "\x00" in text:
        raise InvalidTopic(f"{kind} {text!r} holds a NUL character")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_TOPIC_BYTES:
        raise InvalidTopic(f"{kind} is longer than {MAX_TOPIC_BYTES} bytes")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidTopic(f"{kind} {text!r} is not valid UTF-8") from exc


def validate_topic(topic: str) -> str:
    """Return ``topic`` if it is a valid topic name (for PUBLISH), else raise InvalidTopic."""
    _check_common(topic, "topic")
    if "+" in topic or "#" in topic:
        raise InvalidTopic(f"topic {topic!r} holds a wildcard; wildcards belong in filters")
    return topic


def validate_filter(topic_filter: str) -> str:
    """Return ``topic_filter`` if it is a valid filter (for SUBSCRIBE), else raise InvalidTopic."""
    _check_common(topic_filter, "topic filter")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise InvalidTopic(
                f"topic filter {topic_filter!r}: '#' must be a whole level and the last one"
            )
        if "+" in level and level != "+":
            raise InvalidTopic(f"topic filter {topic_filter!r}: '+' must be a whole level")
    return topic_filter


def topic_matches(topic_filter: str, topic: str) -> bool:
    """True when the topic name ``topic`` matches ``topic_filter``.

    Raises InvalidTopic when either argument is malformed, so a typo in a rule is reported
    instead of silently matching nothing.
    """
    validate_filter(topic_filter)
    validate_topic(topic)
    filter_levels = topic_filter.split("/")
    topic_levels = topic.split("/")
    # $-topics are hidden from filters that start with a wildcard (MQTT 5 4.7.2).
    if topic.startswith("$") and filter_levels[0] in ("+", "#"):
        return False
    for index, level in enumerate(filter_levels):
        if level == "#":
            # "a/#" matches "a" too: '#' also stands for the parent level.
            return True
        if index >= len(topic_levels):
            return False
        if level != "+" and level != topic_levels[index]:
            return False
    return len(filter_levels) == len(topic_levels)


def compile_filter(topic_filter: str) -> Callable[[str], bool]:
    """A matcher for a filter validated once: ``compile_filter(f)(topic)`` is
    ``topic_matches(f, topic)`` without re-checking both on every message (hot path)."""
    validate_filter(topic_filter)
    if "+" not in topic_filter and "#" not in topic_filter:
        return topic_filter.__eq__
    filter_levels = topic_filter.split("/")
    hides_system = filter_levels[0] in ("+", "#")

    def matches(topic: str) -> bool:
        if hides_system and topic.startswith("$"):
            return False
        topic_levels = topic.split("/")
        for index, level in enumerate(filter_levels):
            if level == "#":
                return True
            if index >= len(topic_levels):
                return False
            if level != "+" and level != topic_levels[index]:
                return False
        return len(filter_levels) == len(topic_levels)

    return matches
