"""The ``ground-truth`` flow: fine-tune every (backbone, dataset) pair, track, cache (recipe ft-v2).

    ground-truth parent run (MLflow, tag zoorank.kind=ground_truth)
      +- pair run per (model, dataset)    (zoorank.kind=gt_pair; metrics gt.test_top1, gt.se,
      |                                    gt.lp_test_top1, gt.converged, gt.n_diverged, ...)
           +- trial run per (lr, wd, seed) (zoorank.kind=gt_trial; params, learning curves as
                                             stepped metrics train_loss / grad_norm / val_top1_curve,
                                             val/test metrics, seconds, diverged)

Per pair (``docs/ground_truth.md``): one linear-probe task (:func:`probe_pair`: the LP head and the
LP accuracy), then the grid at the first seed, then the other seeds at the grid point chosen on
validation (:func:`zoorank.compute.finetune.choose_point`); when every grid point diverged, the grid's
smallest lr / 10 is tried (at most :data:`MAX_LR_RETRIES` times); while the largest lr tried wins, the
next of the request's ``lrs_up`` is tried (:func:`zoorank.compute.finetune.lr_to_extend`); once the
other seeds are in, more run (:func:`zoorank.compute.finetune.next_seeds`, up to the request's
``max_seeds``) while fewer than planned survived or seed spread keeps the SE above 2 points, and the
planned seeds run at the next point when the chosen one proved unstable. One Prefect task per trial
(:func:`finetune_trial`). A trial's result is a store record under ``content_key("gt_trial",
model=<identity>, data=<split fingerprint>, trial=<lr, wd, seed>, budget=<Budget>,
recipe=RECIPE_VERSION)`` (the probe's likewise under ``gt_probe``): a rerun, a resumed killed run,
or a run after ``--import`` finds it and trains nothing; only trials without a record are trained, and
those whose recorded loss blow-up the current rule no longer sees (``finetune.stale_divergence``).
The pair's ground truth (:func:`zoorank.compute.finetune.pair_ground_truth`) is stored as a ``gt_pair``
record and logged to the pair run.

Python: :func:`run_ground_truth` (returns a DataFrame, one row per pair); CLI:
``zoorank ground-truth``; records out / in: :mod:`zoorank.pipeline.ground_truth_records`.
"""
from __future__ import annotations

import functools
import json
import math
import threading
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from zoorank.compute import finetune
from zoorank.config import Settings, apply_offline_defaults
from zoorank.pipeline.requests import RunOptions
from zoorank.storage.arrays import ArrayStore
from zoorank.storage.keys import content_key
from zoorank.support.faults import kill_point

#: code version of the ground-truth records' keys (gt_trial, gt_pair, gt_probe, gt_probe_head),
#: passed to content_key explicitly: nothing is registered in STAGE_VERSIONS at import
GT_STAGE_VERSION = 1

from zoorank.reporting.truth import load_ground_truth  # noqa: E402,F401  (reading it back is reporting's)
from zoorank.storage.tracking.tags import KIND_GROUND_TRUTH as KIND_GT  # noqa: E402
from zoorank.storage.tracking.tags import KIND_GT_PAIR as KIND_PAIR, KIND_GT_TRIAL as KIND_TRIAL  # noqa: E402
TAG_TRIAL_KEY = "zoorank.trial_key"
#: how many times a pair whose every lr diverged is retried with lr / 10
MAX_LR_RETRIES = 2
#: Rounds of seeds after the planned ones (``finetune.next_seeds``): a guard, never reached when each
#: round adds a trial at a point that has at most ``max_seeds``.
MAX_EXTRA_ROUNDS = 20


# ------------------------------------------------------------------ helpers (no Prefect)
@functools.lru_cache(maxsize=8)
def _splits(dataset_id: str, budget: finetune.Budget, split_seed: int, data_root: str | None):
    from zoorank.data import load_dataset

    from zoorank.storage.keys import content_digest

    data = finetune.prepare_splits(load_dataset(dataset_id, root=data_root), budget, split_seed=split_seed)
    # the split's identity in the trial keys (the same digest the records were keyed by before)
    return dataclasses.replace(data, fingerprint=content_digest("labels", parts=data.identity))


_BACKBONE_LOCK = threading.Lock()
_PREPARED_LOCKS: dict = {}


