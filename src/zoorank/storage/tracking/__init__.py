"""MLflow tracking for rankings: one parent run per ranking, one nested run per (model, dataset).

Everything goes through an explicit :class:`mlflow.tracking.MlflowClient` bound to one tracking
URI: no ``mlflow.start_run`` and no global active-run state, so Prefect tasks on threads or
processes can log concurrently.

Runs and tags
-------------
* Parent ("ranking") run: tags ``zoorank.kind=ranking`` and, when given,
  ``zoorank.logical_key=<key>``; params of the ranking; artifacts ``rankings/<name>.csv`` and
  ``rankings/<name>.png`` (:meth:`Tracker.log_ranking_table`), read back by
  :meth:`Tracker.find_ranking` (``zoorank show <run-id>``).
* Pair run (nested: tag ``mlflow.parentRunId``): tags ``zoorank.kind=pair``, ``zoorank.model``,
  ``zoorank.dataset``, ``zoorank.pair_key``; params; metrics ``score.<metric>``,
  ``time.<stage>`` (seconds), ``cache_hit.<stage>`` (1/0) and ``cache_hits`` (count). Find one
  with ``mlflow.search_runs(filter_string="tags.`zoorank.model` = 'x'")`` or
  :meth:`Tracker.find_pairs`.

Idempotency, concurrency, owners and stale runs, reachability
-------------------------------------------------------------
``start_ranking(..., logical_key=k)`` reuses the parent of the same logical key (``reuse=False``
forces a new one) and ``log_pair`` the pair run of the same (parent, model, dataset); runs
identified by other tags are found or created by :meth:`Tracker.find_or_create_run`. All of it
runs under a lock (a thread lock plus an ``fcntl`` file lock per database or server), so processes
on one machine never create duplicates; every process that opens a parent records itself in
``zoorank.owners``, and a run whose owners are all dead is adopted or ended KILLED by the next
ranking of its key. The rules, the facts about MLflow they rest on, and the reachability checks:
docs/operations.md ("MLflow", "MLflow parent runs of killed processes").

Modules
-------
:mod:`.tracker` (:class:`Tracker`, assembled from) :mod:`.client` (connection, experiment,
runs found or created by tags), :mod:`.rankings` (ranking parents and pair runs), :mod:`.stale`
(owners, stale runs), :mod:`.tables` (ranking tables as artifacts); :mod:`.lock` (the
cross-process find-or-create lock); :mod:`.runs` (run handles),
:mod:`.tags` and :mod:`.values` (tag names, run kinds, how values look to MLflow; no MLflow import),
:mod:`.errors`. Names are exported lazily (PEP 562): ``zoorank.storage.tracking.tags`` loads
without MLflow. The ranking chart is drawn by :mod:`zoorank.reporting.charts`.
"""

from __future__ import annotations

from zoorank.support.lazy_exports import lazy_exports

_LAZY = {
    "Tracker": ".tracker",
    "TrackerClient": ".client", "HTTP_ENV_DEFAULTS": ".client",
    "RankingRun": ".runs", "TaggedRun": ".runs",
    "TrackingError": ".errors", "TrackingUnavailable": ".errors", "RankingNotFound": ".errors",
    "logical_key": ".values", "ranking_key": ".values", "redact_uri": ".values", "_pair_key": ".values", "_flatten": ".values",
    "_quote": ".values", "_name": ".values",
    **{name: ".tags" for name in (
        "TAG_KIND", "TAG_MODEL", "TAG_DATASET", "TAG_LOGICAL_KEY", "TAG_PAIR_KEY", "TAG_PARENT", "TAG_OWNERS",
        "TAG_RECOVERED", "TAG_ENDED_BY", "TAG_TRIAL_KEY", "TABLE_DIR", "KIND_RANKING", "KIND_PAIR",
        "KIND_GROUND_TRUTH", "KIND_GT_PAIR", "KIND_GT_TRIAL")},
}

__all__ = [
    "Tracker",
    "RankingRun",
    "TaggedRun",
    "TrackingError",
    "TrackingUnavailable",
    "RankingNotFound",
    "logical_key",
    "TAG_KIND",
    "TAG_MODEL",
    "TAG_DATASET",
    "TAG_LOGICAL_KEY",
    "TAG_PAIR_KEY",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
