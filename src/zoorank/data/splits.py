"""Seeded stratified splits and per-class subsampling (the low-data regime).

All functions take labels (any 1-D array of hashable class values), return ``int64`` index
arrays sorted ascending (so subsets keep the dataset's order) and take ``random_state``
(int, ``None`` or a ``numpy.random.Generator``) like scikit-learn.

:func:`stratified_split` guarantees, for every class ``c`` and split ``s``, that the number of
samples of ``c`` in ``s`` is within one sample of ``n_c * fraction_s`` (it is ``floor`` or
``ceil`` of it); the leftover samples of each class are handed to the splits that are furthest
below their overall target so far, so the split sizes also stay close to ``N * fraction_s``.
Checked against scikit-learn ``sklearn/model_selection/_split.py`` (``StratifiedShuffleSplit``)
and ``sklearn/utils/extmath.py`` (``_approximate_mode``): the same floor-plus-remainder idea,
written anew for any number of splits.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from zoorank.support.labels import encode_labels

DEFAULT_SPLIT_NAMES = {2: ("train", "test"), 3: ("train", "val", "test")}


def _rng(random_state) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


def _class_name(classes_given, value) -> str:
    if classes_given is not None:
        try:
            return str(classes_given[int(value)])
        except (ValueError, TypeError, IndexError):
            pass
    return str(value)


def stratified_split(
    labels,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    random_state=0,
    *,
    names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Split indices into ``names`` (default ``train``/``val``/``test``) by class-stratified shuffling.

    Returns ``{name: sorted int64 indices}``; the splits are disjoint and cover every sample.
    A class with fewer samples than splits leaves some splits without it.
    """
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.ndim != 1 or fr.size < 1:
        raise ValueError(f"fractions must be a non-empty 1-D sequence, got {fractions!r}")
    if np.any(~np.isfinite(fr)) or np.any(fr < 0):
        raise ValueError(f"fractions must be finite and >= 0, got {fractions!r}")
    if abs(fr.sum() - 1.0) > 1e-6:
        raise ValueError(f"fractions must sum to 1, got {fractions!r} (sum {fr.sum():.6g})")
    fr = fr / fr.sum()
    if names is None:
        names = DEFAULT_SPLIT_NAMES.get(fr.size, tuple(f"split{i}" for i in range(fr.size)))
    names = tuple(names)
    if len(names) != fr.size or len(set(names)) != len(names):
        raise ValueError(f"names must be {fr.size} distinct names, got {names!r}")

    codes, _ = encode_labels(labels)
    rng = _rng(random_state)
    n_classes = int(codes.max()) + 1
    by_class = [np.flatnonzero(codes == c) for c in range(n_classes)]

    assigned_total = np.zeros(fr.size)
    target_total = np.zeros(fr.size)
    parts: list[list[np.ndarray]] = [[] for _ in names]
    for c in rng.permutation(n_classes):
        idx = rng.permutation(by_class[c])
        n_c = idx.size
        exact = n_c * fr
        base = np.floor(exact + 1e-9).astype(np.int64)
        frac = exact - base
        remainder = int(n_c - base.sum())
        target_total += exact
        counts = base.copy()
        if remainder > 0:
            deficit = target_total - (assigned_total + base)
            candidates = np.flatnonzero(frac > 1e-9)
            # largest deficit first; then largest fractional part; random tie-break
            order = np.lexsort((rng.random(candidates.size), -frac[candidates], -deficit[candidates]))
            counts[candidates[order[:remainder]]] += 1
        assigned_total += counts
        bounds = np.concatenate([[0], np.cumsum(counts)])
        for s in range(fr.size):
            parts[s].append(idx[bounds[s]:bounds[s + 1]])
    return {
        name: np.sort(np.concatenate(p)).astype(np.int64) if p else np.empty(0, np.int64)
        for name, p in zip(names, parts)
    }


def _check_per_class(per_class, name="per_class") -> int:
    if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
        raise ValueError(f"{name} must be a positive integer, got {per_class!r}")
    return int(per_class)