@functools.lru_cache(maxsize=16)
def _pristine_backbone(spec):
    from zoorank.pipeline.sources import load_backbone

    return load_backbone(spec)


def _fresh_backbone(spec):
    """A private copy of the pretrained backbone (loaded once per process, deep-copied per trial)."""
    import copy

    with _BACKBONE_LOCK:
        return copy.deepcopy(_pristine_backbone(spec))


@functools.lru_cache(maxsize=4)
def _prepared_backbone_cached(spec, dataset_id, budget, split_seed, data_root, device):
    data = _splits(dataset_id, budget, split_seed, data_root)
    return finetune.prepare_backbone(_fresh_backbone(spec), data, budget, device)


def _prepared_backbone(spec, dataset_id, budget, split_seed, data_root, device):
    """A private copy of the backbone prepared for this pair (BatchNorm re-estimated when the
    budget says so): prepared once per process and pair, deep-copied per trial."""
    import copy

    args = (spec, dataset_id, budget, split_seed, data_root, device)
    with _BACKBONE_LOCK:
        lock = _PREPARED_LOCKS.setdefault(args, threading.Lock())
    with lock:
        return copy.deepcopy(_prepared_backbone_cached(*args))


@functools.lru_cache(maxsize=64)
def _identity(spec) -> dict:
    from zoorank.pipeline.sources import model_identity

    return model_identity(spec)


def trial_key(identity: str, data_fingerprint: str, params: finetune.TrialParams,
              budget: finetune.Budget) -> str:
    return content_key("gt_trial", stage_version=GT_STAGE_VERSION, model=identity, data=data_fingerprint, trial=params.as_dict(),
                       budget=budget.as_dict(), recipe=finetune.RECIPE_VERSION)


def probe_key(identity: str, data_fingerprint: str, budget: finetune.Budget) -> str:
    return content_key("gt_probe", stage_version=GT_STAGE_VERSION, model=identity, data=data_fingerprint, budget=budget.as_dict(),
                       recipe=finetune.RECIPE_VERSION)


def probe_head_key(identity: str, data_fingerprint: str, budget: finetune.Budget) -> str:
    return content_key("gt_probe_head", stage_version=GT_STAGE_VERSION, model=identity, data=data_fingerprint, budget=budget.as_dict(),
                       recipe=finetune.RECIPE_VERSION)


def pair_key(identity: str, data_fingerprint: str, grid, seeds, budget: finetune.Budget) -> str:
    return content_key("gt_pair", stage_version=GT_STAGE_VERSION, model=identity, data=data_fingerprint, grid=[list(g) for g in grid],
                       seeds=list(seeds), budget=budget.as_dict(), recipe=finetune.RECIPE_VERSION)


def _pair_meta(spec, dataset_id: str, budget: finetune.Budget, split_seed: int, data) -> dict:
    """What every record of a pair carries, so exported records can be grouped into pairs."""
    from zoorank.pipeline.sources import spec_id

    return {"model": spec_id(spec), "dataset": dataset_id, "identity": _identity(spec)["identity"],
            "data_fingerprint": data.fingerprint, "budget": budget.as_dict(), "recipe": finetune.RECIPE_VERSION,
            "split_seed": split_seed, "n_classes": data.n_classes}


def _finite(d: dict) -> dict:
    return {k: float(v) for k, v in d.items() if v is not None and math.isfinite(float(v))}


