"""The :class:`Tracker`: MLflow tracking for zoorank, assembled from one mixin per job.

The runs it writes, idempotency, the cross-process lock, owners and stale runs, and reachability
are described in docs/operations.md ("MLflow tracking"); the package docstring lists the modules.
"""

from __future__ import annotations

from zoorank.storage.tracking.client import TrackerClient
from zoorank.storage.tracking.rankings import RankingsMixin
from zoorank.storage.tracking.stale import StaleRunsMixin
from zoorank.storage.tracking.tables import RankingTablesMixin


class Tracker(RankingsMixin, StaleRunsMixin, RankingTablesMixin, TrackerClient):
    """MLflow tracking for zoorank: one explicit ``MlflowClient`` bound to one tracking URI.

    Parameters
    ----------
    tracking_uri : e.g. ``sqlite:////abs/path/mlflow.db`` or ``http://host:5000``.
    experiment : experiment name (created if missing, restored if deleted).
    artifact_root : folder or URI under which the experiment's artifacts go
        (``<artifact_root>/<experiment>``). ``None`` lets the server choose (tracking servers).
    connect_timeout : seconds for the HTTP reachability probe.
    """
