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

Idempotency and concurrency
---------------------------
``start_ranking(..., logical_key=k)`` reuses an existing parent with the same logical key (a
finished one first, else the newest unfinished one, i.e. the run a killed process left behind)
instead of creating a duplicate; ``reuse=False`` forces a new run. ``log_pair`` likewise reuses
the pair run of the same (parent, model, dataset): a finished one is returned untouched, an
unfinished one is completed. Find-or-create is done under a lock: a thread lock plus, for
``sqlite:///`` URIs, an ``fcntl`` lock on ``<db>.zoorank.lock``, so processes on one machine
sharing one database never create duplicates. For ``http(s)`` URIs the lock file is
``<tmp>/zoorank-mlflow-<hash of the URI>.lock``, so processes on one machine sharing one tracking
server are serialised the same way. Processes on two machines can still both create a parent
(MLflow has no create-if-absent); right after creating one, a parent is compared with the others
of its logical key, and all but the oldest (start time, then run id) delete themselves and join
the oldest.

Owners and stale runs
---------------------
Every process that opens (or joins) a parent run adds its process identity
(``host:boot:pid:start``, :mod:`zoorank.support.process_identity`) to the run's tag ``zoorank.owners``. An
unfinished run whose owners are all dead (checked on this host and boot: the pid is gone or names
another process) is *stale*: its process was killed (``kill -9``, OOM killer, power loss of a
worker). When a ranking with the same logical key starts, it adopts the newest stale run and
completes it (tag ``zoorank.recovered_from`` names the dead owners), and ends every other stale
run of that key as KILLED (tag ``zoorank.ended_by``); a run that another live process is still
logging is joined, never ended. So a killed ranking never stays RUNNING once it is rerun, and
each logical ranking keeps exactly one finished parent run. Owners on another host cannot be
checked from here; their runs are left as they are. A FAILED or KILLED status is never written
over a run that another process has already FINISHED.

Reachability
------------
The URI is checked when the :class:`Tracker` is built: ``http(s)`` URIs get a direct
``GET <uri>/health`` with a short timeout (any HTTP answer counts as reachable; a refused or
timed-out connection raises :class:`TrackingUnavailable` naming the URI within a few seconds);
MLflow's own HTTP retries are capped through ``MLFLOW_HTTP_REQUEST_MAX_RETRIES`` (2),
``..._BACKOFF_FACTOR`` (1) and ``..._TIMEOUT`` (30 s) unless the user set them. ``sqlite``
URIs get their folder created (or a clear error) and the schema initialised under the lock
(concurrent first use would otherwise race in the migrations).

Modules
-------
:mod:`.tracker` (:class:`Tracker`, assembled from) :mod:`.client` (connection, lock, experiment,
runs found or created by tags), :mod:`.rankings` (ranking parents and pair runs), :mod:`.stale`
(owners, stale runs), :mod:`.tables` (ranking tables as artifacts); :mod:`.runs` (run handles),
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