class _GTTracker:
    """The parent / pair / trial runs of a ground truth, found or created by their tags through the
    Tracker's public find-or-create (``zoorank.storage.tracking``)."""

    def __init__(self, settings: Settings):
        from zoorank.storage.tracking import Tracker

        self.t = Tracker.from_settings(settings)

    def parent(self, key: str, params: dict) -> str:
        return self.t.find_or_create_run({"zoorank.kind": KIND_GT, "zoorank.logical_key": key},
                                         run_name="ground-truth", params=params, reopen=True).run_id

    def pair(self, parent: str, model: str, dataset: str, params: dict) -> str:
        return self.t.find_or_create_run({"zoorank.kind": KIND_PAIR, "mlflow.parentRunId": parent,
                                          "zoorank.model": model, "zoorank.dataset": dataset},
                                         run_name=f"{model} / {dataset}", params=params).run_id

    def trial(self, pair_run: str, key: str, model: str, dataset: str, result: dict, params: dict) -> tuple[str, bool]:
        """Log a trial run unless a finished one with this key exists under ``pair_run``."""
        run = self.t.find_or_create_run(
            {"zoorank.kind": KIND_TRIAL, "mlflow.parentRunId": pair_run, TAG_TRIAL_KEY: key,
             "zoorank.model": model, "zoorank.dataset": dataset},
            run_name=f"lr={result['lr']:g} wd={result['wd']:g} seed={result['seed']}", params=params)
        if run.finished:
            return run.run_id, False
        rid = run.run_id
        for name, fld in (("train_loss", "train_loss"), ("grad_norm", "grad_norm"), ("val_top1_curve", "val_curve")):
            self.t.log_curve(rid, name, result.get(fld, []))
        self.t.log_run(rid, metrics=_finite({k: result[k] for k in ("val_top1", "val_mean_class", "test_top1",
                                                                    "test_mean_class", "seconds")})
                       | {"diverged": float(result["diverged"])},
                       tags={"zoorank.diverged_reason": result.get("diverged_reason", "")} if result["diverged"] else None)
        self.t.end_run(rid, "FINISHED")
        return rid, True


# ------------------------------------------------------------------ tasks
def _fit_probe(store: ArrayStore, spec, dataset_id, budget, split_seed, device, data_root, meta) -> dict:
    """Fit the pair's linear probe; publish its head (a Zarr array) and its summary (a record)."""
    data = _splits(dataset_id, budget, split_seed, data_root)
    backbone = _prepared_backbone(spec, dataset_id, budget, split_seed, data_root, device)
    size = finetune.input_size_for(backbone, budget)
    probe = finetune.linear_probe(backbone, data, size, device, cs=budget.probe_cs, batch_size=budget.eval_batch_size)
    store.put(probe_head_key(meta["identity"], data.fingerprint, budget), finetune.head_array(probe))
    summary = probe.summary() | meta
    key = probe_key(meta["identity"], data.fingerprint, budget)
    if not store.has_record(key):
        store.put_record(key, summary)
    return summary


def _probe_head(settings: Settings, spec, dataset_id, budget, split_seed, device, data_root) -> dict:
    """The probe's head from the store, fitted again when only its summary is there (imported)."""
    store = ArrayStore(settings.store)
    data = _splits(dataset_id, budget, split_seed, data_root)
    meta = _pair_meta(spec, dataset_id, budget, split_seed, data)
    hkey = probe_head_key(meta["identity"], data.fingerprint, budget)
    if not store.exists(hkey):
        _fit_probe(store, spec, dataset_id, budget, split_seed, device, data_root, meta)
    return finetune.head_from_array(store.get(hkey))


@task(name="gt-probe", cache_policy=NO_CACHE)
def probe_pair(settings: Settings, spec, dataset_id: str, budget: finetune.Budget, split_seed: int,
               device: str, data_root: str | None) -> dict:
    """The pair's linear probe summary (LP accuracy, C): cached record, else fit (head -> store)."""
    store = ArrayStore(settings.store)
    data = _splits(dataset_id, budget, split_seed, data_root)
    meta = _pair_meta(spec, dataset_id, budget, split_seed, data)
    key = probe_key(meta["identity"], data.fingerprint, budget)
    if store.has_record(key):
        return store.get_record(key) | {"key": key, "cache_hit": True}
    return _fit_probe(store, spec, dataset_id, budget, split_seed, device, data_root, meta) | {
        "key": key, "cache_hit": False}


