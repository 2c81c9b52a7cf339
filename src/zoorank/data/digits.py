"""scikit-learn's ``load_digits`` (UCI optical digits): 1,797 x 10, 8x8 grey.

Pixel values are counts 0..16; they are scaled to 0..255 (``round(v * 255 / 16)``), so the
ink is bright on black, as in MNIST.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .base import ArraySource, LabelledImages

CLASSES = [str(d) for d in range(10)]


@lru_cache(maxsize=1)
def load_arrays() -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (1797, 8, 8), labels int64 (1797,))``, read-only, memoised."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load(*, root=None) -> LabelledImages:
    images, labels = load_arrays()
    return LabelledImages("digits", CLASSES, labels, ArraySource(images, "digits"))
