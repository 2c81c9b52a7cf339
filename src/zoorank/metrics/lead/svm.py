"""LEAD: Logits Evolution Analysis through Dynamical equation (Hu et al., CVPR 2024).

Score of a backbone on a labelled target set (features ``Z`` (N, D), labels ``y``, K classes):

1. ``log_init = C(Z, y)``: initial K-class probabilities from a one-vs-rest linear SVM
   (:func:`svm_logits`).
2. A random Kaiming-initialised MLP head ``h`` (hidden widths 1024, 2048, ReLU, K outputs)
   is put on the features; the NTK over the *head parameters only*, with the "sum of
   logits" approximation of Mohamadi & Sutherland (arXiv 2206.12543),
   ``Phi_uv = grad_theta(sum_j h_j(z_u)) . grad_theta(sum_j h_j(z_v))``, is formed on S
   samples per class and its mean eigenvalue is ``lambda_k`` (:func:`class_ntk_eigenvalues`).
3. Eq. 7: for x of class k with one-hot y,
   ``F(x) = (1 - exp(-eta_t * lambda_k)) * y + exp(-eta_t * lambda_k) * log_init(x)``
   (:func:`evolve_logits`).
4. Score = minus the mean cross-entropy between ``F`` and the labels (:func:`lead_score`);
   higher is better (the paper's loss is negated here).

There is no official LEAD code and no public reference implementation to check against;
this follows the paper (sections 3.3, 4.1, 5) and ``docs/science.md``, and the tests
check each stage against an explicit computation (autograd Jacobian, explicit ridge
solves, hand-computed Eq. 7). The three stages are public so that a pipeline can cache them
(``lead_score(..., log_init=..., class_eigenvalues=...)`` skips the stages given).

Open choices (the paper does not fix them), the default and why
----------------------------------------------------------------
SVM (:func:`svm_logits`)

- ``svm="ls_ovr"`` (default): linear least-squares SVM (Suykens & Vandewalle 1999), one
  vs rest: ``min_w,b 0.5||w||^2 + C sum_i (y_i - w.x_i - b)^2`` per class with targets
  +1/-1, unregularised bias; closed form ``(X_c^T X_c + I/(2C)) w = X_c^T y_c``. Why the
  default: it is exact (no solver tolerance, so sample order and class relabelling change
  the result only by rounding) and fast -- one D x D Gram of the fit samples serves every
  class and, by downdating (``G_train = G_all - G_fold``), every cross-fitting fold.
  ``svm="linear_ovr"``: scikit-learn ``LinearSVC`` (liblinear, squared hinge, L2,
  ``multi_class="ovr"``, ``dual=True``), the hinge-loss SVM with the same ``C``
  semantics. It is slow on dense high-dimensional features (liblinear works on a sparse
  copy, one class at a time, single-threaded): with 5 folds of 2,000 fit samples it took
  16 s on 50,000 x 2048, K=10 and 212 s on 10,000 x 1280, K=100 (2 Xeon cores), against
  3.6 s and 1.0 s for ``ls_ovr`` with 20,000 fit samples, so it is an option, not the
  default. ``svm="linear_crammer_singer"``: ``LinearSVC(multi_class="crammer_singer")``.
- ``C=1.0``: scikit-learn's default for ``LinearSVC``; the same objective weighting is used
  for ``ls_ovr``.
- ``cross_fit=5`` (default) vs ``0`` (in-sample). Out-of-fold decision values: every sample
  is scored by a model that did not see it. In-sample logits of a linear classifier on
  D >= N (2048-d features, few-shot) are trivially separable and measure memorisation,
  not transfer; out-of-fold values measure how well the features generalise. Folds are
  stratified: inside each class samples are ranked by a seeded hash of their identity
  (:func:`zoorank.metrics._common.sample_keys` of ``sample_ids``, the canonical dataset
  positions the pipeline passes; never the feature values, so the folds cannot change with the
  last bits of the features) and dealt round-robin to
  the folds from a per-class offset. *Fallback for small classes*: a class with fewer
  samples than folds puts one sample in each of ``n_k`` distinct folds, so each of its
  samples is predicted from a model trained on its other ``n_k - 1`` samples; a class
  with a single sample is absent from the training set when that sample is predicted,
  and its one-vs-rest scorer is the all-negative one (decision value -1 for ``ls_ovr``,
  the value an all-negative least-squares problem gives; the same constant is used for
  the LinearSVC options).
- ``max_fit_samples=20000``: at most this many samples (a seeded, stratified,
  order-independent subset, at least one per class) enter the fits; every one of the N
  samples is still scored out-of-fold. Why: the fit cost is ``O(n_fit D^2)`` (the Gram)
  and 20,000 samples (~10 per dimension for 2048-d features) estimate a linear
  classifier well; it bounds the cost for large N (50,000 x 2048, K=10: the whole LEAD
  takes 4.2-4.8 s on 2 Xeon cores, the SVM stage 3.6 s; with ``None`` the SVM stage
  takes 5.6 s). ``None`` fits on everything.
- ``feature_norm="l2"`` for the SVM (default since the benchmark of issue 5): every
  feature row scaled to unit norm before the fit. Measured on the shipped benchmark
  (``results/benchmark/report.md``, 12 backbones x 5 datasets, reduced-budget ground truth),
  LEAD's mean weighted tau was 0.45 with ``"l2"`` against 0.19 with ``"standard"`` (z-score
  per dimension) and 0.27 with ``"none"``; every other single-option change moved it less
  (0.02-0.28). Unit rows make ``C`` mean the same for every backbone whatever its feature
  scale, without inflating the many near-constant (post-ReLU, mostly zero) dimensions the way
  a per-dimension z-score does. The evidence rests on a 10-step CPU fine-tuning ground truth:
  re-check on a full-protocol one.
- ``normalisation="platt"`` (default): per-class Platt sigmoid ``sigma(a_k s_k + b_k)``
  fitted (Newton, Platt's smoothed targets, Lin, Lin & Weng 2007) on the (out-of-fold)
  decision values, then renormalised to sum to one over the K classes (computed as a
  softmax of the log-sigmoids). Why: Platt scaling is the standard SVM calibration
  (libsvm / scikit-learn's ``SVC(probability=True)`` apply it to each binary problem);
  per-class parameters absorb the different bias and scale of each one-vs-rest scorer
  (with K=100 the positive class is 1% of each problem), which one shared temperature
  cannot; and a calibrated probability makes the cross-entropy comparable across
  backbones whose margins have different scales. ``"softmax"``: softmax of the
  raw decision values (temperature 1; close to uniform because SVM margins are ~ +-1).
  ``"temperature"``: softmax with one temperature fitted by minimum NLL.

NTK (:func:`class_ntk_eigenvalues`)

- Head: hidden widths ``(1024, 2048)`` (paper), ReLU, He/Kaiming normal weights
  ``N(0, 2/fan_in)`` for the layers followed by a ReLU, ``N(0, 1/fan_in)`` for the output
  layer (Kaiming with the linear gain), zero biases; seeded by ``random_state``.
- ``samples_per_class=64`` (paper's S). The S samples of a class are the ones with the
  smallest seeded hash of their identity (``sample_ids``); a class with fewer samples uses all.
- ``method="trace"`` (default): the mean eigenvalue of the S x S kernel is its trace / S =
  the mean over the S samples of ``||grad_theta sum_j h_j(z)||^2``, computed exactly in
  closed form (for a linear layer with input ``a`` and backprop signal ``g`` the weight
  gradient is ``g a^T``, so its squared norm is ``||g||^2 ||a||^2`` and the bias adds
  ``||g||^2``). O(S) per class, no eigendecomposition. ``method="eig"`` builds the S x S
  kernel from the explicit per-sample Jacobian (``torch.func.vmap(grad(...))``) and takes
  the mean of ``eigvalsh``; it is the reference path (O(S^2 P) time and S P memory for P
  head parameters: S=64, K=100, D=1280 took 87 s against 0.7 s for "trace" on 2 Xeon
  cores, agreeing to 2e-6 in float32 and 1e-15 in float64).
- ``feature_norm="l2"`` for the NTK: every sample's features scaled to unit norm before the
  random head. The paper puts the head on the raw backbone features (``"none"``), where the
  eigenvalues grow with ``||z||^2``, so a class whose images have larger activations looks
  "faster" for that reason alone. Chosen by the benchmark ablation on both shipped
  ground-truth budgets (mean weighted tau 0.41 vs 0.34 and 0.54 vs 0.45, better or equal
  on 4 of 5 datasets in both; README "Shipped results"). ``"none"`` and ``"standard"`` are available.
  The global scale is removed in Eq. 7 by ``eigenvalue_scale`` (below) either way.
- ``dtype="float32"`` (speed; the closed-form trace is a sum of squares, accurate to
  ~1e-6 relative), ``"float64"`` for tests. ``device`` is any torch device for both the
  SVM and the NTK stage ("cuda": 1.4 s for the whole LEAD on 50,000 x 2048, K=10, score
  equal to the CPU one to 5e-10).

Evolution (:func:`evolve_logits`) and score (:func:`lead_score`)

- ``eta_t=1.0`` with ``eigenvalue_scale="mean"``: the exponent is
  ``eta_t * lambda_k / mean_k(lambda_k)``. The paper sweeps t (unit 1e6, t=1 default) but
  does not give eta or the scale of lambda; unnormalised lambda (~1e4-1e6 with the
  paper's widths: 3.4e5 for 1280-d non-negative features, K=100) saturates every
  backbone to its labels, so the scale is made explicit. With "mean", eta_t = 1 gives
  the average class the weight exp(-1) = 0.37 on its initial logits, and the absolute
  NTK scale of a backbone (driven by its feature norm) cancels: only the relative speed
  of its classes and its initial logits rank it. ``"max"`` divides by the largest class
  eigenvalue; ``"none"`` uses lambda as it is (then eta_t must be matched to the feature
  scale, e.g. ~1/lambda). The benchmark tunes eta_t and the scale.
- ``apply_softmax=False``: F is a convex combination of a one-hot vector and a
  probability vector, hence a probability vector, and the cross-entropy is
  ``-log F_y`` (floored at 1e-12). ``True`` treats F as logits (``log_softmax``), which is
  what ``torch.nn.CrossEntropyLoss(F, y)`` computes if F is fed to it as in the
  paper's "feed predictions into the Cross-Entropy loss".
"""
from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import torch

