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
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import urlparse, urlunparse

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import pandas as pd  # noqa: E402
from mlflow.entities import Metric, Param, RunTag, ViewType  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from zoorank.support.process_identity import ProcessIdentity  # noqa: E402

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

log = logging.getLogger(__name__)

TAG_KIND = "zoorank.kind"
TAG_MODEL = "zoorank.model"
TAG_DATASET = "zoorank.dataset"
TAG_LOGICAL_KEY = "zoorank.logical_key"
TAG_PAIR_KEY = "zoorank.pair_key"
TAG_PARENT = "mlflow.parentRunId"
TAG_OWNERS = "zoorank.owners"              # process identities that opened / joined a parent run
TAG_RECOVERED = "zoorank.recovered_from"   # dead owners of a stale run this run was adopted from
TAG_ENDED_BY = "zoorank.ended_by"          # who marked a stale run KILLED, and why
TABLE_DIR = "rankings"

HTTP_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}
_MAX_PARAM_LEN = 6000
_MAX_TAG_LEN = 8000
_NAME_RE = re.compile(r"[^A-Za-z0-9_\-. /:]")
_TABLE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=-]*$")
_FINISHED = "FINISHED"
_UNFINISHED = ("RUNNING", "FAILED", "KILLED", "SCHEDULED")


class TrackingError(RuntimeError):
    """A tracking operation failed (the message names the URI and the run)."""


class TrackingUnavailable(TrackingError):
    """The tracking URI cannot be reached or opened."""


class RankingNotFound(TrackingError, LookupError):
    """The run has no ranking table (or no such table)."""


def redact_uri(uri: str) -> str:
    """The URI with any password replaced by ``***`` (for messages)."""
    try:
        p = urlparse(uri)
    except ValueError:
        return uri
    if p.password:
        netloc = p.netloc.replace(f":{p.password}@", ":***@")
        return urlunparse(p._replace(netloc=netloc))
    return uri


def logical_key(**parts: Any) -> str:
    """A 24-hex logical key for a ranking from its defining parts (zoo, datasets, params...)."""
    from zoorank.storage.keys import canonical_json

    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()[:24]


def _pair_key(model_id: str, dataset_id: str) -> str:
    return hashlib.sha256(json.dumps([model_id, dataset_id]).encode()).hexdigest()[:24]


def _quote(value: str) -> str:
    value = str(value)
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"cannot search for a value containing both quote kinds: {value!r}")


def _name(key: str) -> str:
    return _NAME_RE.sub("_", str(key))