@task(name="gt-trial", cache_policy=NO_CACHE)
def finetune_trial(settings: Settings, spec, dataset_id: str, params: finetune.TrialParams,
                   budget: finetune.Budget, split_seed: int, device: str, data_root: str | None,
                   pair_run: str | None, probe: dict | None = None) -> dict:
    """One (model, dataset, lr, wd, seed) trial: cached record, else train (from the probe's head when
    ``budget.head_init == "probe"``; ``probe``, the probe task's summary, orders it after the probe);
    then MLflow."""
    store = ArrayStore(settings.store)
    data = _splits(dataset_id, budget, split_seed, data_root)
    meta = _pair_meta(spec, dataset_id, budget, split_seed, data)
    key = trial_key(meta["identity"], data.fingerprint, params, budget)
    result = store.get_record(key) if store.has_record(key) else None
    rejudged = result is not None and finetune.stale_divergence(result, budget)
    hit = result is not None and not rejudged
    if not hit:
        head = _probe_head(settings, spec, dataset_id, budget, split_seed, device, data_root) \
            if budget.head_init == "probe" else None
        result = finetune.run_trial(
            lambda: _prepared_backbone(spec, dataset_id, budget, split_seed, data_root, device), data, params,
            budget, device=device, probe=head, prepared=True).as_dict() | meta
        kill_point("gt_trial")
        store.put_record(key, result)
    logged = False
    if pair_run is not None:
        mparams = {"model": meta["model"], "dataset": dataset_id, "identity": meta["identity"],
                   **params.as_dict(), "budget": budget.as_dict(), "recipe": finetune.RECIPE_VERSION,
                   "split_seed": split_seed, "device": result.get("device"),
                   "input_size": "x".join(map(str, result.get("input_size", [])))}
        # a retrained stale blow-up gets its own run (the old one keeps the old judgement)
        run_key = f"{key}|rejudged" if rejudged else key
        _, logged = _GTTracker(settings).trial(pair_run, run_key, meta["model"], dataset_id, result, mparams)
    return {**result, "key": key, "cache_hit": hit, "logged": logged}


# ------------------------------------------------------------------ flow
def _results(futs) -> tuple[list, list]:
    results, errors = [], []
    for f in futs:
        try:
            results.append(f.result())
        except Exception as exc:  # noqa: BLE001 - a failed trial is reported, the others go on
            errors.append(f"{type(exc).__name__}: {exc}")
    return results, errors


@dataclass(frozen=True)
class GroundTruthRequest:
    """What to fine-tune: ``models`` (spec ids or ModelSpecs) x ``datasets``; ``grid`` ((lr, wd)
    pairs; ``None``: ``finetune.FULL_GRID``) at the first of ``seeds``, the other seeds at the chosen
    point; the ``budget`` (``None``: ``finetune.Budget()``); the split's seed; intra-op ``threads``
    per worker (``None``: torch's default); ``lrs_up``: lrs tried at the first seed, in order, while
    the largest lr tried wins on validation (``finetune.lr_to_extend``); ``max_seeds``: the most
    seeds run at the chosen point (``finetune.next_seeds``; ``None``: only ``seeds``)."""

    models: list[Any]
    datasets: list[str]
    grid: list[Any] | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    budget: finetune.Budget | None = None
    split_seed: int = 0
    threads: int | None = None
    lrs_up: list[float] = field(default_factory=list)
    max_seeds: int | None = None


def _limit_threads(threads: int | None) -> None:
    """One intra-op thread per worker: on a shared, oversubscribed CPU torch's spinning OpenMP
    threads made a training step ~20x slower than a single thread (measured, 2 loaded cores); BLAS
    likewise (the probe's logistic regression: 54 s with default threads, 2.8 s with 1)."""
    if threads:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(int(threads))
        threadpool_limits(limits=int(threads))


@dataclass
class _Plan:
    """One ground truth in progress: the resolved request, the store, the runs, the submitter."""

    settings: Settings
    request: GroundTruthRequest
    options: RunOptions
    grid: list
    seeds: list
    budget: finetune.Budget
    store: ArrayStore
    tracker: _GTTracker | None
    parent: str | None = None

    def submit(self, spec, d, pair_run, probe_fut, lr, wd, seed):
        return finetune_trial.submit(self.settings, spec, d, finetune.TrialParams(lr, wd, seed), self.budget,
                                     self.request.split_seed, self.options.device, self.options.data_root,
                                     pair_run, probe_fut)


