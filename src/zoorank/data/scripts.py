"""Writing systems: letter glyphs of Noto fonts, labelled by script (~11,000 x 48).

Source: Debian ``fonts-noto-core`` (``/usr/share/fonts/truetype/noto``) read with
``fontTools``. For every ``NotoSans<Script>-Regular.ttf`` and ``NotoSerif<Script>-Regular.ttf``
the script name comes from the file name (``OldHungarian`` -> "Old Hungarian") and is
*checked against* ``unicodedata.name``: a code point in the font's cmap is kept only when it
is a letter (general category ``L*``) whose Unicode name starts with the script name
(``OLD HUNGARIAN CAPITAL LETTER A``). That drops the Latin/punctuation/digits every Noto font
carries, and fonts whose name is not a script (Math, Symbols, Display, TamilSlanted, the
Tifinagh regional variants). One image per (font file, letter): a script present in both Sans
and Serif contributes both designs. Scripts with fewer than ``min_glyphs`` (60) images are
dropped, which leaves 48 scripts and 11,170 glyphs with Debian 12's fonts-noto-core.

Glyphs are drawn black on white with FreeType's basic layout (no shaping: the isolated
glyph), font size 48, centred on a 64x64 canvas (shrunk to fit 56 px when larger).
The enumeration and the renders are memoised in memory (``functools.lru_cache``).
"""
from __future__ import annotations

import os
import re
import unicodedata
from functools import lru_cache

import numpy as np

from .base import LabelledImages, MissingAssetError, RenderSource, require_path

DEFAULT_FONT_DIR = "/usr/share/fonts/truetype/noto"
DEBIAN_PACKAGE = "fonts-noto-core"
FONT_RE = re.compile(r"^Noto(Sans|Serif)([A-Z][A-Za-z0-9]*)-Regular\.(ttf|otf)$")
MIN_GLYPHS = 60
FONT_SIZE = 48
CANVAS = 64
MARGIN = 4


def script_name(token: str) -> str:
    """``"OldHungarian"`` -> ``"Old Hungarian"``; ``"LinearA"`` -> ``"Linear A"``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", token)


def _unicode_prefix(name: str) -> str:
    return name.upper().replace("-", " ") + " "


def letters_of_script(cmap_codepoints, name: str) -> list[int]:
    """Code points that are letters of script ``name`` according to ``unicodedata``."""
    prefix = _unicode_prefix(name)
    out = []
    for cp in sorted(cmap_codepoints):
        ch = chr(cp)
        if unicodedata.category(ch).startswith("L") and unicodedata.name(ch, "").replace("-", " ").startswith(prefix):
            out.append(cp)
    return out


@lru_cache(maxsize=4)
def enumerate_glyphs(font_dir: str = DEFAULT_FONT_DIR, min_glyphs: int = MIN_GLYPHS):
    """``(classes, items, labels)``: items are ``(font path, code point)``, classes sorted."""
    try:
        from fontTools.ttLib import TTFont
    except ImportError as exc:
        raise MissingAssetError("the scripts dataset needs fontTools: `pip install fonttools` "
                                "or run scripts/setup.sh") from exc
    require_path(font_dir, what="Noto fonts directory", debian=DEBIAN_PACKAGE)
    per_script: dict[str, list] = {}
    for fn in sorted(os.listdir(font_dir)):
        m = FONT_RE.match(fn)
        if not m:
            continue
        name = script_name(m.group(2))
        path = os.path.join(font_dir, fn)
        with TTFont(path, lazy=True) as font:
            cmap = font.getBestCmap() or {}
        cps = letters_of_script(cmap.keys(), name)
        per_script.setdefault(name, []).extend((path, cp) for cp in cps)
    if not per_script:
        raise MissingAssetError(f"no NotoSans<Script>-Regular fonts in {font_dir}: "
                                f"`sudo apt-get install {DEBIAN_PACKAGE}` or run scripts/setup.sh")
    classes = tuple(sorted(n for n, items in per_script.items() if len(items) >= min_glyphs))
    items, labels = [], []
    for code, name in enumerate(classes):
        items.extend(per_script[name])
        labels.extend([code] * len(per_script[name]))
    return classes, tuple(items), tuple(labels)


@lru_cache(maxsize=64)
def _font(path: str, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)


@lru_cache(maxsize=None)
def render_glyph(font_path: str, codepoint: int, size: int = FONT_SIZE, canvas: int = CANVAS) -> np.ndarray:
    """One glyph, black on white, ``uint8 (canvas, canvas)`` grey, read-only, memoised."""
    from PIL import Image, ImageDraw

    font = _font(font_path, size)
    ch = chr(codepoint)
    l, t, r, b = font.getbbox(ch)
    w, h = max(1, r - l), max(1, b - t)
    glyph = Image.new("L", (w, h), 255)
    ImageDraw.Draw(glyph).text((-l, -t), ch, font=font, fill=0)
    inner = canvas - 2 * MARGIN
    if w > inner or h > inner:
        scale = min(inner / w, inner / h)
        glyph = glyph.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    img = Image.new("L", (canvas, canvas), 255)
    img.paste(glyph, ((canvas - glyph.width) // 2, (canvas - glyph.height) // 2))
    out = np.asarray(img).copy()
    out.flags.writeable = False
    return out


def _render_item(item: tuple[str, int]) -> np.ndarray:
    return render_glyph(item[0], item[1])


def load(*, root=None, min_glyphs: int = MIN_GLYPHS) -> LabelledImages:
    """``root``: the fonts directory (default ``/usr/share/fonts/truetype/noto``)."""
    font_dir = os.path.abspath(os.fspath(root)) if root is not None else DEFAULT_FONT_DIR
    classes, items, labels = enumerate_glyphs(font_dir, min_glyphs)
    from PIL import __version__ as pil_version, features

    fonts = sorted({p for p, _ in items})
    recipe = ("scripts/v1", FONT_SIZE, CANVAS, MARGIN, pil_version, features.version("freetype2"),
              [(os.path.basename(p), os.path.getsize(p)) for p in fonts])
    source = RenderSource(items, _render_item, recipe=recipe, size_hw=(CANVAS, CANVAS), name="scripts")
    return LabelledImages("scripts", list(classes), np.asarray(labels, dtype=np.int64), source)
