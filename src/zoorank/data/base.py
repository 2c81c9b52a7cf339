"""``LabelledImages``: the one container every dataset loader returns.

A dataset is a *source* of images (an in-memory uint8 array, a list of files decoded lazily,
or a list of glyphs rendered lazily) plus integer labels and class names. ``subset`` makes a
cheap view (no pixels copied); ``fingerprint`` is a content digest to key feature caches on:
dataset id + the source's digest (array bytes, or sorted file names and sizes, or the render
recipe) + the selected rows.
"""
from __future__ import annotations

import hashlib
import os
from typing import Callable, Protocol, Sequence

import numpy as np

from .images import DEFAULT_MAX_PIXELS, decode_image, grey_to_rgb


def _digest(*parts) -> str:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str((p.dtype.str, p.shape)).encode())
            h.update(np.ascontiguousarray(p).data)
        elif isinstance(p, bytes):
            h.update(p)
        else:
            h.update(repr(p).encode())
        h.update(b"\x00")
    return h.hexdigest()


class ImageSource(Protocol):
    """Where pixels come from. ``get(i)`` returns ``uint8 (H, W, 3)`` RGB."""

    def __len__(self) -> int: ...
    def get(self, i: int) -> np.ndarray: ...
    def get_many(self, rows: np.ndarray) -> np.ndarray | list: ...
    def describe(self, i: int) -> str: ...
    def digest(self) -> str: ...
    @property
    def uniform_size(self) -> tuple[int, int] | None: ...


class ArraySource:
    """Images held in memory as ``uint8`` ``(N, H, W)`` (grey) or ``(N, H, W, 3)`` (RGB).

    Grey images are expanded to RGB only when read, so Fashion-MNIST stays 55 MB.
    """

    def __init__(self, array: np.ndarray, name: str = "array"):
        array = np.asarray(array)
        if array.dtype != np.uint8:
            raise ValueError(f"{name}: images must be uint8, got {array.dtype}")
        if array.ndim == 4 and array.shape[-1] == 1:
            array = array[..., 0]
        if not (array.ndim == 3 or (array.ndim == 4 and array.shape[-1] == 3)):
            raise ValueError(f"{name}: expected (N,H,W) or (N,H,W,3) uint8 images, got shape {array.shape}")
        self.array = array
        self.name = name
        self._digest: str | None = None

    def __len__(self) -> int:
        return int(self.array.shape[0])

    @property
    def uniform_size(self) -> tuple[int, int]:
        return int(self.array.shape[1]), int(self.array.shape[2])

    def get(self, i: int) -> np.ndarray:
        img = self.array[i]
        return grey_to_rgb(img) if img.ndim == 2 else img.copy()

    def get_many(self, rows: np.ndarray) -> np.ndarray:
        batch = self.array[np.asarray(rows, dtype=np.int64)]
        return grey_to_rgb(batch) if batch.ndim == 3 else batch

    def describe(self, i: int) -> str:
        return f"{self.name}[{i}]"

    def digest(self) -> str:
        if self._digest is None:
            self._digest = _digest("array", self.array)
        return self._digest


class FileSource:
    """Image files decoded lazily with :func:`zoorank.data.images.decode_image`.

    ``root``: the digest uses paths relative to it (so a moved copy of the same files keeps its
    cache key) plus file sizes. ``sizes``: header sizes (W, H) from the load-time scan, used to
    tell whether all images share one size.
    """

    def __init__(
        self,
        paths: Sequence,
        *,
        root=None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        max_side: int | None = None,
        sizes: Sequence | None = None,
    ):
        self.paths = tuple(os.fspath(p) for p in paths)
        self.root = os.fspath(root) if root is not None else None
        self.max_pixels = max_pixels
        self.max_side = max_side
        self._uniform = None
        if sizes is not None and len(sizes) == len(self.paths) and len(self.paths):
            hw = {(s[1], s[0]) for s in sizes if s is not None}
            if len(hw) == 1:
                h, w = next(iter(hw))
                if max_side is None or max(h, w) <= max_side:
                    self._uniform = (int(h), int(w))
        self._digest: str | None = None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def uniform_size(self) -> tuple[int, int] | None:
        return self._uniform

    def get(self, i: int) -> np.ndarray:
        return decode_image(self.paths[i], max_pixels=self.max_pixels, max_side=self.max_side)

    def get_many(self, rows: np.ndarray) -> list:
        return [self.get(int(r)) for r in rows]

    def describe(self, i: int) -> str:
        return self.paths[i]

    def _rel(self, p: str) -> str:
        return os.path.relpath(p, self.root) if self.root else p

    def digest(self) -> str:
        if self._digest is None:
            entries = sorted((self._rel(p), os.path.getsize(p)) for p in self.paths)
            order = [self._rel(p) for p in self.paths]  # row order matters for indices
            self._digest = _digest("files", entries, order, self.max_pixels, self.max_side)
        return self._digest


class RenderSource:
    """Images rendered on demand by a module-level function ``render(item) -> uint8 image``.

    ``recipe`` is everything that determines the pixels besides the items (font files and
    sizes, Pillow/FreeType versions) and goes into the digest. The render function should be
    memoised (``functools.lru_cache``) by its module.
    """

    def __init__(self, items: Sequence, render: Callable, *, recipe=(), size_hw: tuple[int, int] | None = None, name="render"):
        self.items = tuple(items)
        self.render = render
        self.recipe = recipe
        self.size_hw = size_hw
        self.name = name
        self._digest: str | None = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def uniform_size(self) -> tuple[int, int] | None:
        return self.size_hw

    def get(self, i: int) -> np.ndarray:
        img = self.render(self.items[i])
        return grey_to_rgb(img) if img.ndim == 2 else np.array(img, copy=True)

    def get_many(self, rows: np.ndarray) -> np.ndarray | list:
        imgs = [self.get(int(r)) for r in rows]
        return np.stack(imgs) if self.size_hw is not None and imgs else imgs

    def describe(self, i: int) -> str:
        return f"{self.name}:{self.items[i]!r}"

    def digest(self) -> str:
        if self._digest is None:
            self._digest = _digest("render", self.name, self.recipe, self.items)
        return self._digest


