"""Handles on runs: a run found or created by its tags, and a ranking's parent run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import pandas as pd

from zoorank.storage.tracking.tags import _FINISHED

if TYPE_CHECKING:  # the tracker imports this module
    from zoorank.storage.tracking.tracker import Tracker


@dataclass(frozen=True)
class TaggedRun:
    """A run found or created by :meth:`Tracker.find_or_create_run`.

    ``created``: made by this call; ``finished``: an existing FINISHED run (nothing to log again);
    ``params``: the run's params after the call (flattened strings).
    """

    run_id: str
    status: str
    created: bool
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status == _FINISHED


@dataclass
class RankingRun:
    """Handle on a parent (ranking) run; a context manager that sets the final status.

    ``reused`` is True when an existing run with the same logical key was found;
    ``was_finished`` when that run had already finished (the ranking is already logged).
    """

    tracker: "Tracker"
    run_id: str
    reused: bool = False
    was_finished: bool = False
    _closed: bool = field(default=False, repr=False)

    def log_pair(self, model_id: str, dataset_id: str, **kwargs: Any) -> str:
        return self.tracker.log_pair(self.run_id, model_id, dataset_id, **kwargs)

    def log_table(self, df: pd.DataFrame, **kwargs: Any) -> list[str]:
        return self.tracker.log_ranking_table(self.run_id, df, **kwargs)

    def finish(self, status: str = _FINISHED) -> None:
        if self._closed:
            return
        self._closed = True
        if self.was_finished:
            return  # already finished earlier; a failure while re-reading it does not unfinish it
        self.tracker._terminate(self.run_id, status)

    def __enter__(self) -> "RankingRun":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish(_FINISHED)
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish("KILLED")
        else:
            self.finish("FAILED")
