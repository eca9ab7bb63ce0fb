"""The one exception root of edged, and the few families below it.

Errors are split, as h11 does, into "the caller did it wrong" (bad input: a
definition, a request body, an argument) and "we could not do it" (the journal
refused a write, a dependency is missing).  The API maps the first family to
4xx and the second to 5xx.
"""

from __future__ import annotations


class EdgedError(Exception):
    """Root of every error edged raises on purpose."""


class BadInput(EdgedError):
    """The caller sent something we cannot accept (HTTP 400)."""


class NotFound(EdgedError):
    """A named thing (workflow, definition, task) does not exist (HTTP 404)."""


class Conflict(EdgedError):
    """The request does not fit the current state (HTTP 409)."""


class JournalError(EdgedError):
    """The journal could not durably record something; nothing was applied."""


class JournalFull(JournalError):
    """The journal's storage is full; new work is refused until space returns."""


class ConfigError(EdgedError):
    """The daemon's configuration is wrong; raised before the journal is touched."""
