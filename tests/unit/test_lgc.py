"""LGC (zoorank.metrics.lgc) and the centred kernel alignment helpers
(zoorank.metrics.kernel_alignment). Small float64 cases, fast."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from zoorank.metrics.kernel_alignment import center_kernel, centered_alignment, label_similarity
from zoorank.metrics.lead import init_random_head
from zoorank.metrics.lgc import lgc_score

F64 = dict(dtype="float64")


def blobs(n_per_class=20, d=12, k=4, sep=1.0, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n_per_class)
    mu = rng.normal(size=(k, d)) * sep
    return mu[y] + rng.normal(size=(y.shape[0], d)), y


# ----------------------------------------------------------------------------- helpers
def test_label_similarity():
    y = label_similarity(np.array(["b", "a", "b", "c"]))
    expected = np.array([[1, -1, 1, -1], [-1, 1, -1, -1], [1, -1, 1, -1], [-1, -1, -1, 1]], dtype=float)
    np.testing.assert_array_equal(y, expected)


def test_centered_alignment_by_formula_and_properties():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(9, 4))
    k = a @ a.T
    y = label_similarity(rng.integers(0, 3, size=9))
    n = 9
    h = np.eye(n) - np.ones((n, n)) / n
    kc, yc = h @ k @ h, h @ y @ h
    expected = np.trace(kc @ yc) / np.sqrt(np.trace(kc @ kc) * np.trace(yc @ yc))
    assert centered_alignment(k, y) == pytest.approx(expected, rel=1e-12)
    np.testing.assert_allclose(center_kernel(k), kc, atol=1e-12)
    assert centered_alignment(y, y) == pytest.approx(1.0)
    assert centered_alignment(-y, y) == pytest.approx(-1.0)
    assert centered_alignment(5.0 * k + 3.0, y) == pytest.approx(expected, rel=1e-12)  # scale, shift
    p = rng.permutation(n)
    assert centered_alignment(k[np.ix_(p, p)], y[np.ix_(p, p)]) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="same shape"):
        centered_alignment(k, y[:-1, :-1])
    with pytest.raises(ValueError, match="gram"):
        centered_alignment(np.ones((9, 9)), y)
    with pytest.raises(ValueError, match="target"):
        centered_alignment(k, np.ones((9, 9)))
    with pytest.raises(ValueError, match="gram"):
        centered_alignment(np.full((9, 9), np.nan), y)
    with pytest.raises(ValueError, match="square"):
        centered_alignment(np.ones((3, 4)), y)


# ----------------------------------------------------------------------------- LGC
def test_lgc_against_explicit_jacobian_and_formula():
    x, y = blobs(n_per_class=4, d=5, k=3, seed=1)
    widths = (6, 4)
    head = init_random_head(5, 3, widths, random_state=3, dtype="float64")
    params = [p.clone().requires_grad_(True) for layer in head for p in layer]
    rows = []
    for i in range(x.shape[0]):                           # explicit per-sample gradients
        a = torch.from_numpy(x[i])
        for li in range(3):
            a = a @ params[2 * li].T + params[2 * li + 1]
            if li < 2:
                a = torch.relu(a)
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(a.sum(), params)]))
    jac = torch.stack(rows).numpy()
    theta = jac @ jac.T
    n = x.shape[0]
    ylab = np.where(y[:, None] == y[None, :], 1.0, -1.0)
    h = np.eye(n) - np.ones((n, n)) / n
    tc, yc = h @ theta @ h, h @ ylab @ h
    expected = np.sum(tc * yc) / (np.linalg.norm(tc) * np.linalg.norm(yc))
    got = lgc_score(x, y, head_widths=widths, random_state=3, **F64)
    assert got == pytest.approx(expected, rel=1e-10)
    assert -1.0 <= got <= 1.0


def test_separated_features_score_higher_than_shuffled_labels():
    x, y = blobs(n_per_class=25, d=16, k=4, sep=1.5, seed=2)
    kw = dict(head_widths=(32, 32), **F64)
    good = lgc_score(x, y, **kw)
    shuffled = lgc_score(x, np.random.default_rng(0).permutation(y), **kw)
    assert good > shuffled + 0.05
    assert abs(shuffled) < 0.05


def test_invariance_to_sample_order_and_relabelling():
    x, y = blobs(n_per_class=20, d=10, k=3, seed=3)
    kw = dict(head_widths=(16, 16), **F64)
    base = lgc_score(x, y, **kw)
    perm = np.random.default_rng(1).permutation(y.shape[0])
    assert lgc_score(x[perm], y[perm], **kw) == pytest.approx(base, rel=1e-10)
    assert lgc_score(x, np.array([2, 0, 1])[y], **kw) == pytest.approx(base, rel=1e-10)
    assert lgc_score(x, np.array(["x", "y", "z"])[y], **kw) == pytest.approx(base, rel=1e-10)
    # the subsample is chosen by sample identity, so it travels with the samples
    sub = lgc_score(x, y, max_samples=20, **kw)
    assert lgc_score(x[perm], y[perm], max_samples=20, sample_ids=perm, **kw) == pytest.approx(sub, rel=1e-10)


def test_subsampling_determinism_and_seed():
    x, y = blobs(n_per_class=40, d=8, k=3, seed=4)
    kw = dict(head_widths=(16, 16), max_samples=30, **F64)
    a = lgc_score(x, y, random_state=0, **kw)
    assert a == lgc_score(x, y, random_state=0, **kw)
    assert a != lgc_score(x, y, random_state=1, **kw)
    assert np.isfinite(a)
    # float32 agrees with float64 on centred-enough features
    assert lgc_score(x, y, head_widths=(16, 16), max_samples=30, dtype="float32") == pytest.approx(a, rel=1e-3)


def test_low_data_two_per_class():
    x, y = blobs(n_per_class=2, d=50, k=10, seed=5)
    s = lgc_score(x, y, head_widths=(32, 32), **F64)
    assert np.isfinite(s) and -1.0 <= s <= 1.0


def test_bad_input():
    x, y = blobs(n_per_class=5, d=4, k=2, seed=6)
    bad = x.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="features"):
        lgc_score(bad, y)
    with pytest.raises(ValueError, match="labels"):
        lgc_score(x, y[:3])
    with pytest.raises(ValueError, match="labels"):
        lgc_score(x, np.ones_like(y))
    with pytest.raises(ValueError, match="max_samples"):
        lgc_score(x, y, max_samples=1)
    with pytest.raises(ValueError, match="feature_norm"):
        lgc_score(x, y, feature_norm="zscore")
    with pytest.raises(ValueError, match="gram"):
        lgc_score(np.ones((10, 4)), y)                     # identical rows: constant kernel
    assert lgc_score(x.astype(np.float16), y, **F64) == pytest.approx(
        lgc_score(x.astype(np.float16).astype(np.float64), y, **F64), rel=1e-12)


def test_registered_in_registry():
    from zoorank.metrics.registry import get_metric

    assert get_metric("lgc").fn is lgc_score
