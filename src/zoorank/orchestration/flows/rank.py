"""The ``rank`` flow: fan out per (model, dataset) into cached stages, score, rank, track.

    prepare-dataset (per dataset)   resolve-model (per model, memoised weights digest)
                 \\                  /          -> MLflow parent run opened (RUNNING)
                  extract-features (per pair)
              /          |                \\
   upstream-stage  upstream-stage ...   score: the metrics without upstream stages
   (each distinct stage the metrics declare, e.g. LEAD's SVM logits and NTK eigenvalues)
              \\          /
           score: the metrics reading them  (one score task per group of metrics, not per metric)
                          |
        ranking table + tie sets per dataset -> MLflow (parent run + nested run per pair)

The parent run is opened as soon as the identities are known, so that an interrupted ranking
leaves a run marked KILLED (``zoorank.support.interrupt``) or FAILED, never a stale RUNNING one.
Parameters: a :class:`~zoorank.pipeline.requests.RankRequest` (what) and
:class:`~zoorank.pipeline.requests.RunOptions` (how). Settings (environment, Prefect home) are
applied by the caller when the flow runs (``zoorank.api.rank``), never at import.
"""
from __future__ import annotations

from dataclasses import asdict

from prefect import flow, get_run_logger

from zoorank.config import Settings
from zoorank.orchestration import tasks
from zoorank.orchestration.ranking_finish import finish_ranking, run_opener
from zoorank.pipeline.outcomes import RankOutput, collect_pair
from zoorank.pipeline.requests import RankRequest, RunOptions
from zoorank.pipeline.sources import PairSource
from zoorank.pipeline.upstream import distinct_stages, plan_metrics


def _groups(plans) -> list[list]:
    """Metrics grouped by the upstream stages they read (those without any first)."""
    groups: dict[tuple, list] = {}
    for p in plans:
        groups.setdefault(tuple(s.ident for s in p.stages), []).append(p)
    return sorted(groups.values(), key=lambda g: bool(g[0].stages))


def _submit_pair(settings, request: RankRequest, options: RunOptions, plans, spec, d, model_f, ds_f):
    source = PairSource(spec, d, request.subset, options.data_root)
    feat = tasks.extract_features.submit(settings, source, model_f, ds_f, options)
    stage_f = {s.ident: tasks.upstream_stage.submit(settings, s, feat, source, options.device)
               for s in distinct_stages(plans)}
    scores = [tasks.score.submit(settings, g, feat, [stage_f[s.ident] for s in distinct_stages(g)])
              for g in _groups(plans)]
    return feat, stage_f, scores


def _collect(plans, model, dataset, feat, stage_res: dict, scores: list):
    by_metric = {m: r for f in scores for m, r in f.result().items()}
    upstream = {p.metric: {s.stage.keyword: stage_res[s.ident].key for s in p.stages} for p in plans if p.stages}
    return collect_pair(model, dataset, asdict(feat.pair.keys), [feat.result, *stage_res.values()],
                        {p.metric: by_metric[p.metric] for p in plans}, upstream)


def _flow_body(settings: Settings, request: RankRequest, options: RunOptions, open_run=None):
    """Submit every stage; returns ``(outcomes, run)`` (``run``: what ``open_run`` returned once
    identities and datasets were known)."""
    plans = plan_metrics(request.metric_names(), request.metric_params, request.stage_params)
    ds_futures = {d: tasks.prepare_dataset.submit(d, request.subset, options.data_root) for d in request.datasets}
    model_futures = [tasks.resolve_model.submit(settings, spec) for spec in request.models]
    pending = [(model_f, ds_f, *_submit_pair(settings, request, options, plans, spec, d, model_f, ds_f))
               for d, ds_f in ds_futures.items() for spec, model_f in zip(request.models, model_futures)]
    # upstream first: a failed upstream task raises its own error, not "PENDING" downstream
    models = [f.result() for f in model_futures]
    dsets = {d: f.result() for d, f in ds_futures.items()}
    run = open_run(models, dsets) if open_run is not None else None
    try:
        outcomes = []
        for model_f, ds_f, feat_f, stage_f, scores in pending:
            stage_res = {i: f.result() for i, f in stage_f.items()}
            outcomes.append(_collect(plans, model_f.result(), ds_f.result(), feat_f.result(), stage_res, scores))
    except BaseException as exc:
        if run is not None:
            run.__exit__(type(exc), exc, exc.__traceback__)
        raise
    return outcomes, run


@flow(name="rank", log_prints=False, persist_result=False)
def rank_flow(request: RankRequest, options: RunOptions | None = None,
              settings: Settings | None = None) -> RankOutput:
    """Rank ``request.models`` on each of ``request.datasets``."""
    settings = settings or Settings.from_env()
    options = options or RunOptions()
    opener = run_opener(settings, request, options) if options.track else None
    outcomes, run = _flow_body(settings, request, options, opener)
    result = finish_ranking(settings, outcomes, request, options, run=run)
    try:
        get_run_logger().info("ranked %d pairs; MLflow run %s", len(outcomes), result.run_id)
    except Exception:  # noqa: BLE001 - logging is best effort
        pass
    return result
