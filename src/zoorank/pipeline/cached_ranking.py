"""Around the pairs of a ranking, with or without Prefect: serving a whole ranking from the cache,
the tie sets at the top, the notes on the scored subsets, and the last step (table, tie sets,
MLflow) shared by the rank flow and the cached path. Imports no Prefect.

A fully cached ranking (:func:`pairs_from_cache`) runs the very stage functions the Prefect tasks
call (``zoorank.pipeline.stages``), on a :class:`CacheOnlyStore` whose misses raise :class:`NotCached`
before any work starts, so either every stage of every pair is answered from the verified store
(no Prefect server, ~1 s) or nothing was done and the Prefect flow runs as usual.
"""
from __future__ import annotations

from dataclasses import asdict

import numpy as np

from zoorank.pipeline import pairs as pipeline

from zoorank.pipeline import stages
from zoorank.metrics import registry as metric_registry
from zoorank.storage.arrays import ArrayStore, CacheMiss, CorruptEntry

__all__ = ["NotCached", "CacheOnlyStore", "pairs_from_cache", "tie_sets", "subset_notes", "finish_ranking",
           "ranking_params", "run_opener", "LEAD_SCORE_PARAMS"]

#: the parameters of LEAD's last step (Eq. 7 + cross-entropy), the only ones the tie set needs
LEAD_SCORE_PARAMS = ("eta_t", "eigenvalue_scale", "apply_softmax")


class NotCached(Exception):
    """A stage of the ranking is not in the store (the flow has work to do)."""


class CacheOnlyStore:
    """A view of a store (an :class:`ArrayStore` or a layered one) that answers only from what
    is there: a missing or damaged entry or record raises :class:`NotCached` instead of letting a
    stage compute it, and nothing is written."""

    def __init__(self, inner):
        self._inner = inner
        self._seen: set[str] = set()
        self._sums: dict[str, str] = {}

    def exists(self, key: str, *, deep: bool = True) -> bool:
        if key not in self._seen:          # published entries never change: verify each once
            if not self._inner.exists(key, deep=deep):
                raise NotCached(key)
            self._seen.add(key)
        return True

    def checksum(self, key: str) -> str:
        """Memoised: every score of a pair asks for the same upstream checksums (17 metrics x 3)."""
        if key not in self._sums:
            self._sums[key] = self._inner.checksum(key)
        return self._sums[key]

    def get_record(self, key: str):
        try:
            return self._inner.get_record(key)
        except (CacheMiss, CorruptEntry):
            raise NotCached(key) from None

    def put(self, key: str, *_args, **_kwargs):
        raise NotCached(key)

    put_record = writer = put

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def _no_work(*_args, **_kwargs):
    raise NotCached("a backbone would have to be loaded")


def _pair_from_cache(store: CacheOnlyStore, spec, dataset: dict, images, metrics: list[str],
                     metric_params: dict, lead_params: stages.LeadParams, device: str):
    model = _identity(spec, store)
    keys = stages.feature_keys(model["identity"], dataset["fingerprint"], model["has_outputs"])
    feat = stages.ensure_features(store, keys, _no_work, images, device=device)
    lead_results, lead_inputs = [], None
    if "lead" in metrics:
        svm = stages.ensure_svm_logits(store, keys, lead_params.svm, device=device)
        ntk = stages.ensure_ntk_eigenvalues(store, keys, lead_params.ntk, device=device)
        lead_results, lead_inputs = [asdict(svm), asdict(ntk)], (svm.key, ntk.key)
    scores = {m: asdict(stages.ensure_score(store, m, keys, params=metric_params.get(m, {}),
                                            lead_inputs=lead_inputs if m == "lead" else None)) for m in metrics}
    outcome = pipeline.collect_pair(model, dataset, {"keys": asdict(keys), "result": asdict(feat)},
                                    lead_results, scores)
    return outcome, lead_inputs


def _identity(spec, store):
    from zoorank.pipeline.identity import model_identity

    return model_identity(spec, store, load_backbone=_no_work)


def pairs_from_cache(store, specs: list, images: dict, metrics: list[str], metric_params: dict | None = None,
                     lead_params: stages.LeadParams | None = None, device: str = "cpu"):
    """Every (model, dataset) pair from the cache: ``(outcomes, lead_keys)`` with
    ``lead_keys[(model, dataset)] = (svm_logits key, ntk_eigenvalues key)``, or ``None`` as
    soon as one stage is missing (nothing computed). ``store``: an ArrayStore or a layered one;
    ``images``: ``{dataset id: scored images}``."""
    store = CacheOnlyStore(store)
    lead_params = lead_params or stages.LeadParams()
    outcomes, lead_keys = [], {}
    try:
        for d, imgs in images.items():
            dataset = {"dataset": d, "fingerprint": imgs.fingerprint()}
            for spec in specs:
                outcome, lead = _pair_from_cache(store, spec, dataset, imgs, metrics, dict(metric_params or {}),
                                                 lead_params, device)
                outcomes.append(outcome)
                if lead is not None:
                    lead_keys[(outcome.model, d)] = lead
    except NotCached:
        return None
    return outcomes, lead_keys


