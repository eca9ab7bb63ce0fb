"""Execution ids: UUIDs (RFC 9562 version 7) that sort by creation time.

Conductor's ids are random (version 4) UUIDs; any UUID string is accepted back. edged
makes new ones time-ordered because the journal indexes executions, tasks and history by
workflow id: a random key lands every new execution on a random B-tree page of each of
those indexes, so a commit of a few dozen new executions dirtied a few dozen scattered
pages per index (each written to the WAL and fsynced); time-ordered keys all land on the
last page. The first 48 bits are the Unix time in milliseconds, then the version, 74
random bits (os.urandom) and the variant, so ids stay unguessable and unique.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

__all__ = ["new_execution_id"]

_BATCH = 256  # ids per os.urandom call (a system call each, otherwise)


def _fresh_tails() -> Iterator[int]:
    """The low 80 bits of `_BATCH` ids: version 7, 74 random bits, the variant."""
    pool = os.urandom(10 * _BATCH)
    tails = []
    for at in range(0, len(pool), 10):
        rand = int.from_bytes(pool[at : at + 10], "big")  # 80 bits, 74 used
        tails.append(0x7 << 76 | (rand >> 68) << 64 | 0b10 << 62 | (rand & 0x3FFF_FFFF_FFFF_FFFF))
    return iter(tails)


# `next()` on a list iterator is atomic, so no two threads get the same bits; a thread
# that finds it empty installs a fresh one (two threads may both do so: no harm).
_tails: Iterator[int] = iter(())


def _forget_tails() -> None:
    global _tails
    _tails = iter(())  # a forked child must not hand out its parent's random bits


os.register_at_fork(after_in_child=_forget_tails)


def new_execution_id() -> str:
    """A new version 7 UUID string (time-ordered, 74 random bits)."""
    global _tails
    tail = next(_tails, None)
    if tail is None:
        _tails = _fresh_tails()
        tail = next(_tails)
    value = (time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF) << 80 | tail
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
