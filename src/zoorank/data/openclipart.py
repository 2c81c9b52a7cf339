"""Openclipart clip art from the Debian package ``openclipart-png`` (~6,000 x 13).

``/usr/share/openclipart/png/<category>/.../*.png``: the label is the top-level folder.
Many files appear twice (1,221 are symlinks, some into another category), so:

1. every PNG (symlinks followed) is read once and hashed (BLAKE2b of the bytes);
2. the folders ``unsorted`` and ``special`` are dropped (not categories);
3. an image whose content is filed under two or more remaining categories is dropped (its
   label is ambiguous); copies inside one category are kept once (first path in sorted order,
   real files before symlinks);
4. each file is checked without decoding (header, pixel count, PNG chunk CRCs): images above
   ``max_pixels`` (default 50 Mpixel) are left out, as are corrupt ones, in one warning that
   names them. The package has 15 such posters: 11 "mateya" food pictures of 168 Mpixel, a
   105-Mpixel flag, the 231-Mpixel microchip and two 623-Mpixel stop signs; each would take
   ~10 s and over 1 GB to decode for every backbone;
5. categories with fewer than ``min_images`` (50) unique images are dropped.

Decoding is lazy: RGBA/LA/palette transparency is flattened on white and images are shrunk to
``max_side`` (512) on load. The enumeration is memoised in memory (``functools.lru_cache``).
"""
from __future__ import annotations

import hashlib
import os
import warnings
from collections import defaultdict
from functools import lru_cache

from .base import FileSource, LabelledImages, require_path
from .images import DEFAULT_MAX_BAD_FRACTION, DEFAULT_MAX_SIDE, ImageSkippedWarning, scan_images

DEFAULT_ROOT = "/usr/share/openclipart/png"
DEBIAN_PACKAGE = "openclipart-png"
EXCLUDED_FOLDERS = ("unsorted", "special")
MIN_IMAGES = 50
MAX_PIXELS = 50_000_000


def _list_pngs(root: str) -> list[tuple[str, str]]:
    """``[(category, relative path)]`` for every ``*.png`` under ``root/<category>/``."""
    out = []
    for category in sorted(os.listdir(root)):
        top = os.path.join(root, category)
        if not os.path.isdir(top) or category.startswith("."):
            continue
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            dirnames.sort()
            for fn in sorted(filenames):
                if fn.lower().endswith(".png") and not fn.startswith("."):
                    out.append((category, os.path.relpath(os.path.join(dirpath, fn), root)))
    return out


@lru_cache(maxsize=4)
def enumerate_images(
    root: str = DEFAULT_ROOT,
    *,
    min_images: int = MIN_IMAGES,
    max_pixels: int | None = MAX_PIXELS,
    verify: bool = True,
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...], tuple]:
    """``(classes, absolute paths, label codes, header sizes)`` after dedup and checks."""
    require_path(root, what="openclipart PNG directory", debian=DEBIAN_PACKAGE)
    files = _list_pngs(root)
    if not files:
        raise FileNotFoundError(f"no PNG files under {root}")
    cats_of: dict[str, set] = defaultdict(set)
    best: dict[tuple[str, str], tuple] = {}  # (hash, category) -> (is_symlink, relpath)
    for category, rel in files:
        if category in EXCLUDED_FOLDERS:
            continue
        path = os.path.join(root, rel)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:  # dangling symlink, permissions
            warnings.warn(f"openclipart: skipping unreadable {path}: {exc}", ImageSkippedWarning, stacklevel=2)
            continue
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        cats_of[digest].add(category)
        key = (os.path.islink(path), rel)
        if (digest, category) not in best or key < best[(digest, category)]:
            best[(digest, category)] = key
    chosen = sorted(
        (category, rel) for (digest, category), (_, rel) in best.items() if len(cats_of[digest]) == 1
    )
    paths = [os.path.join(root, rel) for _, rel in chosen]
    scan = scan_images(paths, max_pixels=max_pixels, verify=verify, max_bad_fraction=max_bad_fraction,
                       what="openclipart", warn=False)
    if scan.reasons:
        bombs = [os.path.relpath(p, root) for p in scan.reasons if p in scan.bombs]
        corrupt = [r for p, r in scan.reasons.items() if p not in scan.bombs]
        parts = []
        if bombs:
            parts.append(f"{len(bombs)} over max_pixels={max_pixels:,} (decompression-bomb guard): "
                         + ", ".join(bombs))
        if corrupt:
            parts.append(f"{len(corrupt)} unreadable: " + "; ".join(corrupt))
        warnings.warn(f"openclipart: left out {len(scan.reasons)} of {len(paths)} images; " + "; ".join(parts),
                      ImageSkippedWarning, stacklevel=2)
    per_cat: dict[str, list] = defaultdict(list)
    for (category, _), path, ok, size in zip(chosen, paths, scan.ok, scan.sizes):
        if ok:
            per_cat[category].append((path, size))
    classes = tuple(sorted(c for c, items in per_cat.items() if len(items) >= min_images))
    out_paths, out_labels, out_sizes = [], [], []
    for code, category in enumerate(classes):
        for path, size in per_cat[category]:
            out_paths.append(path)
            out_labels.append(code)
            out_sizes.append(size)
    return classes, tuple(out_paths), tuple(out_labels), tuple(out_sizes)


def load(
    *,
    root=None,
    min_images: int = MIN_IMAGES,
    max_pixels: int | None = MAX_PIXELS,
    max_side: int | None = DEFAULT_MAX_SIDE,
    verify: bool = True,
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
) -> LabelledImages:
    root = os.path.abspath(os.fspath(root)) if root is not None else DEFAULT_ROOT
    classes, paths, labels, sizes = enumerate_images(
        root, min_images=min_images, max_pixels=max_pixels, verify=verify, max_bad_fraction=max_bad_fraction
    )
    source = FileSource(paths, root=root, max_pixels=max_pixels, max_side=max_side, sizes=sizes)
    return LabelledImages("openclipart", classes, labels, source)