from zoorank.metrics._common import _splitmix64, sample_keys
from zoorank.metrics.lead_evolution import (  # noqa: F401  (Eq. 7, torch-free; re-exported here)
    _EIGEN_SCALES,
    _LOG_FLOOR,
    _choice,
    _evolve,
    _log_softmax,
    _scaled_rates,
    check_eigenvalues,
    evolve_logits,
    image_log_likelihoods,
)
from zoorank.metrics.validation import (
    Checked,
    check_features_labels,
    check_matrix,
    check_probabilities,
    one_hot,
)

DEFAULT_HEAD_WIDTHS = (1024, 2048)
_SVMS = ("ls_ovr", "linear_ovr", "linear_crammer_singer")
_NORMALISATIONS = ("platt", "softmax", "temperature")
_FEATURE_NORMS = ("standard", "l2", "none")
_NTK_METHODS = ("trace", "eig")

# salts that derive independent per-purpose keys from one row hash
_SALT_FOLDS = np.uint64(0x9E3779B97F4A7C15)
_SALT_FIT = np.uint64(0xD1B54A32D192ED03)
_SALT_NTK = np.uint64(0x8CB92BA72F3D8DD7)


# ----------------------------------------------------------------------------- helpers
def resolve_dtype(dtype) -> torch.dtype:
    """``"float32"``/``"float64"`` (or the torch dtypes) -> torch dtype."""
    table = {"float32": torch.float32, "float64": torch.float64,
             torch.float32: torch.float32, torch.float64: torch.float64}
    try:
        return table[dtype]
    except (KeyError, TypeError):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None


