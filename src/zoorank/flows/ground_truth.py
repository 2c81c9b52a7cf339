"""The ``ground-truth`` flow: fine-tune every (backbone, dataset) pair over a grid, track, cache.

    ground-truth parent run (MLflow, tag zoorank.kind=ground_truth)
      +- pair run per (model, dataset)    (zoorank.kind=gt_pair; metrics gt.test_top1, ...)
           +- trial run per (lr, wd, seed) (zoorank.kind=gt_trial; params, learning curve as
                                             stepped metrics train_loss / val_top1, val/test metrics,
                                             seconds)

One Prefect task per trial (:func:`finetune_trial`). A trial's result is a store record under
``content_key("gt_trial", model=<identity>, data=<split fingerprint>, trial=<lr, wd, seed>,
budget=<Budget>, recipe=RECIPE_VERSION)``: a rerun (or a resumed killed run) finds it and only logs
the MLflow run if that is missing; only trials without a record are trained. The pair's ground
truth (:func:`zoorank.finetune.pair_ground_truth`) is the best-by-validation trial's test accuracy
averaged over seeds, stored as a ``gt_pair`` record and logged to the pair run.

Python: :func:`run_ground_truth` (returns a DataFrame, one row per pair); CLI:
``zoorank ground-truth``.
"""
from __future__ import annotations

import functools
import json
import time

import pandas as pd

from zoorank.faults import kill_point
from zoorank.config import Settings, apply_offline_defaults

apply_offline_defaults()

from prefect import flow, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402

from zoorank import finetune  # noqa: E402
from zoorank.storage.arrays import ArrayStore  # noqa: E402
from zoorank.storage.keys import STAGE_VERSIONS, content_key, register_stage  # noqa: E402

if "gt_trial" not in STAGE_VERSIONS:
    register_stage("gt_trial", 1)
if "gt_pair" not in STAGE_VERSIONS:
    register_stage("gt_pair", 1)

KIND_GT, KIND_PAIR, KIND_TRIAL = "ground_truth", "gt_pair", "gt_trial"
TAG_TRIAL_KEY = "zoorank.trial_key"


# ------------------------------------------------------------------ helpers (no Prefect)
@functools.lru_cache(maxsize=8)
def _splits(dataset_id: str, budget: finetune.Budget, split_seed: int, data_root: str | None):
    from zoorank.data import load_dataset

    return finetune.prepare_splits(load_dataset(dataset_id, root=data_root), budget, split_seed=split_seed)


_BACKBONE_LOCK = __import__("threading").Lock()


@functools.lru_cache(maxsize=16)
def _pristine_backbone(spec):
    from zoorank.pipeline import load_backbone

    return load_backbone(spec)


def _fresh_backbone(spec):
    """A private copy of the pretrained backbone (loaded once per process, deep-copied per trial)."""
    import copy

    with _BACKBONE_LOCK:
        return copy.deepcopy(_pristine_backbone(spec))


@functools.lru_cache(maxsize=64)
def _identity(spec) -> dict:
    from zoorank.pipeline import model_identity

    return model_identity(spec)


def trial_key(identity: str, data_fingerprint: str, params: finetune.TrialParams,
              budget: finetune.Budget) -> str:
    return content_key("gt_trial", model=identity, data=data_fingerprint, trial=params.as_dict(),
                       budget=budget.as_dict(), recipe=finetune.RECIPE_VERSION)


def pair_key(identity: str, data_fingerprint: str, grid, seeds, budget: finetune.Budget) -> str:
    return content_key("gt_pair", model=identity, data=data_fingerprint, grid=[list(g) for g in grid],
                       seeds=list(seeds), budget=budget.as_dict(), recipe=finetune.RECIPE_VERSION)


