"""LEAD (zoorank.metrics.lead): NTK eigenvalues (trace vs eig vs brute force), Eq. 7,
the SVM stage, invariances, low-data and bad input. Small float64 cases, fast."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from zoorank.metrics import lead
from zoorank.metrics.lead import (
    class_ntk_eigenvalues,
    evolve_logits,
    head_jacobian,
    head_ntk_diag,
    head_ntk_gram,
    init_random_head,
    lead_score,
    stratified_folds,
    svm_logits,
)

F64 = dict(dtype="float64")


def blobs(n_per_class=20, d=12, k=4, sep=1.0, seed=0, counts=None):
    """Gaussian class blobs (float64); ``counts`` overrides the per-class sizes."""
    rng = np.random.default_rng(seed)
    counts = [n_per_class] * k if counts is None else list(counts)
    y = np.repeat(np.arange(len(counts)), counts)
    mu = rng.normal(size=(len(counts), d)) * sep
    x = mu[y] + rng.normal(size=(y.shape[0], d))
    return x, y


# ----------------------------------------------------------------------------- NTK
@pytest.mark.parametrize("widths,seed", [((16, 32), 0), ((32, 8), 1), ((7,), 2), ((12, 10, 9), 3)])
@pytest.mark.parametrize("feature_set", ["gauss", "relu", "l2"])
def test_trace_equals_eig(widths, seed, feature_set):
    x, y = blobs(n_per_class=9, d=6, k=3, seed=seed)
    fn = "none"
    if feature_set == "relu":
        x = np.maximum(x, 0.0)            # non-negative, with exact zeros
    elif feature_set == "l2":
        fn = "l2"
    kw = dict(samples_per_class=7, head_widths=widths, feature_norm=fn, random_state=seed, **F64)
    tr = class_ntk_eigenvalues(x, y, method="trace", **kw)
    eig = class_ntk_eigenvalues(x, y, method="eig", **kw)
    assert tr.shape == (3,) and tr.dtype == np.float64
    assert np.all(tr > 0)
    np.testing.assert_allclose(tr, eig, rtol=1e-6)


def _brute_force_grads(x, head):
    """Per-sample gradient of sum_j h_j(x_i) w.r.t. every head parameter, one autograd
    call per sample (no closed form, no vmap)."""
    params = [p.clone().requires_grad_(True) for layer in head for p in layer]
    rows = []
    for i in range(x.shape[0]):
        a = x[i]
        for li in range(len(head)):
            a = a @ params[2 * li].T + params[2 * li + 1]
            if li < len(head) - 1:
                a = torch.relu(a)
        grads = torch.autograd.grad(a.sum(), params)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


def test_trace_matches_brute_force_autograd():
    torch.manual_seed(0)
    x = torch.randn(7, 5, dtype=torch.float64)
    x[3] = 0.0                                            # ReLU'(0) = 0 convention
    head = init_random_head(5, 3, (4, 6), random_state=11, dtype="float64")
    # non-zero biases exercise the bias terms and move the ReLU kinks
    gen = torch.Generator().manual_seed(5)
    head = [(w, torch.randn(b.shape, generator=gen, dtype=torch.float64) * 0.3) for w, b in head]
    jac = _brute_force_grads(x, head)
    n_params = sum(w.numel() + b.numel() for w, b in head)
    assert jac.shape == (7, n_params)
    sq = (jac ** 2).sum(dim=1)
    np.testing.assert_allclose(head_ntk_diag(x, head).numpy(), sq.numpy(), rtol=1e-12)
    np.testing.assert_allclose(head_ntk_gram(x, head).numpy(), (jac @ jac.T).numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(head_jacobian(x, head).numpy(), jac.numpy(), rtol=1e-12, atol=1e-14)
    # the output layer alone contributes K (||a_L||^2 + 1)
    assert float(sq.min()) >= 3.0


def test_eigenvalue_is_mean_per_sample_gradient_norm_and_small_classes():
    x, y = blobs(d=5, counts=[1, 3, 30], seed=4)
    widths = (6, 5)
    raw = dict(feature_norm="none", **F64)   # compared with the head's NTK diagonal on raw x
    ev = class_ntk_eigenvalues(x, y, samples_per_class=8, head_widths=widths, random_state=7, **raw)
    ev_eig = class_ntk_eigenvalues(x, y, samples_per_class=8, head_widths=widths, random_state=7,
                                   method="eig", **raw)
    np.testing.assert_allclose(ev, ev_eig, rtol=1e-10)
    head = init_random_head(5, 3, widths, random_state=7, dtype="float64")
    diag = head_ntk_diag(torch.from_numpy(x), head).numpy()
    # classes with fewer than S samples use all of them; a 1-sample class works
    assert ev[0] == pytest.approx(diag[y == 0][0], rel=1e-12)
    assert ev[1] == pytest.approx(diag[y == 1].mean(), rel=1e-12)
    # the 30-sample class uses S = 8 of its samples: the mean of some 8 of them
    assert diag[y == 2].min() <= ev[2] <= diag[y == 2].max()
    # S = 1 works (1 x 1 kernel)
    ev1 = class_ntk_eigenvalues(x, y, samples_per_class=1, head_widths=widths, random_state=7, **raw)
    ev1_eig = class_ntk_eigenvalues(x, y, samples_per_class=1, head_widths=widths, random_state=7,
                                    method="eig", **raw)
    np.testing.assert_allclose(ev1, ev1_eig, rtol=1e-10)
    assert np.all(np.isin(np.round(ev1, 8), np.round(diag, 8)))


def test_ntk_determinism_and_seed_dependence():
    x, y = blobs(n_per_class=30, d=20, k=3, seed=1)
    kw = dict(samples_per_class=10, head_widths=(64, 32), **F64)
    a = class_ntk_eigenvalues(x, y, random_state=0, **kw)
    b = class_ntk_eigenvalues(x, y, random_state=0, **kw)
    c = class_ntk_eigenvalues(x, y, random_state=1, **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    ratio = c / a
    assert np.all((ratio > 0.5) & (ratio < 2.0))          # same order of magnitude
    # float32 default agrees with float64 to float32 precision
    d32 = class_ntk_eigenvalues(x, y, random_state=0, samples_per_class=10, head_widths=(64, 32))
    np.testing.assert_allclose(d32, a, rtol=1e-4)


def test_ntk_feature_norms():
    x, y = blobs(n_per_class=10, d=8, k=2, seed=2)
    kw = dict(samples_per_class=10, head_widths=(16, 16), **F64)
    raw = class_ntk_eigenvalues(x, y, feature_norm="none", **kw)
    big = class_ntk_eigenvalues(100.0 * x, y, feature_norm="none", **kw)
    assert np.all(big > 100 * raw)                          # grows with ||z||^2
    # l2 is invariant to the scale of the features
    np.testing.assert_allclose(class_ntk_eigenvalues(100.0 * x, y, feature_norm="l2", **kw),
                               class_ntk_eigenvalues(x, y, feature_norm="l2", **kw),
                               rtol=1e-10)
    # the default head input is the paper's: raw features
    np.testing.assert_allclose(class_ntk_eigenvalues(x, y, **kw), raw, rtol=0)
    np.testing.assert_allclose(class_ntk_eigenvalues(100.0 * x + 3.0, y, feature_norm="standard", **kw),
                               class_ntk_eigenvalues(x, y, feature_norm="standard", **kw), rtol=1e-8)


# ----------------------------------------------------------------------------- Eq. 7
def test_eq7_limits_and_hand_computed_two_class_case():
    p = np.array([[0.7, 0.3], [0.4, 0.6], [0.2, 0.8]])
    y = np.array([0, 1, 0])
    ev = np.array([1.0, 3.0])
    np.testing.assert_allclose(evolve_logits(p, y, ev, eta_t=0.0), p)
    np.testing.assert_allclose(evolve_logits(p, y, ev, eta_t=np.inf), np.eye(2)[y])
    np.testing.assert_allclose(evolve_logits(p, y, ev, eta_t=1e6), np.eye(2)[y], atol=1e-12)
    # hand computation, unscaled eigenvalues: w_k = exp(-eta_t * lambda_k)
    w0, w1 = np.exp(-0.5 * 1.0), np.exp(-0.5 * 3.0)
    expected = np.array([
        [(1 - w0) + w0 * 0.7, w0 * 0.3],
        [w1 * 0.4, (1 - w1) + w1 * 0.6],
        [(1 - w0) + w0 * 0.2, w0 * 0.8],
    ])
    got = evolve_logits(p, y, ev, eta_t=0.5, eigenvalue_scale="none")
    np.testing.assert_allclose(got, expected, rtol=1e-14)
    np.testing.assert_allclose(got.sum(axis=1), 1.0)
    # "mean" scaling: lambda / mean = (0.5, 1.5), so eta_t = 1 equals the unscaled eta_t = 0.5
    np.testing.assert_allclose(evolve_logits(p, y, ev, eta_t=1.0, eigenvalue_scale="mean"), expected,
                               rtol=1e-14)
    # "per_logit" (the default): lambda / K = (0.5, 1.5) with K = 2, the same numbers here
    np.testing.assert_allclose(evolve_logits(p, y, ev, eta_t=1.0), expected, rtol=1e-14)
    # "max" scaling: lambda / max = (1/3, 1)
    np.testing.assert_allclose(evolve_logits(p, y, ev, eta_t=1.5, eigenvalue_scale="max"),
                               expected, rtol=1e-14)

    x = np.zeros((3, 2))                                 # features unused when stages given
    x[:, 0] = [0.0, 1.0, 2.0]
    score = lead_score(x, y, log_init=p, class_eigenvalues=ev, eta_t=1.0)
    ce = -np.log([expected[0, 0], expected[1, 1], expected[2, 0]]).mean()
    assert score == pytest.approx(-ce, rel=1e-14)
    # apply_softmax=True: cross-entropy of softmax(F)
    sm = np.exp(expected) / np.exp(expected).sum(axis=1, keepdims=True)
    ce_sm = -np.log([sm[0, 0], sm[1, 1], sm[2, 0]]).mean()
    assert lead_score(x, y, log_init=p, class_eigenvalues=ev, eta_t=1.0, apply_softmax=True) == pytest.approx(
        -ce_sm, rel=1e-12)
    # a faster class pulls the score towards 0 (perfect)
    assert lead_score(x, y, log_init=p, class_eigenvalues=ev, eta_t=50.0) > score


def test_cached_stages_give_the_same_score():
    x, y = blobs(n_per_class=15, d=10, k=3, seed=3)
    kw = dict(samples_per_class=8, head_widths=(16, 16), **F64)
    li = svm_logits(x, y, **F64)
    ev = class_ntk_eigenvalues(x, y, feature_norm=lead.LEAD_HEAD_INPUT, **kw)   # LEAD's head input
    full = lead_score(x, y, **kw)
    assert lead_score(x, y, log_init=li, class_eigenvalues=ev, **kw) == pytest.approx(full, rel=1e-12)
    assert lead_score(x, y, log_init=li, **kw) == pytest.approx(full, rel=1e-12)
    assert lead_score(x, y, class_eigenvalues=ev, **kw) == pytest.approx(full, rel=1e-12)


# ----------------------------------------------------------------------------- SVM stage
def test_ls_ovr_matches_explicit_ridge_solution():
    """Out-of-fold decision values equal an explicit least-squares SVM fitted on the
    complement of each fold (both the primal n > d and the dual n < d paths)."""
    for n_per, d in [(30, 5), (4, 40)]:
        x, y = blobs(n_per_class=n_per, d=d, k=3, seed=5)
        n, k = x.shape[0], 3
        folds = stratified_folds(y, np.arange(n, dtype=np.uint64) * np.uint64(7919) % np.uint64(101), 4)
        targets = 2.0 * np.eye(k)[y] - 1.0
        C = 0.7
        got = lead._ls_ovr_crossfit(torch.from_numpy(x), torch.from_numpy(targets), np.arange(n),
                                    folds, 4, C).numpy()
        for f in range(4):
            tr, te = folds != f, folds == f
            xa = np.hstack([x[tr], np.ones((tr.sum(), 1))])
            reg = np.eye(d + 1) / (2 * C)
            reg[-1, -1] = 0.0                               # unregularised bias
            wb = np.linalg.solve(xa.T @ xa + reg, xa.T @ targets[tr])
            np.testing.assert_allclose(got[te], np.hstack([x[te], np.ones((te.sum(), 1))]) @ wb,
                                       rtol=1e-8, atol=1e-8)
        insample = lead._ls_ovr_crossfit(torch.from_numpy(x), torch.from_numpy(targets), np.arange(n),
                                         None, 0, C).numpy()
        xa = np.hstack([x, np.ones((n, 1))])
        reg = np.eye(d + 1) / (2 * C)
        reg[-1, -1] = 0.0
        np.testing.assert_allclose(insample, xa @ np.linalg.solve(xa.T @ xa + reg, xa.T @ targets),
                                   rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("svm", ["ls_ovr", "linear_ovr", "linear_crammer_singer"])
@pytest.mark.parametrize("normalisation", ["platt", "softmax", "temperature"])
def test_svm_logits_are_probabilities_and_informative(svm, normalisation):
    x, y = blobs(n_per_class=25, d=8, k=3, sep=1.5, seed=6)
    p = svm_logits(x, y, svm=svm, normalisation=normalisation, **F64)
    assert p.shape == (75, 3)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    assert (p.argmax(axis=1) == y).mean() > 0.8


def test_out_of_fold_versus_in_sample():
    """With D > N and random labels an in-sample linear classifier memorises the labels;
    the cross-fitted one does not."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 200))
    y = np.arange(60) % 3
    oof = svm_logits(x, y, cross_fit=5, **F64)
    ins = svm_logits(x, y, cross_fit=0, **F64)
    assert (ins.argmax(1) == y).mean() == 1.0
    assert (oof.argmax(1) == y).mean() < 0.6
    # the initial logits alone (eta_t = 0): memorised in-sample, honest out-of-fold
    assert lead_score(x, y, cross_fit=0, eta_t=0.0, **F64) > lead_score(x, y, cross_fit=5, eta_t=0.0, **F64) + 0.2


