"""The tracking connection: one MlflowClient, the cross-process lock, the experiment, generic runs."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import urlparse

# importing mlflow starts its telemetry client, which reads this variable: it must be set first (the
# one import-time effect left in zoorank.storage; config.apply_offline_defaults sets it too)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from mlflow.entities import Metric, Param, RunTag, ViewType  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from zoorank.storage.tracking.errors import TrackingError, TrackingUnavailable
from zoorank.storage.tracking.lock import TrackingLock, http_lock_file, sqlite_lock_file
from zoorank.storage.tracking.runs import TaggedRun
from zoorank.storage.tracking.tags import _FINISHED
from zoorank.storage.tracking.values import _MAX_TAG_LEN, _as_float, _chunks, _flatten, _name, _quote, _sqlite_path, redact_uri

log = logging.getLogger("zoorank.storage.tracking")

HTTP_ENV_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
}


class TrackerClient:
    """The connection half of :class:`zoorank.storage.tracking.Tracker` (its parameters are documented there)."""

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
        self._lock_file = None
        scheme = urlparse(self.tracking_uri).scheme.lower()
        if scheme in ("http", "https"):
            for name, value in HTTP_ENV_DEFAULTS.items():
                os.environ.setdefault(name, value)
            self._probe_http(connect_timeout)
            self._lock_file = http_lock_file(self.tracking_uri)
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
                self._lock_file = sqlite_lock_file(db)
        self._locker = TrackingLock(self._lock_file)
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
    def from_settings(cls, settings: Any, **kwargs: Any) -> "TrackerClient":
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

    def _lock(self):
        """The tracking lock (:mod:`.lock`), held around every find-or-create."""
        return self._locker.hold()

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
