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
* **LEAD ablations** -- one LEAD option changed at a time from the defaults (``eta_t`` sweep,
  ``samples_per_class`` sweep, SVM normalisation, cross-fitting, eigenvalue scaling, feature
  normalisation) -> weighted tau per variant.

Bad input is reported, never silently dropped: pairs without ground truth are listed and tau is
computed on the rest; a metric that fails on a pair is listed with its reason and left out of
that metric's tau only; with fewer than 3 models tau is undefined and the row says so.

Scores computed here (low data, ablations, and everything for a *synthetic zoo* given as
``features=``) are store records under ``stages.score_key(metric, upstream=<array checksums and
row digest>, params)``, one Prefect task per (dataset, model, regime).

Python: :func:`run_benchmark`; CLI: ``zoorank benchmark``; report: :mod:`zoorank.reporting.benchmark_report`.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict

import numpy as np
import pandas as pd

from zoorank.config import Settings, apply_offline_defaults

apply_offline_defaults()

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from zoorank.pipeline import stages  # noqa: E402
from zoorank.metrics import registry as metric_registry  # noqa: E402
from zoorank.storage.arrays import ArrayStore  # noqa: E402
from zoorank.storage.keys import content_key  # noqa: E402
# the pure tables (evaluation against ground truth) live in reporting/; re-exported here
from zoorank.reporting.benchmark_tables import MEASURES, evaluate_scores, mean_table, summary_tables  # noqa: E402,F401

LOW_DATA = (2, 5, 10)

#: LEAD ablations: (group, label, lead_score keyword overrides). One option changed at a time.
LEAD_ABLATIONS: tuple[tuple[str, str, dict], ...] = (
    *(("eta_t", f"eta_t={v:g}", {"eta_t": v}) for v in (0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)),
    *(("samples_per_class", f"S={v}", {"samples_per_class": v}) for v in (2, 5, 10, 64)),
    *(("normalisation", f"svm norm={v}", {"normalisation": v}) for v in ("platt", "softmax", "temperature")),
    ("cross_fit", "cross_fit=0 (in-sample)", {"cross_fit": 0}),
    ("cross_fit", "cross_fit=5 (out-of-fold)", {"cross_fit": 5}),
    *(("eigenvalue_scale", f"eig scale={v}", {"eigenvalue_scale": v}) for v in ("mean", "max", "none")),
    *(("svm_feature_norm", f"svm features={v}", {"svm_feature_norm": v}) for v in ("standard", "l2", "none")),
    *(("ntk_feature_norm", f"ntk features={v}", {"ntk_feature_norm": v}) for v in ("none", "l2")),
)
_SVM_STAGE = {"normalisation": "normalisation", "cross_fit": "cross_fit", "svm_feature_norm": "feature_norm",
              "svm": "svm", "C": "C", "max_fit_samples": "max_fit_samples"}
_NTK_STAGE = {"samples_per_class": "samples_per_class", "ntk_feature_norm": "feature_norm",
              "head_widths": "head_widths", "ntk_method": "method"}


def lead_ablation_score(store: ArrayStore, keys: stages.FeatureKeys, params: dict,
                        lead_params: stages.LeadParams | None = None) -> dict:
    """LEAD with ``params`` (lead_score keywords) on the full features, through the cached stages:
    the SVM logits and NTK eigenvalues are store entries keyed by their own parameters (those of
    the defaults are the rank flow's), so an eta_t or eigenvalue-scale variant costs only Eq. 7."""
    lead_params = lead_params or stages.LeadParams()
    svm = dict(lead_params.svm)
    ntk = dict(lead_params.ntk)
    eq7 = {}
    for k, v in params.items():
        if k in _SVM_STAGE:
            svm[_SVM_STAGE[k]] = v
        elif k in _NTK_STAGE:
            ntk[_NTK_STAGE[k]] = v
        else:
            eq7[k] = v
    try:
        s1 = stages.ensure_svm_logits(store, keys, svm)
        s2 = stages.ensure_ntk_eigenvalues(store, keys, ntk)
        res = stages.ensure_score(store, "lead", keys, params=eq7, lead_inputs=(s1.key, s2.key))
        return dict(res.info)
    except Exception as exc:  # noqa: BLE001 - recorded, the other variants go on
        return {"error": f"{type(exc).__name__}: {exc}"}


