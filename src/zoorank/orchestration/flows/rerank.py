"""The ``rerank`` flow: scheduled, incremental re-ranking of a zoo file.

    read zoo YAML (now) -> rank subflow (every stage content-keyed and cached in the Zarr store)
                        -> compare with the previous ranking of the same zoo file (MLflow tag)
                        -> log a new MLflow ranking run + ``changes.json`` (new / removed entries,
                           moved positions) and the pairs that were (re)computed

Incremental by construction: the rank stages look up their verified output under a content
key (model identity + weights digest, dataset fingerprint, parameters, upstream checksums), so
when the zoo file gains a model or the dataset list gains a dataset only the new (model,
dataset) pairs compute; every other pair is served from the cache (``cached_stages`` equals
the full stage count). The flow reports which pairs were not fully served from the cache.

The previous ranking of a zoo file is the newest finished MLflow run of the experiment tagged
``zoorank.zoo_file = <absolute path of the zoo file>`` (and ``zoorank.kind = ranking``).

Every parameter is JSON-friendly (strings, numbers, lists) so the flow can be deployed
(``zoorank serve``, ``deployments/prefect.yaml``) and run by a Prefect worker.
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from zoorank.config import Settings

TAG_ZOO_FILE = "zoorank.zoo_file"
TAG_PREVIOUS = "zoorank.previous_run"
TAG_RERANK = "zoorank.rerank"
CHANGES_ARTIFACT = "changes.json"


def zoo_key(zoo: str) -> str:
    """The tag value that identifies a zoo file across runs: its absolute, resolved path."""
    return str(Path(zoo).expanduser().resolve())


def full_stage_count(metrics: list[str], metric_params: dict | None = None) -> int:
    """Stages of one pair when everything comes from cache: features, each upstream stage the
    metrics declare (by name), and one score record per metric (the ``cached_stages`` column of
    the ranking table)."""
    from zoorank.pipeline.upstream import distinct_stages, plan_metrics

    names = {s.stage.name for s in distinct_stages(plan_metrics(metrics, metric_params))}
    return 1 + len(names) + len(metrics)


def compare_rankings(previous, current) -> dict:
    """What changed between two ranking tables (pandas, columns dataset/model/rank).

    Returns ``{"new_entries": [...], "removed_entries": [...], "moved": [...], "unchanged": n}``
    where a moved entry is ``{"dataset", "model", "old_rank", "new_rank", "delta"}`` (delta > 0:
    moved up, i.e. towards rank 1).
    """
    cur = {(r["dataset"], r["model"]): int(r["rank"]) for r in current[["dataset", "model", "rank"]].to_dict("records")}
    old = {} if previous is None else {
        (r["dataset"], r["model"]): int(r["rank"]) for r in previous[["dataset", "model", "rank"]].to_dict("records")}
    by_rank = sorted(cur.items(), key=lambda kv: (kv[0][0], kv[1], kv[0][1]))   # dataset, rank, model
    new = [{"dataset": d, "model": m, "rank": r} for (d, m), r in by_rank if (d, m) not in old]
    removed = [{"dataset": d, "model": m, "old_rank": r} for (d, m), r in sorted(old.items()) if (d, m) not in cur]
    moved = [{"dataset": d, "model": m, "old_rank": old[(d, m)], "new_rank": r, "delta": old[(d, m)] - r}
             for (d, m), r in by_rank if (d, m) in old and old[(d, m)] != r]
    unchanged = sum(1 for k, r in cur.items() if k in old and old[k] == r)
    return {"new_entries": new, "removed_entries": removed, "moved": moved, "unchanged": unchanged}


def previous_ranking(settings: Settings, zoo: str):
    """``(run_id, table)`` of the newest finished ranking of ``zoo``, or ``(None, None)``."""
    from zoorank.storage.tracking import Tracker

    tracker = Tracker.from_settings(settings)
    runs = [r for r in tracker.find_runs({TAG_ZOO_FILE: zoo_key(zoo), "zoorank.kind": "ranking"})
            if r.info.status == "FINISHED"]
    for run in runs:   # newest first; skip a run whose table cannot be read back
        try:
            return run.info.run_id, tracker.find_ranking(run.info.run_id)
        except Exception:  # noqa: BLE001 - e.g. artifacts removed by hand
            continue
    return None, None


def _settings(home: str | None, store: str | None, tracking_uri: str | None) -> Settings:
    return Settings.from_env(home=home, store=store, tracking_uri=tracking_uri)


@flow(name="rerank", log_prints=False, persist_result=False)
def rerank_flow(zoo: str, datasets: list[str], per_class: int | None = 100, split: str = "train",
                seed: int = 0, metrics: list[str] | None = None, device: str = "cpu",
                batch_size: int = 64, runner: str = "thread", workers: int = 2,
                dask_address: str | None = None, home: str | None = None, store: str | None = None,
                tracking_uri: str | None = None, data_root: str | None = None) -> dict:
    """Re-rank the zoo file ``zoo`` on ``datasets``; log the ranking and what changed.

    Returns ``{"run_id", "previous_run_id", "table", "recomputed_pairs", "new_entries",
    "removed_entries", "moved", "unchanged"}``; ``recomputed_pairs`` lists ``[dataset, model]``
    of every pair that was not served entirely from the cache.
    """
    import pandas as pd

    from zoorank.config import apply_offline_defaults
    from zoorank.orchestration.flows.rank import rank_flow
    from zoorank.orchestration.runners import make_task_runner
    from zoorank.pipeline.outcomes import ranking_params
    from zoorank.pipeline.preflight import check_locations, resolve_specs
    from zoorank.pipeline.requests import RankRequest, RunOptions
    from zoorank.pipeline.stages import SubsetSpec
    from zoorank.reporting.tracking_report import log_ranking

    settings = _settings(home, store, tracking_uri)
    apply_offline_defaults(settings)
    specs = resolve_specs(zoo if str(zoo).endswith((".yaml", ".yml")) else str(zoo))
    request = RankRequest(specs, list(datasets), SubsetSpec(split=split, per_class=per_class or None, seed=seed),
                          list(metrics or []))
    metrics = request.metric_names()
    check_locations(settings, True)
    prev_id, prev_table = previous_ranking(settings, zoo)

    sub = rank_flow.with_options(task_runner=make_task_runner(runner, workers, dask_address))
    result = sub(request, RunOptions(device, batch_size, data_root, track=False), settings)
    table = pd.DataFrame(result.table)
    outcomes = result.pairs
    full = full_stage_count(metrics)
    recomputed = sorted([r["dataset"], r["model"]] for r in result.table if int(r["cached_stages"]) < full)
    changes = compare_rankings(prev_table, table)

    run_id = log_ranking(settings, outcomes, table, subset=request.subset, metrics=metrics,
                         params=ranking_params({}, {}), new_run=True)
    from zoorank.storage.tracking import Tracker

    tracker = Tracker.from_settings(settings)
    report = {"zoo_file": zoo_key(zoo), "previous_run_id": prev_id, "recomputed_pairs": recomputed,
              "full_stage_count": full, **changes}
    tracker.client.log_dict(run_id, report, CHANGES_ARTIFACT)
    tracker.log_metrics(run_id, {"changes.new_entries": len(changes["new_entries"]),
                                 "changes.removed_entries": len(changes["removed_entries"]),
                                 "changes.moved": len(changes["moved"]),
                                 "recomputed_pairs": len(recomputed)})
    # tags last: a run is found as "previous" only once it is complete
    tracker.client.set_tag(run_id, TAG_PREVIOUS, prev_id or "")
    tracker.client.set_tag(run_id, TAG_RERANK, "true")
    tracker.client.set_tag(run_id, TAG_ZOO_FILE, zoo_key(zoo))
    try:
        get_run_logger().info("reranked %s: %d pairs, %d recomputed, %d new entries, %d moved; MLflow run %s",
                              zoo, len(outcomes), len(recomputed), len(changes["new_entries"]),
                              len(changes["moved"]), run_id)
    except Exception:  # noqa: BLE001 - logging is best effort
        pass
    return {"run_id": run_id, "previous_run_id": prev_id, "table": result.table,
            "recomputed_pairs": recomputed, **changes}


def build_deployment(zoo: str, datasets: list[str], *, cron: str = "0 3 * * *", name: str = "rerank-zoo",
                     timezone: str | None = None, **params):
    """A :class:`prefect.deployments.runner.RunnerDeployment` of :func:`rerank_flow` that
    re-ranks ``zoo`` on ``datasets`` on the ``cron`` schedule; ``params`` are further flow
    parameters (per_class, metrics, runner, workers, home, store, tracking_uri, ...)."""
    from prefect.schedules import Cron

    parameters = {"zoo": zoo_key(zoo), "datasets": list(datasets),
                  **{k: v for k, v in params.items() if v is not None}}
    schedule = Cron(cron, timezone=timezone) if timezone else Cron(cron)
    return rerank_flow.to_deployment(name=name, schedules=[schedule], parameters=parameters,
                                     description=f"re-rank {zoo_key(zoo)} on {', '.join(datasets)} ({cron})",
                                     tags=["zoorank", "rerank"])
