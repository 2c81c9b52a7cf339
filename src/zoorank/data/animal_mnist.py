"""Animal-MNIST from the pip package ``animal-mnist==0.4`` (install ``--no-deps``: it pins
tensorflow). 10,000 x 10 animal silhouettes, 28x28 grey, 1,000 per class.

The package ships two gzip'd pickles of numpy arrays under
``animal_mnist/data/Animal_MNIST/``. We locate them with ``importlib.util.find_spec`` (the
package's own loader imports tensorflow) and unpickle them with a *restricted* unpickler
that only rebuilds numpy arrays, so a tampered file cannot run code. Label ``k`` is the k-th
animal in the package's alphabetical list (Bear .. Zebra, from its description).
"""
from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
from functools import lru_cache

import numpy as np

from .base import ArraySource, LabelledImages, MissingAssetError, require_path

PIP_PACKAGE = "animal-mnist==0.4 --no-deps"
CLASSES = ["bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"]
DATA_FILE = "animal_data_version_3.gz"
LABEL_FILE = "animal_label_version_3.gz"

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: only numpy arrays are allowed")
        if module.startswith("numpy.core"):
            module = "numpy._core" + module[len("numpy.core"):]  # numpy 2 name, no deprecation warning
        return super().find_class(module, name)


def _load_array(path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        obj = _NumpyOnlyUnpickler(f).load()
    if not isinstance(obj, np.ndarray):
        raise ValueError(f"{path}: expected a numpy array, got {type(obj).__name__}")
    return obj


def default_root() -> str:
    spec = importlib.util.find_spec("animal_mnist")
    if spec is None or not spec.submodule_search_locations:
        raise MissingAssetError(
            f"Python package animal_mnist is not installed: `pip install {PIP_PACKAGE}` "
            "or run scripts/setup.sh"
        )
    return os.path.join(spec.submodule_search_locations[0], "data", "Animal_MNIST")


@lru_cache(maxsize=2)
def load_arrays(root: str) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (10000, 28, 28), labels int64 (10000,))``, read-only, memoised."""
    x = _load_array(require_path(os.path.join(root, DATA_FILE), what="Animal-MNIST images", pip=PIP_PACKAGE))
    y = _load_array(require_path(os.path.join(root, LABEL_FILE), what="Animal-MNIST labels", pip=PIP_PACKAGE))
    if x.ndim != 3 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{root}: unexpected Animal-MNIST shapes {x.shape} / {y.shape}")
    if x.dtype != np.uint8:
        x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= len(CLASSES):
        raise ValueError(f"{root}: Animal-MNIST labels outside 0..{len(CLASSES) - 1}")
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


def load(*, root=None) -> LabelledImages:
    images, labels = load_arrays(os.fspath(root) if root is not None else default_root())
    return LabelledImages("animal_mnist", CLASSES, labels, ArraySource(images, "animal_mnist"))
