"""Which models are tied at the top: a paired bootstrap over the scored images.

A ranking score that is a mean over images (LEAD: minus the mean cross-entropy of Eq. 7,
Hu et al., CVPR 2024) has a sampling error: another draw of the same number of images could put
another model first. :func:`top_tie_set` resamples the images with replacement (the same
resample for every model, since every model scored the same images), recomputes each model's
mean and counts how often each model comes first (Efron & Tibshirani, *An Introduction to the
Bootstrap*, 1993, ch. 6). Models that come first in at least ``threshold`` (default 10%) of the
resamples form the tie set: the data do not separate them from the winner.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

__all__ = ["TieSet", "top_tie_set", "lead_image_scores"]


@dataclass(frozen=True)
class TieSet:
    """``models``: tied at the top, most often first first; ``share``: every model's share of
    the resamples in which it came first (shares of exact ties split evenly; they sum to 1).
    ``n_images`` counts the resampled units, ``unit`` names them (the scored images, or the
    history datasets for ``combined``), ``resamples`` names what was redone per draw."""

    models: list[str]
    share: dict[str, float] = field(default_factory=dict)
    n_boot: int = 0
    threshold: float = 0.1
    n_images: int = 0
    score: str = "lead"
    unit: str = "scored images"
    resamples: str = "bootstrap resamples"

    def as_dict(self) -> dict:
        return {"models": list(self.models), "share": dict(self.share), "n_boot": self.n_boot,
                "threshold": self.threshold, "n_images": self.n_images, "score": self.score,
                "unit": self.unit, "resamples": self.resamples}

    @classmethod
    def from_dict(cls, d: Mapping) -> "TieSet":
        return cls(list(d["models"]), dict(d.get("share", {})), int(d.get("n_boot", 0)),
                   float(d.get("threshold", 0.1)), int(d.get("n_images", 0)), str(d.get("score", "lead")),
                   str(d.get("unit", "scored images")), str(d.get("resamples", "bootstrap resamples")))

    def resampled(self) -> str:
        """What the shares count, e.g. "1000 bootstrap resamples of the 90 scored images"."""
        return f"{self.n_boot} {self.resamples} of the {self.n_images} {self.unit}"

    def tied_shares(self) -> str:
        """"a 60%, b 40%": each tied model's share of first places."""
        return ", ".join(f"{m} {self.share[m]:.0%}" for m in self.models)

    @classmethod
    def from_shares(cls, share: Mapping[str, float], *, n_boot: int, n_units: int, score: str,
                    threshold: float = 0.1, unit: str = "scored images",
                    resamples: str = "bootstrap resamples") -> "TieSet":
        """The models whose share of first places is >= ``threshold``, most often first first."""
        order = list(share)
        tied = sorted((m for m in order if share[m] >= threshold), key=lambda m: (-share[m], order.index(m)))
        return cls(tied, dict(share), int(n_boot), float(threshold), int(n_units), score, unit, resamples)


def top_tie_set(image_scores: Mapping[str, np.ndarray], *, n_boot: int = 1000, threshold: float = 0.1,
                seed: int = 0, score: str = "lead", chunk: int = 100) -> TieSet:
    """Tie set of the models whose score is ``mean(image_scores[model])`` (higher = better).

    Every array must have one entry per scored image, in the same image order. A model with a
    non-finite entry cannot be resampled and never comes first (its share is 0). Resample ``b``
    draws N image indices uniformly with replacement, i.e. multinomial counts ``w_b`` with
    ``sum w_b = N``, and model m's resampled score is ``S_m . w_b / N`` (one matrix product per
    chunk of resamples, so memory stays ``chunk x N``).
    """
    from zoorank.metrics.evaluation import first_place_shares

    if not image_scores:
        raise ValueError("top_tie_set needs at least one model")
    if not (isinstance(n_boot, (int, np.integer)) and n_boot >= 1):
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    models = list(image_scores)
    arrays = [np.asarray(image_scores[m], dtype=np.float64).ravel() for m in models]
    sizes = {m: a.size for m, a in zip(models, arrays)}
    if len(set(sizes.values())) != 1 or arrays[0].size == 0:
        raise ValueError(f"every model needs one score per scored image (the same images); got sizes {sizes}")
    s = np.stack(arrays)                                   # (M, N)
    usable = np.isfinite(s).all(axis=1)
    n = s.shape[1]
    wins = np.zeros(len(models))
    if usable.any():
        su = s[usable]
        rng = np.random.default_rng(seed)
        for start in range(0, int(n_boot), chunk):
            b = min(chunk, int(n_boot) - start)
            draws = rng.integers(0, n, size=(b, n))
            counts = np.zeros((b, n))
            np.add.at(counts, (np.repeat(np.arange(b), n), draws.ravel()), 1.0)
            wins[usable] += first_place_shares(su @ counts.T / n)     # means: (M_usable, b)
    share = {m: float(w / n_boot) for m, w in zip(models, wins)}
    return TieSet.from_shares(share, n_boot=int(n_boot), n_units=int(n), score=score, threshold=float(threshold))


def lead_image_scores(log_init, labels, class_eigenvalues, *, eta_t: float | None = None,
                      eigenvalue_scale: str | None = None, apply_softmax: bool = False) -> np.ndarray:
    """Per-image LEAD score ``-CE(F(x_i), y_i)`` (Eq. 7 of Hu et al., CVPR 2024, via
    :func:`zoorank.metrics.lead.evolution.evolve_logits`, torch-free); its mean is ``lead_score``
    with the same cached inputs and parameters (checked in ``tests/unit/test_ties.py``); ``None``
    takes ``lead_score``'s default."""
    from zoorank.metrics.lead.evolution import (DEFAULT_EIGENVALUE_SCALE, DEFAULT_ETA_T, evolve_logits,
                                                image_log_likelihoods)
    from zoorank.metrics.validation import encode_labels

    codes, _ = encode_labels(labels)
    eta_t = DEFAULT_ETA_T if eta_t is None else eta_t
    eigenvalue_scale = DEFAULT_EIGENVALUE_SCALE if eigenvalue_scale is None else eigenvalue_scale
    final = evolve_logits(log_init, labels, class_eigenvalues, eta_t, eigenvalue_scale=eigenvalue_scale)
    return image_log_likelihoods(final, codes, apply_softmax=apply_softmax)
