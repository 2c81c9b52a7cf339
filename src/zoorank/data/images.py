"""Decode image files to uint8 RGB arrays, safely.

Every decoder in zoorank goes through :func:`decode_image` / :func:`to_rgb`, so all datasets
see images the same way:

* any PIL mode becomes ``uint8 (H, W, 3)`` RGB: grey (``1``/``L``/``I;16``) is replicated,
  palette images are expanded, and transparency (alpha channel, ``tRNS`` key colour or palette
  transparency) is flattened onto a **white** background;
* a **decompression-bomb guard**: the pixel count in the header is checked against
  ``max_pixels`` *before* any pixel is decoded (openclipart ships a 231-Mpixel and two
  623-Mpixel PNGs);
* huge images are shrunk to ``max_side`` right after decoding (alpha is resampled
  premultiplied by PIL, then flattened) so a dataset of posters does not hold gigabytes;
* :func:`scan_images` checks a list of files once at load time (header, size, and for PNG the
  chunk CRCs up to ``IEND``, which catches truncated files), skips bad ones with a warning that
  names each file, counts the skips and fails when more than ``max_bad_fraction`` are bad.
"""
from __future__ import annotations

import io
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from PIL import Image, ImageOps

#: Default decompression-bomb limit: PIL's own hard limit (2 x ``Image.MAX_IMAGE_PIXELS``).
DEFAULT_MAX_PIXELS = 178_956_970
#: Default longest side kept after decoding a file image (the extractor resizes further).
DEFAULT_MAX_SIDE = 512
#: Default fraction of unreadable files tolerated by :func:`scan_images` before it fails.
DEFAULT_MAX_BAD_FRACTION = 0.05

IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm", ".pbm",
)

WHITE = (255, 255, 255)


class ImageDecodeError(ValueError):
    """An image file could not be decoded (corrupt, truncated, unsupported)."""


class DecompressionBombError(ImageDecodeError):
    """An image header claims more pixels than the configured ``max_pixels``."""


class ImageSkippedWarning(UserWarning):
    """A file was left out of a dataset because it could not be decoded safely."""


