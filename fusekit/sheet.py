"""Contact sheets: sources and results side by side, for looking at fusion by eye.

:func:`contact_sheet` tiles images one row per scene, optionally with column
titles in a band above (source names, then method or run names) and row
labels in a band on the left (scene names). :func:`label_font` and
:func:`draw_label` are the small drawing helpers the other labelled pictures
of fusekit share (the HTML report's scene sheets, ``benchmarks/tasks_sheet.py``):
white text on a dark box written over an image.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .color import to_rgb

#: Colour of titles and row labels (RGB, 0-255): near-black on the white sheet.
TEXT_RGB = (20, 20, 20)


def label_font(size: int):
    """Pillow's default font at ``size`` pixels (a fixed bitmap font on Pillow < 10.1)."""
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed bitmap font
        return ImageFont.load_default()


def draw_label(draw, xy: tuple[int, int], text: str, font) -> None:
    """Write ``text`` in white on a dark box whose top-left corner is ``xy`` (pixels).

    Parameters
    ----------
    draw : PIL.ImageDraw.ImageDraw
        Drawing context of the picture to write on.
    xy : (int, int)
        ``(x, y)`` of the box's top-left corner, in pixels.
    text : str
        One line of text.
    font : PIL.ImageFont.ImageFont or FreeTypeFont
        E.g. from :func:`label_font`.
    """
    x, y = xy
    box = draw.textbbox((x + 4, y + 2), text, font=font)
    draw.rectangle((x, y, box[2] + 4, box[3] + 3), fill=(0, 0, 0))
    draw.text((x + 4, y + 2), text, fill=(255, 255, 255), font=font)


def default_font_size(height: int) -> int:
    """Label size in pixels for tiles ``height`` pixels high: ``height / 11``, kept within 12-24."""
    return int(min(24, max(12, height // 11)))


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], height: int = 240, gap: int = 4, *,
                  titles: Sequence[str] | None = None, row_labels: Sequence[str] | None = None,
                  font_size: int | None = None) -> np.ndarray:
    """Tile images into one RGB sheet, one row per scene, optionally labelled.

    Parameters
    ----------
    rows : sequence of sequence of ndarray
        Each row: images ``H x W`` or ``H x W x 3`` float in [0, 1] (e.g.
        sources then results of several methods). Rows may hold images of
        different sizes and different numbers of images.
    height : int
        Every tile is resized to this height in pixels, keeping its aspect
        (bilinear, anti-aliased).
    gap : int
        White margin between tiles (and between the label bands and the
        tiles), in pixels.
    titles : sequence of str, optional
        Column titles, e.g. the source names then the method or run names,
        drawn in dark text centred in a white band above the first row (long
        titles wrap at spaces, or anywhere if one word is too long; ``"\\n"``
        breaks a line). At most one per column; a column without one (or
        with ``""``) is left untitled.
    row_labels : sequence of str, optional
        One label per row (e.g. ``"msrs/00055D"``), drawn in dark text at the
        top of a white band left of that row, wrapped the same way.
    font_size : int, optional
        Label text size in pixels; default :func:`default_font_size` of
        ``height`` (12-24 px).

    Returns
    -------
    ndarray, shape (H_total, W_total, 3), float32 in [0, 1]
        Without labels (the default): each row is its tiles side by side,
        ``gap`` apart, rows padded on the right to the widest and ``gap``
        apart, so ``H_total = n_rows * (height + gap) - gap``. With
        ``titles`` or ``row_labels`` the tiles are laid on a grid: column
        ``c`` is as wide as its widest tile (narrower tiles are centred in
        it), so ``W_total = L + sum(column widths) + (n_cols - 1) * gap``
        and ``H_total = T + n_rows * (height + gap) - gap``, where ``T`` is
        the title band's height plus ``gap`` (0 without titles) and ``L`` the
        row-label band's width plus ``gap`` (0 without row labels).

    Raises
    ------
    ValueError
        More titles than columns, or a number of row labels other than the
        number of rows.
    """
    from skimage.transform import resize

    rendered = []
    for row in rows:
        tiles = []
        for image in row:
            rgb = to_rgb(np.clip(image, 0, 1))
            width = max(1, round(rgb.shape[1] * height / rgb.shape[0]))
            tiles.append(resize(rgb, (height, width, 3), order=1, anti_aliasing=True).astype(np.float32))
        rendered.append(tiles)
    if titles is None and row_labels is None:
        return _packed(rendered, height, gap)

    n_cols = max(len(r) for r in rendered)
    if titles is not None and len(titles) > n_cols:
        raise ValueError(f"{len(titles)} titles for {n_cols} columns")
    if row_labels is not None and len(row_labels) != len(rendered):
        raise ValueError(f"{len(row_labels)} row labels for {len(rendered)} rows")
    col_w = [max(r[c].shape[1] for r in rendered if c < len(r)) for c in range(n_cols)]
    grid_w = sum(col_w) + gap * (n_cols - 1)
    body = []
    for tiles in rendered:
        line = np.ones((height, grid_w, 3), np.float32)
        x = 0
        for c, tile in enumerate(tiles):
            left = x + (col_w[c] - tile.shape[1]) // 2
            line[:, left:left + tile.shape[1]] = tile
            x += col_w[c] + gap
        body.append(line)
    font = label_font(font_size or default_font_size(height))
    parts = []
    if titles is not None:
        band = _title_band(list(titles), col_w, gap, font)
        parts += [band, np.ones((gap, grid_w, 3), np.float32)]
    for line in body:
        parts += [line, np.ones((gap, grid_w, 3), np.float32)]
    sheet = np.concatenate(parts[:-1], axis=0)
    if row_labels is not None:
        top = parts[0].shape[0] + gap if titles is not None else 0
        band = _row_band(list(row_labels), top, height, gap, sheet.shape[0], font)
        sheet = np.concatenate([band, np.ones((sheet.shape[0], gap, 3), np.float32), sheet], axis=1)
    return sheet


def _packed(rendered: list[list[np.ndarray]], height: int, gap: int) -> np.ndarray:
    """The unlabelled layout: tiles of a row side by side, rows padded on the right to the widest."""
    lines = []
    for tiles in rendered:
        spaced = []
        for tile in tiles:
            spaced += [tile, np.ones((height, gap, 3), np.float32)]
        lines.append(np.concatenate(spaced[:-1], axis=1))
    width = max(r.shape[1] for r in lines)
    padded = [np.pad(r, ((0, gap), (0, width - r.shape[1]), (0, 0)), constant_values=1.0) for r in lines]
    return np.concatenate(padded, axis=0)[:-gap]


def _wrap(text: str, width: float, measure) -> list[str]:
    """Lines of ``text`` no wider than ``width`` by ``measure`` (at spaces; inside a word only if it must)."""
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        line = ""
        for word in paragraph.split():
            trial = f"{line} {word}" if line else word
            if measure(trial) <= width:
                line = trial
                continue
            if line:
                lines.append(line)
            line = ""
            for ch in word:  # a word wider than the column: break it where it overflows
                if line and measure(line + ch) > width:
                    lines.append(line)
                    line = ""
                line += ch
        lines.append(line)
    return lines


def _line_height(font) -> int:
    from PIL import Image, ImageDraw

    box = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), "Ag|", font=font)
    return int(box[3] - box[1]) + 3


