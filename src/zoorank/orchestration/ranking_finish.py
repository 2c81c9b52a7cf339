"""The last step of a ranking, shared by the rank flow and the cached path (which runs no Prefect
and imports none from here): the table, the tie sets at the top, MLflow logging; and the opener of
the MLflow parent run as soon as the identities are known."""
from __future__ import annotations

from zoorank.config import DEFAULT_RANK_BY, Settings
from zoorank.pipeline.outcomes import RankOutput, ranking_params, ranking_table
from zoorank.pipeline.requests import RankRequest, RunOptions
from zoorank.pipeline.stages import feature_keys

__all__ = ["tie_sets", "finish_ranking", "run_opener", "with_combined", "combined_ties_first"]


def tie_sets(store, outcomes: list, metric_params: dict | None = None, rank_by: str = DEFAULT_RANK_BY,
             n_boot: int = 1000, seed: int = 0) -> dict:
    """``{dataset: TieSet}`` from the per-image scores of ``rank_by`` on every pair that has them
    (:func:`zoorank.pipeline.cached_ranking.image_scores`, :func:`zoorank.reporting.ties.top_tie_set`)."""
    from zoorank.pipeline.cached_ranking import image_scores
    from zoorank.reporting.ties import top_tie_set

    by_dataset = image_scores(store, outcomes, metric_params, rank_by)
    return {d: top_tie_set(s, n_boot=n_boot, seed=seed, score=rank_by) for d, s in by_dataset.items()}


def finish_ranking(settings: Settings, outcomes: list, request: RankRequest, options: RunOptions,
                   run=None) -> RankOutput:
    """Table, tie sets and MLflow logging of finished pairs (the flow's last step, and the whole
    of a ranking served from the cache)."""
    metrics = request.metric_names()
    try:
        table = ranking_table(outcomes, metrics)
        from zoorank.storage.layered import open_store  # behind settings.read_store when set

        ties = tie_sets(open_store(settings), outcomes, request.metric_params)
        table, combined, combined_notes = with_combined(open_store(settings), table, metrics, request.models)
        ties, combined_notes = combined_ties_first(ties, combined, combined_notes)
    except BaseException as exc:
        if run is not None:
            run.__exit__(type(exc), exc, exc.__traceback__)
        raise
    run_id = None
    if options.track:
        from zoorank.reporting.tracking_report import log_ranking

        run_id = log_ranking(settings, outcomes, table, subset=request.subset, metrics=metrics,
                             params=ranking_params(request.metric_params, request.stage_params, metrics),
                             new_run=options.new_run, ties=ties, run=run, zoo=request.zoo)
        if combined:
            from zoorank.reporting.combined import log_combined

            log_combined(settings, run_id, combined)
    return RankOutput(table.to_dict("records"), run_id, list(outcomes), {d: t.as_dict() for d, t in ties.items()},
                      combined, combined_notes)


def combined_ties_first(ties: dict, combined: dict, notes: dict) -> tuple[dict, dict]:
    """Where ``combined`` has a tie set it is the dataset's (the table's order is combined's); the
    per-image tie set of the metric it replaces becomes a note."""
    from zoorank.reporting.ties import TieSet

    ties, notes = dict(ties), {d: list(n) for d, n in notes.items()}
    for d, info in (combined or {}).items():
        if not info.get("tie"):
            continue
        old = ties.get(d)
        if old is not None and old.models:
            notes.setdefault(d, []).append(
                f"by {old.score} alone, {len(old.models)} model(s) come first in >= {old.threshold:.0%} of "
                f"{old.resampled()} ({old.tied_shares()})")
        ties[d] = TieSet.from_dict(info["tie"])
    return ties, notes


def with_combined(store, table, metrics, specs=None) -> tuple:
    """Issue 15: keep this ranking's scores for the history, load the history (shipped + the user's
    ground truth, zoorank.pipeline.history) and add the priors and ``combined``
    (zoorank.reporting.combined.add_combined; model cards from ``specs``, the zoo's entries).
    Returns (table, {dataset: info}, {dataset: [note]})."""
    from zoorank.pipeline.history import load_history, record_ranking_scores
    from zoorank.reporting.combined import add_combined, cards_from_specs

    record_ranking_scores(store, table, metrics)
    acc, size = cards_from_specs(specs)
    return add_combined(table, metrics, load_history(store), source_accuracy=acc, parameters=size)


def run_opener(settings: Settings, request: RankRequest, options: RunOptions):
    """``open_run(models, datasets)`` for the rank flow: opens the MLflow parent run and hands it
    to ``zoorank.support.interrupt`` (Ctrl-C marks it KILLED)."""
    from zoorank.reporting.tracking_report import open_ranking
    from zoorank.support import interrupt

    metrics = request.metric_names()
    params = ranking_params(request.metric_params, request.stage_params, metrics)

    def open_run(models: list[dict], dsets: dict[str, dict]):
        m = models[0]
        labels_keys = {d: feature_keys(m["identity"], ds["fingerprint"], m["has_outputs"]).labels
                       for d, ds in dsets.items()}
        run = open_ranking(settings, {m["model"]: m["identity"] for m in models}, labels_keys,
                           subset=request.subset, metrics=metrics, params=params, new_run=options.new_run,
                           zoo=request.zoo)
        interrupt.watch(run)
        return run

    return open_run