def _purpose_keys(base: np.ndarray, salt: np.uint64) -> np.ndarray:
    return _splitmix64(base ^ salt)


def normalise_features(x: torch.Tensor, feature_norm: str) -> torch.Tensor:
    """``"standard"``: per-dimension z-score over all rows (constant dimensions -> 0);
    ``"l2"``: unit-norm rows (zero rows stay zero); ``"none"``: unchanged."""
    _choice(feature_norm, _FEATURE_NORMS, "feature_norm")
    if feature_norm == "standard":
        centred = x - x.mean(dim=0)
        # sqrt(mean of squares) of the centred copy: ``Tensor.std(dim=0)`` took 4-6 s on
        # 50,000 x 2048 float32 on the AMD CI machine, this 1 s (benchmarks/results/metrics.md)
        std = centred.square().mean(dim=0).sqrt()
        return centred.div_(torch.where(std > 0, std, torch.ones_like(std)))
    if feature_norm == "l2":
        norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        return x / torch.where(norm > 0, norm, torch.ones_like(norm))
    return x


def to_torch(x: np.ndarray, dtype: torch.dtype, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=dtype)


def stratified_folds(codes: np.ndarray, keys: np.ndarray, n_folds: int) -> np.ndarray:
    """Fold index (N,) of every sample: stratified and independent of the row order.

    Inside each class the samples are ranked by ``keys`` and dealt round-robin to the
    folds, starting at ``(global rank of the class's first sample) mod n_folds`` so that
    small classes do not all start in fold 0. A class with fewer samples than folds
    therefore has at most one sample per fold.
    """
    n = codes.shape[0]
    order = np.lexsort((keys, codes))                      # by class, then key
    counts = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank_in_class = np.empty(n, dtype=np.int64)
    rank_in_class[order] = np.arange(n) - starts[codes[order]]
    global_rank = np.empty(n, dtype=np.int64)
    global_rank[np.argsort(keys, kind="stable")] = np.arange(n)
    first = order[starts[counts > 0]]                      # first (smallest-key) sample per class
    offset = np.zeros(counts.shape[0], dtype=np.int64)
    offset[codes[first]] = global_rank[first] % n_folds
    return (rank_in_class + offset[codes]) % n_folds


