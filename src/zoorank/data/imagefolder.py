"""``imagefolder:<path>``: one class per sub-folder, images anywhere below it.

Same layout as ``torchvision.datasets.ImageFolder`` (``root/<class>/**/<image>``, classes
sorted by name, hidden entries ignored). Checked against pytorch/vision
``torchvision/datasets/folder.py`` (``find_classes``, ``make_dataset``) for the layout rules.
Files are checked once when loading (header, decompression-bomb pixel limit, PNG CRCs);
unreadable ones are skipped with a warning naming each file, and loading fails when more
than ``max_bad_fraction`` are bad. A folder with fewer than two classes, or a class folder
without images, is an error naming it.
"""
from __future__ import annotations

import os

from .base import FileSource, LabelledImages
from .images import (DEFAULT_MAX_BAD_FRACTION, DEFAULT_MAX_PIXELS, DEFAULT_MAX_SIDE, IMAGE_EXTENSIONS,
                     scan_images)


def find_classes(root: str) -> list[str]:
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


def _images_under(folder: str, extensions) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            if not fn.startswith(".") and fn.lower().endswith(extensions):
                out.append(os.path.join(dirpath, fn))
    return out


def load(
    *,
    root,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_side: int | None = DEFAULT_MAX_SIDE,
    verify: bool = True,
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
    extensions=IMAGE_EXTENSIONS,
    dataset_id: str | None = None,
) -> LabelledImages:
    if root is None:
        raise ValueError("imagefolder needs a folder: load_dataset('imagefolder:/path/to/folder')")
    root = os.path.abspath(os.path.expanduser(os.fspath(root)))
    if not os.path.isdir(root):
        raise ValueError(f"imagefolder: {root} is not a directory")
    extensions = tuple(e.lower() for e in extensions)
    classes = find_classes(root)
    if len(classes) < 2:
        found = f"only the class folder {classes[0]!r}" if classes else "no class sub-folders"
        raise ValueError(f"imagefolder {root}: {found}; need one sub-folder per class and at least 2 classes")
    paths, labels = [], []
    for code, name in enumerate(classes):
        files = _images_under(os.path.join(root, name), extensions)
        if not files:
            raise ValueError(f"imagefolder {root}: class folder {name!r} has no images "
                             f"(extensions {', '.join(extensions)})")
        paths.extend(files)
        labels.extend([code] * len(files))
    scan = scan_images(paths, max_pixels=max_pixels, verify=verify, max_bad_fraction=max_bad_fraction,
                       what=f"imagefolder {root}")
    keep = [i for i in range(len(paths)) if scan.ok[i]]
    kept_labels = [labels[i] for i in keep]
    present = set(kept_labels)
    for code, name in enumerate(classes):
        if code not in present:
            raise ValueError(f"imagefolder {root}: class folder {name!r} has no readable images")
    source = FileSource([paths[i] for i in keep], root=root, max_pixels=max_pixels, max_side=max_side,
                        sizes=[scan.sizes[i] for i in keep])
    return LabelledImages(dataset_id or f"imagefolder:{root}", classes, kept_labels, source)