def test_max_fit_samples_subsample():
    x, y = blobs(n_per_class=40, d=6, k=3, sep=1.5, seed=7)
    full = svm_logits(x, y, max_fit_samples=None, **F64)
    sub = svm_logits(x, y, max_fit_samples=30, **F64)
    assert sub.shape == full.shape and np.all(np.isfinite(sub))
    assert not np.allclose(sub, full)
    assert (sub.argmax(1) == y).mean() > 0.8


def test_stratified_folds_balanced_and_small_class_fallback():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), [23, 5, 2, 1])
    keys = rng.integers(0, 2**62, size=y.shape[0]).astype(np.uint64)
    folds = stratified_folds(y, keys, 5)
    for c in range(4):
        per_fold = np.bincount(folds[y == c], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1          # stratified
    assert np.bincount(folds[y == 2], minlength=5).max() == 1  # fewer than F: one per fold
    perm = rng.permutation(y.shape[0])
    np.testing.assert_array_equal(stratified_folds(y[perm], keys[perm], 5), folds[perm])


# ----------------------------------------------------------------------------- score behaviour
def test_separated_features_score_higher_than_shuffled_labels():
    x, y = blobs(n_per_class=30, d=16, k=4, sep=1.0, seed=8)
    rng = np.random.default_rng(1)
    kw = dict(samples_per_class=16, head_widths=(32, 32), **F64)
    good = lead_score(x, y, **kw)
    shuffled = lead_score(x, rng.permutation(y), **kw)
    assert good > shuffled + 0.1
    # and better separated features score higher than less separated ones
    x_weak, _ = blobs(n_per_class=30, d=16, k=4, sep=0.3, seed=8)
    assert good > lead_score(x_weak, y, **kw)


def test_invariance_to_sample_order_and_relabelling():
    """Folds, the fit subset and the S-sample draw are functions of each sample's identity
    (a seeded hash of ``sample_ids``), so permuting the rows together with their identities
    changes the result only through floating-point summation order (the LS-SVM is solved
    exactly); relabelling permutes the columns/eigenvalues consistently."""
    x, y = blobs(n_per_class=25, d=10, k=4, sep=0.8, seed=9)
    kw = dict(samples_per_class=10, head_widths=(24, 16), max_fit_samples=70, **F64)
    base = lead_score(x, y, **kw)
    perm = np.random.default_rng(3).permutation(y.shape[0])
    assert lead_score(x[perm], y[perm], sample_ids=perm, **kw) == pytest.approx(base, rel=1e-9)
    relabel = np.array([2, 0, 3, 1])
    assert lead_score(x, relabel[y], **kw) == pytest.approx(base, rel=1e-9)
    names = np.array(["cat", "dog", "emu", "ant"])          # string labels, another order
    assert lead_score(x[perm], names[y[perm]], sample_ids=perm, **kw) == pytest.approx(base, rel=1e-9)
    ev = class_ntk_eigenvalues(x, y, samples_per_class=10, head_widths=(24, 16), **F64)
    ev_rel = class_ntk_eigenvalues(x, relabel[y], samples_per_class=10, head_widths=(24, 16), **F64)
    np.testing.assert_allclose(ev_rel[relabel], ev, rtol=1e-12)
    p = svm_logits(x, y, **F64)
    p_rel = svm_logits(x[perm], relabel[y[perm]], sample_ids=perm, **F64)
    np.testing.assert_allclose(p_rel[:, relabel], p[perm], rtol=1e-8, atol=1e-12)


def test_liblinear_option_is_nearly_order_invariant():
    """LinearSVC (liblinear) visits samples in a seeded random order, so permuting rows
    changes its solution within the solver tolerance only."""
    x, y = blobs(n_per_class=20, d=6, k=3, sep=1.0, seed=10)
    perm = np.random.default_rng(0).permutation(y.shape[0])
    kw = dict(svm="linear_ovr", samples_per_class=8, head_widths=(16, 16), **F64)
    assert lead_score(x[perm], y[perm], sample_ids=perm, **kw) == pytest.approx(lead_score(x, y, **kw),
                                                                               rel=1e-2)


def test_determinism_of_the_score():
    x, y = blobs(n_per_class=12, d=10, k=3, seed=11)
    kw = dict(samples_per_class=8, head_widths=(16, 16))
    assert lead_score(x, y, random_state=4, **kw) == lead_score(x, y, random_state=4, **kw)
    assert lead_score(x, y, random_state=4, **kw) != lead_score(x, y, random_state=5, **kw)


@pytest.mark.parametrize("d", [8, 300])
def test_low_data_two_per_class(d):
    x, y = blobs(n_per_class=2, d=d, k=10, seed=12)
    s = lead_score(x, y, head_widths=(32, 32), **F64)
    assert np.isfinite(s) and s < 0
    # a singleton class is still scored (its OvR scorer is the all-negative one)
    x1, y1 = blobs(d=d, counts=[1, 2, 2], seed=13)
    p = svm_logits(x1, y1, **F64)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(1), 1.0)
    assert np.isfinite(lead_score(x1, y1, head_widths=(8, 8), **F64))


