"""Owners and stale runs: a run whose every owning process is dead is adopted or ended KILLED."""

from __future__ import annotations

import contextlib
import logging
from typing import Any


from zoorank.support.process_identity import ProcessIdentity
from zoorank.storage.tracking.tags import TAG_ENDED_BY, TAG_OWNERS, TAG_PARENT, _FINISHED
from zoorank.storage.tracking.values import _quote

log = logging.getLogger("zoorank.storage.tracking")

class StaleRunsMixin:
    """Owner bookkeeping of :class:`Tracker` (docs/operations.md, \"Stale runs\")."""

    @staticmethod
    def _owners(run: Any) -> list[ProcessIdentity]:
        out = []
        for text in (run.data.tags.get(TAG_OWNERS) or "").split(","):
            with contextlib.suppress(ValueError):
                out.append(ProcessIdentity.parse(text))
        return out

    def is_stale(self, run: Any) -> bool:
        """An unfinished run none of whose owners lives: each is on this host and boot and dead.
        A run without an owner tag (logged before owners were recorded) is stale once unfinished
        and not RUNNING; a RUNNING one without owners is left alone (its writer is unknown)."""
        if run.info.status == _FINISHED:
            return False
        owners = self._owners(run)
        if not owners:
            return run.info.status != "RUNNING"
        return all(o.alive() is False for o in owners)

    def _end_stale(self, runs: list[Any], *, keep: str | None, me: str) -> list[str]:
        """End every stale run of ``runs`` except ``keep`` as KILLED; return their ids."""
        ended = []
        for r in runs:
            if r.info.run_id == keep or r.info.status not in ("RUNNING", "SCHEDULED") or not self.is_stale(r):
                continue
            dead = r.data.tags.get(TAG_OWNERS) or "unknown"
            self._log(r.info.run_id, tags={TAG_ENDED_BY: f"{me}: owners {dead} are dead"})
            self.client.set_terminated(r.info.run_id, status="KILLED")
            for child in self._search(f"tags.`{TAG_PARENT}` = {_quote(r.info.run_id)}"):
                if child.info.status == "RUNNING":  # a pair run the dead process was logging
                    self.client.set_terminated(child.info.run_id, status="KILLED")
            log.warning("MLflow run %s was left RUNNING by a dead process (%s); marked KILLED", r.info.run_id, dead)
            ended.append(r.info.run_id)
        return ended
