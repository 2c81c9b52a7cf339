"""Leave-one-out k-nearest-neighbour accuracy on frozen features (kNN transferability
baseline, Sorkhei et al. 2025).

For each query sample i, its k nearest neighbours among the *other* N-1 samples vote
(one vote each); the predicted class is the majority, ties broken in favour of the tied
class with the nearest neighbour (a rule that does not depend on how classes are
numbered). Score = fraction of queries whose prediction equals their label. Higher is
better.

Similarity: cosine (``normalize=True``, default: rows L2-normalised, inner product) or
Euclidean (``normalize=False``: squared distance ``|a|^2 + |b|^2 - 2 a.b``).

Cost: an N x N similarity in row chunks (float32 matrix products and top-k with torch,
~256 MB per chunk): O(Q N D) for Q queries. Exact LOO on 50,000 x 2048 is ~5e12 flops
(157 CPU-s single-threaded; 10,000 queries: 34 CPU-s; 10,000 x 1280 exact: 3.3 CPU-s),
so by default about ``max_queries=10_000`` queries
(a seeded class-stratified subset, neighbours still searched among all N samples) are
evaluated; ``max_queries=None`` gives the exact all-sample LOO accuracy. The subset is
``zoorank.metrics._common.stratified_subsample`` (each class keeps its rows with the
smallest seeded hash of the row's feature bits, about ``max_queries * n_k / N`` of them,
at least one), so it does not depend on the order of the samples or on how the classes are
numbered.

There is no single public reference implementation to check against; the brute-force
loop in the unit tests is the independent check.
"""
from __future__ import annotations

import numpy as np

from zoorank.metrics._common import stratified_subsample
from zoorank.metrics.validation import check_features_labels

_CHUNK_BYTES = 256 * 2 ** 20


def knn_neighbours(x: np.ndarray, queries: np.ndarray, k: int, *, normalize: bool = True,
                   dtype=np.float32) -> np.ndarray:
    """(Q, k) indices of the k nearest neighbours of ``x[queries]`` among all rows of ``x``
    except the query itself, nearest first.

    Similarities are computed in ``dtype`` (float32 default) in row chunks with torch
    (matrix product + ``topk``; numpy's ``argpartition`` is ~20x slower on 50,000-wide rows).
    """
    import torch

    xs = np.asarray(x, dtype=np.float64)
    if normalize:
        norms = np.linalg.norm(xs, axis=1, keepdims=True)
        xs = xs / np.where(norms > 0, norms, 1.0)
    xt = torch.from_numpy(np.ascontiguousarray(xs, dtype=dtype))
    sq = None if normalize else (xt * xt).sum(dim=1)
    n = xt.shape[0]
    chunk = max(1, _CHUNK_BYTES // (n * np.dtype(dtype).itemsize))
    qt = torch.from_numpy(np.asarray(queries, dtype=np.int64))
    out = np.empty((qt.shape[0], k), dtype=np.int64)
    with torch.no_grad():
        for lo in range(0, qt.shape[0], chunk):
            q = qt[lo:lo + chunk]
            sim = xt[q] @ xt.T                              # (c, N) higher = nearer
            if sq is not None:                              # minus squared distance, up to |q|^2
                sim = 2.0 * sim - sq[None, :]
            sim[torch.arange(q.shape[0]), q] = -torch.inf   # leave one out
            out[lo:lo + chunk] = torch.topk(sim, k, dim=1, largest=True, sorted=True).indices.numpy()
    return out


def vote(neighbour_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Majority label per row of (Q, k) neighbour labels (nearest first); ties go to the
    tied class that has the nearest neighbour."""
    q, k = neighbour_labels.shape
    counts = np.zeros((q, n_classes), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(q), k), neighbour_labels.reshape(-1)), 1)
    tied = counts == counts.max(axis=1, keepdims=True)            # (Q, K)
    in_tied = np.take_along_axis(tied, neighbour_labels, axis=1)   # (Q, k)
    first = np.argmax(in_tied, axis=1)                             # nearest neighbour of a tied class
    return neighbour_labels[np.arange(q), first]


def knn_score(features, labels, *, k: int = 10, normalize: bool = True,
              max_queries: int | None = 10_000, random_state: int = 0, sample_ids=None) -> float:
    """Leave-one-out kNN accuracy (Sorkhei et al. 2025, kNN as a transferability
    estimate): ``mean_i [ majority(y_j : j in kNN_{-i}(x_i)) == y_i ]``.

    Parameters
    ----------
    k : neighbours (default 10; capped at N-1).
    normalize : L2-normalise rows first (cosine similarity; default). ``False`` uses
        Euclidean distance.
    max_queries : evaluate about this many queries (seeded, class-stratified,
        order-independent subset; at least one per class); ``None`` = all N (exact LOO;
        cost O(N^2 D)).
    random_state : seed of the query subset (irrelevant when N <= max_queries).
    sample_ids : (N,) sample identities that choose the query subset (canonical dataset
        positions; default: row positions).

    Higher is better. No public reference implementation; checked against a brute-force
    loop.
    """
    chk = check_features_labels(features, labels)
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k}")
    if max_queries is not None and max_queries < 1:
        raise ValueError(f"max_queries must be >= 1 or None, got {max_queries}")
    n = chk.n_samples
    k = int(min(k, n - 1))
    queries = np.sort(stratified_subsample(chk.features, chk.labels, max_queries, random_state=random_state,
                                           min_per_class=1, canonical_order=False,
                                           sample_ids=sample_ids))
    nbrs = knn_neighbours(chk.features, queries, k, normalize=normalize)
    pred = vote(chk.labels[nbrs], chk.n_classes)
    return float(np.mean(pred == chk.labels[queries]))