# ------------------------------------------------------------------ cached scoring on rows
def _rows_digest(rows) -> str:
    from zoorank.storage.keys import content_digest

    return content_digest("scores", rows=np.asarray(rows, dtype=np.int64))


def score_rows(store: ArrayStore, metric: str, keys: stages.FeatureKeys, rows, params: dict | None = None,
               cache: dict | None = None) -> dict:
    """Score ``metric`` on ``rows`` of a cached (features, labels[, source_probs]) entry; a store
    record ``{"score": x}`` or ``{"error": reason}`` under a content key (so reruns are free)."""
    params = dict(params or {})
    spec = metric_registry.get_metric(metric)
    upstream = {**stages.upstream_checksums(store, keys, stages.metric_inputs(spec)), "rows": _rows_digest(rows)}
    if "source_probs" in spec.needs and "source_probs" not in upstream:
        upstream["source_probs"] = None
    key = stages.score_key(spec, upstream, params)
    if store.has_record(key):
        return store.get_record(key)
    cache = cache if cache is not None else {}
    for name in ("features", "labels", "source_probs", "sample_ids"):
        if name not in cache:
            k = getattr(keys, name)
            cache[name] = store.get(k) if k else None
    rows = np.asarray(rows)
    inputs = {n: cache[n][rows] for n in ("source_probs", "sample_ids") if n in upstream and cache[n] is not None}
    try:
        value = {"score": float(metric_registry.score(metric, cache["features"][rows], cache["labels"][rows],
                                                     **inputs, **params))}
        if not math.isfinite(value["score"]):
            value = {"error": f"non-finite score {value['score']}"}
    except Exception as exc:  # noqa: BLE001 - a failing metric is recorded with its reason, others go on
        value = {"error": f"{type(exc).__name__}: {exc}"}
    store.put_record(key, value)
    return value


def _subsets(labels: np.ndarray, per_class: int, repeats: int, seed: int) -> list[np.ndarray]:
    from zoorank.data import low_data_subsets

    return low_data_subsets(labels, per_class, repeats, random_state=seed)


@task(name="bench-score-pair", cache_policy=NO_CACHE)
def score_pair_task(settings: Settings, dataset: str, model: str, keys: dict, metrics: list[str],
                    metric_params: dict, low_data: list[int], repeats: int, seed: int,
                    ablations: bool, full: bool, lead_params: stages.LeadParams | None = None,
                    low_metrics: list[str] | None = None) -> dict:
    """All benchmark scores of one (model, dataset) pair: full data (only when ``full``, i.e. no
    rank flow supplied them), low-data subsets, LEAD ablations."""
    store = ArrayStore(settings.store)
    fk = stages.FeatureKeys(**keys)
    cache: dict = {}
    labels = store.get(fk.labels)
    everything = np.arange(len(labels))
    out = {"dataset": dataset, "model": model, "full": {}, "low": [], "ablation": []}
    if full:
        for m in metrics:
            out["full"][m] = score_rows(store, m, fk, everything, metric_params.get(m, {}), cache)
    for n_k in low_data:
        try:
            subsets = _subsets(labels, n_k, repeats, seed)
        except ValueError as exc:
            out["low"].append({"n_per_class": n_k, "error": str(exc)})
            continue
        for r, rows in enumerate(subsets):
            for m in (low_metrics or metrics):
                out["low"].append({"n_per_class": n_k, "repeat": r, "metric": m,
                                   **score_rows(store, m, fk, rows, metric_params.get(m, {}), cache)})
    if ablations:
        base = dict(metric_params.get("lead", {}))
        for group, label, over in LEAD_ABLATIONS:
            out["ablation"].append({"group": group, "variant": label,
                                    **lead_ablation_score(store, fk, {**base, **over}, lead_params)})
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