def _flatten(d: Mapping[str, Any] | None, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{_name(k)}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            if isinstance(v, (list, tuple)):
                text = json.dumps(list(v), default=str)
            else:
                text = str(v)
            if len(text) > _MAX_PARAM_LEN:
                text = text[: _MAX_PARAM_LEN - 3] + "..."
            out[key] = text
    return out


def _as_float(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"metric {name!r} must be a number, got {value!r}") from None


def _chunks(seq: list[Any], n: int) -> Iterator[list[Any]]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///") :].split("?", 1)[0]
    if not raw or raw == ":memory:":
        return None
    return Path(raw).absolute()


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


class Tracker:
    """MLflow tracking for zoorank (see module docstring).

    Parameters
    ----------
    tracking_uri : e.g. ``sqlite:////abs/path/mlflow.db`` or ``http://host:5000``.
    experiment : experiment name (created if missing, restored if deleted).
    artifact_root : folder or URI under which the experiment's artifacts go
        (``<artifact_root>/<experiment>``). ``None`` lets the server choose (tracking servers).
    connect_timeout : seconds for the HTTP reachability probe.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str = "zoorank",
        artifact_root: str | os.PathLike[str] | None = None,
        *,
        connect_timeout: float = 5.0,
    ):
        if not tracking_uri:
            raise TrackingError("tracking_uri is empty")
        self.tracking_uri = str(tracking_uri)
        self.experiment_name = experiment
        self._uri_text = redact_uri(self.tracking_uri)
        self._tlock = threading.RLock()
        self._lock_file = None
        scheme = urlparse(self.tracking_uri).scheme.lower()
        if scheme in ("http", "https"):
            for name, value in HTTP_ENV_DEFAULTS.items():
                os.environ.setdefault(name, value)
            self._probe_http(connect_timeout)
            digest = hashlib.sha256(self.tracking_uri.rstrip("/").encode()).hexdigest()[:16]
            self._lock_file = Path(tempfile.gettempdir()) / f"zoorank-mlflow-{digest}.lock"
        elif scheme == "sqlite":
            db = _sqlite_path(self.tracking_uri)
            if db is not None:
                try:
                    db.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise TrackingUnavailable(
                        f"MLflow tracking URI {self._uri_text} is not usable: cannot create folder "
                        f"{db.parent} ({e.strerror or e})"
                    ) from e
                self._lock_file = db.with_name(db.name + ".zoorank.lock")
        self.artifact_location = self._artifact_location(artifact_root, experiment)
        with self._lock():  # first use of a sqlite file runs schema migrations: serialise them
            try:
                self.client = MlflowClient(tracking_uri=self.tracking_uri)
                self.client.search_experiments(max_results=1)
            except Exception as e:
                raise TrackingUnavailable(
                    f"MLflow tracking URI {self._uri_text} is not reachable or not usable: "
                    f"{type(e).__name__}: {e}"
                ) from e
            self.experiment_id = self._ensure_experiment()

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> "Tracker":
        """Build from :class:`zoorank.config.Settings`."""
        return cls(settings.tracking_uri, settings.experiment, settings.artifact_root, **kwargs)

    def __repr__(self) -> str:
        return f"Tracker({self._uri_text!r}, experiment={self.experiment_name!r})"

    # ------------------------------------------------------------------ setup helpers

    def _probe_http(self, timeout: float) -> None:
        import requests

        url = self.tracking_uri.rstrip("/") + "/health"
        try:
            requests.get(url, timeout=(timeout, max(timeout, 10.0)))
        except requests.RequestException as e:
            raise TrackingUnavailable(
                f"MLflow tracking URI {self._uri_text} is not reachable "
                f"({type(e).__name__}: {e}). Start the server or set ZOORANK_TRACKING_URI / "
                "--tracking-uri (default: a local sqlite:/// database)."
            ) from e

    @staticmethod
    def _artifact_location(root: str | os.PathLike[str] | None, experiment: str) -> str | None:
        if root is None:
            return None
        text = os.fspath(root)
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", text):  # a URI (file:, s3:, mlflow-artifacts:, ...)
            return text.rstrip("/") + "/" + experiment
        path = Path(os.path.expanduser(text)).absolute() / experiment
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TrackingUnavailable(f"MLflow artifact root {path} cannot be created ({e.strerror or e})") from e
        return path.as_uri()

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with self._tlock:
            if self._lock_file is None:
                yield
                return
            try:
                fh_cm = open(self._lock_file, "a+")
            except OSError as e:  # read-only folder: nothing to serialise against but readers
                log.debug("no tracking lock file %s (%s); continuing without it", self._lock_file, e)
                yield
                return
            with fh_cm as fh:
                deadline = time.monotonic() + 120.0
                while True:
                    try:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise TrackingError(
                                f"timed out waiting for the tracking lock {self._lock_file}"
                            ) from None
                        time.sleep(0.05)
                try:
                    yield
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _ensure_experiment(self) -> str:
        exp = self.client.get_experiment_by_name(self.experiment_name)
        if exp is None:
            try:
                return self.client.create_experiment(
                    self.experiment_name,
                    artifact_location=self.artifact_location,
                    tags={"zoorank.created_by": "zoorank"},
                )
            except MlflowException as e:
                if "RESOURCE_ALREADY_EXISTS" not in str(e.error_code) and "already exists" not in str(e):
                    raise TrackingError(
                        f"cannot create experiment {self.experiment_name!r} at {self._uri_text}: {e}"
                    ) from e
                exp = self.client.get_experiment_by_name(self.experiment_name)
                assert exp is not None
        if exp.lifecycle_stage == "deleted":
            self.client.restore_experiment(exp.experiment_id)
        if self.artifact_location and exp.artifact_location != self.artifact_location:
            log.info(
                "experiment %r keeps its artifact location %s (requested %s)",
                self.experiment_name, exp.artifact_location, self.artifact_location,
            )
        return exp.experiment_id

    def _search(self, filter_string: str, *, max_results: int = 1000, order_newest: bool = True) -> list[Any]:
        try:
            return list(
                self.client.search_runs(
                    [self.experiment_id],
                    filter_string=filter_string,
                    run_view_type=ViewType.ACTIVE_ONLY,
                    max_results=max_results,
                    order_by=["attributes.start_time DESC"] if order_newest else None,
                )
            )
        except MlflowException as e:
            raise TrackingError(f"search {filter_string!r} failed at {self._uri_text}: {e}") from e

    def _terminate(self, run_id: str, status: str) -> None:
        """End a run; a failure status never overwrites a run another process already FINISHED."""
        if status != _FINISHED:
            with contextlib.suppress(MlflowException):
                if self.client.get_run(run_id).info.status == _FINISHED:
                    return
        self.client.set_terminated(run_id, status=status)

    def _log(self, run_id: str, *, params: Mapping[str, str] | None = None,
             metrics: Mapping[str, float] | None = None, tags: Mapping[str, str] | None = None,
             existing_params: Mapping[str, str] | None = None) -> None:
        now = int(time.time() * 1000)
        existing_params = existing_params or {}
        param_list = []
        for k, v in (params or {}).items():
            if k in existing_params:
                if existing_params[k] != v:
                    log.warning("run %s keeps param %s=%r (not %r)", run_id, k, existing_params[k], v)
                continue
            param_list.append(Param(k, v))
        metric_list = [Metric(_name(k), float(v), now, 0) for k, v in (metrics or {}).items()]
        tag_list = [RunTag(_name(k), str(v)[:_MAX_TAG_LEN]) for k, v in (tags or {}).items()]
        for chunk in _chunks(param_list, 100):
            self.client.log_batch(run_id, params=chunk)
        for chunk in _chunks(tag_list, 100):
            self.client.log_batch(run_id, tags=chunk)
        for chunk in _chunks(metric_list, 1000):
            self.client.log_batch(run_id, metrics=chunk)

    # ------------------------------------------------------------------ runs identified by tags

    def find_runs(self, tags: Mapping[str, Any]) -> list[Any]:
        """Active runs of the experiment carrying every tag of ``tags`` (newest first)."""
        if not tags:
            raise ValueError("find_runs needs at least one tag to identify the runs")
        return self._search(" and ".join(f"tags.`{_name(k)}` = {_quote(str(v))}" for k, v in tags.items()))

    def find_or_create_run(
        self,
        tags: Mapping[str, Any],
        *,
        run_name: str,
        params: Mapping[str, Any] | None = None,
        reopen: bool = False,
    ) -> "TaggedRun":
        """Find-or-create, under the tracking lock, the run identified by ``tags``.

        A FINISHED run carrying all ``tags`` is returned untouched (``finished=True``); else the
        newest unfinished one (set RUNNING again when ``reopen``); else a new run is created with
        those tags (a ``mlflow.parentRunId`` tag nests it) and ``params``. On a found unfinished
        run, ``params`` it lacks are added and the ones it has are kept. Processes on one machine
        never create two runs for the same tags (see the module docstring's lock).
        """
        flat = _flatten(params)
        with self._lock():
            runs = self.find_runs(tags)
            done = [r for r in runs if r.info.status == _FINISHED]
            if done:
                r = done[0]
                return TaggedRun(r.info.run_id, r.info.status, created=False, params=dict(r.data.params))
            try:
                if runs:
                    r = runs[0]
                    if reopen:
                        self.client.update_run(r.info.run_id, status="RUNNING")
                    self._log(r.info.run_id, params=flat, existing_params=r.data.params)
                    return TaggedRun(r.info.run_id, "RUNNING" if reopen else r.info.status, created=False,
                                     params={**flat, **r.data.params})
                run = self.client.create_run(self.experiment_id, run_name=run_name,
                                             tags={_name(k): str(v) for k, v in tags.items()})
                self._log(run.info.run_id, params=flat)
            except MlflowException as e:
                raise TrackingError(f"cannot find or create run {run_name!r} ({dict(tags)}) at "
                                    f"{self._uri_text}: {e}") from e
        return TaggedRun(run.info.run_id, run.info.status, created=True, params=flat)

    def log_run(self, run_id: str, *, params: Mapping[str, Any] | None = None,
                metrics: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None,
                existing_params: Mapping[str, str] | None = None) -> None:
        """Log params (flattened; ``existing_params`` are kept as they are), metrics and tags on a run."""
        values = {k: _as_float(k, v) for k, v in (metrics or {}).items() if v is not None}
        self._log(run_id, params=_flatten(params), metrics=values,
                  tags={k: str(v) for k, v in (tags or {}).items()}, existing_params=existing_params)

    def log_curve(self, run_id: str, name: str, points: Iterator[tuple[int, Any]] | list[tuple[int, Any]]) -> int:
        """Log a metric history ``name`` as (step, value) points; non-finite values are skipped.
        Returns how many points were logged."""
        now = int(time.time() * 1000)
        items = [Metric(_name(name), float(v), now, int(s)) for s, v in points
                 if v is not None and math.isfinite(float(v))]
        for chunk in _chunks(items, 900):
            self.client.log_batch(run_id, metrics=chunk)
        return len(items)

    def end_run(self, run_id: str, status: str = _FINISHED) -> None:
        """End a run with ``status``; a failure status never overwrites a FINISHED run."""
        self._terminate(run_id, status)

    # ------------------------------------------------------------------ rankings

    def find_run_by_key(self, key: str, *, kind: str = "ranking") -> Any | None:
        """Newest active run with ``zoorank.logical_key = key`` (finished ones preferred), or None."""
        runs = self._search(f"tags.`{TAG_LOGICAL_KEY}` = {_quote(key)} and tags.`{TAG_KIND}` = {_quote(kind)}")
        finished = [r for r in runs if r.info.status == _FINISHED]
        return (finished or runs or [None])[0]

    def _runs_by_key(self, key: str, kind: str = "ranking") -> list[Any]:
        return self._search(f"tags.`{TAG_LOGICAL_KEY}` = {_quote(key)} and tags.`{TAG_KIND}` = {_quote(kind)}")

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

    def _reuse(self, runs: list[Any], flat: Mapping[str, str], all_tags: Mapping[str, str],
               me: str) -> "RankingRun | None":
        """Reuse a parent of the same logical key: a finished one first, else the newest one that
        is unfinished (joined when its owner lives, adopted when it is stale). Every other stale run
        is ended KILLED. None when there is nothing to reuse."""
        finished = [r for r in runs if r.info.status == _FINISHED]
        unfinished = [r for r in runs if r.info.status != _FINISHED]
        chosen = (finished or unfinished or [None])[0]
        self._end_stale(runs, keep=None if finished else (chosen.info.run_id if chosen else None), me=me)
        if chosen is None:
            return None
        if finished:
            return RankingRun(self, chosen.info.run_id, reused=True, was_finished=True)
        run_id = chosen.info.run_id
        tags = dict(all_tags)
        owners = [str(o) for o in self._owners(chosen)]
        if self.is_stale(chosen) and owners:
            tags[TAG_RECOVERED] = ",".join(owners)
        live = [o for o in owners if ProcessIdentity.parse(o).alive() is not False]
        tags[TAG_OWNERS] = ",".join(dict.fromkeys([*live, me]))
        self.client.update_run(run_id, status="RUNNING")
        self._log(run_id, params=flat, tags=tags, existing_params=chosen.data.params)
        return RankingRun(self, run_id, reused=True, was_finished=False)

    def start_ranking(
        self,
        run_name: str,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        *,
        logical_key: str | None = None,
        reuse: bool = True,
    ) -> RankingRun:
        """Create (or, with the same ``logical_key``, reuse) the parent run of a ranking."""
        flat = _flatten(params)
        all_tags = {TAG_KIND: "ranking", **{_name(k): str(v) for k, v in (tags or {}).items()}}
        if logical_key:
            all_tags[TAG_LOGICAL_KEY] = logical_key
        me = str(ProcessIdentity.of())
        with self._lock():
            runs = self._runs_by_key(logical_key) if logical_key else []
            if logical_key and reuse:
                found = self._reuse(runs, flat, all_tags, me)
                if found is not None:
                    return found
            elif runs:
                self._end_stale(runs, keep=None, me=me)
            try:
                run = self.client.create_run(self.experiment_id, run_name=run_name,
                                             tags={**all_tags, TAG_OWNERS: me})
                self._log(run.info.run_id, params=flat)
            except MlflowException as e:
                raise TrackingError(f"cannot create ranking run {run_name!r} at {self._uri_text}: {e}") from e
            if logical_key and reuse:  # another machine may have created one at the same time: oldest wins
                rivals = self._runs_by_key(logical_key)
                oldest = min(rivals, key=lambda r: (r.info.start_time, r.info.run_id), default=run)
                if oldest.info.run_id != run.info.run_id:
                    self.client.delete_run(run.info.run_id)
                    found = self._reuse([r for r in rivals if r.info.run_id != run.info.run_id], flat, all_tags, me)
                    if found is not None:
                        return found
        return RankingRun(self, run.info.run_id)

    def log_pair(
        self,
        parent_run_id: str,
        model_id: str,
        dataset_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        scores: Mapping[str, Any] | None = None,
        timings: Mapping[str, Any] | None = None,
        cache_hits: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> str:
        """Log one (model, dataset) as a finished nested run of ``parent_run_id``; return its id.

        Idempotent: a finished pair run with the same parent, model and dataset is returned
        as is; an unfinished one (killed logger) is completed instead of duplicated.
        """
        metrics: dict[str, float] = {}
        for k, v in (scores or {}).items():
            if v is not None:
                metrics[f"score.{k}"] = _as_float(f"score.{k}", v)
        for k, v in (timings or {}).items():
            if v is not None:
                metrics[f"time.{k}"] = _as_float(f"time.{k}", v)
        hits = {k: bool(v) for k, v in (cache_hits or {}).items()}
        for k, v in hits.items():
            metrics[f"cache_hit.{k}"] = 1.0 if v else 0.0
        if hits:
            metrics["cache_hits"] = float(sum(hits.values()))
        pkey = _pair_key(model_id, dataset_id)
        all_tags = {
            **{_name(k): str(v) for k, v in (tags or {}).items()},
            TAG_KIND: "pair",
            TAG_MODEL: str(model_id),
            TAG_DATASET: str(dataset_id),
            TAG_PAIR_KEY: pkey,
            TAG_PARENT: parent_run_id,
        }
        flat = _flatten(params)
        with self._lock():
            found = self._search(
                f"tags.`{TAG_PARENT}` = {_quote(parent_run_id)} and tags.`{TAG_PAIR_KEY}` = '{pkey}'"
            )
            done = [r for r in found if r.info.status == _FINISHED]
            if done:
                return done[0].info.run_id
            try:
                if found:
                    run = found[0]
                    run_id = run.info.run_id
                    self.client.update_run(run_id, status="RUNNING")
                    existing = run.data.params
                else:
                    run = self.client.create_run(
                        self.experiment_id, run_name=f"{model_id} @ {dataset_id}", tags=all_tags
                    )
                    run_id, existing = run.info.run_id, {}
            except MlflowException as e:
                raise TrackingError(
                    f"cannot create the pair run {model_id} @ {dataset_id} under {parent_run_id} "
                    f"at {self._uri_text}: {e}"
                ) from e
        try:
            self._log(run_id, params=flat, metrics=metrics, tags=all_tags, existing_params=existing)
        except Exception:
            self._terminate(run_id, "FAILED")
            raise
        self._terminate(run_id, _FINISHED)
        return run_id

    def find_pairs(
        self,
        *,
        parent_run_id: str | None = None,
        model_id: str | None = None,
        dataset_id: str | None = None,
    ) -> list[Any]:
        """Pair runs matching the given parent / model / dataset (newest first)."""
        clauses = [f"tags.`{TAG_KIND}` = 'pair'"]
        if parent_run_id:
            clauses.append(f"tags.`{TAG_PARENT}` = {_quote(parent_run_id)}")
        if model_id is not None:
            clauses.append(f"tags.`{TAG_MODEL}` = {_quote(model_id)}")
        if dataset_id is not None:
            clauses.append(f"tags.`{TAG_DATASET}` = {_quote(dataset_id)}")
        return self._search(" and ".join(clauses))

    def pairs_frame(self, parent_run_id: str) -> pd.DataFrame:
        """One row per pair run of a ranking: model, dataset, status, metrics (scores, times)."""
        rows = []
        for r in self.find_pairs(parent_run_id=parent_run_id):
            rows.append(
                {
                    "model": r.data.tags.get(TAG_MODEL),
                    "dataset": r.data.tags.get(TAG_DATASET),
                    "run_id": r.info.run_id,
                    "status": r.info.status,
                    **r.data.metrics,
                }
            )
        df = pd.DataFrame(rows)
        return df.sort_values(["dataset", "model"]).reset_index(drop=True) if len(df) else df

    # ------------------------------------------------------------------ ranking tables

    def log_ranking_table(
        self,
        parent_run_id: str,
        df: pd.DataFrame,
        *,
        name: str = "ranking",
        score_column: str | None = None,
        label_column: str | None = None,
        title: str | None = None,
    ) -> list[str]:
        """Log ``df`` as ``rankings/<name>.csv`` plus a bar plot ``rankings/<name>.png``.

        The plot shows ``score_column`` (default: ``lead`` if present, else the first numeric
        column) per ``label_column`` (default: ``model`` if present, else the index). Returns
        the artifact paths logged.
        """
        if not _TABLE_NAME_RE.match(name):
            raise ValueError(f"table name {name!r} must match {_TABLE_NAME_RE.pattern}")
        table = df if isinstance(df.index, pd.RangeIndex) else df.reset_index()
        logged = []
        with tempfile.TemporaryDirectory(prefix="zoorank-table-") as tmp:
            csv = Path(tmp) / f"{name}.csv"
            table.to_csv(csv, index=False)
            files = [csv]
            png = self._plot(table, Path(tmp) / f"{name}.png", score_column, label_column, title or name)
            if png is not None:
                files.append(png)
            for f in files:
                try:
                    self.client.log_artifact(parent_run_id, str(f), artifact_path=TABLE_DIR)
                except Exception as e:
                    raise TrackingError(
                        f"cannot log {f.name} to run {parent_run_id} at {self._uri_text}: {e}"
                    ) from e
                logged.append(f"{TABLE_DIR}/{f.name}")
        return logged

    @staticmethod
    def _plot(table: pd.DataFrame, out: Path, score_column: str | None, label_column: str | None,
              title: str) -> Path | None:
        from matplotlib.figure import Figure  # object API + Agg: no pyplot, no global state

        numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])]
        if score_column is None:
            lower = {str(c).lower(): c for c in numeric}
            score_column = lower.get("lead", numeric[0] if numeric else None)
        if score_column is None or score_column not in table.columns:
            log.info("no numeric column to plot in the ranking table")
            return None
        if label_column is None:
            label_column = "model" if "model" in table.columns else None
        labels = (table[label_column] if label_column else pd.Series(table.index)).astype(str).tolist()
        if "dataset" in table.columns and table["dataset"].nunique() > 1:
            labels = [f"{m} @ {d}" for m, d in zip(labels, table["dataset"].astype(str), strict=True)]
        values = pd.to_numeric(table[score_column], errors="coerce").astype(float).tolist()
        def rank(i: int) -> tuple[bool, float]:  # best first, NaN last
            v = values[i]
            return (math.isnan(v), 0.0 if math.isnan(v) else -v)

        order = sorted(range(len(values)), key=rank)[::-1]  # barh draws bottom-up: best on top
        fig = Figure(figsize=(7.0, 1.2 + 0.32 * max(1, len(values))), dpi=100)
        ax = fig.add_subplot()
        ax.barh([labels[i] for i in order], [0.0 if math.isnan(values[i]) else values[i] for i in order],
                color=["#bbbbbb" if math.isnan(values[i]) else "#3a6ea5" for i in order])
        ax.set_xlabel(str(score_column))
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        fig.savefig(out, format="png")
        return out

    def list_rankings(self, run_id: str) -> list[str]:
        """Names of the ranking tables logged on a run."""
        try:
            files = self.client.list_artifacts(run_id, TABLE_DIR)
        except MlflowException as e:
            raise TrackingError(f"no MLflow run {run_id} at {self._uri_text} ({e})") from e
        return sorted(Path(f.path).stem for f in files if f.path.endswith(".csv"))

    def find_ranking(self, run_id: str, name: str | None = None) -> pd.DataFrame:
        """Read a logged ranking table back. Several tables and no ``name``: concatenated with a
        leading ``table`` column."""
        names = self.list_rankings(run_id)
        if name is not None:
            if name not in names:
                raise RankingNotFound(
                    f"run {run_id} at {self._uri_text} has no ranking table {name!r} (has: {names})"
                )
            names = [name]
        if not names:
            raise RankingNotFound(f"run {run_id} at {self._uri_text} has no ranking table")
        frames = []
        with tempfile.TemporaryDirectory(prefix="zoorank-table-") as tmp:
            for n in names:
                local = self.client.download_artifacts(run_id, f"{TABLE_DIR}/{n}.csv", dst_path=tmp)
                frames.append(pd.read_csv(local))
        if len(frames) == 1:
            return frames[0]
        out = pd.concat([f.assign(table=n) for n, f in zip(names, frames, strict=True)], ignore_index=True)
        return out[["table", *[c for c in out.columns if c != "table"]]]

    # ------------------------------------------------------------------ misc

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], *, step: int = 0) -> None:
        """Log extra metrics (e.g. ground truth, weighted tau) on any run."""
        now = int(time.time() * 1000)
        items = [Metric(_name(k), _as_float(k, v), now, step) for k, v in metrics.items() if v is not None]
        for chunk in _chunks(items, 1000):
            self.client.log_batch(run_id, metrics=chunk)

    def get_run(self, run_id: str) -> Any:
        try:
            return self.client.get_run(run_id)
        except MlflowException as e:
            raise TrackingError(f"no MLflow run {run_id} at {self._uri_text} ({e})") from e

    def ui_command(self) -> str:
        """Shell command that opens the MLflow UI on this tracking store."""
        if self.tracking_uri.startswith(("http://", "https://")):
            return f"open {self._uri_text}"
        return f"mlflow ui --backend-store-uri '{self.tracking_uri}'"