class _GTTracker:
    """Find-or-create of the parent / pair / trial runs on one MlflowClient (thread-safe)."""

    def __init__(self, settings: Settings):
        from zoorank.storage.tracking import Tracker

        self.t = Tracker.from_settings(settings)
        self.client = self.t.client

    def _find(self, **tags) -> list:
        flt = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        return self.t._search(flt)

    def parent(self, key: str, params: dict) -> str:
        from zoorank.storage.tracking import _flatten

        with self.t._lock():
            runs = self._find(**{"zoorank.kind": KIND_GT, "zoorank.logical_key": key})
            if runs:
                self.client.update_run(runs[0].info.run_id, status="RUNNING")
                return runs[0].info.run_id
            run = self.client.create_run(self.t.experiment_id, run_name="ground-truth",
                                         tags={"zoorank.kind": KIND_GT, "zoorank.logical_key": key})
            self.t._log(run.info.run_id, params=_flatten(params))
            return run.info.run_id

    def pair(self, parent: str, model: str, dataset: str, params: dict) -> str:
        from zoorank.storage.tracking import _flatten

        with self.t._lock():
            runs = self._find(**{"zoorank.kind": KIND_PAIR, "mlflow.parentRunId": parent,
                                 "zoorank.model": model, "zoorank.dataset": dataset})
            if runs:
                return runs[0].info.run_id
            run = self.client.create_run(self.t.experiment_id, run_name=f"{model} / {dataset}", tags={
                "zoorank.kind": KIND_PAIR, "mlflow.parentRunId": parent, "zoorank.model": model,
                "zoorank.dataset": dataset})
            self.t._log(run.info.run_id, params=_flatten(params))
            return run.info.run_id

    def trial(self, pair_run: str, key: str, model: str, dataset: str, result: dict, params: dict) -> tuple[str, bool]:
        """Log a trial run unless a finished one with this key exists under ``pair_run``."""
        from mlflow.entities import Metric

        from zoorank.storage.tracking import _flatten

        with self.t._lock():
            runs = self._find(**{"zoorank.kind": KIND_TRIAL, "mlflow.parentRunId": pair_run, TAG_TRIAL_KEY: key})
            done = [r for r in runs if r.info.status == "FINISHED"]
            if done:
                return done[0].info.run_id, False
            run = runs[0] if runs else self.client.create_run(
                self.t.experiment_id, run_name=f"lr={result['lr']:g} wd={result['wd']:g} seed={result['seed']}",
                tags={"zoorank.kind": KIND_TRIAL, "mlflow.parentRunId": pair_run, TAG_TRIAL_KEY: key,
                      "zoorank.model": model, "zoorank.dataset": dataset})
        rid = run.info.run_id
        now = int(time.time() * 1000)
        self.t._log(rid, params=_flatten(params), existing_params=run.data.params if runs else None)
        curve = [Metric("train_loss", float(v), now, int(s)) for s, v in result["train_loss"] if v == v]
        curve += [Metric("val_top1_curve", float(v), now, int(s)) for s, v in result["val_curve"]]
        for i in range(0, len(curve), 900):
            self.client.log_batch(rid, metrics=curve[i:i + 900])
        self.t._log(rid, metrics={k: result[k] for k in ("val_top1", "val_mean_class", "test_top1",
                                                         "test_mean_class", "seconds")}
                    | {"diverged": float(result["diverged"])})
        self.client.set_terminated(rid, "FINISHED")
        return rid, True