def tie_sets(store: ArrayStore, outcomes: list, lead_keys: dict, lead_score_params: dict | None = None,
             n_boot: int = 1000, seed: int = 0) -> dict:
    """``{dataset: TieSet}`` from the per-image LEAD scores of every pair with a LEAD score
    (:func:`zoorank.reporting.ties.top_tie_set` over the cached SVM logits and eigenvalues)."""
    from zoorank.reporting.ties import lead_image_scores, top_tie_set

    params = {k: v for k, v in (lead_score_params or {}).items() if k in LEAD_SCORE_PARAMS}
    by_dataset: dict[str, dict[str, np.ndarray]] = {}
    for o in outcomes:
        lead = lead_keys.get((o.model, o.dataset))
        if lead is None or not np.isfinite(o.scores.get("lead", np.nan)):
            continue
        labels = store.get(o.keys["labels"])
        by_dataset.setdefault(o.dataset, {})[o.model] = lead_image_scores(store.get(lead[0]), labels,
                                                                          store.get(lead[1]), **params)
    return {d: top_tie_set(s, n_boot=n_boot, seed=seed) for d, s in by_dataset.items()}


def subset_notes(images: dict, per_class: int | None, split: str) -> dict[str, list[str]]:
    """``{dataset: [note]}`` naming the classes that had fewer images than ``per_class`` (used whole)."""
    from zoorank.data.splits import short_classes

    notes = {}
    if per_class is None:
        return notes
    for d, imgs in images.items():
        short = short_classes(imgs.labels, per_class, classes=list(imgs.classes))
        if short:
            listed = ", ".join(f"{c!r} {n}" for c, n in list(short.items())[:6])
            more = f" and {len(short) - 6} more" if len(short) > 6 else ""
            notes[d] = [f"{len(short)} of {imgs.n_classes} classes have fewer than {per_class} images in the "
                        f"{split} split and are used whole ({listed}{more}); --per-class is an upper bound"]
    return notes


def finish_ranking(settings: Settings, outcomes: list, lead_keys: dict, *, subset: stages.SubsetSpec,
                   metrics: list[str], metric_params: dict, lead_params: stages.LeadParams, track: bool,
                   new_run: bool, run=None, zoo: str | None = None) -> dict:
    """Table, tie sets and MLflow logging of finished pairs (the flow's last step, and the whole
    of a ranking served from the cache). Returns the flow's result dict."""
    try:
        table = pipeline.ranking_table(outcomes, metrics)
        from zoorank.storage.layered import open_store  # behind settings.read_store when set

        ties = tie_sets(open_store(settings), outcomes, lead_keys, metric_params.get("lead", {}))
    except BaseException as exc:
        if run is not None:
            run.__exit__(type(exc), exc, exc.__traceback__)
        raise
    run_id = None
    if track:
        from zoorank.reporting.tracking_report import log_ranking

        run_id = log_ranking(settings, outcomes, table, subset=subset, metrics=metrics,
                             params=ranking_params(metric_params, lead_params, metrics), new_run=new_run,
                             ties=ties, run=run, zoo=zoo)
    return {"table": table.to_dict("records"), "run_id": run_id, "pairs": [asdict(o) for o in outcomes],
            "ties": {d: t.as_dict() for d, t in ties.items()}}


def ranking_params(metric_params: dict, lead_params: stages.LeadParams, metrics: list[str] | None = None) -> dict:
    """The parameters that enter a ranking's logical key (MLflow run reuse): with ``metrics``,
    their code versions too, so that a metric whose results changed gets a new run instead of
    the old, finished one being reported."""
    params = {"metric_params": metric_params, "lead": asdict(lead_params)}
    if metrics is not None:
        params["metric_versions"] = {m: metric_registry.get_metric(m).version for m in metrics}
    return params


def run_opener(settings: Settings, subset: stages.SubsetSpec, metrics: list[str], params: dict,
               new_run: bool, zoo: str | None):
    """``open_run(models, datasets)`` for :func:`_flow_body`: opens the MLflow parent run and
    hands it to ``zoorank.support.interrupt`` (Ctrl-C marks it KILLED)."""
    from zoorank.support import interrupt
    from zoorank.reporting.tracking_report import open_ranking

    def open_run(models: list[dict], dsets: dict[str, dict]):
        labels_keys = {}
        for d, ds in dsets.items():
            m = models[0]
            labels_keys[d] = stages.feature_keys(m["identity"], ds["fingerprint"], m["has_outputs"]).labels
        run = open_ranking(settings, {m["model"]: m["identity"] for m in models}, labels_keys, subset=subset,
                           metrics=metrics, params=params, new_run=new_run, zoo=zoo)
        interrupt.watch(run)
        return run

    return open_run