def load_truth(ground_truth, settings: Settings, metric: str = "test_top1") -> pd.DataFrame:
    """DataFrame / CSV path (``#`` comment lines allowed) / MLflow ground-truth run id (or ``"mlflow"``
    for the newest) -> DataFrame ``dataset, model, accuracy``."""
    if isinstance(ground_truth, pd.DataFrame):
        df = ground_truth
    elif isinstance(ground_truth, str) and ground_truth.endswith(".csv"):
        df = pd.read_csv(ground_truth, comment="#")
    else:
        from zoorank.orchestration.flows.ground_truth import load_ground_truth

        return load_ground_truth(settings, None if ground_truth in (None, "mlflow") else ground_truth,
                                 metric=metric)
    if "accuracy" not in df:
        if metric not in df:
            raise ValueError(f"ground truth needs an 'accuracy' or {metric!r} column; has {list(df.columns)}")
        df = df.rename(columns={metric: "accuracy"})
    return df[["dataset", "model", "accuracy"]]


# ------------------------------------------------------------------ flow
@flow(name="benchmark", log_prints=False, persist_result=False)
def benchmark_flow(datasets: list[str], ground_truth, specs: list | None = None, features: dict | None = None,
                   per_class: int | None = 20, split: str = "train", seed: int = 0, metrics: list[str] | None = None,
                   metric_params: dict | None = None, lead_params: stages.LeadParams | None = None,
                   low_data: list[int] | None = None, repeats: int = 5, ablations: bool = True,
                   settings: Settings | None = None, device: str = "cpu", data_root: str | None = None,
                   track: bool = True, gt_metric: str = "test_top1", low_metrics: list[str] | None = None
                   ) -> dict:
    """See the module docstring. ``low_metrics``: metrics of the low-data regime (default: all).
    Either ``specs`` (real zoo, scores from the rank flow) or
    ``features`` = ``{dataset: {model: (features, labels[, source_probs])}}`` (synthetic zoo)."""
    from zoorank.pipeline import pairs as pipeline

    settings = settings or Settings.from_env()
    metrics = list(metrics or pipeline.default_metrics())
    metric_params = dict(metric_params or {})
    low_data = list(LOW_DATA if low_data is None else low_data)
    store = ArrayStore(settings.store)
    truth = load_truth(ground_truth, settings, gt_metric)
    t0 = time.perf_counter()
    full_scores: dict[str, pd.DataFrame] = {}
    pair_keys: dict[str, dict[str, dict]] = {}
    if specs is not None:
        from zoorank.orchestration.flows.rank import rank_flow

        res = rank_flow(specs, list(datasets), stages.SubsetSpec(split=split, per_class=per_class, seed=seed),
                        metrics, metric_params, lead_params, settings, device, 64, data_root, track, False)
        table = pd.DataFrame(res["table"])
        for d in datasets:
            full_scores[d] = table[table["dataset"] == d].reset_index(drop=True)
        skipped = {(p["dataset"], p["model"]): "; ".join(f"{m}: {why}" for m, why in sorted(p["skipped"].items()))
                   for p in res["pairs"]}
        for d in datasets:
            full_scores[d]["skipped"] = [skipped.get((d, m), "") for m in full_scores[d]["model"]]
        for p in res["pairs"]:
            pair_keys.setdefault(p["dataset"], {})[p["model"]] = p["keys"]
    else:
        for d, models in (features or {}).items():
            for m, arrays in models.items():
                pair_keys.setdefault(d, {})[m] = asdict(put_features(store, f"{d}/{m}", *arrays))
    futs = [score_pair_task.submit(settings, d, m, k, metrics, metric_params, low_data, repeats, seed, ablations,
                                   specs is None, lead_params, low_metrics)
            for d in datasets for m, k in pair_keys.get(d, {}).items()]
    outs = [f.result() for f in futs]
    if specs is None:
        for d in datasets:
            rows = []
            for o in (o for o in outs if o["dataset"] == d):
                row = {"model": o["model"]}
                row.update({m: v.get("score", np.nan) for m, v in o["full"].items()})
                row["failed"] = "; ".join(f"{m}: {v['error']}" for m, v in o["full"].items() if "error" in v)
                rows.append(row)
            full_scores[d] = pd.DataFrame(rows)
    # ---- full data
    per_dataset, notes = {}, {}
    for d in datasets:
        t = truth[truth["dataset"] == d]
        sc = full_scores.get(d, pd.DataFrame(columns=["model"]))
        per_dataset[d], notes[d] = evaluate_scores(sc, t[["model", "accuracy"]], metrics)
        if t.empty:
            notes[d].insert(0, f"no ground truth at all for dataset {d!r}")
    # ---- low data: tau per (dataset, N/K, repeat, metric) -> mean/std per N/K and metric
    low_rows = []
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
            for r in ev.itertuples():
                low_rows.append({"dataset": d, "n_per_class": n_k, "repeat": rep, "metric": r.metric,
                                 "weighted_tau": r.weighted_tau, "note": r.note})
    low = pd.DataFrame(low_rows, columns=["dataset", "n_per_class", "repeat", "metric", "weighted_tau", "note"])
    low_summary = (low.groupby(["metric", "n_per_class", "dataset"])["weighted_tau"].agg(["mean", "std", "count"])
                   .reset_index() if len(low) else pd.DataFrame())
    # ---- ablations
    abl_rows = []
    for d in datasets:
        t = truth[truth["dataset"] == d][["model", "accuracy"]]
        recs = [dict(r, model=o["model"]) for o in outs if o["dataset"] == d for r in o["ablation"]]
        for (group, variant), grp in pd.DataFrame(recs).groupby(["group", "variant"], sort=False) if recs else []:
            sc = pd.DataFrame({"model": grp["model"], "lead": grp.get("score", np.nan)})
            if "error" in grp:
                sc["failed"] = ["lead: " + e if isinstance(e, str) else "" for e in grp["error"]]
            ev, _ = evaluate_scores(sc, t, ["lead"])
            abl_rows.append({"dataset": d, "group": group, "variant": variant,
                             "weighted_tau": ev["weighted_tau"].iloc[0], "note": ev["note"].iloc[0]})
    abl = pd.DataFrame(abl_rows, columns=["dataset", "group", "variant", "weighted_tau", "note"])
    result = {
        "datasets": list(datasets), "metrics": metrics,
        "per_dataset": {d: t.to_dict("records") for d, t in per_dataset.items()},
        "notes": notes,
        "scores": {d: s.to_dict("records") for d, s in full_scores.items()},
        "truth": truth.to_dict("records"),
        "low_data": low.to_dict("records"), "low_data_summary": low_summary.to_dict("records"),
        "ablations": abl.to_dict("records"),
        "seconds": time.perf_counter() - t0,
    }
    return result