def _open_parent(plan: _Plan) -> None:
    from zoorank.pipeline.sources import spec_id
    from zoorank.storage.tracking import logical_key

    if plan.tracker is None:
        return
    ids, datasets, device = [spec_id(s) for s in plan.request.models], list(plan.request.datasets), plan.options.device
    up = {"lrs_up": list(plan.request.lrs_up)} if plan.request.lrs_up else {}   # absent: the keys of before
    if plan.request.max_seeds is not None:
        up["max_seeds"] = int(plan.request.max_seeds)
    lk = logical_key(kind=KIND_GT, models=ids, datasets=datasets, grid=[list(g) for g in plan.grid],
                     seeds=plan.seeds, budget=plan.budget.as_dict(), recipe=finetune.RECIPE_VERSION, device=device,
                     **up)
    plan.parent = plan.tracker.parent(lk, {"models": ",".join(ids), "datasets": ",".join(datasets),
                                           "grid": json.dumps(plan.grid), "seeds": json.dumps(plan.seeds),
                                           "lrs_up": json.dumps(list(plan.request.lrs_up)),
                                           "max_seeds": plan.request.max_seeds,
                                           "budget": plan.budget.as_dict(), "recipe": finetune.RECIPE_VERSION,
                                           "device": device, "split_seed": plan.request.split_seed})


def _submit_grids(plan: _Plan) -> list[dict]:
    """Phase 1, dataset by dataset: per pair its run, the probe and the grid at the first seed."""
    from zoorank.pipeline.sources import spec_id

    pairs = []
    for d in plan.request.datasets:
        for spec in plan.request.models:
            pair_run = plan.tracker.pair(plan.parent, spec_id(spec), d, {
                "grid": json.dumps(plan.grid), "seeds": json.dumps(plan.seeds)}) if plan.tracker else None
            probe_fut = probe_pair.submit(plan.settings, spec, d, plan.budget, plan.request.split_seed,
                                          plan.options.device, plan.options.data_root)
            futs = [plan.submit(spec, d, pair_run, probe_fut, lr, wd, plan.seeds[0]) for lr, wd in plan.grid]
            pairs.append({"spec": spec, "d": d, "run": pair_run, "probe": probe_fut, "grid": futs, "more": []})
    return pairs


def _train_more(plan: _Plan, p: dict, lr: float, wd: float, seeds, results: list, errors: list) -> None:
    """More trials of pair ``p`` at (lr, wd), one per seed of ``seeds``, waited for; their records
    or errors appended to ``results`` / ``errors``."""
    more, err = _results([plan.submit(p["spec"], p["d"], p["run"], p["probe"], lr, wd, s) for s in seeds])
    results += more
    errors += err


def _retry_then_other_seeds(plan: _Plan, p: dict) -> None:
    """lr / 10 retries while every grid point diverged, the upward extension while the largest lr
    wins, then phase 2: the other seeds at the point chosen on validation."""
    results, errors = _results(p["grid"])
    tried = [float(r["lr"]) for r in results]
    for _ in range(MAX_LR_RETRIES):
        if finetune.choose_point(results) is not None or not results or errors:
            break
        tried.append(min(tried) / 10)
        _train_more(plan, p, tried[-1], plan.grid[0][1], plan.seeds[:1], results, errors)
    while not errors and (up := finetune.lr_to_extend(results, plan.request.lrs_up)) is not None:
        _train_more(plan, p, *up, plan.seeds[:1], results, errors)
    p["results"], p["errors"] = results, errors
    point = finetune.choose_point(results)
    if point is not None:
        p["more"] = [plan.submit(p["spec"], p["d"], p["run"], p["probe"], *point, s) for s in plan.seeds[1:]]


