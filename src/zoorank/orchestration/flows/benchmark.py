"""The ``benchmark`` flow: every metric's ranking against fine-tuned ground truth.

Per dataset:

* **full data** -- the scores of the rank flow (``zoorank.orchestration.flows.rank.rank_flow``, run as a subflow;
  its scores are cached in the store, so a benchmark after a ranking recomputes nothing) against
  the ground truth (a DataFrame / CSV ``dataset, model, accuracy`` or the pair runs of a
  ground-truth MLflow run) -> weighted Kendall tau (``scipy.stats.weightedtau`` defaults), Kendall
  tau-b, Pearson, top-1 and top-3 regret per metric (:func:`evaluate_scores`);
* **low data** -- N/K in ``low_data`` (default 2, 5, 10), ``repeats`` (5) seeded per-class subsets of
  the ranked images (the same rows for every model); every metric re-scored on each subset ->
  mean and std of weighted tau per metric;
* **ablations** -- for each metric that declares them (``zoorank.metrics.registry.Metric.ablations``;
  LEAD: the ``eta_t`` and ``samples_per_class`` sweeps, SVM normalisation, cross-fitting,
  eigenvalue scaling, feature normalisation), one option changed at a time from the defaults
  -> weighted tau per variant.

Bad input is reported, never silently dropped: pairs without ground truth are listed and tau is
computed on the rest; a metric that fails on a pair is listed with its reason and left out of
that metric's tau only; with fewer than 3 models tau is undefined and the row says so.

Scores computed here (low data, ablations, and everything for a *synthetic zoo* given as
``features=``) go through the one scoring path, ``zoorank.pipeline.stages.ensure_score`` (row
subsets: ``rows=``; an ablation: the metric's upstream stages under the variant's parameters):
store records under content keys; one Prefect task per (dataset, model).

Python: :func:`run_benchmark`; CLI: ``zoorank benchmark``; report: :mod:`zoorank.reporting.benchmark_report`.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from zoorank.config import Settings, apply_offline_defaults
from zoorank.metrics import registry as metric_registry
from zoorank.pipeline import stages
from zoorank.pipeline.requests import BenchmarkRequest, RunOptions
from zoorank.pipeline.upstream import PairRef, plan_metric
from zoorank.storage.arrays import ArrayStore
from zoorank.storage.keys import content_key
# the pure tables (evaluation against ground truth) live in reporting/; re-exported here
from zoorank.reporting.benchmark_tables import MEASURES, evaluate_scores, mean_table, summary_tables  # noqa: F401
from zoorank.reporting.truth import load_truth  # noqa: F401  (moved to reporting; re-exported)

LOW_DATA = (2, 5, 10)


# ------------------------------------------------------------------ scoring (one path: stages.ensure_score)
def score_rows(store: ArrayStore, metric: str, keys: stages.FeatureKeys, rows, params: dict | None = None,
               cache: dict | None = None) -> dict:
    """Score ``metric`` on ``rows`` of a pair's stored arrays: ``{"score": x}`` or
    ``{"error": reason}`` (a store record, so reruns are free); a metric that does not apply
    (no source-task outputs) is reported as an error with its reason."""
    info = dict(stages.ensure_score(store, metric, keys, params=params, rows=rows, pair_inputs=cache).info)
    return {"error": info["skipped"]} if "skipped" in info else info


def ablation_score(store: ArrayStore, pair: PairRef, metric: str, params: dict,
                   stage_params: dict | None = None) -> dict:
    """``metric`` with ``params`` on the full features through its cached upstream stages (keyed by
    their own parameters; those of the defaults are the rank flow's), so a variant of the score's
    own parameters costs only the score."""
    from zoorank.pipeline.pair_run import score_pair

    try:
        _, scores, _ = score_pair(store, pair, [plan_metric(metric, params, stage_params)])
        return dict(scores[metric].info)
    except Exception as exc:  # noqa: BLE001 - recorded, the other variants go on
        return {"error": f"{type(exc).__name__}: {exc}"}


def _low_data_scores(store, keys, labels, request: BenchmarkRequest, metrics, cache) -> list[dict]:
    from zoorank.data import low_data_subsets

    out = []
    for n_k in (LOW_DATA if request.low_data is None else request.low_data):
        try:
            subsets = low_data_subsets(labels, n_k, request.repeats, random_state=request.subset.seed)
        except ValueError as exc:
            out.append({"n_per_class": n_k, "error": str(exc)})
            continue
        for r, rows in enumerate(subsets):
            for m in metrics:
                out.append({"n_per_class": n_k, "repeat": r, "metric": m,
                            **score_rows(store, m, keys, rows, request.metric_params.get(m, {}), cache)})
    return out


def _ablation_scores(store, pair: PairRef, request: BenchmarkRequest, metrics) -> list[dict]:
    out = []
    for m in metrics:
        base = dict(request.metric_params.get(m, {}))
        for group, label, over in metric_registry.get_metric(m).ablations:
            out.append({"metric": m, "group": group, "variant": label,
                        **ablation_score(store, pair, m, {**base, **over}, request.stage_params)})
    return out


def _metrics(request: BenchmarkRequest) -> list[str]:
    from zoorank.pipeline.outcomes import default_metrics

    return list(request.metrics or default_metrics())


@task(name="bench-score-pair", cache_policy=NO_CACHE)
def score_pair_task(settings: Settings, dataset: str, model: str, keys: stages.FeatureKeys,
                    request: BenchmarkRequest, full: bool) -> dict:
    """All benchmark scores of one (model, dataset) pair: full data (only when ``full``, i.e. no
    rank flow supplied them), low-data subsets, ablations."""
    store = ArrayStore(settings.store)
    metrics = _metrics(request)
    cache: dict = {}
    labels = store.get(keys.labels)
    out = {"dataset": dataset, "model": model, "full": {}, "low": [], "ablation": []}
    if full:
        everything = np.arange(len(labels))
        out["full"] = {m: score_rows(store, m, keys, everything, request.metric_params.get(m, {}), cache)
                       for m in metrics}
    out["low"] = _low_data_scores(store, keys, labels, request, request.low_metrics or metrics, cache)
    if request.ablations:
        out["ablation"] = _ablation_scores(store, PairRef(keys, label=f"{model} / {dataset}"), request, metrics)
    return out


# ------------------------------------------------------------------ synthetic zoo support
def put_features(store: ArrayStore, name: str, features: np.ndarray, labels: np.ndarray,
                 source_probs: np.ndarray | None = None) -> stages.FeatureKeys:
    """Publish given arrays (a synthetic zoo, precomputed features) under content keys."""
    from zoorank.storage.arrays import array_sha256

    f = np.asarray(features, dtype=np.float32)
    y = np.asarray(labels, dtype=np.int64)
    keys = stages.FeatureKeys(
        features=content_key("features", given=name, sha=array_sha256(f)),
        labels=content_key("labels", given=name, sha=array_sha256(y)),
        source_probs=None if source_probs is None else content_key("source_probs", given=name,
                                                                  sha=array_sha256(np.asarray(source_probs))))
    for k, a in ((keys.labels, y), (keys.features, f)):
        if not store.exists(k):
            store.put(k, a)
    if source_probs is not None and not store.exists(keys.source_probs):
        store.put(keys.source_probs, np.asarray(source_probs, dtype=np.float32))
    return keys


# ------------------------------------------------------------------ flow
# ------------------------------------------------------------------ flow
def _full_from_rank(settings, request: BenchmarkRequest, options: RunOptions):
    """The rank flow's table per dataset (+ a ``skipped`` column) and each pair's feature keys."""
    from zoorank.orchestration.flows.rank import rank_flow

    res = rank_flow(request.rank_request(), RunOptions(options.device, options.batch_size, options.data_root,
                                                       options.track, False), settings)
    table = pd.DataFrame(res.table)
    skipped = {(p.dataset, p.model): "; ".join(f"{m}: {why}" for m, why in sorted(p.skipped.items()))
               for p in res.pairs}
    full, pair_keys = {}, {}
    for d in request.datasets:
        full[d] = table[table["dataset"] == d].reset_index(drop=True)
        full[d]["skipped"] = [skipped.get((d, m), "") for m in full[d]["model"]]
    for p in res.pairs:
        pair_keys.setdefault(p.dataset, {})[p.model] = p.feature_keys()
    return full, pair_keys


def _full_from_outs(datasets, outs) -> dict[str, pd.DataFrame]:
    full = {}
    for d in datasets:
        rows = []
        for o in (o for o in outs if o["dataset"] == d):
            row = {"model": o["model"], **{m: v.get("score", np.nan) for m, v in o["full"].items()}}
            row["failed"] = "; ".join(f"{m}: {v['error']}" for m, v in o["full"].items() if "error" in v)
            rows.append(row)
        full[d] = pd.DataFrame(rows)
    return full


def _low_data_table(datasets, truth, outs, metrics, notes) -> pd.DataFrame:
    """Weighted tau per (dataset, N/K, repeat, metric); a subset that could not be drawn -> a note."""
    rows = []
    for d in datasets:
        t = truth[truth["dataset"] == d][["model", "accuracy"]]
        recs = [dict(r, model=o["model"]) for o in outs if o["dataset"] == d for r in o["low"]]
        for err in {r["error"] for r in recs if "metric" not in r}:
            notes[d].append(f"low data: {err}")
        recs = [r for r in recs if "metric" in r]
        for (n_k, rep), grp in pd.DataFrame(recs).groupby(["n_per_class", "repeat"]) if recs else []:
            wide = grp.assign(score=grp.get("score", np.nan)).pivot(index="model", columns="metric", values="score")
            wide = wide.reset_index()
            fails = grp[grp.get("error", pd.Series(dtype=str)).notna()] if "error" in grp else grp.iloc[:0]
            wide["failed"] = wide["model"].map(
                lambda mm: "; ".join(f"{r.metric}: {r.error}" for r in fails[fails["model"] == mm].itertuples()))
            ev, _ = evaluate_scores(wide, t, [m for m in metrics if m in set(grp["metric"])])
            rows += [{"dataset": d, "n_per_class": n_k, "repeat": rep, "metric": r.metric,
                      "weighted_tau": r.weighted_tau, "note": r.note} for r in ev.itertuples()]
    return pd.DataFrame(rows, columns=["dataset", "n_per_class", "repeat", "metric", "weighted_tau", "note"])


def _ablation_table(datasets, truth, outs) -> pd.DataFrame:
    """Weighted tau per (dataset, metric, ablation variant)."""
    rows = []
    for d in datasets:
        t = truth[truth["dataset"] == d][["model", "accuracy"]]
        recs = [dict(r, model=o["model"]) for o in outs if o["dataset"] == d for r in o["ablation"]]
        groups = pd.DataFrame(recs).groupby(["metric", "group", "variant"], sort=False) if recs else []
        for (metric, group, variant), grp in groups:
            sc = pd.DataFrame({"model": grp["model"], metric: grp.get("score", np.nan)})
            if "error" in grp:
                sc["failed"] = [f"{metric}: " + e if isinstance(e, str) else "" for e in grp["error"]]
            ev, _ = evaluate_scores(sc, t, [metric])
            rows.append({"dataset": d, "metric": metric, "group": group, "variant": variant,
                         "weighted_tau": ev["weighted_tau"].iloc[0], "note": ev["note"].iloc[0]})
    return pd.DataFrame(rows, columns=["dataset", "metric", "group", "variant", "weighted_tau", "note"])


@flow(name="benchmark", log_prints=False, persist_result=False)
def benchmark_flow(request: BenchmarkRequest, options: RunOptions | None = None,
                   settings: Settings | None = None) -> dict:
    """See the module docstring: a real zoo (``request.models``, scores from the rank flow) or a
    synthetic one (``request.features``)."""
    settings = settings or Settings.from_env()
    options = options or RunOptions()
    metrics, datasets = _metrics(request), list(request.datasets)
    truth = load_truth(request.ground_truth, settings, request.gt_metric)
    t0 = time.perf_counter()
    if request.models is not None:
        full_scores, pair_keys = _full_from_rank(settings, request, options)
    else:
        full_scores, pair_keys, store = {}, {}, ArrayStore(settings.store)
        for d, models in (request.features or {}).items():
            for m, arrays in models.items():
                pair_keys.setdefault(d, {})[m] = put_features(store, f"{d}/{m}", *arrays)
    futs = [score_pair_task.submit(settings, d, m, k, request, request.models is None)
            for d in datasets for m, k in pair_keys.get(d, {}).items()]
    outs = [f.result() for f in futs]
    if request.models is None:
        full_scores = _full_from_outs(datasets, outs)
    per_dataset, notes = {}, {}
    for d in datasets:
        t = truth[truth["dataset"] == d]
        sc = full_scores.get(d, pd.DataFrame(columns=["model"]))
        per_dataset[d], notes[d] = evaluate_scores(sc, t[["model", "accuracy"]], metrics)
        if t.empty:
            notes[d].insert(0, f"no ground truth at all for dataset {d!r}")
    low = _low_data_table(datasets, truth, outs, metrics, notes)
    low_summary = (low.groupby(["metric", "n_per_class", "dataset"])["weighted_tau"].agg(["mean", "std", "count"])
                   .reset_index() if len(low) else pd.DataFrame())
    return {
        "datasets": datasets, "metrics": metrics,
        "per_dataset": {d: t.to_dict("records") for d, t in per_dataset.items()},
        "notes": notes,
        "scores": {d: s.to_dict("records") for d, s in full_scores.items()},
        "truth": truth.to_dict("records"),
        "low_data": low.to_dict("records"), "low_data_summary": low_summary.to_dict("records"),
        "ablations": _ablation_table(datasets, truth, outs).to_dict("records"),
        "seconds": time.perf_counter() - t0,
    }


def run_benchmark(zoo="default", datasets=("digits",), ground_truth="mlflow", *, features=None, per_class=20,
                  split="train", seed=0, metrics=None, metric_params=None, stage_params=None, low_data=None,
                  repeats=5, ablations=True, settings: Settings | None = None, device="cpu", data_root=None,
                  track=True, workers=2, runner="thread", out_dir=None, gt_metric="test_top1",
                  low_metrics=None, header: str = "") -> dict:
    """Python API of the benchmark flow; writes the report to ``out_dir`` when given (and logs it
    to MLflow when ``track``). Returns the result dict (see :func:`summary_tables`)."""
    from zoorank.orchestration.runners import flow_settings, make_task_runner
    from zoorank.pipeline.preflight import check_locations, resolve_specs

    settings = settings or Settings.from_env()
    apply_offline_defaults(settings)
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    request = BenchmarkRequest(
        datasets, ground_truth, None if features is not None else resolve_specs(zoo), features,
        stages.SubsetSpec(split=split, per_class=per_class, seed=seed), list(metrics or []),
        dict(metric_params or {}), dict(stage_params or {}), None if low_data is None else list(low_data),
        repeats, ablations, gt_metric, None if low_metrics is None else list(low_metrics))
    check_locations(settings, track)
    with flow_settings():
        fl = benchmark_flow.with_options(task_runner=make_task_runner(runner, workers))
        result = fl(request, RunOptions(device=device, data_root=data_root, track=track), settings)
    if out_dir is not None:
        from zoorank.reporting.benchmark_report import write_report

        result["report"] = write_report(result, out_dir, settings=settings if track else None, header=header)
    return result


__all__ = ["benchmark_flow", "run_benchmark", "evaluate_scores", "mean_table", "summary_tables", "score_rows",
           "ablation_score", "put_features", "load_truth", "MEASURES"]