def run_benchmark(zoo="default", datasets=("digits",), ground_truth="mlflow", *, features=None, per_class=20,
                  split="train", seed=0, metrics=None, metric_params=None, lead_params=None, low_data=None,
                  repeats=5, ablations=True, settings: Settings | None = None, device="cpu", data_root=None,
                  track=True, workers=2, runner="thread", out_dir=None, gt_metric="test_top1",
                  low_metrics=None, header: str = "") -> dict:
    """Python API of the benchmark flow; writes the report to ``out_dir`` when given (and logs it
    to MLflow when ``track``). Returns the result dict (see :func:`summary_tables`)."""
    from zoorank.api import _check_locations, resolve_specs
    from zoorank.orchestration.runners import flow_settings, make_task_runner

    settings = settings or Settings.from_env()
    apply_offline_defaults(settings)
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    specs = None if features is not None else resolve_specs(zoo)
    _check_locations(settings, track)
    with flow_settings():
        fl = benchmark_flow.with_options(task_runner=make_task_runner(runner, workers))
        result = fl(datasets, ground_truth, specs, features, per_class, split, seed, metrics, metric_params,
                    lead_params, low_data, repeats, ablations, settings, device, data_root, track, gt_metric,
                    low_metrics)
    if out_dir is not None:
        from zoorank.reporting.benchmark_report import write_report

        result["report"] = write_report(result, out_dir, settings=settings if track else None, header=header)
    return result


__all__ = ["benchmark_flow", "run_benchmark", "evaluate_scores", "mean_table", "summary_tables", "score_rows",
           "put_features", "load_truth", "LEAD_ABLATIONS", "MEASURES"]
