"""Emoji rendered from Noto Color Emoji, labelled by their Unicode group (1,870 x 9).

Sources: Debian ``fonts-noto-color-emoji`` (``NotoColorEmoji.ttf``, a CBDT bitmap font whose
only strike is 109 px, hence font size 109) and ``unicode-data``
(``/usr/share/unicode/emoji/emoji-test.txt``, which lists every emoji with its group and
subgroup). We keep the ``fully-qualified`` entries, drop the ``Component`` group and every
sequence with a skin-tone modifier (U+1F3FB..U+1F3FF), which leaves 1,870 emoji in 9 groups
(99 subgroups: ``label="subgroup"``). Each is drawn with ``embedded_color=True`` through
libraqm (so ZWJ sequences, flags and keycaps become one glyph), centred on a fixed
128x136 canvas and flattened on white. Renders are memoised in memory (``functools.lru_cache``).
"""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from .base import LabelledImages, MissingAssetError, RenderSource, require_path
from .images import _flatten_alpha

DEFAULT_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
DEFAULT_EMOJI_TEST = "/usr/share/unicode/emoji/emoji-test.txt"
FONT_SIZE = 109
SKIN_TONES = range(0x1F3FB, 0x1F400)
EXCLUDED_GROUPS = ("Component",)
REFERENCE = "\U0001F600"  # grinning face: sets the canvas size


@lru_cache(maxsize=4)
def parse_emoji_test(path: str = DEFAULT_EMOJI_TEST) -> tuple[tuple[str, str, str, str], ...]:
    """``(sequence, group, subgroup, name)`` for every kept emoji, in file (CLDR) order."""
    require_path(path, what="emoji-test.txt", debian="unicode-data")
    out = []
    group = subgroup = None
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("# group:"):
                group = line.split(":", 1)[1].strip()
                continue
            if line.startswith("# subgroup:"):
                subgroup = line.split(":", 1)[1].strip()
                continue
            if not line.strip() or line.startswith("#"):
                continue
            fields, _, comment = line.partition("#")
            cps_text, _, status = fields.partition(";")
            if status.strip() != "fully-qualified" or group in EXCLUDED_GROUPS:
                continue
            cps = [int(c, 16) for c in cps_text.split()]
            if any(c in SKIN_TONES for c in cps):
                continue
            # comment: "<emoji> E<version> <name>"
            parts = comment.strip().split(" ", 2)
            name = parts[2] if len(parts) == 3 else comment.strip()
            out.append(("".join(map(chr, cps)), group, subgroup, name))
    if not out:
        raise ValueError(f"{path}: no fully-qualified emoji found")
    return tuple(out)


@lru_cache(maxsize=4)
def _font(path: str, size: int):
    from PIL import ImageFont, features

    if not features.check("raqm"):
        raise RuntimeError("emoji rendering needs Pillow with libraqm (the PyPI wheels have it) "
                           "to shape ZWJ sequences and flags into one glyph")
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.RAQM)


def _bbox(text: str, font):
    from PIL import Image, ImageDraw

    return ImageDraw.Draw(Image.new("RGBA", (1, 1))).textbbox((0, 0), text, font=font, embedded_color=True)


@lru_cache(maxsize=4)
def canvas_size(font_path: str = DEFAULT_FONT, size: int = FONT_SIZE) -> tuple[int, int]:
    """``(H, W)`` of the canvas: the reference emoji's ink box (128x136 for Noto at 109)."""
    l, t, r, b = _bbox(REFERENCE, _font(font_path, size))
    return int(b - t), int(r - l)


@lru_cache(maxsize=None)
def render_emoji(text: str, font_path: str = DEFAULT_FONT, size: int = FONT_SIZE) -> np.ndarray:
    """Render one emoji sequence: ``uint8 (H, W, 3)`` on white, read-only, memoised."""
    from PIL import Image, ImageDraw

    font = _font(font_path, size)
    ch, cw = canvas_size(font_path, size)
    l, t, r, b = _bbox(text, font)
    w, h = max(1, r - l), max(1, b - t)
    glyph = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    ImageDraw.Draw(glyph).text((-l, -t), text, font=font, embedded_color=True)
    if w > cw or h > ch:  # wider than the reference: shrink to fit (premultiplied resize)
        scale = min(cw / w, ch / h)
        glyph = glyph.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    canvas = Image.new("RGBA", (cw, ch), (0, 0, 0, 0))
    canvas.paste(glyph, ((cw - glyph.width) // 2, (ch - glyph.height) // 2))
    out = _flatten_alpha(np.asarray(canvas))
    out.flags.writeable = False
    return out


def _render_item(item: tuple[str, str, int]) -> np.ndarray:
    font_path, text, size = item
    return render_emoji(text, font_path, size)


def load(*, root=None, label: str = "group", font_path=None, emoji_test=None) -> LabelledImages:
    """``root``: a folder holding ``NotoColorEmoji.ttf`` and ``emoji-test.txt`` (tests);
    ``label``: ``"group"`` (9 classes) or ``"subgroup"`` (99)."""
    if label not in ("group", "subgroup"):
        raise ValueError(f"label must be 'group' or 'subgroup', got {label!r}")
    if root is not None:
        font_path = font_path or os.path.join(root, "NotoColorEmoji.ttf")
        emoji_test = emoji_test or os.path.join(root, "emoji-test.txt")
    font_path = os.fspath(font_path or DEFAULT_FONT)
    emoji_test = os.fspath(emoji_test or DEFAULT_EMOJI_TEST)
    require_path(font_path, what="Noto Color Emoji font", debian="fonts-noto-color-emoji")
    entries = parse_emoji_test(emoji_test)
    col = 1 if label == "group" else 2
    classes: list[str] = []
    for e in entries:
        if e[col] not in classes:
            classes.append(e[col])
    code = {c: i for i, c in enumerate(classes)}
    labels = np.array([code[e[col]] for e in entries], dtype=np.int64)
    items = [(font_path, e[0], FONT_SIZE) for e in entries]
    try:
        from PIL import __version__ as pil_version, features

        recipe = ("emoji/v1", os.path.basename(font_path), os.path.getsize(font_path), FONT_SIZE, pil_version,
                  features.version("freetype2"), features.version("raqm"))
    except OSError as exc:  # pragma: no cover - require_path checked it
        raise MissingAssetError(str(exc)) from exc
    source = RenderSource(items, _render_item, recipe=recipe, size_hw=canvas_size(font_path, FONT_SIZE),
                          name="emoji")
    dataset_id = "emoji" if label == "group" else "emoji_subgroup"
    return LabelledImages(dataset_id, classes, labels, source)
