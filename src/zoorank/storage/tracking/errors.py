"""Tracking errors: each names the URI (password redacted) and the run."""

from __future__ import annotations





class TrackingError(RuntimeError):
    """A tracking operation failed (the message names the URI and the run)."""


class TrackingUnavailable(TrackingError):
    """The tracking URI cannot be reached or opened."""


class RankingNotFound(TrackingError, LookupError):
    """The run has no ranking table (or no such table)."""
