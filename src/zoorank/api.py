"""Python API: ``zoorank.rank(zoo, dataset, ...)`` -> pandas DataFrame (one row per pair).

Importing this module is cheap (no pandas, numpy, torch or Prefect at the top): the CLI's
``--per-class`` check (:func:`normalise_per_class`) imports it while parsing arguments.
"""
from __future__ import annotations

from dataclasses import dataclass, field
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from zoorank.config import Settings, apply_offline_defaults
from zoorank.pipeline.preflight import _check_locations, _check_store, _check_tracking, check_datasets, resolve_specs

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["rank", "RankingResult", "normalise_per_class", "resolve_specs", "check_datasets"]


def normalise_per_class(per_class) -> int | None:
    """One convention for "all images", in the API and the CLI: ``None``, ``0`` and ``"all"``
    mean every image of the split; a positive integer is an upper bound per class (a smaller
    class is used whole, and the output says so)."""
    if per_class is None or (isinstance(per_class, str) and per_class.strip().lower() == "all"):
        return None
    try:
        value = int(per_class)
    except (TypeError, ValueError):
        raise ValueError(f"per_class must be a positive integer, 0 or 'all' (every image), got {per_class!r}") from None
    if isinstance(per_class, bool) or value < 0 or (isinstance(per_class, float) and per_class != value):
        raise ValueError(f"per_class must be a positive integer, 0 or 'all' (every image), got {per_class!r}")
    return value or None


@dataclass
class RankingResult:
    """``table`` (one row per dataset x model), ``run_id`` (MLflow parent run or None), ``ties``
    (``{dataset: TieSet}``), ``notes`` (``{dataset: [text]}``), ``from_cache`` (every stage was
    served from the store without starting Prefect)."""

    table: pd.DataFrame
    run_id: str | None
    ties: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    from_cache: bool = False


def _known_run(settings, outcomes, request) -> str | None:
    """The MLflow run that already holds this exact ranking (checked without MLflow), or None."""
    from zoorank.pipeline.outcomes import ranking_params
    from zoorank.reporting.tracking_report import known_finished_run, ranking_key

    key = ranking_key({o.model: o.identity for o in outcomes}, {o.dataset: o.keys["labels"] for o in outcomes},
                      request.subset, request.metric_names(),
                      ranking_params(request.metric_params, request.stage_params, request.metric_names()))
    return known_finished_run(settings, key)


def rank(zoo="default", dataset: str | Iterable[str] = "digits", *, per_class: int | str | None = 100,
         split: str = "train", seed: int = 0, metrics: list[str] | None = None,
         metric_params: dict | None = None, stage_params: dict | None = None,
         settings: Settings | None = None, read_store: str | None = None, device: str = "cpu", batch_size: int = 64,
         workers: int = 2, runner: str = "thread", dask_address: str | None = None,
         data_root: str | None = None, track: bool = True, new_run: bool = False,
         return_run_id: bool = False, memory_limit: str | None = None, details: bool = False,
         use_cache_path: bool = True):
    """Rank the backbones of ``zoo`` on ``dataset`` by LEAD and every baseline.

    ``per_class``: at most this many images per class (``None``, ``0`` or ``"all"``: every image).
    ``metric_params``: ``{metric: {parameter: value}}``; ``stage_params``: ``{upstream stage:
    {parameter: value}}`` (e.g. ``{"svm_logits": {"cross_fit": 0}}``; docs/pipeline.md).
    Runs the Prefect ``rank`` flow (a temporary local Prefect server unless PREFECT_API_URL
    points at a real one); intermediates are cached in the Zarr store of ``settings`` and
    results logged to its MLflow tracking URI. When every stage of every pair is already in the
    store (and ``use_cache_path``), the ranking is served from it without starting Prefect.
    Returns the ranking table; ``(table, run_id)`` with ``return_run_id``; a
    :class:`RankingResult` with ``details``.
    """
    from zoorank.pipeline.cached_ranking import pairs_from_cache, subset_notes
    from zoorank.pipeline.requests import RankRequest, RunOptions
    from zoorank.pipeline.sources import load_subset
    from zoorank.pipeline.stages import SubsetSpec
    from zoorank.pipeline.upstream import plan_metrics, stage_counts
    from zoorank.reporting import progress
    from zoorank.storage.layered import open_store

    settings = settings or Settings.from_env()
    if read_store is not None:  # a read-only store read before computing (zoorank.storage.layered)
        settings = dataclasses.replace(settings, read_store=Path(read_store).expanduser().absolute())
    apply_offline_defaults(settings)
    per_class = normalise_per_class(per_class)
    datasets = [dataset] if isinstance(dataset, str) else list(dataset)
    specs = resolve_specs(zoo)
    check_datasets(datasets)
    if metrics is not None:
        from zoorank.metrics.registry import get_metric
        for m in metrics:
            get_metric(m)
    request = RankRequest(specs, datasets, SubsetSpec(split=split, per_class=per_class, seed=seed),
                          list(metrics or []), dict(metric_params or {}), dict(stage_params or {}),
                          zoo if isinstance(zoo, str) else None)
    options = RunOptions(device, batch_size, data_root, track, new_run)
    plans = plan_metrics(request.metric_names(), request.metric_params, request.stage_params)  # bad params fail here
    settings = _check_store(settings)
    images = {d: load_subset(d, request.subset, data_root) for d in datasets}
    notes = subset_notes(images, per_class, split)
    cached = pairs_from_cache(open_store(settings), specs, images, request.metric_names(), request.metric_params,
                              request.stage_params, device) if use_cache_path else None
    known_run = _known_run(settings, cached, request) if cached is not None and track and not new_run else None
    if known_run is None:
        _check_tracking(settings, track)   # an unreachable tracking URI fails here, before any work
    if cached is not None:
        from zoorank.orchestration.ranking_finish import finish_ranking

        progress.note(f"every stage of the {len(cached)} pairs is cached: served from {settings.store}")
        result = finish_ranking(settings, cached, request,
                                dataclasses.replace(options, track=track and known_run is None))
        result.run_id = known_run or result.run_id
    else:
        from zoorank.orchestration.flows.rank import rank_flow
        from zoorank.orchestration.runners import flow_settings, make_task_runner

        n_pairs = len(datasets) * len(specs)
        progress.plan(n_pairs, {"features": n_pairs, **stage_counts(plans, n_pairs),
                                "score": n_pairs * len(request.metric_names())})
        try:
            with flow_settings():
                flow = rank_flow.with_options(task_runner=make_task_runner(runner, workers, dask_address,
                                                                           memory_limit))
                result = flow(request, options, settings)
        finally:
            progress.stop()
    import pandas as pd

    from zoorank.reporting.ties import TieSet

    table = pd.DataFrame(result.table)
    for d, lines in (result.combined_notes or {}).items():   # the combined ranking's notes (#15)
        notes.setdefault(d, []).extend(lines)
    if details:
        return RankingResult(table, result.run_id, {d: TieSet.from_dict(t) for d, t in result.ties.items()},
                             notes, from_cache=cached is not None)
    return (table, result.run_id) if return_run_id else table
