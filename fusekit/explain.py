"""Show what a learned loss asks for: sources, fused image and the proposed weight maps.

ReFusion's loss proposal network P (Bai et al., IJCV 2024, arXiv:2312.07943)
gives, at every pixel, how much the fused image should follow each source's
intensity and each source's gradient. :func:`explain_figure` draws one
labelled picture of those maps so a user can see what the learned loss
rewards: the sources, the fused image, then the intensity and gradient
weights of the first source (the second source's are 1 minus them) in a
diverging colour map with a colour bar.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["diverging_colours", "explain_figure"]

# blue (weight 0: the second source wins) -> white (even split) -> red (weight 1: the first source wins)
_ANCHORS = np.array([[0.13, 0.30, 0.68], [0.57, 0.75, 0.88], [0.97, 0.97, 0.97],
                     [0.96, 0.65, 0.51], [0.70, 0.09, 0.17]], dtype=np.float32)


def diverging_colours(values: np.ndarray) -> np.ndarray:
    """Map weights in [0, 1] to RGB: blue (0), white (0.5), red (1).

    Parameters
    ----------
    values : ndarray
        ``H x W`` values in [0, 1] (clipped).

    Returns
    -------
    ndarray
        ``H x W x 3`` float32 RGB in [0, 1].
    """
    t = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0) * (len(_ANCHORS) - 1)
    lo = np.minimum(t.astype(np.int64), len(_ANCHORS) - 2)
    frac = (t - lo)[..., None]
    return (_ANCHORS[lo] * (1 - frac) + _ANCHORS[lo + 1] * frac).astype(np.float32)


def _panel(image: np.ndarray, height: int) -> np.ndarray:
    from skimage.transform import resize

    rgb = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
    width = max(1, round(rgb.shape[1] * height / rgb.shape[0]))
    return np.clip(resize(rgb, (height, width), order=1, anti_aliasing=True), 0, 1).astype(np.float32)


def _colour_bar(height: int, first: str, second: str) -> tuple[np.ndarray, list[tuple[int, str]]]:
    ramp = np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None].repeat(24, axis=1)
    return diverging_colours(ramp), [(0, f"1: {first}"), (height // 2, "0.5: even"), (height - 12, f"0: {second}")]


def _fit(draw, text: str, width: int) -> str:
    """``text`` shortened with an ellipsis so that it fits ``width`` pixels."""
    if draw.textlength(text) <= width:
        return text
    while text and draw.textlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


def explain_figure(sources: Sequence[np.ndarray], fused: np.ndarray, w_int: np.ndarray, w_grad: np.ndarray,
                   names: Sequence[str], height: int = 256, title: str | None = None) -> np.ndarray:
    """A labelled figure: row 1 the sources and the fused image, row 2 the weight maps and a colour bar.

    Parameters
    ----------
    sources : sequence of ndarray
        The two sources, ``H x W`` or ``H x W x 3`` float in [0, 1].
    fused : ndarray
        The fused image, same size.
    w_int, w_grad : ndarray
        ``H x W`` weights of the first source for the intensity and the
        gradient terms, in [0, 1].
    names : sequence of str
        Labels of the two sources (e.g. file names or roles).
    height : int
        Panel height in pixels.
    title : str, optional
        A line drawn above the panels.

    Returns
    -------
    ndarray
        ``H' x W' x 3`` uint8 RGB picture.
    """
    from PIL import Image, ImageDraw

    label_h, gap = 16, 6
    head = label_h if title else 0
    top = [(_panel(s, height), n) for s, n in zip(sources, names)] + [(_panel(fused, height), "fused")]
    bar, ticks = _colour_bar(height, names[0], names[1])
    bottom = [(_panel(diverging_colours(w_int), height), f"intensity weight of {names[0]}: mean {w_int.mean():.2f}"),
              (_panel(diverging_colours(w_grad), height), f"gradient weight of {names[0]}: mean {w_grad.mean():.2f}")]
    widths = [sum(p.shape[1] for p, _ in row) + gap * (len(row) + 1) for row in (top, bottom)]
    bar_space = bar.shape[1] + 150
    width = max(widths[0], widths[1] + bar_space)
    canvas = np.ones((head + 2 * (height + label_h) + 3 * gap, width, 3), dtype=np.float32)
    spots: list[tuple[int, int, str, int]] = [(gap, 2, title, width - 2 * gap)] if title else []
    for r, row in enumerate((top, bottom)):
        y = head + gap + r * (height + label_h + gap) + label_h
        x = gap
        for panel, label in row:
            canvas[y:y + height, x:x + panel.shape[1]] = panel
            spots.append((x, y - label_h + 2, label, panel.shape[1]))
            x += panel.shape[1] + gap
        if r == 1:
            canvas[y:y + height, x + 4:x + 4 + bar.shape[1]] = bar
            for dy, text in ticks:
                spots.append((x + bar.shape[1] + 10, y + dy, text, width - x - bar.shape[1] - 12))
    picture = Image.fromarray((canvas * 255 + 0.5).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for x, y, text, room in spots:
        draw.text((x, y), _fit(draw, text, room), fill=(0, 0, 0))
    return np.asarray(picture)