def _smallest_keys_per_class(codes: np.ndarray, keys: np.ndarray, quota: np.ndarray) -> np.ndarray:
    """Indices of the ``quota[k]`` samples with the smallest keys in each class k, in
    (class, key) order."""
    n = codes.shape[0]
    order = np.lexsort((keys, codes))
    counts = np.bincount(codes, minlength=quota.shape[0])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pos = np.arange(n) - starts[codes[order]]
    return order[pos < quota[codes[order]]]


def _fit_subset(codes: np.ndarray, keys: np.ndarray, max_samples: int | None) -> np.ndarray:
    """Stratified, order-independent subset of about ``max_samples`` rows (>= 1 per class)."""
    n = codes.shape[0]
    counts = np.bincount(codes)
    if max_samples is None or n <= max_samples:
        quota = counts
    else:
        quota = np.maximum(np.minimum(counts, 1), np.floor(counts * (max_samples / n)).astype(np.int64))
    return _smallest_keys_per_class(codes, keys, quota)


# ----------------------------------------------------------------------------- stage 1: SVM
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


def _platt_probabilities(scores: np.ndarray, codes: np.ndarray, n_classes: int,
                         max_iter: int = 100) -> np.ndarray:
    """Per-class Platt scaling ``sigma(a_k s + b_k)`` (Platt 1999; Newton with backtracking
    as in Lin, Lin & Weng 2007, smoothed targets), renormalised over the K classes."""
    s = np.asarray(scores, dtype=np.float64)
    n = s.shape[0]
    pos = one_hot(codes, n_classes).astype(bool)
    n_pos = pos.sum(axis=0).astype(np.float64)
    n_neg = n - n_pos
    t = np.where(pos, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))

    def objective(a, b):
        f = s * a + b
        return np.sum(np.logaddexp(0.0, f) - t * f, axis=0)

    a = np.zeros(n_classes)
    b = np.log((n_pos + 1.0) / (n_neg + 1.0))
    fval = objective(a, b)
    for _ in range(max_iter):
        f = s * a + b
        p = 0.5 * (1.0 + np.tanh(0.5 * f))                 # stable sigmoid
        d = p - t
        ga, gb = (d * s).sum(axis=0), d.sum(axis=0)
        if max(np.abs(ga).max(), np.abs(gb).max()) < 1e-11 * max(1.0, n):
            break
        w = p * (1.0 - p)
        haa = (w * s * s).sum(axis=0)
        hab = (w * s).sum(axis=0)
        hbb = w.sum(axis=0)
        ridge = 1e-12 * np.maximum(1.0, haa + hbb) + 1e-300
        haa, hbb = haa + ridge, hbb + ridge
        det = haa * hbb - hab * hab
        det = np.where(det > 0, det, ridge * ridge)
        da = -(hbb * ga - hab * gb) / det
        db = -(haa * gb - hab * ga) / det
        slope = ga * da + gb * db
        step = np.ones(n_classes)
        accepted = np.zeros(n_classes, dtype=bool)
        new_f = fval.copy()
        for _ in range(40):
            cand = objective(a + step * da, b + step * db)
            # Armijo, or a full Newton step whose change is below rounding (near the optimum
            # the objective cannot rank the points; the gradient test below ends the loop)
            ok = (~accepted) & ((cand <= fval + 1e-4 * step * slope)
                                | ((step == 1.0) & (cand - fval <= 1e-13 * np.abs(fval) + 1e-300)))
            new_f = np.where(ok, cand, new_f)
            accepted |= ok
            if accepted.all():
                break
            step = np.where(accepted, step, 0.5 * step)
        step = np.where(accepted, step, 0.0)
        a, b = a + step * da, b + step * db
        fval = np.where(accepted, new_f, fval)
        if not accepted.any():                             # at the optimum to rounding
            break
    f = s * a + b
    logp = -np.logaddexp(0.0, -f)                          # log sigmoid
    return _softmax(logp)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _temperature_probabilities(scores: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Softmax of ``beta * scores`` with ``beta`` minimising the NLL (convex in beta)."""
    from scipy.optimize import minimize_scalar

    s = np.asarray(scores, dtype=np.float64)
    rows = np.arange(s.shape[0])

    def nll(log_beta):
        return -_log_softmax(np.exp(log_beta) * s)[rows, codes].mean()

    res = minimize_scalar(nll, bounds=(-12.0, 12.0), method="bounded", options={"xatol": 1e-6})
    return _softmax(np.exp(res.x) * s)


def _svm_logits_checked(chk: Checked, *, svm: str, C: float, normalisation: str, cross_fit: int,
                        max_fit_samples: int | None, feature_norm: str, random_state: int,
                        dtype, device, base_keys: np.ndarray | None = None,
                        sample_ids=None) -> np.ndarray:
    _choice(svm, _SVMS, "svm")
    _choice(normalisation, _NORMALISATIONS, "normalisation")
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
        scores = scores.to(torch.float64).cpu().numpy()
    else:
        xn = x.to(torch.float64).cpu().numpy()
        del x
        if folds is None:
            scores = _liblinear_scores(xn[fit_idx], codes[fit_idx], xn, k, svm=svm, C=float(C),
                                       random_state=random_state)
        else:
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
    if normalisation == "platt":
        return _platt_probabilities(scores, codes, k)
    if normalisation == "temperature":
        return _temperature_probabilities(scores, codes)
    return _softmax(scores)


def svm_logits(features, labels, *, svm: str = "ls_ovr", C: float = 1.0,
               normalisation: str = "platt", cross_fit: int = 5,
               max_fit_samples: int | None = 20000, feature_norm: str = "l2",
               dtype="float32", device="cpu", random_state: int = 0, sample_ids=None) -> np.ndarray:
    """LEAD stage 1 (Hu et al., CVPR 2024, Sec. 4.1): initial K-class probabilities
    ``log_init`` (N, K) from a one-vs-rest linear SVM on the features.

    Columns follow the sorted unique labels (``np.unique(labels)``). ``cross_fit=F >= 2``
    scores every sample with a model fitted on the other folds (stratified, order-independent
    folds; small-class fallback in the module docstring); ``cross_fit=0`` fits once and
    scores in-sample. ``sample_ids`` (N,) are the samples' identities (canonical dataset
    positions; default: row positions) that deal the folds. See the module docstring for each
    option, its default and why.
    """
    chk = check_features_labels(features, labels)
    return _svm_logits_checked(chk, svm=svm, C=C, normalisation=normalisation, cross_fit=cross_fit,
                               max_fit_samples=max_fit_samples, feature_norm=feature_norm,
                               random_state=random_state, dtype=dtype, device=device,
                               sample_ids=sample_ids)


# ----------------------------------------------------------------------------- stage 2: NTK
def init_random_head(in_dim: int, n_outputs: int, head_widths: Sequence[int] = DEFAULT_HEAD_WIDTHS,
                     *, random_state: int = 0, dtype="float32", device="cpu") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random MLP head ``[(W_1, b_1), ..., (W_{L+1}, b_{L+1})]``, ``W_l`` (out, in).

    Kaiming (He) normal init: ``N(0, 2/fan_in)`` for the layers followed by a ReLU,
    ``N(0, 1/fan_in)`` (linear gain) for the output layer; zero biases. Drawn in float64 on
    the CPU from ``torch.Generator().manual_seed(random_state)``, then cast, so the head
    is the same on every device and in every dtype (up to the cast).
    """
    widths = tuple(int(w) for w in head_widths)
    if len(widths) == 0 or min(widths) < 1:
        raise ValueError(f"head_widths must be a non-empty sequence of positive widths, got {head_widths!r}")
    tdtype = resolve_dtype(dtype)
    gen = torch.Generator(device="cpu").manual_seed(int(random_state))
    dims = (int(in_dim), *widths, int(n_outputs))
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:])):
        gain = math.sqrt(2.0) if i < len(dims) - 2 else 1.0
        w = torch.randn(fan_out, fan_in, generator=gen, dtype=torch.float64) * (gain / math.sqrt(fan_in))
        layers.append((w.to(device=device, dtype=tdtype),
                       torch.zeros(fan_out, dtype=tdtype, device=device)))
    return layers


