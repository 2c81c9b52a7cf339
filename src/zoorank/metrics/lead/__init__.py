"""LEAD: Logits Evolution Analysis through Dynamical equation (Hu et al., CVPR 2024).

Score of a backbone on a labelled target set, in three cached stages and a score:

1. ``log_init`` (N, K): calibrated out-of-fold one-vs-rest linear SVM probabilities
   (:mod:`.svm`, :mod:`.calibration`).
2. ``lambda_k`` (K,): mean eigenvalue of the sum-of-logits NTK of ``F = h o f`` over S images of
   class k (Eq. 3, Sec. 4.1): the whole network (:mod:`.network_ntk`, the paper's kernel, with
   :mod:`.per_sample_grads`) or the random head only on features (:mod:`.head_ntk`, a deviation).
3. Eq. 7: ``F = (1 - exp(-eta_t lambda_k')) y + exp(-eta_t lambda_k') log_init`` (:mod:`.evolution`,
   numpy only).
4. Score = ``-mean CE(F, y)`` (:mod:`.score`).

Design, units, the time scale and the measured ablations: ``docs/lead.md``. The names below are
loaded lazily (PEP 562) so that ``import zoorank.metrics.lead.evolution`` (the cached ranking
path) does not import torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "evolution": ("DEFAULT_EIGENVALUE_SCALE", "DEFAULT_ETA_T", "TYPICAL_LAMBDA_PER_LOGIT",
                  "check_eigenvalues", "evolve_logits",
                  "image_log_likelihoods", "_EIGEN_SCALES", "_LOG_FLOOR", "_choice", "_evolve",
                  "_log_softmax", "_scaled_rates"),
    "sampling": ("stratified_folds", "ntk_sample_rows", "_SALT_FIT", "_SALT_FOLDS", "_SALT_NTK",
                 "_fit_subset", "_purpose_keys", "_smallest_keys_per_class"),
    "tensors": ("feature_moments", "normalise_features", "resolve_dtype", "to_torch", "_FEATURE_NORMS"),
    "calibration": ("NORMALISATIONS", "calibrate", "_platt_probabilities", "_softmax",
                    "_temperature_probabilities"),
    "svm": ("DEFAULT_NORMALISATION", "DEFAULT_TEMPERATURE", "svm_decision_values", "svm_logits",
            "_SVMS", "_liblinear_scores", "_ls_ovr_crossfit", "_svm_logits_checked", "_svm_scores_checked"),
    "head_ntk": ("DEFAULT_HEAD_INPUT", "DEFAULT_HEAD_WIDTHS", "DEFAULT_SAMPLES_PER_CLASS",
                 "class_ntk_eigenvalues", "head_jacobian", "head_ntk_diag", "head_ntk_gram",
                 "init_random_head", "_NTK_METHODS", "_class_ntk_checked", "_head_pieces"),
    "network_ntk": ("NetworkNTK", "default_chunk_size", "network_ntk_eigenvalues", "network_ntk_parts",
                    "select_ntk_samples"),
    "score": ("LEAD_HEAD_INPUT", "lead_score"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(name for name in _WHERE if not name.startswith("_"))


def __getattr__(name):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