# ------------------------------------------------------------------ tasks
@task(name="gt-trial", cache_policy=NO_CACHE)
def finetune_trial(settings: Settings, spec, dataset_id: str, params: finetune.TrialParams,
                   budget: finetune.Budget, split_seed: int, device: str, data_root: str | None,
                   pair_run: str | None) -> dict:
    """One (model, dataset, lr, wd, seed) trial: cached record, else train; then MLflow."""
    from zoorank.pipeline import spec_id

    store = ArrayStore(settings.store)
    ident = _identity(spec)
    data = _splits(dataset_id, budget, split_seed, data_root)
    key = trial_key(ident["identity"], data.fingerprint, params, budget)
    hit = store.has_record(key)
    if hit:
        result = store.get_record(key)
    else:
        result = finetune.run_trial(lambda: _fresh_backbone(spec), data, params, budget, device=device).as_dict()
        result["input_size"] = list(result["input_size"])
        kill_point("gt_trial")
        store.put_record(key, result)
    logged = False
    if pair_run is not None:
        mparams = {"model": spec_id(spec), "dataset": dataset_id, "identity": ident["identity"],
                   **params.as_dict(), "budget": budget.as_dict(), "recipe": finetune.RECIPE_VERSION,
                   "split_seed": split_seed, "device": result.get("device"),
                   "input_size": "x".join(map(str, result.get("input_size", [])))}
        _, logged = _GTTracker(settings).trial(pair_run, key, spec_id(spec), dataset_id, result, mparams)
    return {"key": key, "cache_hit": hit, "logged": logged, "model": spec_id(spec), "dataset": dataset_id,
            **{k: result[k] for k in ("lr", "wd", "seed", "val_top1", "val_mean_class", "test_top1",
                                      "test_mean_class", "seconds", "diverged")}}


# ------------------------------------------------------------------ flow
@flow(name="ground-truth", log_prints=False, persist_result=False)
def ground_truth_flow(specs: list, datasets: list[str], grid: list | None = None, seeds: list | None = None,
                      budget: finetune.Budget | None = None, settings: Settings | None = None,
                      device: str = "cpu", data_root: str | None = None, split_seed: int = 0,
                      track: bool = True, threads: int | None = None) -> dict:
    """Fine-tune ``specs`` x ``datasets`` over ``grid`` ((lr, wd) pairs) x ``seeds``.

    Tasks are submitted dataset by dataset (so an interrupted run leaves whole datasets done).
    Returns ``{"table": records (one per pair), "trials": records, "run_id": parent run id}``.
    """
    from zoorank.pipeline import spec_id
    from zoorank.storage.tracking import logical_key

    settings = settings or Settings.from_env()
    if threads:
        # one intra-op thread per worker: on a shared, oversubscribed CPU torch's spinning OpenMP
        # threads made a training step ~20x slower than a single thread (measured, 2 loaded cores)
        import torch

        torch.set_num_threads(int(threads))
    grid = [tuple(map(float, g)) for g in (grid or finetune.FULL_GRID)]
    seeds = [int(s) for s in (seeds or [0])]
    budget = budget or finetune.Budget()
    store = ArrayStore(settings.store)
    tracker = _GTTracker(settings) if track else None
    ids = [spec_id(s) for s in specs]
    parent = None
    if tracker:
        lk = logical_key(kind=KIND_GT, models=ids, datasets=list(datasets), grid=[list(g) for g in grid],
                         seeds=seeds, budget=budget.as_dict(), recipe=finetune.RECIPE_VERSION, device=device)
        parent = tracker.parent(lk, {"models": ",".join(ids), "datasets": ",".join(datasets),
                                     "grid": json.dumps(grid), "seeds": json.dumps(seeds),
                                     "budget": budget.as_dict(), "recipe": finetune.RECIPE_VERSION,
                                     "device": device, "split_seed": split_seed})
    pending = []
    for d in datasets:
        for spec in specs:
            pair_run = tracker.pair(parent, spec_id(spec), d, {"grid": json.dumps(grid), "seeds": json.dumps(seeds)}) \
                if tracker else None
            futs = [finetune_trial.submit(settings, spec, d, finetune.TrialParams(lr, wd, s), budget, split_seed,
                                          device, data_root, pair_run)
                    for s in seeds for lr, wd in grid]
            pending.append((spec, d, pair_run, futs))
    rows, trials = [], []
    for spec, d, pair_run, futs in pending:
        results, errors = [], []
        for f in futs:
            try:
                results.append(f.result())
            except Exception as exc:  # noqa: BLE001 - a failed trial is reported, the others go on
                errors.append(f"{type(exc).__name__}: {exc}")
        trials.extend(results)
        row = {"dataset": d, "model": spec_id(spec), "n_trials": len(results), "failed": "; ".join(errors)}
        if results:
            gt = finetune.pair_ground_truth(results)
            ident = _identity(spec)
            data = _splits(d, budget, split_seed, data_root)
            store.put_record(pair_key(ident["identity"], data.fingerprint, grid, seeds, budget), gt)
            best0 = next(iter(gt["best"].values()))
            row.update(test_top1=gt["test_top1"], test_mean_class=gt["test_mean_class"], val_top1=gt["val_top1"],
                       best_lr=best0["lr"], best_wd=best0["wd"], n_seeds=gt["n_seeds"],
                       seconds=round(sum(r["seconds"] for r in results), 2),
                       cached_trials=sum(bool(r["cache_hit"]) for r in results))
            if tracker:
                tracker.t._log(pair_run, metrics={"gt.test_top1": gt["test_top1"],
                                                  "gt.test_mean_class": gt["test_mean_class"],
                                                  "gt.val_top1": gt["val_top1"], "gt.n_trials": len(results)},
                               tags={"zoorank.gt_best": json.dumps(gt["best"])})
                tracker.client.set_terminated(pair_run, "FINISHED" if not errors else "FAILED")
        rows.append(row)
    if tracker:
        tracker.client.set_terminated(parent, "FINISHED")
    return {"table": rows, "trials": trials, "run_id": parent}