def _head_pieces(x: torch.Tensor, head):
    """Inputs ``a_{l-1}`` and backprop signals ``delta_l = d(sum_j h_j)/dz_l`` of every layer.

    ``z_l = a_{l-1} W_l^T + b_l``, ``a_l = relu(z_l)``; for the output layer delta = 1 (K,).
    ReLU'(0) = 0, as in torch's autograd.
    """
    acts = [x]
    masks = []
    a = x
    for w, b in head[:-1]:
        z = a @ w.T + b
        masks.append(z > 0)
        a = torch.relu(z)
        acts.append(a)
    w_out = head[-1][0]
    delta = w_out.sum(dim=0).expand(x.shape[0], -1)       # 1_K^T W_out, same for every sample
    deltas = [None] * len(head)
    for layer in range(len(head) - 2, -1, -1):
        delta = delta * masks[layer]
        deltas[layer] = delta
        if layer > 0:
            delta = delta @ head[layer][0]
    return acts, deltas


def head_ntk_diag(x: torch.Tensor, head, *, chunk_size: int = 4096) -> torch.Tensor:
    """``||grad_theta sum_j h_j(x_i)||^2`` for every row (N,), exact, in closed form:
    ``sum_l ||delta_l||^2 (||a_{l-1}||^2 + 1)`` (output layer: ``K (||a_L||^2 + 1)``)."""
    k = head[-1][0].shape[0]
    out = []
    for s in range(0, x.shape[0], chunk_size):
        acts, deltas = _head_pieces(x[s:s + chunk_size], head)
        sq = [torch.einsum("ij,ij->i", a, a) + 1.0 for a in acts]
        tot = k * sq[-1]
        for layer, d in enumerate(deltas[:-1]):
            tot = tot + torch.einsum("ij,ij->i", d, d) * sq[layer]
        out.append(tot)
    return torch.cat(out)