def subsample_per_class(
    labels,
    per_class: int,
    random_state=0,
    *,
    dataset_id: str | None = None,
    classes: Sequence[str] | None = None,
    exact: bool = False,
) -> np.ndarray:
    """At most ``per_class`` samples of every class (without replacement), sorted indices.

    A class with fewer samples keeps all of them (:func:`short_classes` names such classes);
    with ``exact=True`` that is a ``ValueError`` naming the dataset and the class instead (the
    low-data regime, where N/K must hold exactly). Classes with enough samples get the same
    draw either way. ``classes``: class names for the message when ``labels`` are codes.
    """
    per_class = _check_per_class(per_class)
    codes, values = encode_labels(labels)
    counts = np.bincount(codes, minlength=values.size)
    short = np.flatnonzero(counts < per_class)
    if exact and short.size:
        where = f"dataset {dataset_id!r}" if dataset_id else "labels"
        detail = ", ".join(f"{_class_name(classes, values[c])!r} has {counts[c]}" for c in short[:10])
        raise ValueError(
            f"{where}: cannot draw per_class={per_class} samples per class: {detail}"
            + (f" (and {short.size - 10} more classes)" if short.size > 10 else "")
        )
    return _draw(codes, per_class, _rng(random_state), whole_if_at_most=per_class - 1)


def short_classes(labels, per_class: int, classes: Sequence[str] | None = None) -> dict[str, int]:
    """``{class name: count}`` of the classes with fewer than ``per_class`` samples (those
    :func:`subsample_per_class` uses whole)."""
    per_class = _check_per_class(per_class)
    codes, values = encode_labels(labels)
    counts = np.bincount(codes, minlength=values.size)
    return {_class_name(classes, values[c]): int(counts[c]) for c in np.flatnonzero(counts < per_class)}


def cap_per_class(labels, max_per_class: int, random_state=0) -> np.ndarray:
    """At most ``max_per_class`` samples of every class (all of a smaller class), sorted indices."""
    max_per_class = _check_per_class(max_per_class, "max_per_class")
    codes, _ = encode_labels(labels)
    return _draw(codes, max_per_class, _rng(random_state), whole_if_at_most=max_per_class)


def _draw(codes: np.ndarray, per_class: int, rng: np.random.Generator, *, whole_if_at_most: int) -> np.ndarray:
    """Per class in code order: all its indices when it has <= ``whole_if_at_most``, else a
    draw of ``per_class`` without replacement. The two callers differ only in that threshold
    (a class of exactly ``per_class``: drawn, i.e. shuffled, by ``subsample_per_class``, kept
    by ``cap_per_class``), which decides how the generator advances, so both keep the draws,
    and therefore the cache keys, they always had."""
    chosen = []
    for c in range(int(codes.max()) + 1):
        idx = np.flatnonzero(codes == c)
        chosen.append(idx if idx.size <= whole_if_at_most else rng.choice(idx, per_class, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def low_data_subsets(
    labels,
    per_class: int,
    repeats: int,
    random_state=0,
    *,
    dataset_id: str | None = None,
    classes: Sequence[str] | None = None,
) -> list[np.ndarray]:
    """``repeats`` independent draws of exactly ``per_class`` per class (e.g. N/K = 2, 5 repeats;
    a class with fewer samples is a ``ValueError``).

    Repeat ``r`` uses a child seed of ``random_state`` (``SeedSequence.spawn``), so adding
    repeats never changes the earlier ones.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, (int, np.integer)) or repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {repeats!r}")
    if isinstance(random_state, np.random.Generator):
        children = random_state.spawn(int(repeats))
    else:
        children = [np.random.default_rng(s) for s in np.random.SeedSequence(random_state).spawn(int(repeats))]
    return [
        subsample_per_class(labels, per_class, child, dataset_id=dataset_id, classes=classes, exact=True)
        for child in children
    ]
