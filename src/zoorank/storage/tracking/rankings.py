"""Ranking runs: a parent per logical ranking (reused, joined or adopted) and nested pair runs."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd
from zoorank.storage.tracking.client import MlflowException  # via client: it sets the telemetry variable first

from zoorank.support.process_identity import ProcessIdentity
from zoorank.storage.tracking.errors import TrackingError
from zoorank.storage.tracking.runs import RankingRun
from zoorank.storage.tracking.tags import TAG_DATASET, TAG_KIND, TAG_LOGICAL_KEY, TAG_MODEL, TAG_OWNERS, TAG_PAIR_KEY, TAG_PARENT, TAG_RECOVERED, _FINISHED
from zoorank.storage.tracking.values import _as_float, _flatten, _name, _pair_key, _quote


class RankingsMixin:
    """``start_ranking`` / ``log_pair`` / ``find_pairs`` of :class:`Tracker`."""

    def find_run_by_key(self, key: str, *, kind: str = "ranking") -> Any | None:
        """Newest active run with ``zoorank.logical_key = key`` (finished ones preferred), or None."""
        runs = self._search(f"tags.`{TAG_LOGICAL_KEY}` = {_quote(key)} and tags.`{TAG_KIND}` = {_quote(kind)}")
        finished = [r for r in runs if r.info.status == _FINISHED]
        return (finished or runs or [None])[0]

    def _runs_by_key(self, key: str, kind: str = "ranking") -> list[Any]:
        return self._search(f"tags.`{TAG_LOGICAL_KEY}` = {_quote(key)} and tags.`{TAG_KIND}` = {_quote(kind)}")

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
