"""One (model, dataset) pair through every stage without Prefect: features, the upstream stages
its metrics declare (each distinct computation once), one score per metric. The direct runner
(benchmarks compare it with the flow) and the cached ranking path use it; the Prefect tasks call
the same stage functions one by one."""
from __future__ import annotations

from dataclasses import asdict

from zoorank.pipeline import stages
from zoorank.pipeline.outcomes import PairOutcome, collect_pair
from zoorank.pipeline.sources import PairSource, load_subset, model_identity
from zoorank.pipeline.upstream import MetricPlan, PairRef, PairSources, distinct_stages, ensure_upstream, plan_metrics
from zoorank.storage.arrays import ArrayStore

__all__ = ["score_pair", "run_pair_direct"]


def score_pair(store: ArrayStore, pair: PairRef, plans: list[MetricPlan], *, device: str = "cpu",
               sources: PairSources | None = None):
    """Upstream stages and scores of one pair whose features are stored: ``(stage results,
    {metric: score StageResult}, {metric: {keyword: upstream key}})``."""
    done = {s.ident: ensure_upstream(store, s, pair, device=device, sources=sources) for s in distinct_stages(plans)}
    scores, upstream, shared = {}, {}, {}
    for p in plans:
        up = {s.stage.keyword: done[s.ident].key for s in p.stages}
        scores[p.metric] = stages.ensure_score(store, p.metric, pair.keys, params=dict(p.score_params),
                                               upstream=up, pair_inputs=shared)
        if up:
            upstream[p.metric] = up
    return list(done.values()), scores, upstream


def run_pair_direct(store: ArrayStore, spec, dataset_id: str, subset: stages.SubsetSpec, metrics: list[str],
                    metric_params: dict | None = None, stage_params: dict | None = None,
                    device: str = "cpu", data_root: str | None = None) -> PairOutcome:
    """One pair through every stage without Prefect (the same functions the tasks call)."""
    images = load_subset(dataset_id, subset, data_root)
    model = model_identity(spec, store)
    dataset = {"dataset": dataset_id, "fingerprint": images.fingerprint()}
    keys = stages.feature_keys(model["identity"], dataset["fingerprint"], model["has_outputs"])
    source = PairSource(spec, dataset_id, subset, data_root)
    feat = stages.ensure_features(store, keys, lambda: source.load_backbone(device), images, device=device)
    pair = PairRef(keys, model["identity"], dataset["fingerprint"], f"{model['model']} / {dataset_id}")
    results, scores, upstream = score_pair(store, pair, plan_metrics(metrics, metric_params, stage_params),
                                           device=device, sources=source)
    return collect_pair(model, dataset, asdict(keys), [feat, *results], scores, upstream)