class CallableSource:
    """Images fetched one by one from an indexable object returning ``(PIL image, target)``
    (torchvision datasets without an in-memory array). ``key`` identifies the content."""

    def __init__(self, dataset, key, *, name="dataset"):
        self.dataset = dataset
        self.key = key
        self.name = name
        self._n = len(dataset)

    def __len__(self) -> int:
        return self._n

    @property
    def uniform_size(self):
        return None

    def get(self, i: int) -> np.ndarray:
        from .images import to_rgb

        item = self.dataset[int(i)]
        img = item[0] if isinstance(item, (tuple, list)) else item
        if isinstance(img, np.ndarray):
            return grey_to_rgb(img) if img.ndim == 2 else np.asarray(img, dtype=np.uint8)
        return to_rgb(img)

    def get_many(self, rows):
        return [self.get(int(r)) for r in rows]

    def describe(self, i: int) -> str:
        return f"{self.name}[{i}]"

    def digest(self) -> str:
        return _digest("callable", self.key, self._n)


class LabelledImages:
    """Labelled images: ``classes[labels[i]]`` is the class of ``image(i)``.

    Attributes: ``dataset_id``, ``classes`` (list of class names; a subset keeps all of them so
    label codes stay stable), ``labels`` (int64, one per image), ``rows`` (int64 positions of
    these images in the full dataset). ``image(i)`` is ``uint8 (H, W, 3)`` RGB, decoded or
    rendered lazily for file/render datasets.
    """

    def __init__(self, dataset_id: str, classes: Sequence[str], labels, source: ImageSource, rows=None):
        self.dataset_id = str(dataset_id)
        self.classes = [str(c) for c in classes]
        labels = np.asarray(labels, dtype=np.int64)
        if labels.ndim != 1:
            raise ValueError(f"{dataset_id}: labels must be 1-D, got shape {labels.shape}")
        self._source = source
        self.rows = np.arange(len(source), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        if labels.shape[0] != self.rows.shape[0]:
            raise ValueError(f"{dataset_id}: {labels.shape[0]} labels for {self.rows.shape[0]} images")
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise ValueError(f"{dataset_id}: labels must be codes in 0..{len(self.classes) - 1}")
        self.labels = labels
        self.labels.flags.writeable = False
        self.rows.flags.writeable = False

    # -- basic protocol -------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        size = self.image_size
        size_s = f"{size[0]}x{size[1]}" if size else "variable size"
        return (f"LabelledImages({self.dataset_id!r}, {len(self)} images, {self.n_classes} classes, "
                f"{size_s})")

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def source(self) -> ImageSource:
        return self._source

    @property
    def image_size(self) -> tuple[int, int] | None:
        """``(H, W)`` when every image has that size (array/render datasets), else ``None``."""
        return self._source.uniform_size

    @property
    def in_memory(self) -> bool:
        """True when the pixels are an in-memory array (reads are cheap slices)."""
        return isinstance(self._source, ArraySource)

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.n_classes)

    def _row(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"{self.dataset_id}: index {i} out of range for {n} images")
        return int(self.rows[i])

    def image(self, i: int) -> np.ndarray:
        """``uint8 (H, W, 3)`` RGB image ``i``."""
        return self._source.get(self._row(int(i)))

    def images(self, indices) -> np.ndarray | list:
        """Several images: a stacked ``(B, H, W, 3)`` array when they share a size, else a list."""
        idx = np.asarray(indices, dtype=np.int64)
        rows = np.array([self._row(int(i)) for i in idx], dtype=np.int64)
        return self._source.get_many(rows)

    def describe(self, i: int) -> str:
        """Human-readable origin of image ``i`` (file path, array position, glyph)."""
        return self._source.describe(self._row(int(i)))

    def __getitem__(self, i: int):
        return self.image(i), int(self.labels[i])

    # -- views and keys -------------------------------------------------------------------
    def subset(self, indices) -> "LabelledImages":
        """A view on ``indices`` (positions in *this* object; order kept, no pixels copied)."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"boolean mask must have shape ({len(self)},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False).ravel()
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"{self.dataset_id}: subset indices out of range for {len(self)} images")
        return LabelledImages(self.dataset_id, self.classes, self.labels[idx], self._source, self.rows[idx])

    def fingerprint(self) -> str:
        """Content digest for cache keys: id + source digest + classes + selected rows."""
        return _digest("LabelledImages/v1", self.dataset_id, self._source.digest(), self.classes,
                       self.rows, self.labels)


class MissingAssetError(FileNotFoundError):
    """A dataset's files are not installed; the message says which package provides them."""


def require_path(path, *, what: str, debian: str | None = None, pip: str | None = None):
    """Return ``path`` as a ``Path`` if it exists, else raise :class:`MissingAssetError` with
    the install command (``apt-get install <pkg>`` / ``pip install <pkg>`` / scripts/setup.sh)."""
    from pathlib import Path

    p = Path(path)
    if p.exists():
        return p
    hints = []
    if debian:
        hints.append(f"install the Debian package: `sudo apt-get install {debian}`")
    if pip:
        hints.append(f"install the Python package: `pip install {pip}`")
    hints.append("or run scripts/setup.sh, which installs every dataset zoorank knows")
    raise MissingAssetError(f"{what} not found at {p}: " + "; ".join(hints))
