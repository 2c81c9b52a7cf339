"""LEAD stage 1 (Hu et al., CVPR 2024, Sec. 4.1): initial logits ``log_init`` (N, K) from a
one-vs-rest linear SVM on the features, scored out-of-fold, then calibrated
(:mod:`zoorank.metrics.lead.calibration`).

Default SVM: the linear least-squares SVM (Suykens & Vandewalle 1999), per class
``min_w,b 0.5||w||^2 + C sum_i (y_i - w.x_i - b)^2`` with +1/-1 targets, closed form
``(X_c^T X_c + I/(2C)) w = X_c^T y_c``; one Gram serves every class and, by downdating, every
fold. Options (liblinear ``LinearSVC``), folds, fit subset and why each default: ``docs/lead.md``.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from zoorank.metrics._common import sample_keys
from zoorank.metrics.lead.calibration import NORMALISATIONS, calibrate, check_temperature
from zoorank.metrics.lead.evolution import _choice
from zoorank.metrics.lead.sampling import _SALT_FIT, _SALT_FOLDS, _fit_subset, _purpose_keys, stratified_folds
from zoorank.metrics.lead.tensors import _FEATURE_NORMS, normalise_features, resolve_dtype, to_torch
from zoorank.metrics.validation import Checked, check_features_labels, one_hot

_SVMS = ("ls_ovr", "linear_ovr", "linear_crammer_singer")
DEFAULT_NORMALISATION = "softmax"
DEFAULT_TEMPERATURE = 0.1


def _ls_ovr_crossfit(x: torch.Tensor, targets: torch.Tensor, fit_idx: np.ndarray,
                     folds: np.ndarray | None, n_folds: int, C: float) -> torch.Tensor:
    """Out-of-fold (or in-sample if ``folds`` is None) decision values (N, K) of the
    one-vs-rest least-squares SVM, targets +-1, unregularised bias, ridge 1/(2C)."""
    n, d = x.shape
    k = targets.shape[1]
    lam = 1.0 / (2.0 * C)
    solve_dtype = torch.float64
    dev = x.device
    out = torch.empty((n, k), dtype=x.dtype, device=dev)

    def solve_primal(gram, sx, xty, sy, m):
        # centred scatter and cross terms of the training set
        gram_c = gram - torch.outer(sx, sx) / m
        xty_c = xty - torch.outer(sx, sy) / m
        a = gram_c.clone()
        a.diagonal().add_(lam)
        chol, info = torch.linalg.cholesky_ex(a)
        if int(info) != 0:
            w = torch.linalg.solve(a, xty_c)
        else:
            w = torch.cholesky_solve(xty_c, chol)
        b = (sy - sx @ w) / m
        return w, b

    def solve_dual(xt, yt):
        m = xt.shape[0]
        mx = xt.mean(dim=0)
        my = yt.mean(dim=0)
        xc = (xt - mx).to(solve_dtype)
        kern = xc @ xc.T + lam * torch.eye(m, dtype=solve_dtype, device=dev)
        alpha = torch.linalg.solve(kern, (yt - my).to(solve_dtype))
        w = xc.T @ alpha
        b = my.to(solve_dtype) - mx.to(solve_dtype) @ w
        return w, b

    # a global shift of x does not change a model with intercept; removing the mean of the
    # fit rows keeps the float32 Gram well conditioned for uncentred (e.g. post-ReLU) features
    mu = x[torch.as_tensor(fit_idx, device=dev)].mean(dim=0)

    def rows_centred(rows):
        return x[torch.as_tensor(rows, device=dev)] - mu

    def predict(rows, w, b):
        out[torch.as_tensor(rows, device=dev)] = rows_centred(rows) @ w.to(x.dtype) + b.to(x.dtype)

    def primal_stats(rows):
        xf = rows_centred(rows)
        yf = targets[torch.as_tensor(rows, device=dev)]
        return ((xf.T @ xf).to(solve_dtype), xf.sum(0).to(solve_dtype),
                (xf.T @ yf).to(solve_dtype), yf.sum(0).to(solve_dtype))

    if folds is None:                       # in-sample: one model, predict everyone
        m = fit_idx.shape[0]
        if m < d:
            w, b = solve_dual(rows_centred(fit_idx), targets[torch.as_tensor(fit_idx, device=dev)])
        else:
            w, b = solve_primal(*primal_stats(fit_idx), m)
        predict(np.arange(n), w, b)
        return out

    fit_fold = folds[fit_idx]
    n_fit = fit_idx.shape[0]
    n_train = n_fit - np.bincount(fit_fold, minlength=n_folds)
    # primal (Gram downdating) costs ~2 n_fit d^2 + F d^3/3; dual ~F (2 m^2 d + m^3/3)
    primal_cost = 2.0 * n_fit * d * d + n_folds * d ** 3 / 3.0
    dual_cost = float(sum(2.0 * m * m * d + m ** 3 / 3.0 for m in n_train))
    if primal_cost <= dual_cost:
        per_fold = [primal_stats(fit_idx[fit_fold == f]) for f in range(n_folds)]
        tot = [sum(p[i] for p in per_fold) for i in range(4)]
        for f in range(n_folds):
            m = int(n_train[f])
            if m == 0:
                raise ValueError(f"cross-fitting left fold {f} with no training samples; "
                                 "use more samples, fewer folds (cross_fit) or cross_fit=0")
            g, sx, xty, sy = (tot[i] - per_fold[f][i] for i in range(4))
            w, b = solve_primal(g, sx, xty, sy, m)
            predict(np.flatnonzero(folds == f), w, b)
    else:
        for f in range(n_folds):
            tr = fit_idx[fit_fold != f]
            if tr.shape[0] == 0:
                raise ValueError(f"cross-fitting left fold {f} with no training samples; "
                                 "use more samples, fewer folds (cross_fit) or cross_fit=0")
            w, b = solve_dual(rows_centred(tr), targets[torch.as_tensor(tr, device=dev)])
            predict(np.flatnonzero(folds == f), w, b)
    return out


def _liblinear_scores(x_fit: np.ndarray, y_fit: np.ndarray, x_pred: np.ndarray, n_classes: int,
                      *, svm: str, C: float, random_state: int) -> np.ndarray:
    """One-vs-rest decision values (M, K) of a LinearSVC fitted on the given rows; classes
    absent from the fit get -1 (the all-negative scorer)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.svm import LinearSVC

    out = np.full((x_pred.shape[0], n_classes), -1.0)
    present = np.unique(y_fit)
    if present.shape[0] == 1:
        out[:, present[0]] = 1.0
        return out
    clf = LinearSVC(C=C, loss="squared_hinge", penalty="l2", dual=True,
                    multi_class="ovr" if svm == "linear_ovr" else "crammer_singer",
                    random_state=random_state, max_iter=1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x_fit, y_fit)
    dec = clf.decision_function(x_pred)
    if present.shape[0] == 2:
        dec = np.stack([-dec, dec], axis=1)
    out[:, clf.classes_] = dec
    return out