def _flatten_alpha(rgba: np.ndarray, background=WHITE) -> np.ndarray:
    """Composite straight-alpha ``(H, W, 4)`` uint8 onto an opaque background, rounding."""
    rgb = rgba[..., :3].astype(np.uint32)
    a = rgba[..., 3:4].astype(np.uint32)
    bg = np.asarray(background, dtype=np.uint32).reshape(1, 1, 3)
    out = (rgb * a + bg * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _high_bit_depth_to_l(img: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer and float grey images to 8-bit (PIL's convert clips instead)."""
    arr = np.asarray(img)
    if img.mode == "F":
        arr = arr.astype(np.float64)
        hi = 1.0 if np.nanmax(arr, initial=0.0) <= 1.0 else 255.0
        arr = np.clip(np.nan_to_num(arr) / hi * 255.0, 0, 255)
        return Image.fromarray(np.rint(arr).astype(np.uint8), "L")
    arr = arr.astype(np.int64)
    hi = 255 if arr.max(initial=0) <= 255 else 65535
    return Image.fromarray(np.rint(np.clip(arr, 0, hi) * (255.0 / hi)).astype(np.uint8), "L")


def _normalise_mode(img: Image.Image) -> Image.Image:
    """Bring any PIL mode to one of ``RGB``, ``RGBA`` (transparent) or ``L``."""
    mode = img.mode
    has_transparency = "transparency" in img.info
    if mode in ("RGB", "L") and not has_transparency:
        return img
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or has_transparency:
        if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            return _high_bit_depth_to_l(img)  # tRNS on 16-bit grey is rare: drop it
        return img.convert("RGBA")
    if mode == "1":
        return img.convert("L")
    if mode.startswith("I") or mode == "F":
        return _high_bit_depth_to_l(img)
    return img.convert("RGB")  # P without transparency, CMYK, YCbCr, LAB, HSV


def to_rgb(img: Image.Image, *, max_side: int | None = None, background=WHITE) -> np.ndarray:
    """PIL image (any mode) -> ``uint8 (H, W, 3)`` RGB, transparency flattened on ``background``.

    ``max_side``: when the longest side is larger, shrink (bilinear, antialiased, aspect kept)
    before flattening, so alpha is resampled premultiplied.
    """
    img = _normalise_mode(img)
    if max_side is not None and max(img.size) > max_side:
        w, h = img.size
        scale = max_side / max(w, h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = img.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    arr = np.asarray(img)
    if img.mode == "RGBA":
        return _flatten_alpha(arr, background)
    if img.mode == "L":
        return np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _describe(source) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else "<bytes>"


def _bomb_message(name: str, w: int | None, h: int | None, pixels: int, max_pixels) -> str:
    dims = f"{w}x{h} = " if w is not None else ""
    return (f"{name}: {dims}{pixels:,} pixels exceeds max_pixels={max_pixels:,} "
            "(decompression-bomb guard; pass a larger max_pixels to allow it)")


def _open_checked(source, max_pixels: int | None, name: str) -> Image.Image:
    """``Image.open`` (header only) with our own pixel limit checked before decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
    except Image.DecompressionBombError as exc:
        # PIL's own hard limit (2 x PIL.Image.MAX_IMAGE_PIXELS) fired first
        m = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(m.group(1)) if m else -1
        limit = max_pixels if max_pixels is not None else 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise DecompressionBombError(_bomb_message(name, None, None, pixels, min(limit, pixels - 1))) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError(f"{name}: cannot identify/open image: {exc}") from None
    w, h = img.size
    if max_pixels is not None and w * h > max_pixels:
        img.close()
        raise DecompressionBombError(_bomb_message(name, w, h, w * h, max_pixels))
    return img


def decode_image(
    source,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_side: int | None = None,
    background=WHITE,
    name: str | None = None,
) -> np.ndarray:
    """Decode a file path (or raw bytes) to ``uint8 (H, W, 3)`` RGB.

    Raises :class:`DecompressionBombError` when the header claims more than ``max_pixels``
    pixels, and :class:`ImageDecodeError` (naming the file) when the data is corrupt or
    truncated. EXIF orientation is applied; only the first frame of animations is used.
    """
    name = name or _describe(source)
    img = _open_checked(source, max_pixels, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if max_side is not None and img.format == "JPEG":
                img.draft("RGB", (max_side, max_side))  # DCT-domain downscale: cheap
            img.load()
            if img.format in ("JPEG", "TIFF", "WEBP", "MPO"):
                img = ImageOps.exif_transpose(img)
            return to_rgb(img, max_side=max_side, background=background)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageDecodeError(f"{name}: corrupt or truncated image: {exc}") from None
    finally:
        img.close()


def _check(source, data, max_pixels, verify) -> tuple[int, int]:
    name = _describe(source)
    img = _open_checked(data if data is not None else source, max_pixels, name)
    size = img.size
    try:
        if verify:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                img.verify()
    except Exception as exc:  # PIL raises many types here (SyntaxError, OSError, struct.error)
        raise ImageDecodeError(f"{name}: corrupt or truncated image: {exc!r}") from None
    finally:
        img.close()
    return size


def check_image(
    source, *, data: bytes | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS, verify: bool = True
) -> tuple[str | None, tuple[int, int] | None]:
    """Cheap validity check without decoding pixels. Returns ``(reason or None, (W, H) or None)``.

    Reads the header, applies the pixel limit and (``verify``) runs PIL's ``verify()``, which
    for PNG walks every chunk checking CRCs up to ``IEND`` and so catches truncated files.
    """
    try:
        return None, _check(source, data, max_pixels, verify)
    except ImageDecodeError as exc:
        return str(exc), None


@dataclass
class ScanResult:
    """Outcome of :func:`scan_images`: which files are usable and why the others are not."""

    ok: np.ndarray  # bool (N,)
    sizes: list  # (W, H) or None per file
    reasons: dict = field(default_factory=dict)  # path -> reason for every skipped file
    bombs: set = field(default_factory=set)  # the skipped paths that exceeded max_pixels

    @property
    def n_skipped(self) -> int:
        return int((~self.ok).sum())


def scan_images(
    paths: Sequence,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    verify: bool = True,
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
    what: str = "images",
    datas: Sequence[bytes] | None = None,
    warn: bool = True,
) -> ScanResult:
    """Check every file once; warn (naming the file) for each one skipped.

    Raises :class:`ImageDecodeError` when more than ``max_bad_fraction`` of the files are bad
    (a wrong folder or a broken copy is more likely than a few bad files). ``datas``: the
    files' bytes when the caller already read them (openclipart hashes them anyway).
    ``warn=False``: no warnings; the caller reports ``ScanResult.reasons`` itself.
    """
    if not 0.0 <= max_bad_fraction <= 1.0:
        raise ValueError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction}")
    n = len(paths)
    ok = np.ones(n, dtype=bool)
    sizes: list = [None] * n
    reasons: dict = {}
    bombs: set = set()
    for i, p in enumerate(paths):
        reason = None
        try:
            sizes[i] = _check(p, None if datas is None else datas[i], max_pixels, verify)
        except DecompressionBombError as exc:
            reason = str(exc)
            bombs.add(os.fspath(p))
        except ImageDecodeError as exc:
            reason = str(exc)
        if reason is not None:
            ok[i] = False
            reasons[os.fspath(p)] = reason
            if warn:
                warnings.warn(f"skipping {reason}", ImageSkippedWarning, stacklevel=2)
    n_bad = n - int(ok.sum())
    if n_bad:
        frac = n_bad / max(n, 1)
        msg = f"{what}: skipped {n_bad} of {n} files ({frac:.2%}) that could not be decoded safely"
        if frac > max_bad_fraction:
            first = "; ".join(list(reasons.values())[:5])
            raise ImageDecodeError(f"{msg}, more than max_bad_fraction={max_bad_fraction:.2%}. First: {first}")
        if warn:
            warnings.warn(msg, ImageSkippedWarning, stacklevel=2)
    return ScanResult(ok=ok, sizes=sizes, reasons=reasons, bombs=bombs)


def resize_rgb(image: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Resize ``uint8 (H, W, 3)`` to ``size_hw`` with PIL bilinear (antialiased when shrinking)."""
    h, w = int(size_hw[0]), int(size_hw[1])
    if image.shape[0] == h and image.shape[1] == w:
        return image
    return np.asarray(Image.fromarray(image, "RGB").resize((w, h), Image.Resampling.BILINEAR))


def grey_to_rgb(arr: np.ndarray) -> np.ndarray:
    """``(..., H, W)`` or ``(..., H, W, 1)`` uint8 -> ``(..., H, W, 3)`` (a copy)."""
    if arr.shape[-1] == 1 and arr.ndim >= 3:
        arr = arr[..., 0]
    return np.repeat(arr[..., None], 3, axis=-1)
