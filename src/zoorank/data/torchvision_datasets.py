"""``torchvision:<Name>[:<split>]``: a ``torchvision.datasets`` class over files already on disk.

zoorank never downloads: the class is built with ``download=False`` and the given ``root``;
a missing dataset is an error saying where torchvision looked. ``<split>`` goes to the class's
``split=`` argument, or to ``train=`` (``train`` -> True, anything else -> False).

Conversion to :class:`LabelledImages`, cheapest first:

* an in-memory ``data`` array (MNIST family, CIFAR, SVHN): kept as uint8 ``(N,H,W[,3])``,
  ``(N,C,H,W)`` is transposed;
* a list of files (``samples`` of ``ImageFolder``/``DatasetFolder``, or ``_image_files`` with
  ``_labels``): decoded lazily like ``imagefolder``;
* anything else: items fetched one by one through ``dataset[i]`` (labels read once at load).
"""
from __future__ import annotations

import difflib
import inspect
import os

import numpy as np

from .base import ArraySource, CallableSource, FileSource, LabelledImages, MissingAssetError
from .images import DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE


def _dataset_class(name: str):
    import torch.utils.data
    import torchvision.datasets as tvd

    names = [n for n in dir(tvd) if isinstance(getattr(tvd, n), type)
             and issubclass(getattr(tvd, n), torch.utils.data.Dataset)]
    cls = getattr(tvd, name, None)
    if name not in names or cls is None:
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"torchvision.datasets has no dataset class {name!r}{hint}")
    return cls


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "numpy"):
        return x.numpy()
    return np.asarray(x)


def _encode(targets, classes_attr):
    y = np.asarray([int(t) for t in targets], dtype=np.int64)
    values, codes = np.unique(y, return_inverse=True)
    if classes_attr is not None and len(classes_attr) > int(values.max(initial=-1)) and values.min(initial=0) >= 0:
        classes = [str(classes_attr[v]) for v in values]
    else:
        classes = [str(v) for v in values]
    return classes, codes.astype(np.int64)


def load(
    name: str,
    *,
    root,
    split: str | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_side: int | None = DEFAULT_MAX_SIDE,
    **kwargs,
) -> LabelledImages:
    if root is None:
        raise ValueError(f"torchvision:{name} needs root= (the folder holding its files; zoorank never downloads)")
    root = os.path.abspath(os.path.expanduser(os.fspath(root)))
    cls = _dataset_class(name)
    params = inspect.signature(cls.__init__).parameters
    kw = dict(kwargs)
    if "download" in params:
        kw["download"] = False
    if split is not None:
        if "split" in params:
            kw["split"] = split
        elif "train" in params:
            kw["train"] = str(split).lower() == "train"
        else:
            raise ValueError(f"torchvision.datasets.{name} takes neither split= nor train=")
    try:
        ds = cls(root, **kw)
    except (RuntimeError, FileNotFoundError) as exc:
        raise MissingAssetError(
            f"torchvision.datasets.{name} not found under {root} (download=False: zoorank never "
            f"downloads, put the files there first): {exc}") from exc
    dataset_id = f"torchvision:{name}" + (f":{split}" if split is not None else "")
    classes_attr = getattr(ds, "classes", None)

    data = getattr(ds, "data", None)
    targets = next((getattr(ds, a) for a in ("targets", "labels", "_labels") if getattr(ds, a, None) is not None),
                   None)
    if data is not None and targets is not None and not isinstance(data, (list, tuple)):
        arr = _as_numpy(data)
        if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[-1] not in (1, 3):
            arr = np.transpose(arr, (0, 2, 3, 1))  # (N, C, H, W) -> (N, H, W, C)
        if arr.dtype == np.uint8 and (arr.ndim == 3 or (arr.ndim == 4 and arr.shape[-1] in (1, 3))):
            classes, codes = _encode(_as_numpy(targets).ravel(), classes_attr)
            return LabelledImages(dataset_id, classes, codes, ArraySource(np.ascontiguousarray(arr), dataset_id))

    files = None
    if getattr(ds, "samples", None) is not None:
        files = [(p, t) for p, t in ds.samples]
    elif getattr(ds, "_image_files", None) is not None and targets is not None:
        files = list(zip(ds._image_files, targets))
    if files is not None and all(isinstance(p, (str, os.PathLike)) for p, _ in files):
        classes, codes = _encode([t for _, t in files], classes_attr)
        source = FileSource([p for p, _ in files], root=root, max_pixels=max_pixels, max_side=max_side)
        return LabelledImages(dataset_id, classes, codes, source)

    if targets is None:
        targets = [ds[i][1] for i in range(len(ds))]
    classes, codes = _encode(targets, classes_attr)
    source = CallableSource(ds, key=(dataset_id, root, sorted(kw.items(), key=str)), name=dataset_id)
    if len(source) != len(codes):
        raise ValueError(f"{dataset_id}: {len(source)} items but {len(codes)} labels")
    return LabelledImages(dataset_id, classes, codes, source)
