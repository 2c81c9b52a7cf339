"""Datasets: an id -> :class:`LabelledImages` (uint8 RGB images + int labels), splits and
low-data subsampling.

>>> from zoorank.data import load_dataset, stratified_split
>>> ds = load_dataset("digits", max_per_class=3)
>>> ds.image(0).shape, ds.n_classes
((8, 8, 3), 10)

Fixed ids: see :func:`list_datasets` / :func:`dataset_info` (all install offline, see
``docs/offline-assets.md``); plus ``imagefolder:<path>`` and
``torchvision:<Name>[:<split>]`` for user data.
"""
from .base import LabelledImages, MissingAssetError
from .images import (DecompressionBombError, ImageDecodeError, ImageSkippedWarning, decode_image, scan_images,
                     to_rgb)
from .registry import DatasetInfo, dataset_info, list_datasets, load_dataset
from .splits import cap_per_class, low_data_subsets, stratified_split, subsample_per_class

__all__ = [
    "LabelledImages", "MissingAssetError", "DatasetInfo",
    "load_dataset", "list_datasets", "dataset_info",
    "stratified_split", "subsample_per_class", "low_data_subsets", "cap_per_class",
    "decode_image", "to_rgb", "scan_images",
    "ImageDecodeError", "DecompressionBombError", "ImageSkippedWarning",
]
