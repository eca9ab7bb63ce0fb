"""Reconnect delays: capped exponential backoff with full jitter.

Theory of operation: after the n-th failed attempt in a row (n counts from 0) the client waits
a uniformly random time in [0, min(cap, base * 2**n)). Full jitter (AWS Architecture Blog,
"Exponential Backoff And Jitter") spreads a fleet of gateways that lost the same broker at the
same moment, so they do not all come back in the same millisecond. The attempt counter resets
once a connection is accepted (CONNACK success), not when TCP connects, so a broker that
accepts sockets but refuses sessions is still backed off.

Pure: the random source is a parameter, so tests pin it.
"""

from __future__ import annotations

from collections.abc import Callable

# 2**64 already exceeds every sensible cap; clamping the exponent avoids huge ints.
_MAX_EXPONENT = 64


def backoff_ceiling_s(attempt: int, base_s: float, cap_s: float) -> float:
    """The upper bound of the delay after ``attempt`` consecutive failures (no jitter)."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, got {attempt}")
    if base_s < 0 or cap_s < 0:
        raise ValueError("base_s and cap_s must be >= 0")
    return float(min(cap_s, base_s * (2 ** min(attempt, _MAX_EXPONENT))))


def backoff_s(attempt: int, base_s: float, cap_s: float, rand: Callable[[], float]) -> float:
    """Full-jitter delay in seconds: ``rand() * backoff_ceiling_s(attempt, base_s, cap_s)``.

    ``rand`` returns a float in [0, 1), like ``random.random``.
    """
    fraction = rand()
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"rand() must return a value in [0, 1), got {fraction}")
    return fraction * backoff_ceiling_s(attempt, base_s, cap_s)
