"""LGC: Label-Gradient Correlation (Deshpande et al. 2021, "A linearized framework and a new
benchmark for model selection for fine-tuning", arXiv 2102.00084).

In the linearised model of fine-tuning, ``f_w(x) ~ f_w0(x) + grad_w f_w0(x) . (w - w0)``, the
training dynamics are governed by the gradient (NTK) Gram matrix
``Theta_ij = grad_w f(x_i) . grad_w f(x_j)``; a backbone whose gradients already correlate
with the labels needs to move less. LGC is the centred alignment of Theta with the label
matrix Y (``Y_ij = +1`` same class, ``-1`` otherwise):

    LGC = <H Theta H, H Y H>_F / (||H Theta H||_F ||H Y H||_F),   H = I - 11^T / n.

Higher is better (no sign change).

Choices (the paper linearises the whole backbone; we only have its features):

- Theta is the NTK of a random Kaiming-initialised MLP head (widths ``(1024, 2048)``,
  ReLU, K outputs) put on the frozen features, "sum of logits" form
  ``grad_theta(sum_j h_j(x_i)) . grad_theta(sum_j h_j(x_j))`` -- the head and its exact
  closed-form Gram are shared with LEAD (:mod:`zoorank.metrics.lead`).
- Theta is n x n, so for N > ``max_samples`` (default 2000) a seeded, stratified,
  order-independent subset is used
  (:func:`zoorank.metrics._common.stratified_subsample`: proportional allocation, at
  least two samples per class, rows chosen by a seeded hash of their features).
- ``feature_norm="none"``: raw features into the head, as the backbone would feed it.
- ``dtype="float64"``: for non-negative (post-ReLU) features the Gram is dominated by a
  constant that the centring removes; float32 rounding (~1e-7 of that constant) would
  then be a visible part of the centred Gram. n = 2000 costs < 1 s in float64.

No public reference implementation of LGC was available; checked against the formula of
the paper (the unit test builds the Jacobian explicitly with autograd and the alignment
with the explicit centring matrix).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from zoorank.metrics._common import stratified_subsample
from zoorank.metrics.kernel_alignment import centered_alignment, label_similarity
from zoorank.metrics.lead import (
    DEFAULT_HEAD_WIDTHS,
    head_ntk_gram,
    init_random_head,
    normalise_features,
    resolve_dtype,
    to_torch,
)
from zoorank.metrics.validation import check_features_labels


def lgc_score(features, labels, *, head_widths: Sequence[int] = DEFAULT_HEAD_WIDTHS,
              max_samples: int | None = 2000, feature_norm: str = "none", dtype="float64",
              device="cpu", random_state: int = 0, sample_ids=None) -> float:
    """Label-Gradient Correlation (Deshpande et al. 2021): centred alignment between the
    sum-of-logits NTK Gram of a random MLP head on the features and the +1/-1 label
    matrix, on a stratified subset of at most about ``max_samples`` samples, chosen by the
    samples' identities ``sample_ids`` (canonical dataset positions; default: row positions)."""
    chk = check_features_labels(features, labels)
    if max_samples is not None and (not isinstance(max_samples, (int, np.integer)) or max_samples < 2):
        raise ValueError(f"max_samples must be None or an integer >= 2, got {max_samples!r}")
    tdtype = resolve_dtype(dtype)
    idx = stratified_subsample(chk.features, chk.labels, max_samples, random_state=random_state,
                               sample_ids=sample_ids)
    codes = chk.labels[idx]
    if feature_norm == "standard":                      # statistics of all N rows
        x = normalise_features(to_torch(chk.features, tdtype, device), "standard")[
            torch.as_tensor(idx, device=device)]
    else:
        x = normalise_features(to_torch(chk.features[idx], tdtype, device), feature_norm)
    head = init_random_head(x.shape[1], chk.n_classes, head_widths, random_state=random_state,
                            dtype=tdtype, device=device)
    with torch.no_grad():
        gram = head_ntk_gram(x, head).to(torch.float64).cpu().numpy()
    return centered_alignment(gram, label_similarity(codes))
