"""The science of zoorank: LEAD, the transferability baselines and evaluation measures.

Pure numerical code: numpy / scipy / scikit-learn / torch in, numbers out. No Prefect, no I/O.
"""
from zoorank.metrics.registry import METRICS, Metric, available, get_metric, score, score_all

_LEAD_STAGES = ("svm_logits", "class_ntk_eigenvalues", "evolve_logits", "lead_score")
_EVALUATION = ("weighted_tau", "kendall_tau", "pearson", "top_k_regret", "evaluate_ranking")


def __getattr__(name):  # lazy: importing the registry does not import torch
    import importlib
    if name in _LEAD_STAGES:
        return getattr(importlib.import_module("zoorank.metrics.lead"), name)
    if name in _EVALUATION:
        return getattr(importlib.import_module("zoorank.metrics.evaluation"), name)
    raise AttributeError(name)


__all__ = ["METRICS", "Metric", "available", "get_metric", "score", "score_all",
           *_LEAD_STAGES, *_EVALUATION]
