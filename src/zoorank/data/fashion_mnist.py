"""Fashion-MNIST from the Debian package ``dataset-fashion-mnist`` (70,000 x 10, 28x28 grey).

The four gzip'd IDX files in ``/usr/share/datasets/fashion-mnist/`` are parsed directly
(train 60,000 then t10k 10,000, in file order); pixels are kept as in the files (bright
object on a black background). IDX format: big-endian magic ``0 0 <type> <ndim>``, then
``ndim`` uint32 sizes, then the data; checked against zalandoresearch/fashion-mnist
``utils/mnist_reader.py``.
"""
from __future__ import annotations

import gzip
import os
from functools import lru_cache

import numpy as np

from .base import ArraySource, LabelledImages, require_path

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FILES = (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"))

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (optionally ``.gz``) into a native-endian numpy array."""
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file (magic {raw[:4]!r})")
    ndim = raw[3]
    dims = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4).astype(np.int64)
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise ValueError(f"{path}: truncated IDX file ({len(raw) - offset} data bytes, expected {expected})")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(tuple(dims)).astype(dtype.newbyteorder("="))


def _find(root, stem: str):
    for name in (stem + ".gz", stem):
        p = os.path.join(root, name)
        if os.path.exists(p):
            return p
    return require_path(os.path.join(root, stem + ".gz"), what="Fashion-MNIST file", debian=DEBIAN_PACKAGE)


@lru_cache(maxsize=2)
def load_arrays(root: str = DEFAULT_ROOT) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 (70000, 28, 28), labels int64 (70000,))``, read-only, memoised."""
    require_path(root, what="Fashion-MNIST directory", debian=DEBIAN_PACKAGE)
    xs, ys = [], []
    for img_stem, lab_stem in FILES:
        x = read_idx(_find(root, img_stem))
        y = read_idx(_find(root, lab_stem))
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{root}: {img_stem} has {x.shape[0]} images but {lab_stem} {y.shape[0]} labels")
        xs.append(x.astype(np.uint8, copy=False))
        ys.append(y.astype(np.int64))
    images, labels = np.concatenate(xs), np.concatenate(ys)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def load(*, root=None) -> LabelledImages:
    images, labels = load_arrays(os.fspath(root) if root is not None else DEFAULT_ROOT)
    return LabelledImages("fashion_mnist", CLASSES, labels, ArraySource(images, "fashion_mnist"))