def run_ground_truth(zoo="default", datasets=("digits",), *, grid=None, seeds=(0,), budget=None,
                     settings: Settings | None = None, device: str = "cpu", data_root: str | None = None,
                     split_seed: int = 0, track: bool = True, workers: int = 1, runner: str = "thread",
                     threads: int | None = None, return_run_id: bool = False):
    """Python API of the ground-truth flow; returns a DataFrame (one row per pair)."""
    from zoorank.api import _check_locations, resolve_specs
    from zoorank.flows.runners import flow_settings, make_task_runner

    settings = settings or Settings.from_env()
    apply_offline_defaults(settings)
    specs = resolve_specs(zoo)
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    _check_locations(settings, track)
    with flow_settings():
        fl = ground_truth_flow.with_options(task_runner=make_task_runner(runner, workers))
        res = fl(specs, datasets, list(grid) if grid else None, list(seeds), budget, settings, device, data_root,
                 split_seed, track, threads)
    table = pd.DataFrame(res["table"])
    return (table, res["run_id"]) if return_run_id else table


def load_ground_truth(settings: Settings, run_id: str | None = None, *, metric: str = "test_top1") -> pd.DataFrame:
    """Ground truth back from MLflow: the pair runs (of ``run_id``, else of the newest finished
    ground-truth run) -> DataFrame ``dataset, model, accuracy``."""
    from zoorank.storage.tracking import Tracker

    t = Tracker.from_settings(settings)
    if run_id is None:
        runs = t._search(f"tags.`zoorank.kind` = '{KIND_GT}'")
        if not runs:
            raise LookupError(f"no ground-truth run in {t.tracking_uri}; run `zoorank ground-truth` first")
        run_id = runs[0].info.run_id
    pairs = t._search(f"tags.`zoorank.kind` = '{KIND_PAIR}' and tags.`mlflow.parentRunId` = '{run_id}'")
    rows = [{"dataset": r.data.tags.get("zoorank.dataset"), "model": r.data.tags.get("zoorank.model"),
             "accuracy": r.data.metrics.get(f"gt.{metric}")} for r in pairs]
    return pd.DataFrame(rows, columns=["dataset", "model", "accuracy"]).dropna()


__all__ = ["ground_truth_flow", "run_ground_truth", "load_ground_truth", "finetune_trial", "trial_key",
           "pair_key"]
