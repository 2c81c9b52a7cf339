"""The ``rank`` flow: fan out per (model, dataset) into cached stages, score, rank, track.

    prepare-dataset (per dataset)   resolve-model (per model, memoised weights digest)
                 \\                  /          -> MLflow parent run opened (RUNNING)
                  extract-features (per pair)
              /          |                \\
     svm-loginit   ntk-eigenvalues   score: the baselines (they need only the features)
              \\          /
           score: LEAD                      (two score tasks per pair, not one per metric)
                          |
        ranking table + tie sets per dataset -> MLflow (parent run + nested run per pair)

The parent run is opened as soon as the identities are known, so that an interrupted ranking
leaves a run marked KILLED (``zoorank.support.interrupt``) or FAILED, never a stale RUNNING one.
"""
from __future__ import annotations

from zoorank.config import Settings, apply_offline_defaults

apply_offline_defaults()

from prefect import flow, get_run_logger  # noqa: E402

from zoorank.pipeline import pairs as pipeline  # noqa: E402

from zoorank.pipeline import stages

from zoorank.orchestration import tasks
from zoorank.pipeline.cached_ranking import finish_ranking, ranking_params, run_opener  # noqa: E402


def _flow_body(settings: Settings, specs: list, datasets: list[str], subset: stages.SubsetSpec,
               metrics: list[str], metric_params: dict, lead_params: stages.LeadParams,
               device: str, batch_size: int, data_root: str | None, open_run=None):
    """Submit every stage; returns ``(outcomes, lead_keys, run)`` (``run``: what ``open_run``
    returned once identities and datasets were known)."""
    ds_futures = {d: tasks.prepare_dataset.submit(d, subset, data_root) for d in datasets}
    model_futures = [tasks.resolve_model.submit(settings, spec) for spec in specs]
    baselines = [m for m in metrics if m != "lead"]
    pending = []
    for d, ds_f in ds_futures.items():
        for spec, model_f in zip(specs, model_futures):
            feat = tasks.extract_features.submit(settings, spec, model_f, ds_f, subset, data_root,
                                                 device, batch_size)
            svm = ntk = None
            if "lead" in metrics:
                svm = tasks.svm_loginit.submit(settings, feat, lead_params.svm, device)
                ntk = tasks.ntk_eigenvalues.submit(settings, feat, lead_params.ntk, device)
            scores = []
            if "lead" in metrics:
                scores.append(tasks.score.submit(settings, ["lead"], feat, metric_params, svm, ntk))
            if baselines:
                scores.append(tasks.score.submit(settings, baselines, feat, metric_params))
            pending.append((model_f, ds_f, feat, [f for f in (svm, ntk) if f is not None], scores))
    # upstream first: a failed upstream task raises its own error, not "PENDING" downstream
    models = [f.result() for f in model_futures]
    dsets = {d: f.result() for d, f in ds_futures.items()}
    run = open_run(models, dsets) if open_run is not None else None
    try:
        outcomes, lead_keys = [], {}
        for model_f, ds_f, feat, lead_f, scores in pending:
            model, dataset, features = model_f.result(), ds_f.result(), feat.result()
            lead = [f.result() for f in lead_f]
            by_metric = {m: r for f in scores for m, r in f.result().items()}
            outcome = pipeline.collect_pair(model, dataset, features, lead, {m: by_metric[m] for m in metrics})
            outcomes.append(outcome)
            if lead:
                lead_keys[(outcome.model, outcome.dataset)] = (lead[0]["key"], lead[1]["key"])
    except BaseException as exc:
        if run is not None:
            run.__exit__(type(exc), exc, exc.__traceback__)
        raise
    return outcomes, lead_keys, run


@flow(name="rank", log_prints=False, persist_result=False)
def rank_flow(specs: list, datasets: list[str], subset: stages.SubsetSpec | None = None,
              metrics: list[str] | None = None, metric_params: dict | None = None,
              lead_params: stages.LeadParams | None = None, settings: Settings | None = None,
              device: str = "cpu", batch_size: int = 64, data_root: str | None = None,
              track: bool = True, new_run: bool = False, zoo: str | None = None) -> dict:
    """Rank ``specs`` on each dataset; returns ``{"table": records, "run_id", "pairs", "ties"}``."""
    settings = settings or Settings.from_env()
    subset = subset or stages.SubsetSpec()
    metrics = list(metrics or pipeline.default_metrics())
    metric_params = dict(metric_params or {})
    lead_params = lead_params or stages.LeadParams()
    opener = run_opener(settings, subset, metrics, ranking_params(metric_params, lead_params, metrics), new_run,
                        zoo) if track else None
    outcomes, lead_keys, run = _flow_body(settings, specs, datasets, subset, metrics, metric_params, lead_params,
                                          device, batch_size, data_root, opener)
    result = finish_ranking(settings, outcomes, lead_keys, subset=subset, metrics=metrics,
                            metric_params=metric_params, lead_params=lead_params, track=track,
                            new_run=new_run, run=run, zoo=zoo)
    try:
        get_run_logger().info("ranked %d pairs; MLflow run %s", len(outcomes), result["run_id"])
    except Exception:  # noqa: BLE001 - logging is best effort
        pass
    return result
