"""The LEAD score (Hu et al., CVPR 2024; no official code, implemented from the paper):
``-(1/N) sum_i CE(F(x_i), y_i)`` with F from Eq. 7 (:func:`~zoorank.metrics.lead.evolve_logits`);
higher is better (the paper's cross-entropy loss, negated).

The paper's LEAD takes ``class_eigenvalues`` from the whole network ``F = h o f``
(:func:`~zoorank.metrics.lead.network_ntk_eigenvalues`, which needs the backbone and the images:
the pipeline computes it as a stage and passes it here). Given features only, ``lead_score``
falls back to the head-only kernel (``params="head"``, a named deviation). ``docs/lead.md``.
"""
from __future__ import annotations

from typing import Sequence

from zoorank.metrics._common import sample_keys
from zoorank.metrics.lead.evolution import (
    DEFAULT_EIGENVALUE_SCALE,
    DEFAULT_ETA_T,
    _evolve,
    check_eigenvalues,
    image_log_likelihoods,
)
from zoorank.metrics.lead.head_ntk import (
    DEFAULT_HEAD_WIDTHS,
    DEFAULT_SAMPLES_PER_CLASS,
    _class_ntk_checked,
)
from zoorank.metrics.lead.svm import DEFAULT_NORMALISATION, DEFAULT_TEMPERATURE, _svm_logits_checked
from zoorank.metrics.validation import check_features_labels, check_matrix, check_probabilities

#: LEAD's head input (v3, issue 13): features standardised per coordinate over the N rows, the
#: explicit normalisation that makes lambda comparable across backbones (docs/lead.md); the NTK
#: functions' own default stays the paper's raw features ("none")
LEAD_HEAD_INPUT = "standard"


def lead_score(features, labels, *, log_init=None, class_eigenvalues=None, eta_t: float = DEFAULT_ETA_T,
               eigenvalue_scale: str = DEFAULT_EIGENVALUE_SCALE, apply_softmax: bool = False,
               svm: str = "ls_ovr", C: float = 1.0, normalisation: str = DEFAULT_NORMALISATION,
               temperature: float = DEFAULT_TEMPERATURE, cross_fit: int = 5,
               max_fit_samples: int | None = 20000, svm_feature_norm: str = "l2",
               samples_per_class: int = DEFAULT_SAMPLES_PER_CLASS,
               head_widths: Sequence[int] = DEFAULT_HEAD_WIDTHS, ntk_method: str = "trace",
               ntk_feature_norm: str = LEAD_HEAD_INPUT, dtype="float32", device="cpu",
               random_state: int = 0, sample_ids=None) -> float:
    """LEAD score: mean over the N images of ``log F_y`` (Eq. 7, ``apply_softmax=False``: F is a
    probability vector) or ``log_softmax(F)_y`` (``True``: F as logits).

    ``log_init`` (N, K) and ``class_eigenvalues`` (K,) are the cached outputs of
    :func:`~zoorank.metrics.lead.svm_logits` and of the NTK stage
    (:func:`~zoorank.metrics.lead.network_ntk_eigenvalues`, the paper's kernel); missing ones are
    computed here from the features with the stage parameters given (``svm_feature_norm`` /
    ``ntk_feature_norm`` are each stage's ``feature_norm``; the NTK then is the head-only
    :func:`~zoorank.metrics.lead.class_ntk_eigenvalues`).
    """
    chk = check_features_labels(features, labels)
    n, k = chk.n_samples, chk.n_classes
    base_keys = None
    if log_init is None or class_eigenvalues is None:
        base_keys = sample_keys(n, sample_ids, random_state)
    if log_init is None:
        li = _svm_logits_checked(chk, normalisation=normalisation, temperature=temperature, svm=svm, C=C,
                                 cross_fit=cross_fit, max_fit_samples=max_fit_samples,
                                 feature_norm=svm_feature_norm, random_state=random_state,
                                 dtype=dtype, device=device, base_keys=base_keys)
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