def head_ntk_gram(x: torch.Tensor, head) -> torch.Tensor:
    """Sum-of-logits NTK Gram (N, N) of the head, exact, in closed form:
    ``sum_l (Delta_l Delta_l^T) * (A_{l-1} A_{l-1}^T + 1)`` (output layer: ``K (A_L A_L^T + 1)``)."""
    k = head[-1][0].shape[0]
    acts, deltas = _head_pieces(x, head)
    gram = k * (acts[-1] @ acts[-1].T + 1.0)
    for layer, d in enumerate(deltas[:-1]):
        gram = gram + (d @ d.T) * (acts[layer] @ acts[layer].T + 1.0)
    return gram


def head_jacobian(x: torch.Tensor, head) -> torch.Tensor:
    """Explicit per-sample gradients (N, P) of ``sum_j h_j(x_i)`` w.r.t. all head parameters
    (order W_1, b_1, W_2, b_2, ...), by ``torch.func.vmap(torch.func.grad(...))``."""
    from torch.func import grad, vmap

    params = tuple(p for layer in head for p in layer)

    def sum_logits(flat, xi):
        a = xi
        n_layers = len(flat) // 2
        for i in range(n_layers):
            a = a @ flat[2 * i].T + flat[2 * i + 1]
            if i < n_layers - 1:
                a = torch.relu(a)
        return a.sum()

    grads = vmap(grad(sum_logits), in_dims=(None, 0))(params, x)
    return torch.cat([g.reshape(x.shape[0], -1) for g in grads], dim=1)