def test_float16_and_float32_inputs_are_upcast():
    x, y = blobs(n_per_class=10, d=6, k=3, seed=14)
    x16 = x.astype(np.float16)
    kw = dict(samples_per_class=8, head_widths=(16, 16), **F64)
    assert lead_score(x16, y, **kw) == pytest.approx(lead_score(x16.astype(np.float64), y, **kw), rel=1e-12)
    assert np.isfinite(lead_score(x.astype(np.float32), y))


# ----------------------------------------------------------------------------- bad input
def test_bad_input_raises_value_error_naming_the_argument():
    x, y = blobs(n_per_class=5, d=4, k=2, seed=15)
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="features"):
        lead_score(bad, y)
    with pytest.raises(ValueError, match="labels"):
        lead_score(x, y[:-1])
    with pytest.raises(ValueError, match="labels"):
        lead_score(x, np.zeros_like(y))                    # single class
    with pytest.raises(ValueError, match="features"):
        lead_score(x.astype(str), y)
    with pytest.raises(ValueError, match="labels"):
        lead_score(x, y + 0.5)
    with pytest.raises(ValueError, match="log_init"):
        lead_score(x, y, log_init=np.full((10, 3), 1 / 3))
    with pytest.raises(ValueError, match="log_init"):
        lead_score(x, y, log_init=np.full((10, 2), 0.7))   # not probabilities
    with pytest.raises(ValueError, match="log_init"):
        evolve_logits(np.full((9, 2), 0.5), y, [1.0, 1.0])
    with pytest.raises(ValueError, match="class_eigenvalues"):
        lead_score(x, y, class_eigenvalues=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="class_eigenvalues"):
        lead_score(x, y, class_eigenvalues=[1.0, -2.0])
    with pytest.raises(ValueError, match="class_eigenvalues"):
        lead_score(x, y, class_eigenvalues=[1.0, np.nan])
    with pytest.raises(ValueError, match="eta_t"):
        evolve_logits(np.full((10, 2), 0.5), y, [1.0, 1.0], eta_t=-1.0)
    with pytest.raises(ValueError, match="svm"):
        svm_logits(x, y, svm="rbf")
    with pytest.raises(ValueError, match="normalisation"):
        svm_logits(x, y, normalisation="isotonic")
    with pytest.raises(ValueError, match="cross_fit"):
        svm_logits(x, y, cross_fit=1)
    with pytest.raises(ValueError, match="C must"):
        svm_logits(x, y, C=0.0)
    with pytest.raises(ValueError, match="method"):
        class_ntk_eigenvalues(x, y, method="svd")
    with pytest.raises(ValueError, match="samples_per_class"):
        class_ntk_eigenvalues(x, y, samples_per_class=0)
    with pytest.raises(ValueError, match="feature_norm"):
        class_ntk_eigenvalues(x, y, feature_norm="minmax")
    with pytest.raises(ValueError, match="head_widths"):
        class_ntk_eigenvalues(x, y, head_widths=())
    with pytest.raises(ValueError, match="dtype"):
        class_ntk_eigenvalues(x, y, dtype="float16")
    with pytest.raises(ValueError, match="eigenvalue_scale"):
        lead_score(x, y, eigenvalue_scale="median")


def test_registered_in_registry():
    from zoorank.metrics.registry import get_metric, score

    assert get_metric("lead").fn is lead_score
    x, y = blobs(n_per_class=8, d=5, k=2, seed=16)
    assert score("lead", x, y, head_widths=(8, 8)) == pytest.approx(lead_score(x, y, head_widths=(8, 8)))