def _svm_scores_checked(chk: Checked, *, svm: str, C: float, cross_fit: int,
                        max_fit_samples: int | None, feature_norm: str, random_state: int,
                        dtype, device, base_keys: np.ndarray | None = None,
                        sample_ids=None) -> np.ndarray:
    _choice(svm, _SVMS, "svm")
    _choice(feature_norm, _FEATURE_NORMS, "feature_norm")
    if not (isinstance(C, (int, float)) and math.isfinite(C) and C > 0):
        raise ValueError(f"C must be a positive finite number, got {C!r}")
    if not isinstance(cross_fit, (int, np.integer)) or cross_fit < 0 or cross_fit == 1:
        raise ValueError(f"cross_fit must be 0 (in-sample) or an integer >= 2 folds, got {cross_fit!r}")
    if max_fit_samples is not None and (not isinstance(max_fit_samples, (int, np.integer))
                                        or max_fit_samples < 2):
        raise ValueError(f"max_fit_samples must be None or an integer >= 2, got {max_fit_samples!r}")
    tdtype = resolve_dtype(dtype)
    codes, k = chk.labels, chk.n_classes
    n = codes.shape[0]
    keys = sample_keys(n, sample_ids, random_state) if base_keys is None else base_keys
    fit_idx = _fit_subset(codes, _purpose_keys(keys, _SALT_FIT), max_fit_samples)
    n_folds = int(min(cross_fit, n)) if cross_fit else 0
    folds = stratified_folds(codes, _purpose_keys(keys, _SALT_FOLDS), n_folds) if n_folds else None

    x = normalise_features(to_torch(chk.features, tdtype, device), feature_norm)
    if svm == "ls_ovr":
        targets = to_torch(2.0 * one_hot(codes, k) - 1.0, tdtype, device)
        scores = _ls_ovr_crossfit(x, targets, fit_idx, folds, n_folds, float(C))
        return scores.to(torch.float64).cpu().numpy()
    xn = x.to(torch.float64).cpu().numpy()
    del x
    if folds is None:
        return _liblinear_scores(xn[fit_idx], codes[fit_idx], xn, k, svm=svm, C=float(C),
                                 random_state=random_state)
    scores = np.empty((n, k))
    fit_fold = folds[fit_idx]
    for f in range(n_folds):
        tr = fit_idx[fit_fold != f]
        if tr.shape[0] == 0:
            raise ValueError(f"cross-fitting left fold {f} with no training samples; "
                             "use more samples, fewer folds (cross_fit) or cross_fit=0")
        pred = np.flatnonzero(folds == f)
        scores[pred] = _liblinear_scores(xn[tr], codes[tr], xn[pred], k, svm=svm,
                                         C=float(C), random_state=random_state)
    return scores