def _class_ntk_checked(chk: Checked, *, samples_per_class: int, head_widths, method: str,
                       feature_norm: str, random_state: int, dtype, device,
                       base_keys: np.ndarray | None = None, sample_ids=None) -> np.ndarray:
    _choice(method, _NTK_METHODS, "method")
    _choice(feature_norm, _FEATURE_NORMS, "feature_norm")
    if not isinstance(samples_per_class, (int, np.integer)) or samples_per_class < 1:
        raise ValueError(f"samples_per_class must be a positive integer, got {samples_per_class!r}")
    tdtype = resolve_dtype(dtype)
    codes, k = chk.labels, chk.n_classes
    keys = sample_keys(codes.shape[0], sample_ids, random_state) if base_keys is None else base_keys
    counts = np.bincount(codes, minlength=k)
    idx = _smallest_keys_per_class(codes, _purpose_keys(keys, _SALT_NTK),
                                   np.minimum(counts, int(samples_per_class)))
    sel_codes = codes[idx]
    if feature_norm == "standard":                     # statistics of all N rows
        x = normalise_features(to_torch(chk.features, tdtype, device), "standard")[
            torch.as_tensor(idx, device=device)]
    else:
        x = normalise_features(to_torch(chk.features[idx], tdtype, device), feature_norm)
    head = init_random_head(x.shape[1], k, head_widths, random_state=random_state,
                            dtype=tdtype, device=device)
    eig = np.empty(k)
    with torch.no_grad():
        if method == "trace":
            diag = head_ntk_diag(x, head).to(torch.float64).cpu().numpy()
            eig[:] = np.bincount(sel_codes, weights=diag, minlength=k) / np.bincount(sel_codes, minlength=k)
            return eig
    for c in range(k):
        rows = torch.as_tensor(np.flatnonzero(sel_codes == c), device=device)
        jac = head_jacobian(x[rows], head)
        with torch.no_grad():
            phi = jac @ jac.T
            eig[c] = float(torch.linalg.eigvalsh(phi.to(torch.float64)).mean())
        del jac
    return eig


