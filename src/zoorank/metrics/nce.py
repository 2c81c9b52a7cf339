"""NCE: Negative Conditional Entropy (Tran et al., "Transferability and Hardness of
Supervised Classification Tasks", ICCV 2019).

With source labels ``z_i = argmax_c source_probs[i, c]`` (the backbone's own classifier's
hard prediction, as in thuml/LogME) and target labels ``y_i``:

    P(y, z) = #{i : y_i = y, z_i = z} / N
    NCE     = -H(Y | Z) = sum_{y,z} P(y, z) * log( P(y, z) / P(z) )

Higher is better (<= 0; 0 when the source label determines the target label).
Checked against thuml/LogME ``NCE.py`` (its ``+1e-20`` inside the log only matters for
empty cells, which contribute 0 here exactly).
"""
from __future__ import annotations

import numpy as np

from zoorank.metrics.validation import check_features_labels, probability_rows


def nce_from_labels(source_codes: np.ndarray, codes: np.ndarray, n_classes: int) -> float:
    """``-H(Y|Z)`` of integer source labels and target codes (both (N,), non-negative)."""
    n = codes.shape[0]
    z = np.asarray(source_codes).reshape(-1)
    if not (z.min() >= 0 and z.max() <= 4 * n + 1024):   # sparse ids: compact them first
        _, z = np.unique(z, return_inverse=True)
    n_src = int(z.max()) + 1
    joint = np.bincount(z * n_classes + codes,
                        minlength=n_src * n_classes).reshape(n_src, n_classes) / n
    joint = joint[joint.sum(axis=1) > 0]                  # drop source classes never predicted
    pz = joint.sum(axis=1, keepdims=True)                 # > 0 for every kept z
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log((joint / pz)[nz])))


def nce_score(features, labels, *, source_probs, random_state: int = 0) -> float:
    """NCE (Tran et al., ICCV 2019): negative conditional entropy of the target labels
    given the source classifier's hard labels, ``-H(Y|Z)``, ``Z = argmax source_probs``.

    Parameters
    ----------
    features : (N, D) array. Only its shape is checked (NCE needs only the source
        predictions, so the feature values are never read).
    labels : (N,) target labels.
    source_probs : (N, C) source-task probabilities; source labels are their row argmax
        (first maximum on exact ties, as ``np.argmax``).
    random_state : unused (deterministic).

    Formula: ``NCE = sum_{y,z} P(y,z) log P(y|z)`` with empirical counts. Higher is better.
    Checked against thuml/LogME ``NCE.py``.
    """
    chk = check_features_labels(features, labels, dtype=None, finite=False)
    # argmax of the rows as given (taken in the validation pass): dividing a row by its
    # positive sum keeps its argmax
    _, _, source = probability_rows(source_probs, name="source_probs", n_rows=chk.n_samples,
                                    argmax=True, exact_sums=False)
    return nce_from_labels(source, chk.labels, chk.n_classes)