def _svm_logits_checked(chk: Checked, *, normalisation: str, temperature: float = DEFAULT_TEMPERATURE,
                        **svm_kw) -> np.ndarray:
    _choice(normalisation, NORMALISATIONS, "normalisation")
    check_temperature(temperature)
    scores = _svm_scores_checked(chk, **svm_kw)
    return calibrate(scores, chk.labels, chk.n_classes, normalisation, temperature)


def svm_decision_values(features, labels, *, svm: str = "ls_ovr", C: float = 1.0, cross_fit: int = 5,
                        max_fit_samples: int | None = 20000, feature_norm: str = "l2",
                        dtype="float32", device="cpu", random_state: int = 0,
                        sample_ids=None) -> np.ndarray:
    """The one-vs-rest decision values (N, K) that :func:`svm_logits` calibrates (out-of-fold
    for ``cross_fit >= 2``); same arguments."""
    chk = check_features_labels(features, labels)
    return _svm_scores_checked(chk, svm=svm, C=C, cross_fit=cross_fit, max_fit_samples=max_fit_samples,
                               feature_norm=feature_norm, random_state=random_state, dtype=dtype,
                               device=device, sample_ids=sample_ids)


def svm_logits(features, labels, *, svm: str = "ls_ovr", C: float = 1.0,
               normalisation: str = DEFAULT_NORMALISATION, temperature: float = DEFAULT_TEMPERATURE,
               cross_fit: int = 5, max_fit_samples: int | None = 20000, feature_norm: str = "l2",
               dtype="float32", device="cpu", random_state: int = 0, sample_ids=None) -> np.ndarray:
    """LEAD stage 1 (Hu et al., CVPR 2024, Sec. 4.1): initial K-class probabilities
    ``log_init`` (N, K) from a one-vs-rest linear SVM on the features.

    Columns follow the sorted unique labels (``np.unique(labels)``). ``cross_fit=F >= 2``
    scores every sample with a model fitted on the other folds (stratified, order-independent
    folds); ``cross_fit=0`` fits once and scores in-sample. ``normalisation``/``temperature``:
    :func:`~zoorank.metrics.lead.calibration.calibrate`. ``sample_ids`` (N,) are the samples'
    identities (canonical dataset positions; default: row positions) that deal the folds.
    Options, defaults and why: ``docs/lead.md``.
    """
    chk = check_features_labels(features, labels)
    return _svm_logits_checked(chk, normalisation=normalisation, temperature=temperature, svm=svm, C=C,
                               cross_fit=cross_fit, max_fit_samples=max_fit_samples,
                               feature_norm=feature_norm, random_state=random_state, dtype=dtype,
                               device=device, sample_ids=sample_ids)