def _finish_pair(plan: _Plan, p: dict) -> tuple[dict, list]:
    """The pair's row (ground truth from its trials and probe: a store record and its run's metrics)."""
    from zoorank.pipeline.sources import spec_id

    more, err = _results(p["more"])
    results, errors = p["results"] + more, p["errors"] + err
    for _ in range(MAX_EXTRA_ROUNDS):
        seeds = finetune.next_seeds(results, plan.seeds, plan.request.max_seeds) if not errors else []
        if not seeds:
            break
        _train_more(plan, p, *finetune.choose_point(results), seeds, results, errors)
    try:
        probe = p["probe"].result()
    except Exception as exc:  # noqa: BLE001
        probe = None
        errors.append(f"probe: {type(exc).__name__}: {exc}")
    row = {"dataset": p["d"], "model": spec_id(p["spec"]), "n_trials": len(results), "failed": "; ".join(errors)}
    if results or probe:
        gt = finetune.pair_ground_truth(results, probe)
        data = _splits(p["d"], plan.budget, plan.request.split_seed, plan.options.data_root)
        plan.store.put_record(pair_key(_identity(p["spec"])["identity"], data.fingerprint, plan.grid, plan.seeds,
                                       plan.budget), gt)
        row.update({k: gt[k] for k in ("test_top1", "se", "test_mean_class", "val_top1", "lp_test_top1",
                                       "best_lr", "best_wd", "n_seeds", "n_test", "converged", "n_diverged")},
                   seconds=round(sum(r["seconds"] for r in results), 2),
                   cached_trials=sum(bool(r["cache_hit"]) for r in results))
        if plan.tracker:
            plan.tracker.t.log_run(p["run"], metrics=_finite({f"gt.{k}": gt[k] for k in (
                "test_top1", "test_mean_class", "val_top1", "se", "se_seeds", "se_test", "lp_test_top1",
                "lp_val_top1", "n_test", "n_seeds", "n_diverged", "val_change_last20", "val_se")})
                | {"gt.n_trials": len(results), "gt.converged": float(gt["converged"])},
                tags={"zoorank.gt_best": json.dumps({"lr": gt["best_lr"], "wd": gt["best_wd"],
                                                     "per_seed": gt["per_seed"]}),
                      "zoorank.gt_diverged": json.dumps(gt["diverged"])})
    if plan.tracker:
        plan.tracker.t.end_run(p["run"], "FINISHED" if not errors else "FAILED")
    return row, results


@flow(name="ground-truth", log_prints=False, persist_result=False)
def ground_truth_flow(request: GroundTruthRequest, options: RunOptions | None = None,
                      settings: Settings | None = None) -> dict:
    """Fine-tune ``request.models`` x ``request.datasets``: per pair the probe, the grid at the first
    seed, lr retries if all diverged, then the other seeds at the chosen point.

    Tasks are submitted dataset by dataset. Returns ``{"table": records (one per pair),
    "trials": records, "run_id": parent run id}``.
    """
    options = options or RunOptions()
    settings = settings or Settings.from_env()
    _limit_threads(request.threads)
    plan = _Plan(settings, request, options, [tuple(map(float, g)) for g in (request.grid or finetune.FULL_GRID)],
                 [int(s) for s in (request.seeds or [0])], request.budget or finetune.Budget(),
                 ArrayStore(settings.store), _GTTracker(settings) if options.track else None)
    _open_parent(plan)
    pairs = _submit_grids(plan)
    for p in pairs:
        _retry_then_other_seeds(plan, p)
    rows, trials = [], []
    for p in pairs:
        row, results = _finish_pair(plan, p)
        rows.append(row)
        trials.extend(results)
    if plan.tracker:
        plan.tracker.t.end_run(plan.parent, "FINISHED")
    return {"table": rows, "trials": trials, "run_id": plan.parent}


def run_ground_truth(zoo="default", datasets=("digits",), *, grid=None, seeds=(0,), budget=None,
                     settings: Settings | None = None, device: str = "cpu", data_root: str | None = None,
                     split_seed: int = 0, track: bool = True, workers: int = 1, runner: str = "thread",
                     threads: int | None = None, lrs_up=(), max_seeds: int | None = None,
                     return_run_id: bool = False):
    """Python API of the ground-truth flow; returns a DataFrame (one row per pair)."""
    from zoorank.orchestration.runners import flow_settings, make_task_runner
    from zoorank.pipeline.preflight import _check_locations, resolve_specs

    settings = settings or Settings.from_env()
    apply_offline_defaults(settings)
    specs = resolve_specs(zoo)
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    _check_locations(settings, track)
    with flow_settings():
        fl = ground_truth_flow.with_options(task_runner=make_task_runner(runner, workers))
        request = GroundTruthRequest(specs, datasets, list(grid) if grid else None, list(seeds), budget, split_seed,
                                     threads, [float(lr) for lr in lrs_up], max_seeds)
        res = fl(request, RunOptions(device=device, data_root=data_root, track=track), settings)
    table = pd.DataFrame(res["table"])
    return (table, res["run_id"]) if return_run_id else table


__all__ = ["ground_truth_flow", "GroundTruthRequest", "run_ground_truth", "load_ground_truth", "finetune_trial", "probe_pair",
           "trial_key", "probe_key", "probe_head_key", "pair_key", "MAX_LR_RETRIES",
           "MAX_EXTRA_ROUNDS"]