def _title_band(titles: list[str], col_w: list[int], gap: int, font) -> np.ndarray:
    """White band with each title wrapped to and centred over its column."""
    from PIL import Image, ImageDraw

    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    measure = lambda s: probe.textlength(s, font=font)  # noqa: E731
    wrapped = [_wrap(t, max(w - 4, 1), measure) for t, w in zip(titles, col_w)]
    lh = _line_height(font)
    band_h = max((len(lines) for lines in wrapped), default=1) * lh + 4
    band = Image.new("RGB", (sum(col_w) + gap * (len(col_w) - 1), band_h), (255, 255, 255))
    draw = ImageDraw.Draw(band)
    x = 0
    for c, w in enumerate(col_w):
        lines = wrapped[c] if c < len(wrapped) else []
        y = band_h - 2 - len(lines) * lh  # titles sit on the band's bottom, next to their pictures
        for line in lines:
            draw.text((x + (w - measure(line)) / 2, y), line, fill=TEXT_RGB, font=font)
            y += lh
        x += w + gap
    return np.asarray(band, dtype=np.float32) / 255.0


def _row_band(labels: list[str], top: int, height: int, gap: int, total_h: int, font) -> np.ndarray:
    """White band ``total_h`` high with each row's label at the top of its row, left aligned."""
    from PIL import Image, ImageDraw

    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    measure = lambda s: probe.textlength(s, font=font)  # noqa: E731
    widest_line = max((measure(s) for t in labels for s in str(t).split("\n")), default=0)
    widest_word = max((measure(w) for t in labels for w in str(t).split()), default=0)
    width = int(np.ceil(min(widest_line, max(widest_word, 0.75 * height)))) + 8
    band = Image.new("RGB", (width, total_h), (255, 255, 255))
    draw = ImageDraw.Draw(band)
    lh = _line_height(font)
    for k, label in enumerate(labels):
        y = top + k * (height + gap) + 2
        for line in _wrap(label, width - 8, measure):
            draw.text((4, y), line, fill=TEXT_RGB, font=font)
            y += lh
    return np.asarray(band, dtype=np.float32) / 255.0