def class_ntk_eigenvalues(features, labels, samples_per_class: int = 64,
                          head_widths: Sequence[int] = DEFAULT_HEAD_WIDTHS, method: str = "trace",
                          feature_norm: str = "l2", random_state: int = 0, device="cpu",
                          dtype="float32", sample_ids=None) -> np.ndarray:
    """LEAD stage 2 (Hu et al., CVPR 2024, class-aware decomposition before Eq. 7):
    ``lambda_k`` (K,) float64 = mean eigenvalue of the S x S sum-of-logits NTK of a random
    Kaiming MLP head, over S samples of class k (order = sorted unique labels).

    ``method="trace"``: exact closed-form trace / S (mean per-sample squared gradient
    norm); ``method="eig"``: explicit Jacobian -> kernel -> ``eigvalsh`` mean. Both agree to
    rounding. S samples are drawn by a seeded rule on ``sample_ids`` (the samples' identities;
    default: row positions); a class with fewer than S samples uses all of them (one works).
    """
    chk = check_features_labels(features, labels)
    return _class_ntk_checked(chk, samples_per_class=samples_per_class, head_widths=head_widths,
                              method=method, feature_norm=feature_norm, random_state=random_state,
                              dtype=dtype, device=device, sample_ids=sample_ids)


# ----------------------------------------------------------------------------- stage 3: Eq. 7
# ----------------------------------------------------------------------------- score
def lead_score(features, labels, *, log_init=None, class_eigenvalues=None, eta_t: float = 1.0,
               eigenvalue_scale: str = "mean", apply_softmax: bool = False,
               svm: str = "ls_ovr", C: float = 1.0, normalisation: str = "platt",
               cross_fit: int = 5, max_fit_samples: int | None = 20000,
               svm_feature_norm: str = "l2", samples_per_class: int = 64,
               head_widths: Sequence[int] = DEFAULT_HEAD_WIDTHS, ntk_method: str = "trace",
               ntk_feature_norm: str = "l2", dtype="float32", device="cpu",
               random_state: int = 0, sample_ids=None) -> float:
    """LEAD score (Hu et al., CVPR 2024; no official code, implemented from the paper):
    ``-(1/N) sum_i CE(F(x_i), y_i)`` with F from Eq. 7 (:func:`evolve_logits`); higher is
    better (the paper's cross-entropy loss, negated).

    ``log_init`` (N, K) and ``class_eigenvalues`` (K,) are the cached outputs of
    :func:`svm_logits` / :func:`class_ntk_eigenvalues`; missing ones are computed with the
    stage parameters given here (``svm_feature_norm`` / ``ntk_feature_norm`` are the
    ``feature_norm`` of each stage). With ``apply_softmax=False`` ``log_init`` must hold
    probabilities and CE = ``-log F_y``; with ``True`` CE = ``logsumexp(F) - F_y``.
    """
    chk = check_features_labels(features, labels)
    n, k = chk.n_samples, chk.n_classes
    base_keys = None
    if log_init is None or class_eigenvalues is None:
        base_keys = sample_keys(n, sample_ids, random_state)
    if log_init is None:
        li = _svm_logits_checked(chk, svm=svm, C=C, normalisation=normalisation, cross_fit=cross_fit,
                                 max_fit_samples=max_fit_samples, feature_norm=svm_feature_norm,
                                 random_state=random_state, dtype=dtype, device=device,
                                 base_keys=base_keys)
    elif apply_softmax:
        li = check_matrix(log_init, name="log_init", n_rows=n)
    else:
        li = check_probabilities(log_init, name="log_init", n_rows=n)
    if li.shape[1] != k:
        raise ValueError(f"log_init has {li.shape[1]} columns but labels has {k} classes")
    if class_eigenvalues is None:
        ev = _class_ntk_checked(chk, samples_per_class=samples_per_class, head_widths=head_widths,
                                method=ntk_method, feature_norm=ntk_feature_norm,
                                random_state=random_state, dtype=dtype, device=device,
                                base_keys=base_keys)
    else:
        ev = check_eigenvalues(class_eigenvalues, k, name="class_eigenvalues")
    final = _evolve(li, chk.labels, ev, eta_t, eigenvalue_scale)
    return float(image_log_likelihoods(final, chk.labels, apply_softmax=apply_softmax).mean())
