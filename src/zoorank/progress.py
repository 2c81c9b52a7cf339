"""Progress lines for long runs (``zoorank rank`` prints them to stderr)."""
from __future__ import annotations

import logging
import sys

log = logging.getLogger("zoorank.progress")


def stage_done(pair: str, result) -> None:
    """One line per finished stage: pair, stage, computed or cached, seconds."""
    how = "skipped" if "skipped" in result.info else ("cached" if result.cache_hit else "computed")
    log.info("%-40s %-16s %-8s %7.2fs", pair, result.stage, how, result.seconds)


def enable(stream=sys.stderr) -> None:
    if not any(getattr(h, "_zoorank", False) for h in log.handlers):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("  %(message)s"))
        handler._zoorank = True
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
