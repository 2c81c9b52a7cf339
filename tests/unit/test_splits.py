"""Seeded stratified splits and per-class subsampling."""
from __future__ import annotations

import numpy as np
import pytest

from zoorank.data import cap_per_class, low_data_subsets, stratified_split, subsample_per_class
from zoorank.data.splits import short_classes

LABEL_SETS = {
    "balanced": np.repeat(np.arange(10), 50),
    "imbalanced": np.concatenate([np.full(n, c) for c, n in enumerate([3, 7, 11, 50, 97, 4, 5, 123])]),
    "random": np.random.default_rng(3).integers(0, 13, 1001),
    "strings": np.array(["cat", "dog", "emu"] * 9 + ["dog"] * 4),
}


@pytest.mark.parametrize("name", list(LABEL_SETS))
@pytest.mark.parametrize("fractions", [(0.6, 0.2, 0.2), (0.5, 0.5), (0.7, 0.1, 0.1, 0.1)])
def test_stratified_split_is_a_stratified_partition(name, fractions):
    labels = LABEL_SETS[name]
    splits = stratified_split(labels, fractions, random_state=0)
    assert len(splits) == len(fractions)
    if len(fractions) == 3:
        assert list(splits) == ["train", "val", "test"]
    together = np.concatenate(list(splits.values()))
    np.testing.assert_array_equal(np.sort(together), np.arange(labels.size))  # disjoint, complete
    for f, idx in zip(fractions, splits.values()):
        assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
        for c in np.unique(labels):
            n_c = np.sum(labels == c)
            got = np.sum(labels[idx] == c)
            assert abs(got - n_c * f) < 1.0, (c, got, n_c * f)  # within one sample of its share
        assert abs(idx.size - labels.size * f) <= 1.0 + 1e-9  # split sizes on target too


def test_stratified_split_is_reproducible_and_seed_dependent():
    labels = LABEL_SETS["random"]
    a = stratified_split(labels, random_state=7)
    b = stratified_split(labels, random_state=7)
    c = stratified_split(labels, random_state=8)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert any(not np.array_equal(a[k], c[k]) for k in a)
    rng_a = stratified_split(labels, random_state=np.random.default_rng(5))
    rng_b = stratified_split(labels, random_state=np.random.default_rng(5))
    np.testing.assert_array_equal(rng_a["test"], rng_b["test"])


def test_stratified_split_validates_arguments():
    labels = np.arange(10) % 2
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(labels, (0.5, 0.2))
    with pytest.raises(ValueError, match=">= 0"):
        stratified_split(labels, (1.2, -0.2))
    with pytest.raises(ValueError, match="1-D"):
        stratified_split(labels.reshape(2, 5))
    with pytest.raises(ValueError, match="empty"):
        stratified_split([])
    with pytest.raises(ValueError, match="names"):
        stratified_split(labels, (0.5, 0.5), names=("a", "a"))
    named = stratified_split(labels, (0.5, 0.5), names=("fit", "score"))
    assert set(named) == {"fit", "score"}


@pytest.mark.parametrize("per_class", [1, 2, 3])
def test_subsample_per_class_exact_counts(per_class):
    labels = LABEL_SETS["imbalanced"]
    idx = subsample_per_class(labels, per_class, random_state=0)
    assert idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
    values, counts = np.unique(labels[idx], return_counts=True)
    np.testing.assert_array_equal(values, np.unique(labels))
    assert np.all(counts == per_class)
    np.testing.assert_array_equal(idx, subsample_per_class(labels, per_class, random_state=0))


def test_subsample_per_class_exact_names_dataset_and_short_class():
    labels = np.array([0] * 10 + [1] * 2 + [2] * 10)
    with pytest.raises(ValueError, match=r"dataset 'toy'.*'dogs' has 2"):
        subsample_per_class(labels, 3, dataset_id="toy", classes=["cats", "dogs", "emus"], exact=True)
    with pytest.raises(ValueError, match="'1' has 2"):
        subsample_per_class(labels, 3, exact=True)
    with pytest.raises(ValueError, match="positive integer"):
        subsample_per_class(labels, 0)


def test_subsample_per_class_means_at_most():
    """A short class is used whole; the others get the same draw as when every class is big
    enough (so cache keys of rankings that used to work do not move)."""
    labels = np.array([0] * 10 + [1] * 2 + [2] * 10)
    idx = subsample_per_class(labels, 3, random_state=0)
    np.testing.assert_array_equal(np.bincount(labels[idx]), [3, 2, 3])
    assert set(np.flatnonzero(labels == 1)) <= set(idx)
    assert short_classes(labels, 3, classes=["cats", "dogs", "emus"]) == {"dogs": 2}
    assert short_classes(labels, 2) == {}
    # classes with enough images get exactly the draw they get when no class is short
    short_last = np.array([0] * 10 + [1] * 10 + [2] * 2)
    big_last = np.array([0] * 10 + [1] * 10 + [2] * 5)
    ours = subsample_per_class(short_last, 3, random_state=0)
    ref = subsample_per_class(big_last, 3, random_state=0, exact=True)
    np.testing.assert_array_equal(ours[:6], ref[:6])
    np.testing.assert_array_equal(ours[6:], [20, 21])


def test_low_data_subsets_exact_distinct_and_reproducible():
    labels = LABEL_SETS["random"]
    subsets = low_data_subsets(labels, per_class=2, repeats=5, random_state=0)
    assert len(subsets) == 5
    for idx in subsets:
        _, counts = np.unique(labels[idx], return_counts=True)
        assert counts.size == np.unique(labels).size and np.all(counts == 2)
    assert len({tuple(idx) for idx in subsets}) == 5  # different draws
    again = low_data_subsets(labels, per_class=2, repeats=5, random_state=0)
    for x, y in zip(subsets, again):
        np.testing.assert_array_equal(x, y)
    more = low_data_subsets(labels, per_class=2, repeats=7, random_state=0)
    for x, y in zip(subsets, more):  # adding repeats keeps the first ones
        np.testing.assert_array_equal(x, y)
    other = low_data_subsets(labels, per_class=2, repeats=5, random_state=1)
    assert not np.array_equal(other[0], subsets[0])
    with pytest.raises(ValueError, match="repeats"):
        low_data_subsets(labels, 2, 0)


def test_cap_per_class_keeps_small_classes_whole():
    labels = LABEL_SETS["imbalanced"]
    idx = cap_per_class(labels, 5, random_state=0)
    counts = np.bincount(labels[idx])
    np.testing.assert_array_equal(counts, np.minimum(np.bincount(labels), 5))
