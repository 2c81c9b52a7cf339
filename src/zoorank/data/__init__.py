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
from __future__ import annotations

from zoorank.support.lazy_exports import lazy_exports

# Names -> the submodule defining them, imported on first use (PEP 562 module __getattr__):
# ``zoorank.data.splits`` (numpy only) loads without the image decoders (PIL) and the registry.
_LAZY = {
    "LabelledImages": ".base", "MissingAssetError": ".base",
    "DecompressionBombError": ".images", "ImageDecodeError": ".images", "ImageSkippedWarning": ".images",
    "decode_image": ".images", "scan_images": ".images", "to_rgb": ".images",
    "DatasetInfo": ".registry", "dataset_info": ".registry", "list_datasets": ".registry",
    "load_dataset": ".registry",
    "cap_per_class": ".splits", "low_data_subsets": ".splits", "stratified_split": ".splits",
    "subsample_per_class": ".splits",
}

__all__ = [
    "LabelledImages", "MissingAssetError", "DatasetInfo",
    "load_dataset", "list_datasets", "dataset_info",
    "stratified_split", "subsample_per_class", "low_data_subsets", "cap_per_class",
    "decode_image", "to_rgb", "scan_images",
    "ImageDecodeError", "DecompressionBombError", "ImageSkippedWarning",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY, __all__)
